//! First-match rule classification, per packet, for security-group rules
//! (handed over sorted by priority, `drop` before `accept` at equal
//! priority) and network-ACL rules (list order).
//!
//! A rule matches when its protocol matches, its port range contains the
//! packet's destination port (only for `tcp` and `udp` rules: the range is
//! ignored for the other protocols, `all` included) and its CIDR contains the
//! peer address (a CIDR never matches an address of the other family).
//!
//! Small sets (up to [`LINEAR_MAX`] rules) are scanned linearly over a
//! compact copy of the rules. Larger sets are compiled into bitsets, rule
//! `i` being bit `i`:
//!
//! - per protocol class (TCP, UDP, ICMP, ICMPv6, GRE, anything else), the
//!   destination port axis is cut into elementary intervals at the bounds of
//!   that class's port ranges; each interval holds the set of rules that
//!   match the class and the interval (rules without port semantics are in
//!   every interval of every class they match), adjacent equal sets merged.
//!   Classes without ports have a single interval;
//! - the IPv4 (`u32`) and IPv6 (`u128`) address axes are cut likewise at the
//!   CIDR bounds of their family.
//!
//! A lookup is two binary searches (port within the protocol class, peer
//! within its family), then an AND of the two sets word by word: the lowest
//! set bit is the first matching rule. No allocation, no scan of the rules.

use std::fmt;
use std::net::IpAddr;

use exporter::config::{Cidr, IpProtocol, PortRange};

/// One rule, reduced to what matching needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The protocol matched.
    pub proto: IpProtocol,
    /// Destination ports, for `tcp` and `udp` rules only.
    pub ports: PortRange,
    /// The peer address.
    pub cidr: Cidr,
    /// Whether a match drops the packet (else accepts it).
    pub drop: bool,
}

/// Largest set that is scanned linearly rather than compiled into bitsets.
pub const LINEAR_MAX: usize = 8;

/// Protocol classes: the protocols a rule can name, then everything else.
const CLASSES: usize = 6;
/// The protocol number of each class but the last ("other").
const CLASS_NUMBER: [u8; CLASSES - 1] = [6, 17, 1, 58, 47];

/// Protocol number to class.
static CLASS_OF: [u8; 256] = {
    let mut t = [(CLASSES - 1) as u8; 256];
    let mut c = 0;
    while c < CLASSES - 1 {
        t[CLASS_NUMBER[c] as usize] = c as u8;
        c += 1;
    }
    t
};

/// Whether a rule of protocol `p` matches the packets of class `class`.
fn matches_class(p: IpProtocol, class: usize) -> bool {
    match CLASS_NUMBER.get(class) {
        Some(&n) => p.matches(n),
        None => p == IpProtocol::All,
    }
}

/// Rules compiled for first-match lookup.
#[derive(Clone)]
pub struct RuleSet {
    /// `drop` of each rule, by index.
    drop: Box<[bool]>,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Linear(Box<[Compact]>),
    Bits(Box<Bits>),
}

/// A rule for the linear scan.
#[derive(Clone, Copy)]
struct Compact {
    /// Whether the rule matches any protocol (`all`).
    any_proto: bool,
    /// The protocol number (when `!any_proto`).
    proto: u8,
    /// Lowest and highest destination port (`0..=65535` when ports do not apply).
    from: u16,
    to: u16,
    v6: bool,
    /// Network and mask; IPv4 in the low 32 bits.
    net: u128,
    mask: u128,
}

impl Compact {
    fn new(r: &Rule) -> Compact {
        let (from, to) = if r.proto.has_ports() {
            (r.ports.from(), r.ports.to())
        } else {
            (0, u16::MAX)
        };
        let (v6, net, mask) = match r.cidr.network() {
            IpAddr::V4(a) => (
                false,
                u128::from(u32::from(a)),
                u128::from(
                    u32::MAX
                        .checked_shl(32 - u32::from(r.cidr.prefix()))
                        .unwrap_or(0),
                ),
            ),
            IpAddr::V6(a) => (
                true,
                u128::from(a),
                u128::MAX
                    .checked_shl(128 - u32::from(r.cidr.prefix()))
                    .unwrap_or(0),
            ),
        };
        Compact {
            any_proto: r.proto.number().is_none(),
            proto: r.proto.number().unwrap_or(0),
            from,
            to,
            v6,
            net,
            mask,
        }
    }

    #[inline(always)]
    fn matches(&self, proto: u8, port: u16, addr: u128, v6: bool) -> bool {
        (self.any_proto || self.proto == proto)
            && self.from <= port
            && port <= self.to
            && self.v6 == v6
            && addr & self.mask == self.net
    }
}

/// The compiled bitsets.
#[derive(Clone)]
struct Bits {
    /// `u64` words per set.
    words: usize,
    /// Per protocol class, the destination-port intervals.
    ports: [Intervals<u16>; CLASSES],
    v4: Intervals<u32>,
    v6: Intervals<u128>,
}

/// An axis cut into elementary intervals, each with its set of rules.
#[derive(Clone)]
struct Intervals<K> {
    /// Start of each interval, ascending; the first is 0.
    starts: Box<[K]>,
    /// `words` words per interval.
    sets: Box<[u64]>,
}

