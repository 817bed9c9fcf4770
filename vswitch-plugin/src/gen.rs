//! The project's own traffic generator: a deterministic, seeded pcap of what a
//! host's vSwitch ports see, for replay tests and benchmarks.
//!
//! Same [`GenSpec`] and ENIs, same bytes, on every machine: the PRNG is a
//! hand-written xoshiro256** seeded through splitmix64, and nothing depends on
//! floating point or hash order.
//!
//! What is in it:
//! - a pool of `spec.flows` conversations whose packet shares follow Zipf's
//!   law (weight 1/rank), so there are top talkers; the heaviest are TCP;
//! - east-west (one ENI's MAC to another's) and north-south traffic (between an
//!   ENI and [`GATEWAY_MAC`], with peers on public IPv4 and IPv6 addresses),
//!   both directions of every conversation, IPv4 (~70%) and IPv6;
//! - TCP with a real life cycle (SYN, SYN-ACK, ACK, data as ACK or PSH-ACK,
//!   then FIN-ACK both ways and ACK, or sometimes RST-ACK; then a new
//!   connection from a new client port), UDP (DNS, NTP, QUIC, statsd), ICMP
//!   and ICMPv6 echo;
//! - some frames with one VLAN tag (0x8100) or two (0x88a8 + 0x8100), frames
//!   from outside padded to 60 bytes as on a wire;
//! - a few ARP frames and malformed frames (IPv4 IHL 3, an IPv6 header cut at
//!   20 bytes, an IPv4 Total Length past the frame), an inbound telnet attempt
//!   (SYNs to port 23) and an inbound port scan (SYNs to port after port) from
//!   outside addresses, both aimed at the first ENI, so that policy has
//!   something to reject.
//!
//! Timestamps run from `start_unix` and step evenly over `duration_s`: frame
//! `k` of `n` is at `start + floor(k * duration / n)`.
//! IPv4 header checksums and TCP, UDP, ICMP and ICMPv6 checksums are correct.

use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::capture::{PcapWriter, WriterOptions};

/// The MAC of the host's gateway: north-south frames go to it or come from it.
pub const GATEWAY_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0xff, 0xff];

/// One ENI as the generator sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenEni {
    /// Its MAC address.
    pub mac: [u8; 6],
    /// Its IPv4 address.
    pub ipv4: Ipv4Addr,
    /// Its IPv6 address.
    pub ipv6: Ipv6Addr,
}

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenSpec {
    /// Frames to write. Default 1 000 000.
    pub packets: u64,
    /// PRNG seed. Default 1.
    pub seed: u64,
    /// Time of the first frame, Unix seconds. Default 1 704 067 200
    /// (2024-01-01T00:00:00Z, aligned to every aggregation interval).
    pub start_unix: u64,
    /// Seconds the frames are spread over. Default 300 (five 60 s windows).
    pub duration_s: u64,
    /// Conversations in the Zipf pool. Default 2000 (the top one carries about
    /// 12% of the packets, the top ten about 36%).
    pub flows: u32,
    /// Nanosecond pcap (else microseconds). Default false.
    pub nanos: bool,
}

impl Default for GenSpec {
    fn default() -> GenSpec {
        GenSpec {
            packets: 1_000_000,
            seed: 1,
            start_unix: 1_704_067_200,
            duration_s: 300,
            flows: 2000,
            nanos: false,
        }
    }
}

/// What was generated, by kind. For every run:
/// `packets == ipv4 + ipv6 + arp + malformed`, and the IP packets split as
/// `ipv4 + ipv6 == tcp + udp + icmp + icmpv6 == east_west + north_south`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenStats {
    /// Frames written.
    pub packets: u64,
    /// Bytes of the frames written (link layer included).
    pub frame_bytes: u64,
    /// IP-level bytes of the well-formed IP packets, as RECORDS.md "Bytes"
    /// counts them (IPv4 Total Length, 40 + IPv6 Payload Length).
    pub ip_bytes: u64,
    /// Well-formed IPv4 packets.
    pub ipv4: u64,
    /// Well-formed IPv6 packets.
    pub ipv6: u64,
    /// TCP segments (scan and telnet SYNs included).
    pub tcp: u64,
    /// UDP datagrams.
    pub udp: u64,
    /// ICMP echo requests and replies.
    pub icmp: u64,
    /// ICMPv6 echo requests and replies.
    pub icmpv6: u64,
    /// IP packets between two ENIs.
    pub east_west: u64,
    /// IP packets between an ENI and the outside, either way.
    pub north_south: u64,
    /// Frames with one VLAN tag.
    pub vlan_single: u64,
    /// Frames with two VLAN tags.
    pub vlan_double: u64,
    /// ARP frames (not IP).
    pub arp: u64,
    /// Frames whose IP header is broken (not logged, counted as malformed).
    pub malformed: u64,
    /// Inbound SYNs to TCP port 23 from outside.
    pub telnet: u64,
    /// Inbound SYNs of the port scan.
    pub port_scan: u64,
    /// TCP connections opened (SYNs of the conversations).
    pub tcp_connections: u64,
}

/// The ENIs of `config/example.json`, in its order (keep the two in sync; a
/// test checks them).
pub fn example_enis() -> Vec<GenEni> {
    let eni = |n: u8, v4: [u8; 4], v6_net: u16, v6_host: u16| GenEni {
        mac: [0x02, 0, 0, 0, 0, n],
        ipv4: Ipv4Addr::from(v4),
        ipv6: Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, v6_net, v6_host),
    };
    vec![
        eni(1, [10, 0, 1, 5], 1, 5),
        eni(2, [10, 0, 1, 6], 1, 6),
        eni(3, [10, 0, 2, 5], 2, 5),
        eni(4, [10, 0, 2, 6], 2, 6),
        eni(5, [10, 1, 1, 5], 3, 5),
        eni(6, [10, 1, 1, 6], 3, 6),
    ]
}

