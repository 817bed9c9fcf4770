//! Zero-copy packet parsing: views over borrowed bytes (smoltcp's style) for
//! the link layers, IPv4/IPv6 and the L4 headers that flow logs read. No
//! input may panic it; every rule of RECORDS.md about ports, bytes and
//! malformed packets lives here.
//!
//! Layout, as in smoltcp's `wire` module:
//! - `ethernet` (Ethernet II and VLAN tags) and `link` (raw IP, Linux
//!   cooked v1/v2, BSD loopback) find where the IP header starts and what
//!   the link layer says it is;
//! - `ipv4` and `ipv6` (with the extension-header walk) check the IP
//!   header against RECORDS.md "Bytes" and fill addresses, protocol, bytes;
//! - `l4` reads ports, ICMP type/code and the TCP flags byte.
//!
//! Each header is a view, `Header<T: AsRef<[u8]>>`, whose field offsets live
//! in a private `mod field`. `new_checked` is the only constructor and checks
//! the length once; the accessors then read through `get`/`be16`/
//! `be32`, which use `slice::get` and so cannot panic even on a bug (a
//! `debug_assert!` makes such a bug loud in tests and under the fuzzer). No
//! code here indexes a slice with `[]`, allocates, or does unchecked
//! arithmetic on lengths taken from the packet.
//!
//! Choices where RECORDS.md is silent are documented at the code that makes
//! them; the list is in [`parse`]'s documentation.

mod ethernet;
mod ipv4;
mod ipv6;
mod l4;
mod link;

use core::ops::Range;

/// The link layer of a frame, from the capture's link type or the port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    /// Ethernet II with up to two VLAN tags (pcap 1).
    Ethernet,
    /// Raw IP, version from the first nibble (pcap 101; 12/14 on some systems).
    RawIp,
    /// Raw IPv4 only (pcap 228).
    RawIpv4,
    /// Raw IPv6 only (pcap 229).
    RawIpv6,
    /// Linux cooked capture v1 (pcap 113), 16-byte header.
    LinuxSll,
    /// Linux cooked capture v2 (pcap 276), 20-byte header.
    LinuxSll2,
    /// BSD loopback, 4-byte address family in host byte order of the writer
    /// (pcap 0); both byte orders are accepted.
    Null,
    /// OpenBSD loopback, 4-byte address family in network byte order (pcap 108).
    Loop,
}

impl LinkType {
    /// The link type for a pcap/pcapng LINKTYPE_ value, if we support it.
    pub fn from_linktype(v: u32) -> Option<LinkType> {
        Some(match v {
            1 => LinkType::Ethernet,
            101 | 12 | 14 => LinkType::RawIp,
            228 => LinkType::RawIpv4,
            229 => LinkType::RawIpv6,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            0 => LinkType::Null,
            108 => LinkType::Loop,
            _ => return None,
        })
    }

    /// Whether frames of this link type carry Ethernet addresses.
    pub fn has_mac(self) -> bool {
        matches!(self, LinkType::Ethernet)
    }
}

/// What the datapath needs of one packet. Filled in place (no allocation);
/// addresses are 16 bytes, IPv4 in the first four with `v6 == false`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketMeta {
    /// Ethernet source (zero when the link type has none).
    pub src_mac: [u8; 6],
    /// Ethernet destination (zero when the link type has none).
    pub dst_mac: [u8; 6],
    /// Source address; IPv4 in `[0..4]`, rest zero.
    pub src: [u8; 16],
    /// Destination address; IPv4 in `[0..4]`, rest zero.
    pub dst: [u8; 16],
    /// IPv6 (true) or IPv4 (false).
    pub v6: bool,
    /// Upper-layer protocol (after IPv6 extension headers).
    pub protocol: u8,
    /// L4 source port, 0 per RECORDS.md "Ports" where there is none.
    pub src_port: u16,
    /// L4 destination port, or `type * 256 + code` for ICMP/ICMPv6.
    pub dst_port: u16,
    /// TCP flags byte, 0 if not TCP or no full TCP header.
    pub tcp_flags: u8,
    /// A non-first fragment (no L4 header).
    pub fragment: bool,
    /// IP-level bytes per RECORDS.md "Bytes".
    pub bytes: u32,
}