impl<K: Copy + Ord> Intervals<K> {
    /// The set of the interval holding `key`.
    #[inline(always)]
    fn set(&self, key: K, words: usize) -> &[u64] {
        // starts[0] is the axis minimum, so the point is at least 1.
        let i = self.starts.partition_point(|&s| s <= key) - 1;
        &self.sets[i * words..(i + 1) * words]
    }

    fn heap_bytes(&self) -> usize {
        self.starts.len() * std::mem::size_of::<K>() + self.sets.len() * 8
    }
}

/// One rule on one axis: its bit and the interval `start..end` it covers
/// (`end` None: up to the axis maximum).
struct Span {
    rule: usize,
    start: u128,
    end: Option<u128>,
}

/// Cuts the axis `0..=max` at the bounds of `spans`, every set also holding
/// `always`; adjacent intervals with equal sets are merged.
fn sweep(spans: &[Span], always: &[u64], max: u128) -> (Vec<u128>, Vec<u64>) {
    let words = always.len();
    // (position, rule, add)
    let mut events: Vec<(u128, usize, bool)> = Vec::with_capacity(spans.len() * 2);
    for s in spans {
        events.push((s.start, s.rule, true));
        if let Some(e) = s.end.filter(|&e| e <= max) {
            events.push((e, s.rule, false));
        }
    }
    events.sort_unstable_by_key(|e| e.0);
    let mut cur = always.to_vec();
    let mut starts: Vec<u128> = Vec::new();
    let mut sets: Vec<u64> = Vec::new();
    let mut i = 0;
    let mut pos = 0u128;
    loop {
        while i < events.len() && events[i].0 == pos {
            let (_, rule, add) = events[i];
            if add {
                cur[rule / 64] |= 1 << (rule % 64);
            } else {
                cur[rule / 64] &= !(1 << (rule % 64));
            }
            i += 1;
        }
        if starts.is_empty() || sets[sets.len() - words..] != cur[..] {
            starts.push(pos);
            sets.extend_from_slice(&cur);
        }
        match events.get(i) {
            Some(e) => pos = e.0,
            None => break,
        }
    }
    (starts, sets)
}

fn intervals<K: TryFrom<u128>>((starts, sets): (Vec<u128>, Vec<u64>)) -> Intervals<K> {
    Intervals {
        starts: starts
            .into_iter()
            .map(|s| K::try_from(s).ok().expect("interval start within the axis"))
            .collect(),
        sets: sets.into_boxed_slice(),
    }
}

impl Bits {
    fn new(rules: &[Rule]) -> Bits {
        let words = rules.len().div_ceil(64);
        let ports = std::array::from_fn(|class| {
            let mut always = vec![0u64; words];
            let mut spans = Vec::new();
            for (i, r) in rules.iter().enumerate() {
                if !matches_class(r.proto, class) {
                    continue;
                }
                if r.proto.has_ports() {
                    spans.push(Span {
                        rule: i,
                        start: u128::from(r.ports.from()),
                        end: Some(u128::from(r.ports.to()) + 1),
                    });
                } else {
                    always[i / 64] |= 1 << (i % 64);
                }
            }
            intervals(sweep(&spans, &always, u128::from(u16::MAX)))
        });
        let none = vec![0u64; words];
        let (mut s4, mut s6) = (Vec::new(), Vec::new());
        for (i, r) in rules.iter().enumerate() {
            let host_bits = if r.cidr.is_ipv4() { 32 } else { 128 } - u32::from(r.cidr.prefix());
            let start = match r.cidr.network() {
                IpAddr::V4(a) => u128::from(u32::from(a)),
                IpAddr::V6(a) => u128::from(a),
            };
            let last = start | 1u128.checked_shl(host_bits).map_or(u128::MAX, |b| b - 1);
            let span = Span {
                rule: i,
                start,
                end: last.checked_add(1),
            };
            if r.cidr.is_ipv4() {
                s4.push(span);
            } else {
                s6.push(span);
            }
        }
        Bits {
            words,
            ports,
            v4: intervals(sweep(&s4, &none, u128::from(u32::MAX))),
            v6: intervals(sweep(&s6, &none, u128::MAX)),
        }
    }

    #[inline(always)]
    fn first(&self, proto: u8, port: u16, peer: &[u8; 16], v6: bool) -> Option<usize> {
        let w = self.words;
        let p = self.ports[usize::from(CLASS_OF[usize::from(proto)])].set(port, w);
        let a = if v6 {
            self.v6.set(u128::from_be_bytes(*peer), w)
        } else {
            self.v4
                .set(u32::from_be_bytes([peer[0], peer[1], peer[2], peer[3]]), w)
        };
        for (i, (x, y)) in p.iter().zip(a).enumerate() {
            let m = x & y;
            if m != 0 {
                return Some(i * 64 + m.trailing_zeros() as usize);
            }
        }
        None
    }

    fn heap_bytes(&self) -> usize {
        self.ports.iter().map(Intervals::heap_bytes).sum::<usize>()
            + self.v4.heap_bytes()
            + self.v6.heap_bytes()
    }
}