/// Writes `spec.packets` frames as a classic pcap (Ethernet) to `out`, through
/// a 1 MiB buffer. `enis` must not be empty; with one ENI there is no
/// east-west traffic.
pub fn generate(spec: &GenSpec, enis: &[GenEni], out: impl Write) -> io::Result<GenStats> {
    if enis.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the generator needs at least one ENI",
        ));
    }
    let mut gen = Gen::new(spec, enis);
    let mut w = PcapWriter::new(
        out,
        WriterOptions {
            nanos: spec.nanos,
            ..WriterOptions::default()
        },
    )?;
    // Frame k is at start + floor(k * dur / n), kept exactly without a
    // 128-bit division per frame.
    let n = spec.packets.max(1);
    let dur_ns = spec.duration_s.saturating_mul(1_000_000_000);
    let (step, rem) = (dur_ns / n, dur_ns % n);
    let mut ts = spec.start_unix.saturating_mul(1_000_000_000);
    let mut acc = 0u64;
    for k in 0..spec.packets {
        gen.next_frame(k);
        w.write_frame(ts, &gen.fb.b, gen.fb.b.len() as u32)?;
        gen.stats.frame_bytes += gen.fb.b.len() as u64;
        ts += step;
        acc += rem;
        if acc >= n {
            acc -= n;
            ts += 1;
        }
    }
    w.finish()?.flush()?;
    gen.stats.packets = spec.packets;
    Ok(gen.stats)
}