/// Why a frame is not logged. Small and `Copy`: it is on the hot path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Not IPv4 or IPv6 (ARP, LLDP, MPLS, PPPoE, ...): counted, not logged.
    NotIp,
    /// An IP header that cannot be read or is inconsistent (RECORDS.md).
    Malformed(Malformed),
}

/// Which rule of RECORDS.md made a packet malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// Frame shorter than its link header or a VLAN tag.
    ShortLink,
    /// IP version does not match the EtherType / link type.
    Version,
    /// IPv4 header shorter than 20 bytes or IHL < 5, or options past the data.
    Ipv4Header,
    /// IPv4 Total Length non-zero and below the header, or beyond the wire.
    Ipv4Length,
    /// IPv6 header shorter than 40 bytes.
    Ipv6Header,
    /// 40 + Payload Length (or jumbo length) beyond the wire.
    Ipv6Length,
    /// Extension-header chain longer than 8, or past the captured bytes or
    /// the packet's own length.
    Ipv6ExtChain,
}

impl From<Malformed> for ParseError {
    #[inline]
    fn from(m: Malformed) -> ParseError {
        ParseError::Malformed(m)
    }
}

/// Parses one frame. `frame` is the captured bytes; `wire_len` is the frame's
/// original length on the wire (pcap `orig_len`; for DPDK the packet length).
/// On success `out` is fully overwritten; on an error it holds no meaning
/// (it is written in place, field by field: a copy of a whole `PacketMeta`
/// just built from narrow stores stalls the load that reads it back).
///
/// Where RECORDS.md is silent, this parser decides:
/// - `wire_len` below the captured length (an inconsistent pcap record) is
///   taken as the captured length: the wire carried at least what was seen.
/// - IPv4 options cut off by the snap length are not malformed as long as the
///   fixed 20 bytes (with the addresses) are captured; the L4 header then
///   counts as not present. IHL * 4 beyond what the wire carried (only
///   possible with Total Length 0) is `Ipv4Header`.
/// - A raw-IP frame (link type 101) with no byte to read a version from, or
///   a version other than 4 or 6, is `Version`.
/// - VLAN tags are also skipped after a Linux cooked header whose protocol is
///   a VLAN TPID (libpcap re-inserts stripped tags there). A third tag is an
///   EtherType that is not IP: `NotIp`.
/// - The IPv6 Fragment header is always 8 bytes (its second byte is
///   reserved, not a length). Hop-by-Hop is walked wherever it appears.
/// - The Jumbo Payload option is looked for only in a Hop-by-Hop header
///   right after the IPv6 header, only when Payload Length is 0, and only
///   with its proper option length 4; its value is not required to exceed
///   65535.
/// - ICMP (1) and ICMPv6 (58) ports follow the protocol number whatever the
///   IP version.
#[inline]
pub fn parse(
    link: LinkType,
    frame: &[u8],
    wire_len: u32,
    out: &mut PacketMeta,
) -> Result<(), ParseError> {
    *out = PacketMeta::default();
    let meta = out;
    let l2 = link::strip(link, frame, meta)?;
    let ip = frame.get(l2.header_len..).unwrap_or_default();

    // What the wire carried from the IP header on. `header_len` is at most
    // the frame length, so the subtraction only saturates on a `wire_len`
    // below the captured length, which we treat as the captured length.
    let captured = u32::try_from(frame.len()).unwrap_or(u32::MAX);
    let l2_len = u32::try_from(l2.header_len).unwrap_or(u32::MAX);
    let wire_ip_len = wire_len.max(captured).saturating_sub(l2_len);

    let version = match ip.first() {
        Some(&b) => b >> 4,
        None => {
            return Err(match l2.net {
                link::NetProto::Ipv4 => Malformed::Ipv4Header,
                link::NetProto::Ipv6 => Malformed::Ipv6Header,
                link::NetProto::Either => Malformed::Version,
            }
            .into())
        }
    };
    match (l2.net, version) {
        (link::NetProto::Ipv4 | link::NetProto::Either, 4) => ipv4::parse(ip, wire_ip_len, meta)?,
        (link::NetProto::Ipv6 | link::NetProto::Either, 6) => ipv6::parse(ip, wire_ip_len, meta)?,
        _ => return Err(Malformed::Version.into()),
    }
    Ok(())
}