impl RuleSet {
    /// Compiles `rules`, given in evaluation order (first match wins).
    pub fn new(rules: &[Rule]) -> RuleSet {
        RuleSet::build(rules, rules.len() > LINEAR_MAX)
    }

    fn build(rules: &[Rule], bits: bool) -> RuleSet {
        let kind = if bits {
            Kind::Bits(Box::new(Bits::new(rules)))
        } else {
            Kind::Linear(rules.iter().map(Compact::new).collect())
        };
        RuleSet {
            drop: rules.iter().map(|r| r.drop).collect(),
            kind,
        }
    }

    /// The number of rules.
    pub fn len(&self) -> usize {
        self.drop.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.drop.is_empty()
    }

    /// The `drop` of the first rule that matches, `None` if no rule matches.
    /// `peer` is the 16-byte address (IPv4 in the first 4 bytes when `!v6`,
    /// the rest ignored), `port` the packet's destination port (0 for a
    /// non-first fragment).
    #[inline]
    pub fn first_match(&self, proto: u8, port: u16, peer: &[u8; 16], v6: bool) -> Option<bool> {
        self.first_match_index(proto, port, peer, v6)
            .map(|i| self.drop[i])
    }

    /// Same, returning the index (in the `rules` given to [`RuleSet::new`])
    /// of the first match, for explanations and tests.
    #[inline]
    pub fn first_match_index(
        &self,
        proto: u8,
        port: u16,
        peer: &[u8; 16],
        v6: bool,
    ) -> Option<usize> {
        match &self.kind {
            Kind::Linear(rules) => {
                let addr = if v6 {
                    u128::from_be_bytes(*peer)
                } else {
                    u128::from(u32::from_be_bytes([peer[0], peer[1], peer[2], peer[3]]))
                };
                rules.iter().position(|r| r.matches(proto, port, addr, v6))
            }
            Kind::Bits(b) => b.first(proto, port, peer, v6),
        }
    }

    /// Bytes on the heap for the compiled form.
    fn heap_bytes(&self) -> usize {
        self.drop.len()
            + match &self.kind {
                Kind::Linear(r) => r.len() * std::mem::size_of::<Compact>(),
                Kind::Bits(b) => std::mem::size_of::<Bits>() + b.heap_bytes(),
            }
    }
}

impl fmt::Debug for RuleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RuleSet");
        d.field("rules", &self.len());
        match &self.kind {
            Kind::Linear(_) => d.field("form", &"linear"),
            Kind::Bits(b) => d
                .field("form", &"bitsets")
                .field(
                    "port_intervals",
                    &b.ports.each_ref().map(|p| p.starts.len()),
                )
                .field("v4_intervals", &b.v4.starts.len())
                .field("v6_intervals", &b.v6.starts.len()),
        };
        d.field("heap_bytes", &self.heap_bytes()).finish()
    }
}

/// xorshift64*, for the benchmark's reproducible rule sets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform enough in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A packet for the benchmark: protocol, port, peer, v6.
type Packet = (u8, u16, [u8; 16], bool);

/// A plausible random rule, as in a large security group: mostly TCP and
/// UDP to a service port from a specific network (IPv4 in 10.0.0.0/16,
/// IPv6 in fd00::/16), a few broad ones.
fn bench_rule(rng: &mut Rng) -> Rule {
    const SERVICES: [u16; 8] = [22, 53, 80, 443, 3306, 5432, 6379, 8080];
    let proto = match rng.below(40) {
        0..=19 => IpProtocol::Tcp,
        20..=29 => IpProtocol::Udp,
        30..=32 => IpProtocol::Icmp,
        33..=34 => IpProtocol::Icmpv6,
        35 => IpProtocol::Gre,
        _ => IpProtocol::All,
    };
    let ports = match rng.below(10) {
        0 => PortRange::ALL,
        1..=5 => {
            let p = SERVICES[rng.below(8) as usize];
            PortRange::new(p, p).expect("valid")
        }
        6..=7 => {
            let p = 1 + rng.below(65535) as u16;
            PortRange::new(p, p).expect("valid")
        }
        _ => {
            let a = 1 + rng.below(64535) as u16;
            PortRange::new(a, a + rng.below(1000) as u16).expect("valid")
        }
    };
    let broad = rng.below(100) == 0;
    let cidr = if rng.below(4) == 0 {
        let addr = (0xfd00_u128 << 112) | (u128::from(rng.next()) << 48) | u128::from(rng.next());
        let prefix = [48, 56, 64, 64, 96, 112, 128, 128][rng.below(8) as usize];
        Cidr::new(
            IpAddr::from(addr.to_be_bytes()),
            if broad { 0 } else { prefix },
        )
    } else {
        let addr = (10 << 24) | (rng.next() as u32 & 0xffff);
        let prefix = [16, 20, 24, 24, 26, 28, 32, 32][rng.below(8) as usize];
        Cidr::new(
            IpAddr::from(addr.to_be_bytes()),
            if broad { 0 } else { prefix },
        )
    }
    .expect("valid prefix");
    Rule {
        proto,
        ports,
        cidr,
        drop: rng.below(2) == 0,
    }
}