/// xoshiro256** (Blackman and Vigna), seeded by splitmix64.
struct Rng {
    s: [u64; 4],
}

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut splitmix = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng {
            s: [splitmix(), splitmix(), splitmix(), splitmix()],
        }
    }

    #[inline]
    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let out = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is below 2^-40
    /// for the ranges used here). `n > 0`.
    #[inline]
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    #[inline]
    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below(u64::from(hi - lo) + 1) as u32
    }

    /// True with probability `pct` percent.
    #[inline]
    fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    fn u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn ephemeral_port(&mut self) -> u16 {
        self.range(32_768, 60_999) as u16
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum App {
    /// TCP 80/443: small requests, bulk responses.
    Web,
    /// TCP 22: small packets both ways.
    Ssh,
    /// TCP 3306/5432: queries and result sets.
    Db,
    /// UDP 53: query and answer, a new client port per query.
    Dns,
    /// UDP 123.
    Ntp,
    /// UDP 443, large datagrams.
    Quic,
    /// UDP 8125, one way.
    Statsd,
    /// ICMP / ICMPv6 echo request and reply.
    Echo,
}

impl App {
    fn is_tcp(self) -> bool {
        matches!(self, App::Web | App::Ssh | App::Db)
    }

    /// Percent of data-phase packets the client sends; percent of those that
    /// are bare ACKs; client and server payload ranges; percent of server
    /// segments that are full-sized.
    fn shape(self) -> (u64, u64, (u32, u32), (u32, u32), u64) {
        match self {
            App::Web => (35, 65, (150, 700), (200, 1440), 60),
            App::Ssh => (50, 20, (36, 120), (36, 400), 0),
            App::Db => (45, 20, (40, 400), (60, 1440), 30),
            App::Dns => (50, 0, (30, 60), (60, 400), 0),
            App::Ntp => (50, 0, (48, 48), (48, 48), 0),
            App::Quic => (30, 0, (40, 1350), (1200, 1350), 0),
            App::Statsd => (100, 0, (20, 200), (0, 0), 0),
            App::Echo => (50, 0, (56, 56), (56, 56), 0),
        }
    }
}

/// One conversation of the pool, from its client's point of view.
#[derive(Clone, Debug)]
struct Flow {
    /// Link-layer address on the client's side (an ENI, or the gateway).
    c_mac: [u8; 6],
    s_mac: [u8; 6],
    /// IPv4 in the first four bytes when `!v6`.
    c_ip: [u8; 16],
    s_ip: [u8; 16],
    v6: bool,
    c_port: u16,
    s_port: u16,
    app: App,
    vlans: [u16; 2],
    n_vlans: usize,
    c_ttl: u8,
    s_ttl: u8,
    /// Frames from outside arrive padded to the Ethernet minimum.
    c_pad: bool,
    s_pad: bool,
    east_west: bool,
    flow_label: u32,
    /// Packets into the current connection (or exchange).
    step: u32,
    /// Packets in the current TCP connection.
    conn_len: u32,
    /// Bound on connection lengths: long for heavy flows.
    span: u32,
    rst: bool,
    seq_c: u32,
    seq_s: u32,
    echo_id: u16,
    echo_seq: u16,
}

/// Fixed, repeating payload bytes with precomputed checksum prefix sums, so
/// an L4 checksum costs the header, not the payload.
const PATTERN_LEN: usize = 1500;

/// A frame under construction, reused for every frame.
struct FrameBuf {
    b: Vec<u8>,
    pattern: Vec<u8>,
    /// `prefix[n]`: 16-bit big-endian word sum of `pattern[..n]` (an odd last
    /// byte as the high half of a word), unfolded.
    prefix: Vec<u32>,
    ip_id: u16,
}

/// Folds a ones' complement sum and complements it.
#[inline]
fn fold(mut s: u32) -> u16 {
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// 16-bit big-endian word sum, unfolded.
#[inline]
fn sum16(b: &[u8]) -> u32 {
    let mut chunks = b.chunks_exact(2);
    let mut s: u32 = chunks
        .by_ref()
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    if let [last] = chunks.remainder() {
        s += u32::from(*last) << 8;
    }
    s
}

/// Layer-4 payload of one packet.
#[derive(Clone, Copy)]
enum L4 {
    Tcp {
        flags: u8,
        seq: u32,
        ack: u32,
        len: usize,
    },
    Udp {
        len: usize,
    },
    /// Echo request (`reply == false`) or reply, `len` bytes of data.
    Echo {
        reply: bool,
        id: u16,
        seq: u16,
        len: usize,
    },
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_ARP: u16 = 0x0806;

impl FrameBuf {
    fn new() -> FrameBuf {
        // Printable bytes from a fixed LCG: independent of the seed.
        let mut x: u32 = 0x1234_5678;
        let pattern: Vec<u8> = (0..PATTERN_LEN)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                b' ' + ((x >> 24) % 95) as u8
            })
            .collect();
        let mut prefix = vec![0u32; PATTERN_LEN + 1];
        for n in 1..=PATTERN_LEN {
            prefix[n] = if n & 1 == 0 {
                prefix[n - 2] + u32::from(u16::from_be_bytes([pattern[n - 2], pattern[n - 1]]))
            } else {
                prefix[n - 1] + (u32::from(pattern[n - 1]) << 8)
            };
        }
        FrameBuf {
            b: Vec::with_capacity(2048),
            pattern,
            prefix,
            ip_id: 0,
        }
    }

    fn eth(&mut self, dst: &[u8; 6], src: &[u8; 6], vlans: &[u16], ethertype: u16) {
        self.b.clear();
        self.b.extend_from_slice(dst);
        self.b.extend_from_slice(src);
        match *vlans {
            [] => {}
            [tci] => {
                self.b.extend_from_slice(&0x8100u16.to_be_bytes());
                self.b.extend_from_slice(&tci.to_be_bytes());
            }
            [outer, inner, ..] => {
                self.b.extend_from_slice(&0x88a8u16.to_be_bytes());
                self.b.extend_from_slice(&outer.to_be_bytes());
                self.b.extend_from_slice(&0x8100u16.to_be_bytes());
                self.b.extend_from_slice(&inner.to_be_bytes());
            }
        }
        self.b.extend_from_slice(&ethertype.to_be_bytes());
    }

    /// An IPv4 header with a correct checksum; returns the L4 pseudo-header sum.
    fn ipv4(&mut self, src: &[u8], dst: &[u8], proto: u8, l4_len: usize, ttl: u8) -> u32 {
        let total = (20 + l4_len) as u16;
        self.ip_id = self.ip_id.wrapping_add(1);
        let start = self.b.len();
        let [t0, t1] = total.to_be_bytes();
        let [i0, i1] = self.ip_id.to_be_bytes();
        // DF on TCP, as stacks with path MTU discovery set it.
        let df = if proto == 6 { 0x40 } else { 0 };
        self.b
            .extend_from_slice(&[0x45, 0, t0, t1, i0, i1, df, 0, ttl, proto, 0, 0]);
        self.b.extend_from_slice(&src[..4]);
        self.b.extend_from_slice(&dst[..4]);
        let c = fold(sum16(&self.b[start..start + 20]));
        self.b[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());
        sum16(&src[..4]) + sum16(&dst[..4]) + u32::from(proto) + l4_len as u32
    }

    /// An IPv6 header; returns the L4 pseudo-header sum.
    fn ipv6(
        &mut self,
        src: &[u8],
        dst: &[u8],
        next: u8,
        l4_len: usize,
        hlim: u8,
        label: u32,
    ) -> u32 {
        self.b
            .extend_from_slice(&(0x6000_0000 | (label & 0xf_ffff)).to_be_bytes());
        self.b.extend_from_slice(&(l4_len as u16).to_be_bytes());
        self.b.extend_from_slice(&[next, hlim]);
        self.b.extend_from_slice(&src[..16]);
        self.b.extend_from_slice(&dst[..16]);
        let len = l4_len as u32;
        sum16(&src[..16]) + sum16(&dst[..16]) + (len >> 16) + (len & 0xffff) + u32::from(next)
    }

    /// The L4 header and payload, checksummed with `pseudo` (0 for ICMP).
    fn l4(&mut self, l4: L4, sport: u16, dport: u16, pseudo: u32, v6: bool) {
        let start = self.b.len();
        let (csum_at, len) = match l4 {
            L4::Tcp {
                flags,
                seq,
                ack,
                len,
            } => {
                self.b.extend_from_slice(&sport.to_be_bytes());
                self.b.extend_from_slice(&dport.to_be_bytes());
                self.b.extend_from_slice(&seq.to_be_bytes());
                self.b.extend_from_slice(&ack.to_be_bytes());
                let win: u16 = if flags & SYN != 0 { 64_240 } else { 502 };
                let [w0, w1] = win.to_be_bytes();
                self.b.extend_from_slice(&[0x50, flags, w0, w1, 0, 0, 0, 0]);
                (16, len)
            }
            L4::Udp { len } => {
                self.b.extend_from_slice(&sport.to_be_bytes());
                self.b.extend_from_slice(&dport.to_be_bytes());
                self.b.extend_from_slice(&((8 + len) as u16).to_be_bytes());
                self.b.extend_from_slice(&[0, 0]);
                (6, len)
            }
            L4::Echo {
                reply,
                id,
                seq,
                len,
            } => {
                let ty = match (v6, reply) {
                    (false, false) => 8,
                    (false, true) => 0,
                    (true, false) => 128,
                    (true, true) => 129,
                };
                self.b.extend_from_slice(&[ty, 0, 0, 0]);
                self.b.extend_from_slice(&id.to_be_bytes());
                self.b.extend_from_slice(&seq.to_be_bytes());
                (2, len)
            }
        };
        let s = pseudo + sum16(&self.b[start..]) + self.prefix[len];
        let mut c = fold(s);
        if c == 0 && matches!(l4, L4::Udp { .. }) {
            c = 0xffff; // 0 would mean "no checksum"
        }
        self.b[start + csum_at..start + csum_at + 2].copy_from_slice(&c.to_be_bytes());
        self.b.extend_from_slice(&self.pattern[..len]);
    }

    fn pad(&mut self) {
        if self.b.len() < 60 {
            self.b.resize(60, 0);
        }
    }
}

/// Rare events, by frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Special {
    Telnet,
    Scan,
    Arp,
    Malformed,
}