/// A field's byte range within its header (smoltcp's `Field`).
type Field = Range<usize>;

/// The bytes of a fixed-size field. Never panics: a range outside `data`
/// (which `new_checked` rules out) reads as zeros.
#[inline(always)]
fn get<const N: usize>(data: &[u8], field: Field) -> [u8; N] {
    match data.get(field).and_then(|s| <[u8; N]>::try_from(s).ok()) {
        Some(a) => a,
        None => {
            debug_assert!(false, "wire: field read outside a checked view");
            [0; N]
        }
    }
}

/// One byte at `at`; see [`get`].
#[inline(always)]
fn byte(data: &[u8], at: usize) -> u8 {
    match data.get(at) {
        Some(&b) => b,
        None => {
            debug_assert!(false, "wire: byte read outside a checked view");
            0
        }
    }
}

/// A big-endian `u16` field; see [`get`].
#[inline(always)]
fn be16(data: &[u8], field: Field) -> u16 {
    u16::from_be_bytes(get(data, field))
}

/// A big-endian `u32` field; see [`get`].
#[inline(always)]
fn be32(data: &[u8], field: Field) -> u32 {
    u32::from_be_bytes(get(data, field))
}

/// Test helpers shared by the parser files' tests: frame builders and the
/// error shorthands.
#[cfg(test)]
pub(crate) mod testutil {
    use super::{Malformed, PacketMeta, ParseError};

    pub const MAC_DST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
    pub const MAC_SRC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

    pub fn mal(m: Malformed) -> Result<PacketMeta, ParseError> {
        Err(ParseError::Malformed(m))
    }

    /// Parses with `wire_len` = captured length.
    pub fn run(link: super::LinkType, frame: &[u8]) -> Result<PacketMeta, ParseError> {
        run_wire(link, frame, u32::try_from(frame.len()).unwrap())
    }

    pub fn run_wire(
        link: super::LinkType,
        frame: &[u8],
        wire_len: u32,
    ) -> Result<PacketMeta, ParseError> {
        // Pre-fill with garbage: success must overwrite every field.
        let mut m = PacketMeta {
            src_mac: [0xee; 6],
            dst_mac: [0xee; 6],
            src: [0xee; 16],
            dst: [0xee; 16],
            v6: true,
            protocol: 0xee,
            src_port: 0xeeee,
            dst_port: 0xeeee,
            tcp_flags: 0xee,
            fragment: true,
            bytes: 0xeeee_eeee,
        };
        super::parse(link, frame, wire_len, &mut m).map(|()| m)
    }