/// A random packet: three times in four one that matches a random rule (or
/// an earlier one), else a random one in the same address space (which
/// mostly matches nothing).
fn bench_packet(rng: &mut Rng, rules: &[Rule]) -> Packet {
    const PROTOS: [u8; 8] = [6, 6, 6, 17, 17, 1, 58, 132];
    let host = (u128::from(rng.next()) << 64) | u128::from(rng.next());
    let (proto, port, v6, addr) = if rules.is_empty() || rng.below(4) == 0 {
        let v6 = rng.below(4) == 0;
        let addr = if v6 {
            (0xfd00_u128 << 112) | (host >> 16)
        } else {
            u128::from((10 << 24) | (host as u32 & 0xffff))
        };
        (PROTOS[rng.below(8) as usize], rng.next() as u16, v6, addr)
    } else {
        let r = rules[rng.below(rules.len() as u64) as usize];
        let proto = r.proto.number().unwrap_or(PROTOS[rng.below(8) as usize]);
        let span = u64::from(r.ports.to() - r.ports.from()) + 1;
        let port = r.ports.from() + rng.below(span) as u16;
        let c = r.cidr;
        match c.network() {
            IpAddr::V4(a) => {
                let m = u32::MAX
                    .checked_shl(32 - u32::from(c.prefix()))
                    .unwrap_or(0);
                (
                    proto,
                    port,
                    false,
                    u128::from(u32::from(a) | (host as u32 & !m)),
                )
            }
            IpAddr::V6(a) => {
                let m = u128::MAX
                    .checked_shl(128 - u32::from(c.prefix()))
                    .unwrap_or(0);
                (proto, port, true, u128::from(a) | (host & !m))
            }
        }
    };
    let mut peer = [0u8; 16];
    if v6 {
        peer = addr.to_be_bytes();
    } else {
        peer[..4].copy_from_slice(&(addr as u32).to_be_bytes());
    }
    (proto, port, peer, v6)
}

/// A reproducible random set of `n` rules (fixed seed) and 4096 packets.
fn bench_workload(n: usize) -> (Vec<Rule>, Vec<Packet>) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let rules: Vec<Rule> = (0..n).map(|_| bench_rule(&mut rng)).collect();
    let packets = (0..4096).map(|_| bench_packet(&mut rng, &rules)).collect();
    (rules, packets)
}