/// Public IPv4 /16s and IPv6 /32s for outside peers.
const PEER_V4: &[[u8; 2]] = &[
    [23, 192],
    [34, 117],
    [52, 84],
    [104, 16],
    [142, 250],
    [151, 101],
    [185, 199],
];
const PEER_V6: &[[u16; 2]] = &[
    [0x2600, 0x1f18],
    [0x2a00, 0x1450],
    [0x2606, 0x4700],
    [0x2a03, 0x2880],
];
const RESOLVER_V4: [u8; 4] = [8, 8, 8, 8];
const RESOLVER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8888);
const NTP_V4: [u8; 4] = [162, 159, 200, 1];
const NTP_V6: Ipv6Addr = Ipv6Addr::new(0x2606, 0x4700, 0xf1, 0, 0, 0, 0, 1);
/// Source of the inbound telnet attempts.
pub const TELNET_SOURCE: Ipv4Addr = Ipv4Addr::new(45, 95, 147, 23);
/// Source of the inbound port scan.
pub const SCANNER: Ipv4Addr = Ipv4Addr::new(185, 220, 101, 66);

struct Gen<'a> {
    enis: &'a [GenEni],
    rng: Rng,
    flows: Vec<Flow>,
    /// Cumulative Zipf weights of `flows`.
    cdf: Vec<u64>,
    fb: FrameBuf,
    stats: GenStats,
    packets: u64,
    scan_port: u16,
    telnet_port: u16,
    /// SYNs left to send from `telnet_port`.
    telnet_tries: u8,
    arp_n: u64,
    malformed_n: u64,
}

fn v4_16(a: [u8; 4]) -> [u8; 16] {
    let mut o = [0u8; 16];
    o[..4].copy_from_slice(&a);
    o
}