    /// Ethernet header with the default MACs.
    pub fn eth(ethertype: u16) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&MAC_DST);
        v.extend_from_slice(&MAC_SRC);
        v.extend_from_slice(&ethertype.to_be_bytes());
        v
    }

    /// IPv4 header (no checksum) from 10.0.0.1 to 10.0.0.2 with `options`
    /// (a multiple of 4 bytes), followed by `payload`. Total Length is
    /// `total` or, if `None`, the real length.
    pub fn ipv4(
        protocol: u8,
        frag: u16,
        options: &[u8],
        payload: &[u8],
        total: Option<u16>,
    ) -> Vec<u8> {
        assert_eq!(options.len() % 4, 0);
        let ihl = 5 + options.len() / 4;
        let len = 20 + options.len() + payload.len();
        let total = total.unwrap_or(u16::try_from(len).unwrap());
        let mut v = vec![0x40 | u8::try_from(ihl).unwrap(), 0];
        v.extend_from_slice(&total.to_be_bytes());
        v.extend_from_slice(&[0x12, 0x34]); // identification
        v.extend_from_slice(&frag.to_be_bytes());
        v.extend_from_slice(&[64, protocol, 0, 0]); // ttl, protocol, checksum
        v.extend_from_slice(&[10, 0, 0, 1]);
        v.extend_from_slice(&[10, 0, 0, 2]);
        v.extend_from_slice(options);
        v.extend_from_slice(payload);
        v
    }

    pub const V6_SRC: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    pub const V6_DST: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    /// IPv6 header fd00::1 -> fd00::2 with `next` and `payload`; Payload
    /// Length is `plen` or, if `None`, the real length.
    pub fn ipv6(next: u8, payload: &[u8], plen: Option<u16>) -> Vec<u8> {
        let plen = plen.unwrap_or(u16::try_from(payload.len()).unwrap());
        let mut v = vec![0x60, 0, 0, 0];
        v.extend_from_slice(&plen.to_be_bytes());
        v.extend_from_slice(&[next, 64]);
        v.extend_from_slice(&V6_SRC);
        v.extend_from_slice(&V6_DST);
        v.extend_from_slice(payload);
        v
    }

    /// TCP header (20 bytes) with the given ports and flags.
    pub fn tcp(src: u16, dst: u16, flags: u8) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&src.to_be_bytes());
        v.extend_from_slice(&dst.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]); // seq, ack
        v.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        v
    }

    /// UDP header (8 bytes) with the given ports.
    pub fn udp(src: u16, dst: u16) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&src.to_be_bytes());
        v.extend_from_slice(&dst.to_be_bytes());
        v.extend_from_slice(&[0, 8, 0, 0]);
        v
    }

    pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use proptest::prelude::*;

    const ALL_LINKS: [LinkType; 8] = [
        LinkType::Ethernet,
        LinkType::RawIp,
        LinkType::RawIpv4,
        LinkType::RawIpv6,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::Null,
        LinkType::Loop,
    ];

    #[test]
    fn from_linktype_table() {
        for (v, l) in [
            (1, Some(LinkType::Ethernet)),
            (101, Some(LinkType::RawIp)),
            (12, Some(LinkType::RawIp)),
            (14, Some(LinkType::RawIp)),
            (228, Some(LinkType::RawIpv4)),
            (229, Some(LinkType::RawIpv6)),
            (113, Some(LinkType::LinuxSll)),
            (276, Some(LinkType::LinuxSll2)),
            (0, Some(LinkType::Null)),
            (108, Some(LinkType::Loop)),
            (105, None),
            (127, None),
        ] {
            assert_eq!(LinkType::from_linktype(v), l, "linktype {v}");
        }
        for l in ALL_LINKS {
            assert_eq!(l.has_mac(), l == LinkType::Ethernet);
        }
    }

    #[test]
    fn empty_frame_every_link() {
        for l in ALL_LINKS {
            let want = match l {
                LinkType::RawIp => mal(Malformed::Version),
                LinkType::RawIpv4 => mal(Malformed::Ipv4Header),
                LinkType::RawIpv6 => mal(Malformed::Ipv6Header),
                _ => mal(Malformed::ShortLink),
            };
            assert_eq!(run(l, &[]), want, "{l:?}");
        }
    }

    /// Success overwrites every field of `out`; failure does not matter but
    /// must not panic. `run` pre-fills garbage, so compare with a clean run.
    #[test]
    fn out_fully_overwritten() {
        let f = cat(&[&eth(0x0800), &ipv4(17, 0, &[], &udp(1, 2), None)]);
        let mut clean = PacketMeta::default();
        parse(LinkType::Ethernet, &f, 42, &mut clean).unwrap();
        assert_eq!(run(LinkType::Ethernet, &f).unwrap(), clean);
        let f = ipv4(17, 0, &[], &udp(1, 2), None);
        let mut clean = PacketMeta::default();
        parse(LinkType::RawIp, &f, 28, &mut clean).unwrap();
        assert_eq!(run(LinkType::RawIp, &f).unwrap(), clean);
        assert_eq!(clean.src_mac, [0; 6]);
        assert_eq!(clean.dst_mac, [0; 6]);
    }

    /// `wire_len` below the captured length counts as the captured length.
    #[test]
    fn wire_len_below_captured() {
        let f = cat(&[&eth(0x0800), &ipv4(6, 0, &[], &[], Some(0))]);
        let m = run_wire(LinkType::Ethernet, &f, 0).unwrap();
        assert_eq!(m.bytes, 20);
    }

    fn link_strategy() -> impl Strategy<Value = LinkType> {
        prop::sample::select(ALL_LINKS.to_vec())
    }

    /// Check the invariants every successful parse must hold.
    fn check(link: LinkType, frame: &[u8], wire_len: u32, m: &PacketMeta) {
        let captured = u32::try_from(frame.len()).unwrap();
        assert!(m.bytes <= wire_len.max(captured));
        if !m.v6 {
            assert_eq!(&m.src[4..], &[0; 12]);
            assert_eq!(&m.dst[4..], &[0; 12]);
            assert!(m.bytes >= 20);
        } else {
            assert!(m.bytes >= 40);
        }
        if !link.has_mac() {
            assert_eq!(m.src_mac, [0; 6]);
            assert_eq!(m.dst_mac, [0; 6]);
        }
        if m.fragment {
            assert_eq!((m.src_port, m.dst_port, m.tcp_flags), (0, 0, 0));
        }
        if m.protocol != 6 {
            assert_eq!(m.tcp_flags, 0);
        }
        if !matches!(m.protocol, 1 | 6 | 17 | 58 | 132) {
            assert_eq!((m.src_port, m.dst_port), (0, 0));
        }
        if matches!(m.protocol, 1 | 58) {
            assert_eq!(m.src_port, 0);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Random bytes with random link types never panic, and a success
        /// keeps the invariants of RECORDS.md.
        #[test]
        fn random_bytes_never_panic(
            link in link_strategy(),
            frame in prop::collection::vec(any::<u8>(), 0..160),
            extra in prop_oneof![Just(0u32), 0u32..2000, any::<u32>()],
        ) {
            let wire_len = u32::try_from(frame.len()).unwrap().saturating_add(extra);
            let mut m = PacketMeta::default();
            if parse(link, &frame, wire_len, &mut m).is_ok() {
                check(link, &frame, wire_len, &m);
            }
            // Below the captured length too.
            let _ = parse(link, &frame, extra % 64, &mut m);
        }

        /// Random bytes behind a plausible IP header start, so the fuzzing
        /// reaches past the version check.
        #[test]
        fn random_ip_never_panic(
            v6 in any::<bool>(),
            next in prop::sample::select(vec![0u8, 1, 6, 17, 43, 44, 51, 58, 60, 132, 59]),
            plen in prop_oneof![Just(0u16), 0u16..200, any::<u16>()],
            rest in prop::collection::vec(any::<u8>(), 0..300),
            extra in prop_oneof![Just(0u32), 0u32..100_000],
        ) {
            let f = if v6 {
                ipv6(next, &rest, Some(plen))
            } else {
                let mut f = ipv4(next, 0, &[], &rest, Some(plen));
                if let Some(b) = f.first_mut() {
                    *b = 0x40 | (rest.first().copied().unwrap_or(5) & 0x0f);
                }
                f
            };
            let wire_len = u32::try_from(f.len()).unwrap().saturating_add(extra);
            let mut m = PacketMeta::default();
            if parse(LinkType::RawIp, &f, wire_len, &mut m).is_ok() {
                check(LinkType::RawIp, &f, wire_len, &m);
            }
        }

        /// Round trip: a well-formed TCP/UDP packet parses back to what was
        /// built, whatever the ports and flags.
        #[test]
        fn round_trip(
            v6 in any::<bool>(),
            is_tcp in any::<bool>(),
            sport in any::<u16>(),
            dport in any::<u16>(),
            flags in any::<u8>(),
            body in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let l4 = if is_tcp { tcp(sport, dport, flags) } else { udp(sport, dport) };
            let payload = cat(&[&l4, &body]);
            let proto = if is_tcp { 6 } else { 17 };
            let (f, bytes) = if v6 {
                let ip = ipv6(proto, &payload, None);
                let n = ip.len();
                (cat(&[&eth(0x86dd), &ip]), n)
            } else {
                let ip = ipv4(proto, 0, &[], &payload, None);
                let n = ip.len();
                (cat(&[&eth(0x0800), &ip]), n)
            };
            let m = run(LinkType::Ethernet, &f).unwrap();
            prop_assert_eq!(m.v6, v6);
            prop_assert_eq!(m.protocol, proto);
            prop_assert_eq!(m.src_port, sport);
            prop_assert_eq!(m.dst_port, dport);
            prop_assert_eq!(m.tcp_flags, if is_tcp { flags } else { 0 });
            prop_assert_eq!(m.bytes, u32::try_from(bytes).unwrap());
            prop_assert_eq!(m.src_mac, MAC_SRC);
            prop_assert_eq!(m.dst_mac, MAC_DST);
            prop_assert!(!m.fragment);
        }
    }
}