/// Nanoseconds per [`RuleSet::first_match`] over a reproducible random set
/// of `rules` rules (fixed seed) and 4096 packets looked up round-robin,
/// `lookups` in all.
pub fn bench_rules(rules: usize, lookups: u64) -> f64 {
    let (rules, packets) = bench_workload(rules);
    let set = RuleSet::new(&rules);
    let mut sink = 0u64;
    let start = std::time::Instant::now();
    for i in 0..lookups {
        let (proto, port, peer, v6) = &packets[(i % 4096) as usize];
        let r = set.first_match(
            std::hint::black_box(*proto),
            *port,
            std::hint::black_box(peer),
            *v6,
        );
        sink = sink.wrapping_add(match r {
            None => 1,
            Some(false) => 2,
            Some(true) => 3,
        });
    }
    let elapsed = start.elapsed();
    std::hint::black_box(sink);
    elapsed.as_nanos() as f64 / lookups.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The plain evaluator: a linear scan with the config types' own methods.
    fn reference(rules: &[Rule], proto: u8, port: u16, peer: IpAddr) -> Option<usize> {
        rules.iter().position(|r| {
            r.proto.matches(proto)
                && (!r.proto.has_ports() || r.ports.contains(port))
                && r.cidr.contains(peer)
        })
    }

    fn proto(s: &str) -> IpProtocol {
        match s {
            "tcp" => IpProtocol::Tcp,
            "udp" => IpProtocol::Udp,
            "icmp" => IpProtocol::Icmp,
            "icmpv6" => IpProtocol::Icmpv6,
            "gre" => IpProtocol::Gre,
            "all" => IpProtocol::All,
            _ => panic!("protocol {s}"),
        }
    }

    fn rule(p: &str, ports: &str, cidr: &str, drop: bool) -> Rule {
        Rule {
            proto: proto(p),
            ports: ports.parse().expect("port range"),
            cidr: cidr.parse().expect("cidr"),
            drop,
        }
    }

    /// The 16-byte form; IPv4 padded with `pad` to show the tail is ignored.
    fn bytes(ip: IpAddr, pad: u8) -> ([u8; 16], bool) {
        match ip {
            IpAddr::V4(a) => {
                let mut b = [pad; 16];
                b[..4].copy_from_slice(&a.octets());
                (b, false)
            }
            IpAddr::V6(a) => (a.octets(), true),
        }
    }

    /// Every form (linear, bitsets, `new`) against the reference and
    /// `expected` (the index of the first match).
    fn check(rules: &[Rule], proto: u8, port: u16, peer: &str, expected: Option<usize>) {
        let ip: IpAddr = peer.parse().expect("address");
        let what = format!("proto {proto} port {port} peer {peer} rules {rules:?}");
        assert_eq!(
            reference(rules, proto, port, ip),
            expected,
            "reference: {what}"
        );
        for pad in [0, 0xff] {
            let (b, v6) = bytes(ip, pad);
            for set in [
                RuleSet::new(rules),
                RuleSet::build(rules, false),
                RuleSet::build(rules, true),
            ] {
                assert_eq!(set.len(), rules.len());
                assert_eq!(
                    set.first_match_index(proto, port, &b, v6),
                    expected,
                    "{set:?}: {what}"
                );
                assert_eq!(
                    set.first_match(proto, port, &b, v6),
                    expected.map(|i| rules[i].drop),
                    "{set:?}: {what}"
                );
            }
        }
    }

    const TCP: u8 = 6;
    const UDP: u8 = 17;
    const ICMP: u8 = 1;
    const ICMPV6: u8 = 58;
    const GRE: u8 = 47;
    const SCTP: u8 = 132;

    #[test]
    fn empty_matches_nothing() {
        let set = RuleSet::new(&[]);
        assert!(set.is_empty());
        assert_eq!(set.len(), 0);
        check(&[], TCP, 80, "10.0.0.1", None);
        check(&[], ICMPV6, 0, "::1", None);
        assert!(!RuleSet::new(&[rule("all", "-1/-1", "0.0.0.0/0", true)]).is_empty());
    }

    #[test]
    fn protocol_must_match() {
        // (rule protocol, packet protocol, matches)
        let cases = [
            ("tcp", TCP, true),
            ("tcp", UDP, false),
            ("tcp", SCTP, false),
            ("udp", UDP, true),
            ("udp", TCP, false),
            ("icmp", ICMP, true),
            ("icmp", ICMPV6, false),
            ("icmpv6", ICMPV6, true),
            ("icmpv6", ICMP, false),
            ("gre", GRE, true),
            ("gre", TCP, false),
            ("all", TCP, true),
            ("all", UDP, true),
            ("all", ICMP, true),
            ("all", ICMPV6, true),
            ("all", GRE, true),
            ("all", 0, true),
            ("all", 255, true),
        ];
        for (p, packet, matches) in cases {
            let rules = [rule(p, "-1/-1", "0.0.0.0/0", true)];
            check(&rules, packet, 80, "192.0.2.1", matches.then_some(0));
        }
    }

    #[test]
    fn sctp_is_matched_only_by_all() {
        for p in ["tcp", "udp", "icmp", "icmpv6", "gre"] {
            let rules = [rule(p, "-1/-1", "0.0.0.0/0", true)];
            check(&rules, SCTP, 80, "192.0.2.1", None);
        }
        let rules = [
            rule("tcp", "-1/-1", "0.0.0.0/0", true),
            rule("udp", "-1/-1", "0.0.0.0/0", true),
            rule("all", "80/80", "0.0.0.0/0", false),
        ];
        check(&rules, SCTP, 80, "192.0.2.1", Some(2));
        check(&rules, SCTP, 9, "192.0.2.1", Some(2));
    }

    #[test]
    fn ports_apply_to_tcp_and_udp() {
        for (p, packet) in [("tcp", TCP), ("udp", UDP)] {
            let rules = [rule(p, "80/443", "0.0.0.0/0", true)];
            for (port, matches) in [
                (79, false),
                (80, true),
                (200, true),
                (443, true),
                (444, false),
                (0, false),
                (65535, false),
            ] {
                check(&rules, packet, port, "192.0.2.1", matches.then_some(0));
            }
            let single = [rule(p, "65535/65535", "::/0", false)];
            check(&single, packet, 65535, "2001:db8::1", Some(0));
            check(&single, packet, 65534, "2001:db8::1", None);
        }
    }

    #[test]
    fn ports_ignored_for_other_protocols() {
        // A port range on icmp/icmpv6/gre/all rules (the config keeps it; it
        // means nothing) is ignored: every port matches.
        for (p, packet) in [
            ("icmp", ICMP),
            ("icmpv6", ICMPV6),
            ("gre", GRE),
            ("all", TCP),
            ("all", UDP),
            ("all", SCTP),
            ("all", ICMP),
        ] {
            let rules = [rule(p, "80/80", "0.0.0.0/0", true)];
            for port in [0, 1, 79, 80, 81, 65535] {
                check(&rules, packet, port, "192.0.2.1", Some(0));
            }
        }
    }

    #[test]
    fn all_rule_ignores_ports_between_tcp_rules() {
        let rules = [
            rule("tcp", "22/22", "0.0.0.0/0", false),
            rule("all", "443/443", "10.0.0.0/8", true),
            rule("tcp", "1/65535", "0.0.0.0/0", false),
        ];
        check(&rules, TCP, 22, "10.1.1.1", Some(0));
        check(&rules, TCP, 23, "10.1.1.1", Some(1));
        check(&rules, TCP, 23, "11.1.1.1", Some(2));
        check(&rules, TCP, 0, "11.1.1.1", None);
        check(&rules, UDP, 22, "10.1.1.1", Some(1));
        check(&rules, UDP, 22, "11.1.1.1", None);
    }

    #[test]
    fn non_first_fragment_has_port_zero() {
        let all_ports = [rule("tcp", "-1/-1", "0.0.0.0/0", true)];
        check(&all_ports, TCP, 0, "192.0.2.1", Some(0));
        let full_range = [rule("tcp", "1/65535", "0.0.0.0/0", true)];
        check(&full_range, TCP, 0, "192.0.2.1", None);
        check(&full_range, TCP, 1, "192.0.2.1", Some(0));
        let udp_full = [rule("udp", "1/65535", "::/0", true)];
        check(&udp_full, UDP, 0, "2001:db8::1", None);
        let both = [
            rule("udp", "1/65535", "0.0.0.0/0", true),
            rule("udp", "-1/-1", "0.0.0.0/0", false),
        ];
        check(&both, UDP, 0, "192.0.2.1", Some(1));
        check(&both, UDP, 53, "192.0.2.1", Some(0));
    }

    #[test]
    fn families_never_cross() {
        let v4_any = [rule("all", "-1/-1", "0.0.0.0/0", true)];
        check(&v4_any, TCP, 80, "192.0.2.1", Some(0));
        check(&v4_any, TCP, 80, "::", None);
        check(&v4_any, TCP, 80, "::ffff:192.0.2.1", None);
        check(&v4_any, TCP, 80, "2001:db8::1", None);
        let v6_any = [rule("all", "-1/-1", "::/0", true)];
        check(&v6_any, TCP, 80, "2001:db8::1", Some(0));
        check(&v6_any, TCP, 80, "0.0.0.0", None);
        check(&v6_any, TCP, 80, "192.0.2.1", None);
        // The same bits in both families.
        let v4 = [rule("all", "-1/-1", "10.0.0.0/8", true)];
        check(&v4, TCP, 80, "a00::1", None);
        check(&v4, TCP, 80, "10.0.0.1", Some(0));
        let v6 = [rule("all", "-1/-1", "::/96", true)];
        check(&v6, TCP, 80, "::a00:1", Some(0));
        check(&v6, TCP, 80, "10.0.0.1", None);
    }

    #[test]
    fn cidr_bounds() {
        let rules = [rule("all", "-1/-1", "10.1.2.0/24", true)];
        for (peer, m) in [
            ("10.1.1.255", false),
            ("10.1.2.0", true),
            ("10.1.2.128", true),
            ("10.1.2.255", true),
            ("10.1.3.0", false),
        ] {
            check(&rules, TCP, 80, peer, m.then_some(0));
        }
        let host = [rule("all", "-1/-1", "10.1.2.3/32", false)];
        for (peer, m) in [("10.1.2.2", false), ("10.1.2.3", true), ("10.1.2.4", false)] {
            check(&host, UDP, 53, peer, m.then_some(0));
        }
        let zero = [rule("all", "-1/-1", "0.0.0.0/0", false)];
        for peer in ["0.0.0.0", "255.255.255.255", "127.0.0.1"] {
            check(&zero, GRE, 0, peer, Some(0));
        }
        let top = [rule("all", "-1/-1", "255.255.255.255/32", true)];
        check(&top, TCP, 1, "255.255.255.255", Some(0));
        check(&top, TCP, 1, "255.255.255.254", None);
        let v6_host = [rule("all", "-1/-1", "2001:db8::5/128", true)];
        for (peer, m) in [
            ("2001:db8::4", false),
            ("2001:db8::5", true),
            ("2001:db8::6", false),
        ] {
            check(&v6_host, ICMPV6, 0, peer, m.then_some(0));
        }
        let v6_top = [rule(
            "all",
            "-1/-1",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
            true,
        )];
        check(
            &v6_top,
            TCP,
            1,
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            Some(0),
        );
        check(
            &v6_top,
            TCP,
            1,
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe",
            None,
        );
        let v6_zero = [rule("all", "-1/-1", "::/0", true)];
        for peer in ["::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe80::1"] {
            check(&v6_zero, TCP, 1, peer, Some(0));
        }
        let v6_net = [rule("all", "-1/-1", "2001:db8:1::/48", true)];
        check(&v6_net, TCP, 1, "2001:db8:1:ffff::1", Some(0));
        check(&v6_net, TCP, 1, "2001:db8:2::", None);
        check(&v6_net, TCP, 1, "2001:db8:0:ffff:ffff:ffff:ffff:ffff", None);
    }

    #[test]
    fn first_match_wins() {
        let rules = [
            rule("tcp", "22/22", "10.0.0.0/8", true),
            rule("tcp", "-1/-1", "10.1.0.0/16", false),
            rule("all", "-1/-1", "0.0.0.0/0", true),
            rule("tcp", "22/22", "10.1.1.1/32", false),
        ];
        check(&rules, TCP, 22, "10.1.1.1", Some(0));
        check(&rules, TCP, 23, "10.1.1.1", Some(1));
        check(&rules, TCP, 23, "10.2.1.1", Some(2));
        check(&rules, UDP, 22, "10.1.1.1", Some(2));
        check(&rules, TCP, 22, "2001:db8::1", None);
        // The same rule twice: the first.
        let twice = [
            rule("udp", "53/53", "::/0", false),
            rule("udp", "53/53", "::/0", true),
        ];
        check(&twice, UDP, 53, "::1", Some(0));
    }

    #[test]
    fn first_match_wins_beyond_a_word() {
        // 200 rules that never match, then a catch-all, then more: the
        // answer lies in the fourth word of the sets.
        let mut rules: Vec<Rule> = (0..200)
            .map(|i| {
                rule(
                    "tcp",
                    &format!("{}/{}", 1000 + i, 1000 + i),
                    "10.0.0.0/8",
                    true,
                )
            })
            .collect();
        rules.push(rule("udp", "-1/-1", "0.0.0.0/0", false));
        rules.push(rule("all", "-1/-1", "0.0.0.0/0", true));
        rules.extend((0..100).map(|_| rule("all", "-1/-1", "::/0", false)));
        check(&rules, TCP, 1100, "10.0.0.1", Some(100));
        check(&rules, TCP, 1100, "11.0.0.1", Some(201));
        check(&rules, TCP, 999, "10.0.0.1", Some(201));
        check(&rules, UDP, 1100, "10.0.0.1", Some(200));
        check(&rules, ICMPV6, 0, "fe80::1", Some(202));
        check(&rules, SCTP, 0, "fe80::1", Some(202));
    }

    #[test]
    fn class_table() {
        for p in 0..=255u8 {
            let c = usize::from(CLASS_OF[usize::from(p)]);
            for r in [
                IpProtocol::Tcp,
                IpProtocol::Udp,
                IpProtocol::Icmp,
                IpProtocol::Icmpv6,
                IpProtocol::Gre,
                IpProtocol::All,
            ] {
                assert_eq!(matches_class(r, c), r.matches(p), "{r:?} {p}");
            }
        }
    }

    #[test]
    fn linear_threshold() {
        let rules: Vec<Rule> = (0..=LINEAR_MAX + 1)
            .map(|_| rule("all", "-1/-1", "0.0.0.0/0", true))
            .collect();
        assert!(matches!(
            RuleSet::new(&rules[..LINEAR_MAX]).kind,
            Kind::Linear(_)
        ));
        assert!(matches!(RuleSet::new(&rules).kind, Kind::Bits(_)));
    }

    #[test]
    fn bench_workload_is_reproducible() {
        let (a, pa) = bench_workload(50);
        let (b, pb) = bench_workload(50);
        assert_eq!(a, b);
        assert_eq!(pa, pb);
        assert!(bench_rules(10, 1000) > 0.0);
    }

    // ----- property test against the reference -----

    /// Port values crowded at the edges so that ranges share bounds.
    fn port() -> impl Strategy<Value = u16> {
        prop_oneof![0u16..6, 78u16..84, 65530u16..=65535, any::<u16>(),]
    }

    fn port_range() -> impl Strategy<Value = PortRange> {
        prop_oneof![
            1 => Just(PortRange::ALL),
            3 => (port(), port()).prop_map(|(a, b)| {
                let (a, b) = (a.clamp(1, 65535), b.clamp(1, 65535));
                PortRange::new(a.min(b), a.max(b)).expect("valid")
            }),
        ]
    }

    fn protocol() -> impl Strategy<Value = IpProtocol> {
        prop_oneof![
            Just(IpProtocol::Tcp),
            Just(IpProtocol::Udp),
            Just(IpProtocol::Icmp),
            Just(IpProtocol::Icmpv6),
            Just(IpProtocol::Gre),
            Just(IpProtocol::All),
        ]
    }

    /// Addresses from a narrow space (a few top bits, a few low bits) so
    /// that networks nest and share bounds, plus fully random ones.
    fn cidr() -> impl Strategy<Value = Cidr> {
        let v4 = (
            prop_oneof![
                Just(0u32),
                Just(0x0a00_0000),
                Just(0xffff_ff00),
                any::<u32>()
            ],
            0u32..=0xff,
            0u8..=32,
        )
            .prop_map(|(hi, lo, prefix)| {
                let a = if hi & 0xff == 0 { hi | lo } else { hi };
                Cidr::new(IpAddr::V4(Ipv4Addr::from(a)), prefix).expect("prefix")
            });
        let v6 = (
            prop_oneof![
                Just(0u128),
                Just(0xfd00u128 << 112),
                Just(u128::MAX << 8),
                any::<u128>()
            ],
            0u128..=0xff,
            0u8..=128,
        )
            .prop_map(|(hi, lo, prefix)| {
                let a = if hi & 0xff == 0 { hi | lo } else { hi };
                Cidr::new(IpAddr::V6(Ipv6Addr::from(a)), prefix).expect("prefix")
            });
        prop_oneof![v4, v6]
    }

    fn arb_rule() -> impl Strategy<Value = Rule> {
        (protocol(), port_range(), cidr(), any::<bool>()).prop_map(|(proto, ports, cidr, drop)| {
            Rule {
                proto,
                ports,
                cidr,
                drop,
            }
        })
    }

    /// Small sets (around the linear threshold) half the time.
    fn rules() -> impl Strategy<Value = Vec<Rule>> {
        prop_oneof![
            proptest::collection::vec(arb_rule(), 0..=LINEAR_MAX + 2),
            proptest::collection::vec(arb_rule(), 0..1200),
        ]
    }

    /// How a probe picks its packet: from a rule's bounds mostly.
    #[derive(Clone, Debug)]
    struct Probe {
        rule: prop::sample::Index,
        proto: u8,
        port_kind: u8,
        port: u16,
        addr_kind: u8,
        bits: u128,
        v6: bool,
        pad: u8,
    }

    fn probe() -> impl Strategy<Value = Probe> {
        (
            any::<prop::sample::Index>(),
            prop_oneof![
                Just(TCP),
                Just(UDP),
                Just(ICMP),
                Just(ICMPV6),
                Just(GRE),
                Just(SCTP),
                any::<u8>()
            ],
            0u8..6,
            port(),
            0u8..7,
            any::<u128>(),
            any::<bool>(),
            any::<u8>(),
        )
            .prop_map(
                |(rule, proto, port_kind, port, addr_kind, bits, v6, pad)| Probe {
                    rule,
                    proto,
                    port_kind,
                    port,
                    addr_kind,
                    bits,
                    v6,
                    pad,
                },
            )
    }

    /// The packet a probe stands for: protocol, port, peer.
    fn packet(rules: &[Rule], p: &Probe) -> (u8, u16, IpAddr) {
        let r = (!rules.is_empty()).then(|| rules[p.rule.index(rules.len())]);
        let port = match (p.port_kind, r) {
            (0, Some(r)) => r.ports.from(),
            (1, Some(r)) => r.ports.to(),
            (2, Some(r)) => r.ports.from().wrapping_sub(1),
            (3, Some(r)) => r.ports.to().wrapping_add(1),
            _ => p.port,
        };
        let (v6, net, host_bits) = match r.map(|r| r.cidr) {
            Some(c) if p.addr_kind < 5 => match c.network() {
                IpAddr::V4(a) => (false, u128::from(u32::from(a)), 32 - u32::from(c.prefix())),
                IpAddr::V6(a) => (true, u128::from(a), 128 - u32::from(c.prefix())),
            },
            _ => (p.v6, 0, if p.v6 { 128 } else { 32 }),
        };
        let size = 1u128.checked_shl(host_bits).map_or(u128::MAX, |s| s - 1);
        let last = net | size;
        let addr = match p.addr_kind {
            0 => net,
            1 => last,
            2 => net.wrapping_sub(1),
            3 => last.wrapping_add(1),
            _ => net | (p.bits & size),
        };
        let ip = if v6 {
            IpAddr::V6(Ipv6Addr::from(addr))
        } else {
            IpAddr::V4(Ipv4Addr::from(addr as u32))
        };
        (p.proto, port, ip)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn same_as_reference(rules in rules(), probes in proptest::collection::vec(probe(), 64)) {
            let forms = [
                RuleSet::new(&rules),
                RuleSet::build(&rules, false),
                RuleSet::build(&rules, true),
            ];
            for p in &probes {
                let (proto, port, ip) = packet(&rules, p);
                let expected = reference(&rules, proto, port, ip);
                let (b, v6) = bytes(ip, p.pad);
                for set in &forms {
                    prop_assert_eq!(set.len(), rules.len());
                    prop_assert_eq!(
                        set.first_match_index(proto, port, &b, v6),
                        expected,
                        "proto {} port {} peer {}", proto, port, ip
                    );
                    prop_assert_eq!(
                        set.first_match(proto, port, &b, v6),
                        expected.map(|i| rules[i].drop)
                    );
                }
            }
        }
    }

    /// Prints ns/lookup: `cargo test --release -p vswitch-plugin
    /// --no-default-features --lib policy::rules -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a test"]
    fn bench() {
        for n in [0, 1, 4, 8, 9, 10, 16, 100, 1000] {
            let (rules, packets) = bench_workload(n);
            let set = RuleSet::new(&rules);
            let linear = RuleSet::build(&rules, false);
            let bits = RuleSet::build(&rules, true);
            let matched = packets
                .iter()
                .filter(|(p, port, peer, v6)| set.first_match(*p, *port, peer, *v6).is_some())
                .count();
            let lookups = 20_000_000;
            let ns = bench_rules(n, lookups);
            let time = |s: &RuleSet| {
                let start = std::time::Instant::now();
                let mut sink = 0usize;
                for i in 0..lookups {
                    let (p, port, peer, v6) = &packets[(i % 4096) as usize];
                    sink = sink.wrapping_add(
                        s.first_match_index(std::hint::black_box(*p), *port, peer, *v6)
                            .unwrap_or(7),
                    );
                }
                std::hint::black_box(sink);
                start.elapsed().as_nanos() as f64 / lookups as f64
            };
            println!(
                "{n:5} rules: {ns:6.2} ns/lookup (linear {:6.2}, bitsets {:6.2}), \
                 {:.0}% of packets match, {:?}",
                time(&linear),
                time(&bits),
                100.0 * matched as f64 / packets.len() as f64,
                set
            );
        }
    }
}