impl<'a> Gen<'a> {
    fn new(spec: &GenSpec, enis: &'a [GenEni]) -> Gen<'a> {
        let mut rng = Rng::new(spec.seed);
        let n = spec.flows.max(1) as usize;
        let weights: Vec<u64> = (0..n as u64).map(|i| (1u64 << 40) / (i + 1)).collect();
        let total: u64 = weights.iter().sum();
        let mut cdf = Vec::with_capacity(n);
        let mut acc = 0;
        for w in &weights {
            acc += w;
            cdf.push(acc);
        }
        let flows = weights
            .iter()
            .enumerate()
            .map(|(rank, &w)| {
                let expected = u128::from(spec.packets) * u128::from(w) / u128::from(total);
                new_flow(&mut rng, enis, rank, expected as u64)
            })
            .collect();
        Gen {
            enis,
            rng,
            flows,
            cdf,
            fb: FrameBuf::new(),
            stats: GenStats::default(),
            packets: spec.packets,
            scan_port: 0,
            telnet_port: 0,
            telnet_tries: 0,
            arp_n: 0,
            malformed_n: 0,
        }
    }

    /// Builds frame `k` into `self.fb.b`.
    fn next_frame(&mut self, k: u64) {
        // Each rare kind at least once in any run of a few dozen frames: a
        // telnet attempt (a SYN and two retries), each kind of malformed
        // frame, ARP, the start of the scan.
        let n = self.packets;
        let forced = match k {
            _ if n < 16 => None,
            _ if (n / 11..n / 11 + 3).contains(&k) => Some(Special::Telnet),
            _ if k == n / 7 || k == n / 5 || k == n / 4 => Some(Special::Malformed),
            _ if k == n / 3 => Some(Special::Arp),
            _ if k == n / 2 => Some(Special::Scan),
            _ => None,
        };
        let special = forced.or_else(|| match self.rng.below(1_000_000) {
            0..800 => Some(Special::Malformed),
            800..2_300 => Some(Special::Arp),
            2_300..4_300 => Some(Special::Scan),
            4_300..4_320 => Some(Special::Telnet),
            _ => None,
        });
        match special {
            Some(s) => self.special(s),
            None => {
                let pick = self.rng.below(*self.cdf.last().unwrap_or(&1));
                let i = self
                    .cdf
                    .partition_point(|&c| c <= pick)
                    .min(self.flows.len() - 1);
                self.flow_packet(i);
            }
        }
    }

    fn flow_packet(&mut self, i: usize) {
        let f = &mut self.flows[i];
        let rng = &mut self.rng;
        let (c_share, c_ack, c_len, s_len, s_full) = f.app.shape();
        let (to_server, l4) = if f.app.is_tcp() {
            let mss: u32 = if f.v6 { 1440 } else { 1460 };
            let step = f.step;
            let l = f.conn_len;
            let (to_server, flags, len) = if step == 0 {
                self.stats.tcp_connections += 1;
                (true, SYN, 0)
            } else if step == 1 {
                (false, SYN | ACK, 0)
            } else if step == 2 {
                (true, ACK, 0)
            } else if f.rst && step == l - 3 {
                (true, RST | ACK, 0)
            } else if step == l - 3 {
                (true, FIN | ACK, 0)
            } else if step == l - 2 {
                (false, FIN | ACK, 0)
            } else if step == l - 1 {
                (true, ACK, 0)
            } else if rng.pct(c_share) {
                let len = if rng.pct(c_ack) {
                    0
                } else {
                    rng.range(c_len.0, c_len.1)
                };
                (true, if len == 0 { ACK } else { PSH | ACK }, len)
            } else {
                let len = if rng.pct(s_full) {
                    mss
                } else {
                    rng.range(s_len.0, s_len.1.min(mss))
                };
                (false, if len == mss { ACK } else { PSH | ACK }, len)
            };
            let (seq, ack) = if to_server {
                (f.seq_c, f.seq_s)
            } else {
                (f.seq_s, f.seq_c)
            };
            let ack = if flags & ACK != 0 { ack } else { 0 };
            let advance = len + u32::from(flags & (SYN | FIN) != 0);
            if to_server {
                f.seq_c = f.seq_c.wrapping_add(advance);
            } else {
                f.seq_s = f.seq_s.wrapping_add(advance);
            }
            f.step += 1;
            if flags & RST != 0 || step == l - 1 {
                // A new connection from a new client port.
                f.step = 0;
                f.c_port = rng.ephemeral_port();
                f.seq_c = rng.u32();
                f.seq_s = rng.u32();
                f.conn_len = 7 + rng.below(u64::from(f.span)) as u32;
                f.rst = rng.pct(5);
            }
            (
                to_server,
                L4::Tcp {
                    flags,
                    seq,
                    ack,
                    len: len as usize,
                },
            )
        } else if f.app == App::Echo {
            let reply = f.step & 1 == 1;
            if !reply {
                f.echo_seq = f.echo_seq.wrapping_add(1);
            }
            f.step += 1;
            (
                !reply,
                L4::Echo {
                    reply,
                    id: f.echo_id,
                    seq: f.echo_seq,
                    len: c_len.0 as usize,
                },
            )
        } else {
            let to_server = if f.app == App::Dns || f.app == App::Ntp {
                f.step & 1 == 0
            } else {
                rng.pct(c_share)
            };
            if f.app == App::Dns && to_server && f.step > 0 {
                f.c_port = rng.ephemeral_port();
            }
            f.step += 1;
            let (lo, hi) = if to_server { c_len } else { s_len };
            (
                to_server,
                L4::Udp {
                    len: rng.range(lo, hi) as usize,
                },
            )
        };
        let f = &self.flows[i];
        emit(&mut self.fb, &mut self.stats, f, to_server, l4);
    }

    fn special(&mut self, s: Special) {
        let target = self.enis[0];
        let fb = &mut self.fb;
        match s {
            Special::Telnet | Special::Scan => {
                let (src, sport, dport) = if s == Special::Telnet {
                    // A SYN and two retransmissions per client port.
                    if self.telnet_tries == 0 {
                        self.telnet_port = self.rng.ephemeral_port();
                        self.telnet_tries = 3;
                    }
                    self.telnet_tries -= 1;
                    self.stats.telnet += 1;
                    (TELNET_SOURCE, self.telnet_port, 23)
                } else {
                    self.scan_port = self.scan_port % 1024 + 1;
                    self.stats.port_scan += 1;
                    (SCANNER, 41_234, self.scan_port)
                };
                fb.eth(&target.mac, &GATEWAY_MAC, &[], ETH_IPV4);
                let dst = target.ipv4.octets();
                let pseudo = fb.ipv4(&src.octets(), &dst, 6, 20, 47);
                let seq = self.rng.u32();
                fb.l4(
                    L4::Tcp {
                        flags: SYN,
                        seq,
                        ack: 0,
                        len: 0,
                    },
                    sport,
                    dport,
                    pseudo,
                    false,
                );
                fb.pad();
                self.stats.ipv4 += 1;
                self.stats.tcp += 1;
                self.stats.north_south += 1;
                self.stats.ip_bytes += 40;
            }
            Special::Arp => {
                self.arp_n += 1;
                let eni = self.enis[self.rng.below(self.enis.len() as u64) as usize];
                let ip = eni.ipv4.octets();
                let gw_ip = [ip[0], ip[1], ip[2], 1];
                if self.arp_n & 1 == 1 {
                    // Who has the ENI's address? Asked by the gateway, broadcast.
                    fb.eth(&[0xff; 6], &GATEWAY_MAC, &[], ETH_ARP);
                    fb.b.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
                    fb.b.extend_from_slice(&GATEWAY_MAC);
                    fb.b.extend_from_slice(&gw_ip);
                    fb.b.extend_from_slice(&[0; 6]);
                    fb.b.extend_from_slice(&ip);
                    fb.pad();
                } else {
                    // The ENI's answer.
                    fb.eth(&GATEWAY_MAC, &eni.mac, &[], ETH_ARP);
                    fb.b.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
                    fb.b.extend_from_slice(&eni.mac);
                    fb.b.extend_from_slice(&ip);
                    fb.b.extend_from_slice(&GATEWAY_MAC);
                    fb.b.extend_from_slice(&gw_ip);
                }
                self.stats.arp += 1;
            }
            Special::Malformed => {
                self.malformed_n += 1;
                let eni = self.enis[self.rng.below(self.enis.len() as u64) as usize];
                let src = eni.ipv4.octets();
                let dst = [52, 84, 7, 9];
                match self.malformed_n % 3 {
                    1 => {
                        // IPv4 with IHL 3: a header shorter than its fixed part.
                        fb.eth(&GATEWAY_MAC, &eni.mac, &[], ETH_IPV4);
                        fb.ipv4(&src, &dst, 6, 20, 64);
                        let ihl_at = fb.b.len() - 20;
                        fb.b[ihl_at] = 0x43;
                        fb.b.extend_from_slice(&fb.pattern[..20]);
                    }
                    2 => {
                        // IPv6 header cut after 20 of its 40 bytes.
                        fb.eth(&GATEWAY_MAC, &eni.mac, &[], ETH_IPV6);
                        fb.ipv6(&eni.ipv6.octets(), &RESOLVER_V6.octets(), 17, 20, 64, 0);
                        let keep = fb.b.len() - 20;
                        fb.b.truncate(keep);
                    }
                    _ => {
                        // IPv4 Total Length 1500 in a 54-byte frame.
                        fb.eth(&GATEWAY_MAC, &eni.mac, &[], ETH_IPV4);
                        let pseudo = fb.ipv4(&src, &dst, 6, 1480, 64);
                        fb.l4(
                            L4::Tcp {
                                flags: ACK,
                                seq: 1,
                                ack: 1,
                                len: 0,
                            },
                            40_000,
                            443,
                            pseudo,
                            false,
                        );
                    }
                }
                self.stats.malformed += 1;
            }
        }
    }
}

/// Writes one packet of `f` into `fb` and counts it.
fn emit(fb: &mut FrameBuf, stats: &mut GenStats, f: &Flow, to_server: bool, l4: L4) {
    let (src_mac, dst_mac, src, dst, sport, dport, ttl, pad) = if to_server {
        (
            &f.c_mac, &f.s_mac, &f.c_ip, &f.s_ip, f.c_port, f.s_port, f.c_ttl, f.c_pad,
        )
    } else {
        (
            &f.s_mac, &f.c_mac, &f.s_ip, &f.c_ip, f.s_port, f.c_port, f.s_ttl, f.s_pad,
        )
    };
    let (proto, l4_len) = match l4 {
        L4::Tcp { len, .. } => (6u8, 20 + len),
        L4::Udp { len } => (17, 8 + len),
        L4::Echo { len, .. } => (if f.v6 { 58 } else { 1 }, 8 + len),
    };
    fb.eth(
        dst_mac,
        src_mac,
        &f.vlans[..f.n_vlans],
        if f.v6 { ETH_IPV6 } else { ETH_IPV4 },
    );
    let pseudo = if f.v6 {
        stats.ipv6 += 1;
        stats.ip_bytes += 40 + l4_len as u64;
        fb.ipv6(src, dst, proto, l4_len, ttl, f.flow_label)
    } else {
        stats.ipv4 += 1;
        stats.ip_bytes += 20 + l4_len as u64;
        let p = fb.ipv4(src, dst, proto, l4_len, ttl);
        // ICMP (v4) has no pseudo-header.
        if proto == 1 {
            0
        } else {
            p
        }
    };
    fb.l4(l4, sport, dport, pseudo, f.v6);
    if pad {
        fb.pad();
    }
    match proto {
        6 => stats.tcp += 1,
        17 => stats.udp += 1,
        1 => stats.icmp += 1,
        _ => stats.icmpv6 += 1,
    }
    if f.east_west {
        stats.east_west += 1;
    } else {
        stats.north_south += 1;
    }
    match f.n_vlans {
        0 => {}
        1 => stats.vlan_single += 1,
        _ => stats.vlan_double += 1,
    }
}

/// Draws one conversation of the pool. `rank` 0 is the heaviest; `expected`
/// is about how many packets it will get.
fn new_flow(rng: &mut Rng, enis: &[GenEni], rank: usize, expected: u64) -> Flow {
    let v6 = rng.pct(30);
    let east_west = enis.len() >= 2 && rng.pct(45);
    // Which side is the ENI: north-south conversations are opened from
    // inside (ENI is the client) or from outside (ENI is the server).
    let inbound = !east_west && rng.pct(40);
    let app = if rank < 8 {
        if rng.pct(70) {
            App::Web
        } else {
            App::Db
        }
    } else if east_west {
        match rng.below(100) {
            0..35 => App::Web,
            35..60 => App::Db,
            60..72 => App::Ssh,
            72..85 => App::Statsd,
            _ => App::Echo,
        }
    } else if inbound {
        match rng.below(100) {
            0..70 => App::Web,
            70..88 => App::Ssh,
            _ => App::Echo,
        }
    } else {
        match rng.below(100) {
            0..45 => App::Web,
            45..70 => App::Dns,
            70..76 => App::Ntp,
            76..90 => App::Quic,
            _ => App::Echo,
        }
    };
    let s_port = match app {
        App::Web | App::Quic => {
            if rng.pct(75) {
                443
            } else {
                80
            }
        }
        App::Ssh => 22,
        App::Db => {
            if rng.pct(60) {
                3306
            } else {
                5432
            }
        }
        App::Dns => 53,
        App::Ntp => 123,
        App::Statsd => 8125,
        App::Echo => 0,
    };
    let ip_of = |e: &GenEni| {
        if v6 {
            e.ipv6.octets()
        } else {
            v4_16(e.ipv4.octets())
        }
    };
    let ai = rng.below(enis.len() as u64) as usize;
    let a = &enis[ai];
    let peer = |rng: &mut Rng| -> [u8; 16] {
        match (app, v6) {
            (App::Dns, false) => v4_16(RESOLVER_V4),
            (App::Dns, true) => RESOLVER_V6.octets(),
            (App::Ntp, false) => v4_16(NTP_V4),
            (App::Ntp, true) => NTP_V6.octets(),
            (_, false) => {
                let p = PEER_V4[rng.below(PEER_V4.len() as u64) as usize];
                v4_16([p[0], p[1], rng.below(256) as u8, 1 + rng.below(254) as u8])
            }
            (_, true) => {
                let p = PEER_V6[rng.below(PEER_V6.len() as u64) as usize];
                let h = rng.next_u64();
                let seg = |i: u32| (h >> (16 * i)) as u16;
                Ipv6Addr::new(
                    p[0],
                    p[1],
                    0,
                    rng.below(0x1000) as u16,
                    seg(0),
                    seg(1),
                    seg(2),
                    seg(3) | 1,
                )
                .octets()
            }
        }
    };
    let ((c_mac, c_ip, c_ext), (s_mac, s_ip, s_ext)) = if east_west {
        // Any other ENI.
        let mut j = rng.below(enis.len() as u64 - 1) as usize;
        if j >= ai {
            j += 1;
        }
        let b = &enis[j];
        ((a.mac, ip_of(a), false), (b.mac, ip_of(b), false))
    } else if inbound {
        ((GATEWAY_MAC, peer(rng), true), (a.mac, ip_of(a), false))
    } else {
        ((a.mac, ip_of(a), false), (GATEWAY_MAC, peer(rng), true))
    };
    let (vlans, n_vlans) = match rng.below(100) {
        0..3 => ([rng.range(100, 4000) as u16, 0], 1),
        3..4 => (
            [rng.range(100, 4000) as u16, rng.range(100, 4000) as u16],
            2,
        ),
        _ => ([0, 0], 0),
    };
    let outside_ttl = 64 - rng.range(5, 20) as u8;
    let span = (expected / 2).clamp(8, 100_000) as u32;
    Flow {
        c_mac,
        s_mac,
        c_ip,
        s_ip,
        v6,
        c_port: if app == App::Echo {
            0
        } else {
            rng.ephemeral_port()
        },
        s_port,
        app,
        vlans,
        n_vlans,
        c_ttl: if c_ext { outside_ttl } else { 64 },
        s_ttl: if s_ext { outside_ttl } else { 64 },
        c_pad: c_ext,
        s_pad: s_ext,
        east_west,
        flow_label: rng.u32() & 0xf_ffff,
        step: 0,
        conn_len: 7 + rng.below(u64::from(span)) as u32,
        span,
        rst: rng.pct(5),
        seq_c: rng.u32(),
        seq_s: rng.u32(),
        echo_id: rng.u32() as u16,
        echo_seq: 0,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::IpAddr;

    use super::*;
    use crate::capture::Capture;

    fn gen_bytes(spec: &GenSpec) -> (Vec<u8>, GenStats) {
        let mut out = Vec::new();
        let stats = generate(spec, &example_enis(), &mut out).unwrap();
        (out, stats)
    }

    fn small(seed: u64) -> GenSpec {
        GenSpec {
            packets: 30_000,
            seed,
            ..GenSpec::default()
        }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let (a, sa) = gen_bytes(&small(7));
        let (b, sb) = gen_bytes(&small(7));
        assert!(a == b, "same seed, different bytes");
        assert_eq!(sa, sb);
        let (c, _) = gen_bytes(&small(8));
        assert!(a != c, "different seeds, same bytes");
    }

    #[test]
    fn edge_cases() {
        let e = generate(&small(1), &[], Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let (out, stats) = gen_bytes(&GenSpec {
            packets: 0,
            ..GenSpec::default()
        });
        assert_eq!((out.len(), stats), (24, GenStats::default()));
        // One ENI: nothing east-west, still every frame.
        let one = &example_enis()[..1];
        let mut out = Vec::new();
        let stats = generate(
            &GenSpec {
                packets: 500,
                ..GenSpec::default()
            },
            one,
            &mut out,
        )
        .unwrap();
        assert_eq!((stats.packets, stats.east_west), (500, 0));
        let cap = Capture::from_vec("one.pcap", out).unwrap();
        assert_eq!(cap.frames().count(), 500);
        // Nanosecond pcap: 7 frames over 1 s are 142 857 142 ns apart.
        let spec = GenSpec {
            packets: 7,
            duration_s: 1,
            nanos: true,
            ..GenSpec::default()
        };
        let (out, _) = gen_bytes(&spec);
        let cap = Capture::from_vec("ns.pcap", out).unwrap();
        let ts: Vec<u64> = cap
            .frames()
            .map(|f| f.unwrap().ts_nanos - 1_704_067_200_000_000_000)
            .collect();
        assert_eq!(
            ts,
            [
                0,
                142_857_142,
                285_714_285,
                428_571_428,
                571_428_571,
                714_285_714,
                857_142_857
            ]
        );
    }

    /// What a frame is, by an independent reading of its bytes.
    #[derive(Default, Debug, PartialEq, Eq)]
    struct Seen {
        stats: GenStats,
        flags: HashMap<u8, u64>,
        pairs: HashMap<([u8; 16], [u8; 16]), u64>,
    }

    /// Reads one generated frame, checking every checksum.
    fn look(d: &[u8], seen: &mut Seen, macs: &[[u8; 6]]) {
        let s = &mut seen.stats;
        s.packets += 1;
        s.frame_bytes += d.len() as u64;
        let (dst_mac, src_mac): ([u8; 6], [u8; 6]) =
            (d[0..6].try_into().unwrap(), d[6..12].try_into().unwrap());
        let mut off = 12;
        let mut et = u16::from_be_bytes([d[off], d[off + 1]]);
        let mut tags = 0;
        while et == 0x8100 || et == 0x88a8 {
            off += 4;
            tags += 1;
            et = u16::from_be_bytes([d[off], d[off + 1]]);
        }
        off += 2;
        match tags {
            0 => {}
            1 => s.vlan_single += 1,
            _ => s.vlan_double += 1,
        }
        let ip = &d[off..];
        let (src, dst, proto, l4, pseudo) = match et {
            0x0806 => {
                s.arp += 1;
                return;
            }
            0x0800 => {
                let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
                if ip[0] != 0x45 || total > ip.len() {
                    s.malformed += 1;
                    return;
                }
                assert_eq!(fold(sum16(&ip[..20])), 0, "IPv4 header checksum");
                s.ipv4 += 1;
                s.ip_bytes += total as u64;
                let (src, dst) = (
                    v4_16(ip[12..16].try_into().unwrap()),
                    v4_16(ip[16..20].try_into().unwrap()),
                );
                let l4 = &ip[20..total];
                let pseudo = sum16(&ip[12..20]) + u32::from(ip[9]) + l4.len() as u32;
                (src, dst, ip[9], l4, if ip[9] == 1 { 0 } else { pseudo })
            }
            0x86dd => {
                if ip.len() < 40 {
                    s.malformed += 1;
                    return;
                }
                let plen = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
                s.ipv6 += 1;
                s.ip_bytes += 40 + plen as u64;
                let l4 = &ip[40..40 + plen];
                let pseudo = sum16(&ip[8..40]) + plen as u32 + u32::from(ip[6]);
                (
                    ip[8..24].try_into().unwrap(),
                    ip[24..40].try_into().unwrap(),
                    ip[6],
                    l4,
                    pseudo,
                )
            }
            other => panic!("EtherType {other:#x}"),
        };
        assert_eq!(fold(pseudo + sum16(l4)), 0, "L4 checksum, protocol {proto}");
        let ew = macs.contains(&src_mac) && macs.contains(&dst_mac);
        assert!(ew || src_mac == GATEWAY_MAC || dst_mac == GATEWAY_MAC);
        if ew {
            s.east_west += 1;
        } else {
            s.north_south += 1;
        }
        let key = if src < dst { (src, dst) } else { (dst, src) };
        *seen.pairs.entry(key).or_default() += 1;
        match proto {
            6 => {
                s.tcp += 1;
                let flags = l4[13];
                *seen.flags.entry(flags).or_default() += 1;
                let dport = u16::from_be_bytes([l4[2], l4[3]]);
                if src[..4] == TELNET_SOURCE.octets() && src[4..] == [0; 12] {
                    assert_eq!((dport, flags), (23, SYN));
                    s.telnet += 1;
                } else if src[..4] == SCANNER.octets() && src[4..] == [0; 12] {
                    assert_eq!(flags, SYN);
                    s.port_scan += 1;
                } else if flags == SYN {
                    s.tcp_connections += 1;
                }
            }
            17 => s.udp += 1,
            1 => s.icmp += 1,
            58 => s.icmpv6 += 1,
            other => panic!("protocol {other}"),
        }
    }

    #[test]
    fn reads_back_with_correct_checksums_and_counts() {
        let spec = GenSpec {
            packets: 40_000,
            seed: 3,
            duration_s: 180,
            ..GenSpec::default()
        };
        let (bytes, stats) = gen_bytes(&spec);
        let cap = Capture::from_vec("gen.pcap", bytes).unwrap();
        let macs: Vec<[u8; 6]> = example_enis().iter().map(|e| e.mac).collect();
        let mut seen = Seen::default();
        let mut it = cap.frames();
        let start = spec.start_unix * 1_000_000_000;
        let mut last = 0;
        for f in it.by_ref() {
            let f = f.unwrap();
            assert!(
                f.ts_nanos >= last && f.ts_nanos >= start && f.ts_nanos < start + 180_000_000_000
            );
            last = f.ts_nanos;
            assert_eq!(f.orig_len as usize, f.data.len());
            look(f.data, &mut seen, &macs);
        }
        assert_eq!(it.truncated(), None);
        assert_eq!(seen.stats.packets, spec.packets);
        // The last frame is at start + floor((n - 1) * duration / n), to the µs.
        assert_eq!(last, (start + 179_995_500_000) / 1000 * 1000);
        assert_eq!(
            seen.stats, stats,
            "the generator's counts disagree with its bytes"
        );

        // The sums the documentation promises.
        let ip = stats.ipv4 + stats.ipv6;
        assert_eq!(stats.packets, ip + stats.arp + stats.malformed);
        assert_eq!(ip, stats.tcp + stats.udp + stats.icmp + stats.icmpv6);
        assert_eq!(ip, stats.east_west + stats.north_south);
        // Every kind is there.
        for (name, n) in [
            ("ipv6", stats.ipv6),
            ("udp", stats.udp),
            ("icmp", stats.icmp),
            ("icmpv6", stats.icmpv6),
            ("east_west", stats.east_west),
            ("vlan_single", stats.vlan_single),
            ("vlan_double", stats.vlan_double),
            ("arp", stats.arp),
            ("malformed", stats.malformed),
            ("telnet", stats.telnet),
            ("port_scan", stats.port_scan),
        ] {
            assert!(n > 0, "no {name} in {stats:?}");
        }
        assert!(stats.ipv4 > stats.ipv6 && stats.tcp > stats.udp);
        assert!(stats.telnet >= 3 && stats.malformed >= 3, "{stats:?}");
        for flags in [SYN, SYN | ACK, ACK, PSH | ACK, FIN | ACK, RST | ACK] {
            assert!(
                seen.flags.contains_key(&flags),
                "no TCP flags {flags:#04x}: {:?}",
                seen.flags
            );
        }
        // Top talkers: the busiest address pair carries well over its share.
        let top = seen.pairs.values().max().copied().unwrap_or(0);
        assert!(top * 20 > ip, "top pair {top} of {ip}");
        println!(
            "{stats:#?}\ntop pair {top} of {ip}, {} pairs",
            seen.pairs.len()
        );
    }

    #[test]
    fn example_config_matches_example_enis() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/example.json");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let from_config: Vec<GenEni> = v["enis"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let mac_s = e["mac"].as_str().unwrap();
                let mut mac = [0u8; 6];
                for (i, part) in mac_s.split(':').enumerate() {
                    mac[i] = u8::from_str_radix(part, 16).unwrap();
                }
                let ips: Vec<IpAddr> = e["ips"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|ip| ip.as_str().unwrap().parse().unwrap())
                    .collect();
                let ipv4 = ips.iter().find_map(|ip| match ip {
                    IpAddr::V4(a) => Some(*a),
                    IpAddr::V6(_) => None,
                });
                let ipv6 = ips.iter().find_map(|ip| match ip {
                    IpAddr::V6(a) => Some(*a),
                    IpAddr::V4(_) => None,
                });
                GenEni {
                    mac,
                    ipv4: ipv4.unwrap(),
                    ipv6: ipv6.unwrap(),
                }
            })
            .collect();
        assert_eq!(from_config, example_enis());
        assert_eq!(v["host"], "hv-0001");
    }

    /// Generator throughput. Run by hand, in release:
    /// `cargo test --release -p vswitch-plugin --no-default-features --lib
    /// gen::tests::throughput -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement, not a test"]
    fn throughput() {
        use std::time::Instant;
        let spec = GenSpec {
            packets: 5_000_000,
            ..GenSpec::default()
        };
        let enis = example_enis();
        for round in 0..2 {
            let t = Instant::now();
            let stats = generate(&spec, &enis, io::sink()).unwrap();
            let s = t.elapsed().as_secs_f64();
            println!(
                "round {round}, to io::sink: {:.2} Mpps, {:.2} GB/s of pcap, mean frame {} B",
                stats.packets as f64 / s / 1e6,
                stats.frame_bytes as f64 / s / 1e9,
                stats.frame_bytes / stats.packets
            );
        }
        // /dev/null (the write system calls), a file on disk and one in memory
        // (tmpfs) where there is one: the last two are bound by how fast the
        // machine takes writes (`dd bs=1M` gives the ceiling).
        let mut paths = vec![std::path::PathBuf::from("/dev/null")];
        paths.push(std::env::temp_dir().join("flowlog-gen-bench.pcap"));
        if std::path::Path::new("/dev/shm").is_dir() {
            paths.push("/dev/shm/flowlog-gen-bench.pcap".into());
        }
        for path in paths {
            let t = Instant::now();
            let stats = generate(&spec, &enis, std::fs::File::create(&path).unwrap()).unwrap();
            let s = t.elapsed().as_secs_f64();
            println!(
                "to {}: {:.2} Mpps, {:.2} GB/s",
                path.display(),
                stats.packets as f64 / s / 1e6,
                stats.frame_bytes as f64 / s / 1e9
            );
            if path != std::path::Path::new("/dev/null") {
                std::fs::remove_file(&path).unwrap();
            }
        }
    }
}
