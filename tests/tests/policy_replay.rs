//! Security groups (stateful) and network ACLs (stateless) in
//! `flowlogd replay`, end to end: hand-built captures (Ethernet, IPv4/IPv6,
//! TCP/UDP/ICMP, and some SCTP, GRE and fragments) replayed with
//! configurations that have rules, and the records' `action` and existence
//! checked against CONFIG.md ("Security groups", "Network ACLs", "Order of
//! evaluation") and RECORDS.md ("Where a packet is seen").
//!
//! ENIs are identified by MAC. Everything outside the host comes from and
//! goes to one gateway MAC ([`GW`]); east-west frames carry both ENIs' MACs.
//! Every replay goes through [`replay_ok`] (exit status, counters that add
//! up, the store's contract) and [`check_policy_summary`] (the `policy`
//! counters agree with the records).

use flowlog::capture::{PcapWriter, WriterOptions};
use flowlog_tests::{
    canonical, eni_json, int, mac_str, replay_ok, vpc_flow_log, Replayed, FLOW_LOG, HOST,
    LOG_STORE, VPC, VSWITCH,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------
// Addresses

/// Start of every capture, in whole seconds: 10 s into a 600-s window.
const T0: u64 = 2_833_334 * 600 + 10;

/// The gateway: every frame from or to outside the host.
const GW: [u8; 6] = [0x02, 0, 0, 0, 0, 0xfe];
/// ENI A.
const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
/// ENI B (same host, same vSwitch).
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
/// ENI C: never sends or receives.
const MAC_C: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0c];
/// ENI D: no security group.
const MAC_D: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0d];

const A4: &str = "10.0.1.5";
const A6: &str = "fd00:0:0:1::5";
const B4: &str = "10.0.1.6";
const C4: &str = "10.0.1.7";
const D4: &str = "10.0.1.8";

/// The vSwitch's own networks.
const VSW_CIDR: &str = "10.0.1.0/24";
const VSW_CIDR6: &str = "fd00:0:0:1::/64";

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;

// ---------------------------------------------------------------------------
// Packets and captures

#[derive(Clone, Copy, Debug)]
enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    /// ICMP, or ICMPv6 when the addresses are IPv6.
    Icmp {
        ty: u8,
        code: u8,
    },
    Sctp {
        sport: u16,
        dport: u16,
    },
    /// Another protocol: 4 bytes of payload, no ports.
    Other {
        proto: u8,
    },
    /// A non-first IPv4 fragment of this protocol: no L4 header.
    Fragment {
        proto: u8,
    },
}

/// One IP packet.
#[derive(Clone, Copy, Debug)]
struct Pkt {
    src: IpAddr,
    dst: IpAddr,
    l4: L4,
}

fn ip(s: &str) -> IpAddr {
    s.parse()
        .unwrap_or_else(|_| panic!("{s} is not an address"))
}

fn tcp(src: &str, sport: u16, dst: &str, dport: u16, flags: u8) -> Pkt {
    Pkt {
        src: ip(src),
        dst: ip(dst),
        l4: L4::Tcp {
            sport,
            dport,
            flags,
        },
    }
}

fn udp(src: &str, sport: u16, dst: &str, dport: u16) -> Pkt {
    Pkt {
        src: ip(src),
        dst: ip(dst),
        l4: L4::Udp { sport, dport },
    }
}

fn l4(src: &str, dst: &str, l4: L4) -> Pkt {
    Pkt {
        src: ip(src),
        dst: ip(dst),
        l4,
    }
}

fn icmp(src: &str, dst: &str, ty: u8, code: u8) -> Pkt {
    Pkt {
        src: ip(src),
        dst: ip(dst),
        l4: L4::Icmp { ty, code },
    }
}

impl Pkt {
    fn v6(&self) -> bool {
        self.src.is_ipv6()
    }

    /// IANA protocol number.
    fn proto(&self) -> u8 {
        match self.l4 {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } => 17,
            L4::Icmp { .. } if self.v6() => 58,
            L4::Icmp { .. } => 1,
            L4::Sctp { .. } => 132,
            L4::Other { proto } | L4::Fragment { proto } => proto,
        }
    }

    /// `(srcport, dstport)` as RECORDS.md "Ports" puts them in a record.
    fn ports(&self) -> (u16, u16) {
        match self.l4 {
            L4::Tcp { sport, dport, .. } | L4::Udp { sport, dport } | L4::Sctp { sport, dport } => {
                (sport, dport)
            }
            L4::Icmp { ty, code } => (0, u16::from(ty) * 256 + u16::from(code)),
            L4::Other { .. } | L4::Fragment { .. } => (0, 0),
        }
    }

    /// The upper-layer header and a few bytes of payload.
    fn l4_bytes(&self) -> Vec<u8> {
        match self.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
            } => {
                let mut h = Vec::with_capacity(24);
                h.extend(sport.to_be_bytes());
                h.extend(dport.to_be_bytes());
                h.extend(1_000u32.to_be_bytes()); // seq
                h.extend(if flags & ACK != 0 { 2_000u32 } else { 0 }.to_be_bytes());
                h.extend([0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
                if flags & PSH != 0 {
                    h.extend(b"data");
                }
                h
            }
            L4::Udp { sport, dport } => {
                let payload = b"query";
                let mut h = Vec::with_capacity(8 + payload.len());
                h.extend(sport.to_be_bytes());
                h.extend(dport.to_be_bytes());
                h.extend(u16::try_from(8 + payload.len()).unwrap().to_be_bytes());
                h.extend([0, 0]);
                h.extend(payload);
                h
            }
            L4::Icmp { ty, code } => vec![ty, code, 0, 0, 0x12, 0x34, 0, 1],
            L4::Sctp { sport, dport } => {
                let mut h = Vec::with_capacity(12);
                h.extend(sport.to_be_bytes());
                h.extend(dport.to_be_bytes());
                h.extend([0, 0, 0, 1, 0, 0, 0, 0]);
                h
            }
            L4::Other { .. } => vec![0, 0, 0x08, 0x00],
            // The middle of a TCP or UDP payload: bytes that would read as
            // ports 4660 and 22136 if taken for a header.
            L4::Fragment { .. } => vec![0x12, 0x34, 0x56, 0x78, 0, 0, 0, 0],
        }
    }

    /// The Ethernet frame from `src_mac` to `dst_mac`.
    fn frame(&self, src_mac: [u8; 6], dst_mac: [u8; 6]) -> Vec<u8> {
        let l4 = self.l4_bytes();
        let mut f = Vec::with_capacity(14 + 40 + l4.len());
        f.extend(dst_mac);
        f.extend(src_mac);
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend([0x08, 0x00]);
                let total = u16::try_from(20 + l4.len()).unwrap();
                let mut h = vec![0x45, 0];
                h.extend(total.to_be_bytes());
                // Identification 1; DF, or for a non-first fragment offset
                // 185 (1480 bytes).
                let frag: [u8; 2] = match self.l4 {
                    L4::Fragment { .. } => [0x00, 0xb9],
                    _ => [0x40, 0x00],
                };
                h.extend([0, 1, frag[0], frag[1], 64, self.proto(), 0, 0]);
                h.extend(s.octets());
                h.extend(d.octets());
                let mut sum: u32 = h
                    .chunks(2)
                    .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
                    .sum();
                while sum > 0xffff {
                    sum = (sum & 0xffff) + (sum >> 16);
                }
                h[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
                f.extend(h);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                assert!(
                    !matches!(self.l4, L4::Fragment { .. }),
                    "IPv4 fragments only"
                );
                f.extend([0x86, 0xdd]);
                f.extend([0x60, 0, 0, 0]);
                f.extend(u16::try_from(l4.len()).unwrap().to_be_bytes());
                f.extend([self.proto(), 64]);
                f.extend(s.octets());
                f.extend(d.octets());
            }
            _ => panic!("mixed address families in {self:?}"),
        }
        f.extend(l4);
        f
    }
}

/// A capture being built: frames at millisecond offsets from [`T0`].
#[derive(Default)]
struct Cap {
    frames: Vec<(u64, Vec<u8>)>,
}

impl Cap {
    /// `p` from `src_mac` to `dst_mac`, `ms` milliseconds after [`T0`].
    fn add(&mut self, ms: u64, src_mac: [u8; 6], dst_mac: [u8; 6], p: Pkt) {
        self.frames.push((ms, p.frame(src_mac, dst_mac)));
    }

    /// Sent by the ENI with MAC `eni` to the outside.
    fn out(&mut self, ms: u64, eni: [u8; 6], p: Pkt) {
        self.add(ms, eni, GW, p);
    }

    /// From the outside to the ENI with MAC `eni`.
    fn inn(&mut self, ms: u64, eni: [u8; 6], p: Pkt) {
        self.add(ms, GW, eni, p);
    }

    /// Writes the capture, frames in time order (stable), to `dir/name`.
    fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let mut frames: Vec<&(u64, Vec<u8>)> = self.frames.iter().collect();
        frames.sort_by_key(|f| f.0);
        let path = dir.join(name);
        let file = std::fs::File::create(&path).expect("create pcap");
        let mut w = PcapWriter::new(file, WriterOptions::default()).expect("pcap writer");
        for (ms, data) in frames {
            let ns = T0 * 1_000_000_000 + ms * 1_000_000;
            w.write_frame(ns, data, u32::try_from(data.len()).unwrap())
                .expect("write frame");
        }
        w.finish().expect("finish pcap");
        path
    }
}

/// Milliseconds in `s` seconds.
const fn sec(s: u64) -> u64 {
    s * 1_000
}

// ---------------------------------------------------------------------------
// Configurations

/// An ENI in [`VPC`] / [`VSWITCH`] with these security groups (none: no
/// `security_group_ids`, which accepts everything).
fn eni(id: &str, mac: [u8; 6], ips: &[&str], sgs: &[&str]) -> Value {
    let ips: Vec<IpAddr> = ips.iter().map(|s| ip(s)).collect();
    let mut e = eni_json(id, &mac_str(&mac), &ips);
    if !sgs.is_empty() {
        e["security_group_ids"] = json!(sgs);
    }
    e
}

fn sg(id: &str, rules: Vec<Value>) -> Value {
    json!({ "security_group_id": id, "rules": rules })
}

/// A security-group rule.
fn rule(
    direction: &str,
    policy: &str,
    priority: u8,
    proto: &str,
    ports: &str,
    cidr: &str,
) -> Value {
    json!({
        "direction": direction, "policy": policy, "priority": priority,
        "ip_protocol": proto, "port_range": ports, "cidr": cidr,
    })
}

fn ingress(policy: &str, priority: u8, proto: &str, ports: &str, cidr: &str) -> Value {
    rule("ingress", policy, priority, proto, ports, cidr)
}

fn egress(policy: &str, priority: u8, proto: &str, ports: &str, cidr: &str) -> Value {
    rule("egress", policy, priority, proto, ports, cidr)
}

/// A network ACL with these lists.
fn nacl(id: &str, ingress: Vec<Value>, egress: Vec<Value>) -> Value {
    json!({ "network_acl_id": id, "ingress": ingress, "egress": egress })
}

/// A network-ACL rule.
fn nrule(policy: &str, proto: &str, ports: &str, cidr: &str) -> Value {
    json!({ "policy": policy, "ip_protocol": proto, "port_range": ports, "cidr": cidr })
}

/// One VPC, one vSwitch ([`VSW_CIDR`], [`VSW_CIDR6`]) guarded by `acl` if
/// given, these ENIs and security groups, and the VPC flow log [`FLOW_LOG`]
/// (`All`, 600 s) into [`LOG_STORE`].
fn config(enis: Vec<Value>, sgs: Vec<Value>, acl: Option<Value>) -> Value {
    let mut vsw = json!({
        "vswitch_id": VSWITCH, "vpc_id": VPC, "cidr": VSW_CIDR, "ipv6_cidr": VSW_CIDR6,
    });
    let mut acls = Vec::new();
    if let Some(a) = acl {
        vsw["network_acl_id"] = a["network_acl_id"].clone();
        acls.push(a);
    }
    json!({
        "host": HOST,
        "enis": enis,
        "vswitches": [vsw],
        "security_groups": sgs,
        "network_acls": acls,
        "flow_logs": [ vpc_flow_log(FLOW_LOG, "All", 600, LOG_STORE) ],
    })
}

// ---------------------------------------------------------------------------
// Running and reading

/// Replays `cap` with `config` (through [`replay_ok`]) and checks the policy
/// counters against the records of [`FLOW_LOG`].
fn run(config: &Value, cap: &Cap, extra: &[&str]) -> Replayed {
    let tmp = tempfile::tempdir().expect("temp dir");
    let pcap = cap.write(tmp.path(), "policy.pcap");
    let r = replay_ok(config, &pcap, extra);
    check_policy_summary(&r, config);
    r
}

/// A `policy` counter of the summary.
fn pol(r: &Replayed, key: &str) -> u64 {
    int(&r.summary["policy"], key)
}

/// What holds for any replay here, where no flow table overflows:
/// - no SKIPDATA;
/// - every REJECT is counted once, by the network ACL or the security group;
/// - when [`FLOW_LOG`] (traffic type `All`) covers every ENI (each has a
///   record), every observation is in one of its OK records:
///   `observations` is the sum of their packets and `rejected` that of the
///   REJECT ones; otherwise (an ENI that flow logs skip) those sums are
///   lower bounds;
/// - when every ENI has a security group, every judged packet was either a
///   rule lookup or tracked.
fn check_policy_summary(r: &Replayed, config: &Value) {
    let s = &r.summary;
    let mine: Vec<&Value> = r
        .records
        .iter()
        .filter(|x| x["flow-log-id"] == FLOW_LOG)
        .collect();
    assert!(
        mine.iter().all(|x| x["log-status"] != "SKIPDATA"),
        "SKIPDATA in a small replay: {s}"
    );
    let packets = |action: Option<&str>| -> u64 {
        mine.iter()
            .filter(|x| x["log-status"] == "OK")
            .filter(|x| action.is_none_or(|a| x["action"] == a))
            .map(|x| int(x, "packets"))
            .sum()
    };
    let enis = config["enis"].as_array().expect("enis");
    let covered: BTreeSet<&str> = mine.iter().filter_map(|x| x["eni-id"].as_str()).collect();
    let all_covered = enis
        .iter()
        .all(|e| covered.contains(e["eni_id"].as_str().expect("eni_id")));
    let (obs, rejected) = (int(s, "observations"), int(s, "rejected"));
    if all_covered {
        assert_eq!(obs, packets(None), "observations vs OK records: {s}");
        assert_eq!(
            rejected,
            packets(Some("REJECT")),
            "rejected vs REJECT records: {s}"
        );
    } else {
        assert!(obs >= packets(None), "observations vs OK records: {s}");
        assert!(
            rejected >= packets(Some("REJECT")),
            "rejected vs REJECT records: {s}"
        );
    }
    assert_eq!(
        pol(r, "nacl_drops") + pol(r, "sg_drops"),
        rejected,
        "every REJECT is the network ACL's or the security group's: {s}"
    );
    let all_have_sg = enis.iter().all(|e| {
        e["security_group_ids"]
            .as_array()
            .is_some_and(|v| !v.is_empty())
    });
    if all_have_sg {
        assert_eq!(
            pol(r, "rule_lookups") + pol(r, "tracked"),
            obs,
            "every packet at an ENI with a security group is a rule lookup or tracked: {s}"
        );
    }
}

/// `"<eni> <direction> <action> proto <p> <src> <sport> > <dst> <dport>"`.
fn key(eni: &str, dir: &str, action: &str, p: &Pkt) -> String {
    let (sp, dp) = p.ports();
    format!(
        "{eni} {dir} {action} proto {} {} {sp} > {} {dp}",
        p.proto(),
        p.src,
        p.dst
    )
}

/// The OK records of `flow_log`, by [`key`], packets summed over windows.
fn ok_records(r: &Replayed, flow_log: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for x in &r.records {
        if x["flow-log-id"] != flow_log || x["log-status"] != "OK" {
            continue;
        }
        let k = format!(
            "{} {} {} proto {} {} {} > {} {}",
            x["eni-id"].as_str().unwrap(),
            x["direction"].as_str().unwrap(),
            x["action"].as_str().unwrap(),
            x["protocol"],
            x["srcaddr"].as_str().unwrap(),
            x["srcport"],
            x["dstaddr"].as_str().unwrap(),
            x["dstport"],
        );
        *m.entry(k).or_insert(0) += int(x, "packets");
    }
    m
}

/// The records a test expects: key to packets.
#[derive(Default)]
struct Want(BTreeMap<String, u64>);

impl Want {
    fn add(&mut self, eni: &str, dir: &str, action: &str, p: &Pkt, packets: u64) -> &mut Want {
        *self.0.entry(key(eni, dir, action, p)).or_insert(0) += packets;
        self
    }

    /// Asserts that [`FLOW_LOG`]'s OK records are exactly these.
    fn check(&self, r: &Replayed, what: &str) {
        let got = ok_records(r, FLOW_LOG);
        if got != self.0 {
            let missing: Vec<_> = self
                .0
                .iter()
                .filter(|(k, v)| got.get(*k) != Some(v))
                .collect();
            let extra: Vec<_> = got
                .iter()
                .filter(|(k, v)| self.0.get(*k) != Some(v))
                .collect();
            panic!(
                "{what}: records differ\n  expected but missing or with other packet counts:\n    \
                 {missing:?}\n  got instead:\n    {extra:?}\n  summary: {}",
                r.summary
            );
        }
    }
}

// ---------------------------------------------------------------------------
// 1. Stateful return traffic

#[test]
fn return_traffic_of_an_outbound_connection_is_accepted_unsolicited_inbound_is_not() {
    // ENI A's security group has one ingress rule that matches none of the
    // packets below (ssh from elsewhere): egress defaults to accept, ingress
    // to drop.
    let cfg = config(
        vec![eni("eni-a", MAC_A, &[A4, A6], &["sg-a"])],
        vec![sg(
            "sg-a",
            vec![ingress("accept", 1, "tcp", "22/22", "203.0.113.0/24")],
        )],
        None,
    );
    let (p1, p2, p1v6) = ("198.51.100.7", "192.0.2.77", "2001:db8::7");
    let mut cap = Cap::default();
    // TCP over IPv4: handshake, data, FIN both ways, then a RST and an ACK
    // (FIN and RST do not close a tracked connection).
    let out = |flags| tcp(A4, 40_000, p1, 443, flags);
    let back = |flags| tcp(p1, 443, A4, 40_000, flags);
    cap.out(0, MAC_A, out(SYN));
    cap.inn(10, MAC_A, back(SYN | ACK));
    cap.out(20, MAC_A, out(ACK));
    cap.inn(30, MAC_A, back(PSH | ACK));
    cap.out(40, MAC_A, out(FIN | ACK));
    cap.inn(50, MAC_A, back(FIN | ACK));
    cap.inn(60, MAC_A, back(RST));
    cap.inn(70, MAC_A, back(ACK));
    // Unsolicited: another peer; the same peer from another port; the same
    // peer and port to another local port.
    let scan = tcp(p2, 51_000, A4, 8080, SYN);
    let other_sport = tcp(p1, 444, A4, 40_000, SYN | ACK);
    let other_dport = tcp(p1, 443, A4, 40_001, SYN | ACK);
    cap.inn(100, MAC_A, scan);
    cap.inn(110, MAC_A, other_sport);
    cap.inn(120, MAC_A, other_dport);
    // TCP over IPv6.
    let out6 = tcp(A6, 40_000, p1v6, 443, SYN);
    let back6 = tcp(p1v6, 443, A6, 40_000, SYN | ACK);
    cap.out(200, MAC_A, out6);
    cap.inn(210, MAC_A, back6);
    // ICMP: the echo reply is accepted; so is any ICMP from that peer (ICMP
    // connections are keyed by the two addresses only); not from another.
    let ping = icmp(A4, p1, 8, 0);
    let pong = icmp(p1, A4, 0, 0);
    let p1_pings = icmp(p1, A4, 8, 0);
    let p2_pings = icmp(p2, A4, 8, 0);
    cap.out(300, MAC_A, ping);
    cap.inn(310, MAC_A, pong);
    cap.inn(320, MAC_A, p2_pings);
    cap.inn(330, MAC_A, p1_pings);
    // An ICMP error about a UDP connection gets no state from it.
    let p3 = "198.51.100.9";
    let query = udp(A4, 5000, p3, 53);
    let unreachable = icmp(p3, A4, 3, 3);
    cap.out(350, MAC_A, query);
    cap.inn(360, MAC_A, unreachable);
    // ICMPv6 echo.
    let ping6 = icmp(A6, p1v6, 128, 0);
    let pong6 = icmp(p1v6, A6, 129, 0);
    cap.out(400, MAC_A, ping6);
    cap.inn(410, MAC_A, pong6);

    let r = run(&cfg, &cap, &[]);
    let mut w = Want::default();
    w.add("eni-a", "out", "ACCEPT", &out(SYN), 3)
        .add("eni-a", "in", "ACCEPT", &back(ACK), 5)
        .add("eni-a", "in", "REJECT", &scan, 1)
        .add("eni-a", "in", "REJECT", &other_sport, 1)
        .add("eni-a", "in", "REJECT", &other_dport, 1)
        .add("eni-a", "out", "ACCEPT", &out6, 1)
        .add("eni-a", "in", "ACCEPT", &back6, 1)
        .add("eni-a", "out", "ACCEPT", &ping, 1)
        .add("eni-a", "in", "ACCEPT", &pong, 1)
        .add("eni-a", "in", "REJECT", &p2_pings, 1)
        .add("eni-a", "in", "ACCEPT", &p1_pings, 1)
        .add("eni-a", "out", "ACCEPT", &query, 1)
        .add("eni-a", "in", "REJECT", &unreachable, 1)
        .add("eni-a", "out", "ACCEPT", &ping6, 1)
        .add("eni-a", "in", "ACCEPT", &pong6, 1);
    w.check(&r, "stateful return traffic");
    // The TCP reply record carries every flag its packets had.
    let reply = r
        .records
        .iter()
        .find(|x| {
            x["action"] == "ACCEPT"
                && x["srcaddr"] == p1
                && x["srcport"] == 443
                && x["dstport"] == 40_000
        })
        .expect("reply record");
    assert_eq!(
        int(reply, "tcp-flags"),
        u64::from(SYN | ACK | PSH | FIN | RST)
    );
    assert_eq!(pol(&r, "sg_drops"), 5, "{}", r.summary);
    assert_eq!(pol(&r, "nacl_drops"), 0, "{}", r.summary);
    assert_eq!(
        pol(&r, "opened"),
        5,
        "TCP, TCP/IPv6, ICMP, UDP, ICMPv6: {}",
        r.summary
    );
    // Tracked: 2 more `out` TCP packets, 5 TCP replies, the IPv6 reply, the
    // echo reply, the peer's own echo request, the ICMPv6 reply.
    assert_eq!(pol(&r, "tracked"), 2 + 5 + 1 + 1 + 1 + 1, "{}", r.summary);
}

// ---------------------------------------------------------------------------
// 2. Connection expiry

#[test]
fn connections_expire_udp_after_180_s_tcp_after_910_s_of_silence() {
    let cfg = config(
        vec![eni("eni-a", MAC_A, &[A4], &["sg-a"])],
        vec![sg("sg-a", vec![])],
        None,
    );
    let (dns, ssh) = ("198.51.100.53", "198.51.100.22");
    let mut cap = Cap::default();
    let q = |sport| udp(A4, sport, dns, 53);
    let a = |dport| udp(dns, 53, A4, dport);
    // u1: replies 179 s after the query, 179 s after that reply (a reply
    // refreshes the entry), then 180 s after the last one: expired.
    cap.out(0, MAC_A, q(5001));
    cap.inn(sec(179), MAC_A, a(5001));
    cap.inn(sec(358), MAC_A, a(5001));
    cap.inn(sec(538), MAC_A, a(5001));
    // u2: a reply exactly 180 s after the query; u3: 181 s.
    cap.out(0, MAC_A, q(5002));
    cap.inn(sec(180), MAC_A, a(5002));
    cap.out(0, MAC_A, q(5003));
    cap.inn(sec(181), MAC_A, a(5003));
    // u4: the sender's own second packet refreshes the entry too.
    cap.out(0, MAC_A, q(5004));
    cap.out(sec(100), MAC_A, q(5004));
    cap.inn(sec(279), MAC_A, a(5004));
    // t1: a reply after 909 s of silence, then another 910 s after that
    // one: expired; A's next packet opens the connection again.
    let t_out = |sport| tcp(A4, sport, ssh, 22, ACK);
    let t_in = |dport| tcp(ssh, 22, A4, dport, ACK);
    cap.out(0, MAC_A, t_out(40_001));
    cap.inn(sec(909), MAC_A, t_in(40_001));
    cap.inn(sec(909 + 910), MAC_A, t_in(40_001));
    cap.out(sec(909 + 911), MAC_A, t_out(40_001));
    cap.inn(sec(909 + 912), MAC_A, t_in(40_001));
    // t2: a reply exactly 910 s after the last packet.
    cap.out(0, MAC_A, t_out(40_002));
    cap.inn(sec(910), MAC_A, t_in(40_002));

    let r = run(&cfg, &cap, &[]);
    let mut w = Want::default();
    w.add("eni-a", "out", "ACCEPT", &q(5001), 1)
        .add("eni-a", "in", "ACCEPT", &a(5001), 2)
        .add("eni-a", "in", "REJECT", &a(5001), 1)
        .add("eni-a", "out", "ACCEPT", &q(5002), 1)
        .add("eni-a", "in", "REJECT", &a(5002), 1)
        .add("eni-a", "out", "ACCEPT", &q(5003), 1)
        .add("eni-a", "in", "REJECT", &a(5003), 1)
        .add("eni-a", "out", "ACCEPT", &q(5004), 2)
        .add("eni-a", "in", "ACCEPT", &a(5004), 1)
        .add("eni-a", "out", "ACCEPT", &t_out(40_001), 2)
        .add("eni-a", "in", "ACCEPT", &t_in(40_001), 2)
        .add("eni-a", "in", "REJECT", &t_in(40_001), 1)
        .add("eni-a", "out", "ACCEPT", &t_out(40_002), 1)
        .add("eni-a", "in", "REJECT", &t_in(40_002), 1);
    w.check(&r, "expiry");
    assert_eq!(pol(&r, "sg_drops"), 5, "{}", r.summary);
    assert_eq!(
        pol(&r, "opened"),
        7,
        "six connections, one opened again: {}",
        r.summary
    );
}

/// CONFIG.md: "An entry expires when its last packet is 910 s old (TCP) or
/// 180 s old (others)". It names no coarser clock than the packets' own, and
/// these have microseconds: a reply 179.6 s after the query comes before the
/// entry is 180 s old, whatever whole seconds the two fall in.
#[test]
fn expiry_is_measured_on_packet_times_not_whole_seconds() {
    let cfg = config(
        vec![eni("eni-a", MAC_A, &[A4], &["sg-a"])],
        vec![sg("sg-a", vec![])],
        None,
    );
    let dns = "198.51.100.53";
    let ssh = "198.51.100.22";
    let mut cap = Cap::default();
    // (source port, first packet and reply in ms after T0, TCP?)
    let cases: [(u16, u64, u64, bool); 5] = [
        (6000, 900, 180_500, false), // 179.6 s
        (6001, 100, 180_000, false), // 179.9 s
        (6002, 500, 180_999, false), // 180.499 s: expired
        (6003, 900, 910_500, true),  // TCP, 909.6 s
        (6004, 100, 910_100, true),  // TCP, 910.0 s: expired
    ];
    let mut w = Want::default();
    for (sport, first, reply, is_tcp) in cases {
        let (q, a) = if is_tcp {
            (tcp(A4, sport, ssh, 22, ACK), tcp(ssh, 22, A4, sport, ACK))
        } else {
            (udp(A4, sport, dns, 53), udp(dns, 53, A4, sport))
        };
        cap.out(first, MAC_A, q);
        cap.inn(reply, MAC_A, a);
        let idle = if is_tcp { 910_000 } else { 180_000 };
        let action = if reply - first < idle {
            "ACCEPT"
        } else {
            "REJECT"
        };
        w.add("eni-a", "out", "ACCEPT", &q, 1)
            .add("eni-a", "in", action, &a, 1);
    }
    let r = run(&cfg, &cap, &[]);
    w.check(&r, "sub-second expiry");
}

/// A flow's later packets pass by its remembered verdict and keep their
/// times in the flow table until it is handed to the exporter (slices of at
/// most 60 s): the connection must still last 180 s from the flow's very
/// last packet, whichever slice, worker count or table size.
#[test]
fn a_connection_lasts_from_the_last_packet_of_a_long_flow() {
    let cfg = config(
        vec![eni("eni-a", MAC_A, &[A4], &["sg-a"])],
        vec![sg("sg-a", vec![])],
        None,
    );
    let peer = "198.51.100.53";
    let mut cap = Cap::default();
    let mut w = Want::default();
    // (source port, the query flow's packets in ms after T0, the reply).
    // T0 is 10 s into a minute: slices start at T0 + 50 s, + 110 s, ...,
    // and each flow's last packet is not the first of its slice (that one
    // is judged, and would write its time to the connection itself).
    let streams: Vec<(u16, Vec<u64>, u64)> = vec![
        // Every 5 s for 165 s, across three slices: replies 179.9 s and
        // 180.1 s after the last query (and 234.9 s or more after the first
        // query of the last slice).
        (
            7001,
            (0..=33).map(|i| i * 5_000).collect(),
            165_000 + 179_900,
        ),
        (
            7002,
            (0..=33).map(|i| i * 5_000).collect(),
            165_000 + 180_100,
        ),
        // Two packets 44.5 s apart in one slice: 179.999 s after the second
        // is in time, 180 s is not.
        (7003, vec![1_000, 45_500], 45_500 + 179_999),
        (7004, vec![1_000, 45_500], 45_500 + 180_000),
    ];
    for (sport, times, reply) in &streams {
        let (q, a) = (udp(A4, *sport, peer, 53), udp(peer, 53, A4, *sport));
        for &t in times {
            cap.out(t, MAC_A, q);
        }
        cap.inn(*reply, MAC_A, a);
        let action = if reply - times.last().unwrap() < 180_000 {
            "ACCEPT"
        } else {
            "REJECT"
        };
        w.add("eni-a", "out", "ACCEPT", &q, times.len() as u64)
            .add("eni-a", "in", action, &a, 1);
    }
    for extra in [&[][..], &["--workers", "3"]] {
        let r = run(&cfg, &cap, extra);
        w.check(&r, &format!("long flows {extra:?}"));
    }
}

// ---------------------------------------------------------------------------
// 3. Network ACLs are stateless

#[test]
fn network_acl_judges_return_traffic_on_its_own_rules() {
    let peer = "198.51.100.7";
    let dns = "203.0.113.53";
    let sgs = vec![sg("sg-a", vec![])];
    let enis = || vec![eni("eni-a", MAC_A, &[A4], &["sg-a"])];
    let egress_rules = || vec![nrule("drop", "udp", "53/53", "203.0.113.0/24")];
    // Ingress drops everything from the peer's network.
    let drop_peer = nacl(
        "nacl-1",
        vec![nrule("drop", "all", "-1/-1", "198.51.100.0/24")],
        egress_rules(),
    );
    // Ingress accepts its high ports first, then drops the rest.
    let high_ports = nacl(
        "nacl-1",
        vec![
            nrule("accept", "tcp", "1024/65535", "198.51.100.0/24"),
            nrule("drop", "all", "-1/-1", "198.51.100.0/24"),
        ],
        egress_rules(),
    );

    let mut cap = Cap::default();
    let out = |flags| tcp(A4, 40_000, peer, 443, flags);
    let back = |flags| tcp(peer, 443, A4, 40_000, flags);
    cap.out(0, MAC_A, out(SYN));
    cap.inn(10, MAC_A, back(SYN | ACK));
    cap.out(20, MAC_A, out(ACK));
    cap.inn(30, MAC_A, back(PSH | ACK));
    // Dropped by the ACL's egress: the final verdict is REJECT, so no
    // connection is opened and the answer is the security group's to judge.
    let query = udp(A4, 5353, dns, 53);
    let answer = udp(dns, 53, A4, 5353);
    cap.out(100, MAC_A, query);
    cap.inn(110, MAC_A, answer);
    // Unsolicited, to a high port and to a low one.
    let high = tcp(peer, 50_000, A4, 8080, SYN);
    let low = tcp(peer, 50_001, A4, 22, SYN);
    cap.inn(200, MAC_A, high);
    cap.inn(210, MAC_A, low);

    let r = run(&config(enis(), sgs.clone(), Some(drop_peer)), &cap, &[]);
    let mut w = Want::default();
    w.add("eni-a", "out", "ACCEPT", &out(SYN), 2)
        .add("eni-a", "in", "REJECT", &back(ACK), 2)
        .add("eni-a", "out", "REJECT", &query, 1)
        .add("eni-a", "in", "REJECT", &answer, 1)
        .add("eni-a", "in", "REJECT", &high, 1)
        .add("eni-a", "in", "REJECT", &low, 1);
    w.check(&r, "ingress ACL drops the peer");
    assert_eq!(
        pol(&r, "tracked"),
        3,
        "the security group tracks both replies and the second out packet: {}",
        r.summary
    );
    assert_eq!(
        (pol(&r, "nacl_drops"), pol(&r, "sg_drops")),
        (5, 1),
        "{}",
        r.summary
    );
    assert_eq!(pol(&r, "opened"), 1, "{}", r.summary);

    let r = run(&config(enis(), sgs, Some(high_ports)), &cap, &[]);
    let mut w = Want::default();
    w.add("eni-a", "out", "ACCEPT", &out(SYN), 2)
        .add("eni-a", "in", "ACCEPT", &back(ACK), 2)
        .add("eni-a", "out", "REJECT", &query, 1)
        .add("eni-a", "in", "REJECT", &answer, 1)
        .add("eni-a", "in", "REJECT", &high, 1)
        .add("eni-a", "in", "REJECT", &low, 1);
    w.check(&r, "ingress ACL accepts the high ports");
    assert_eq!(
        (pol(&r, "nacl_drops"), pol(&r, "sg_drops")),
        (2, 2),
        "the ACL drops the query and port 22, the security group the answer and 8080: {}",
        r.summary
    );
}

// ---------------------------------------------------------------------------
// 4. Priorities

/// The rules of [`highest_priority_wins_and_drop_beats_accept_at_equal_priority`],
/// spread over two groups (an ENI's rules are those of all its groups).
fn priority_groups() -> Vec<Value> {
    vec![
        sg(
            "sg-x",
            vec![
                ingress("accept", 5, "tcp", "80/80", "0.0.0.0/0"),
                ingress("accept", 3, "tcp", "8080/8080", "0.0.0.0/0"),
                ingress("accept", 1, "tcp", "22/22", "192.0.2.0/24"),
                ingress("accept", 20, "tcp", "1/65535", "0.0.0.0/0"),
                egress("accept", 6, "udp", "53/53", "198.51.100.53/32"),
                egress("accept", 4, "icmp", "-1/-1", "0.0.0.0/0"),
            ],
        ),
        sg(
            "sg-y",
            vec![
                ingress("drop", 5, "tcp", "80/80", "192.0.2.0/24"),
                ingress("drop", 3, "tcp", "8080/8080", "0.0.0.0/0"),
                ingress("drop", 10, "tcp", "22/22", "0.0.0.0/0"),
                ingress("drop", 2, "tcp", "25/25", "0.0.0.0/0"),
                egress("drop", 7, "udp", "-1/-1", "0.0.0.0/0"),
                egress("drop", 4, "icmp", "-1/-1", "192.0.2.0/24"),
            ],
        ),
    ]
}

#[test]
fn highest_priority_wins_and_drop_beats_accept_at_equal_priority() {
    let (inside, outside) = ("192.0.2.10", "198.51.100.10");
    let mut cap = Cap::default();
    let cases = [
        // (packet, inbound?, expected action, why)
        (tcp(inside, 50_001, A4, 80, SYN), true, "REJECT"), // drop 5 = accept 5
        (tcp(outside, 50_002, A4, 80, SYN), true, "ACCEPT"), // accept 5 only
        (tcp(outside, 50_003, A4, 8080, SYN), true, "REJECT"), // drop 3 = accept 3
        (tcp(inside, 50_004, A4, 22, SYN), true, "ACCEPT"), // accept 1 > drop 10
        (tcp(outside, 50_005, A4, 22, SYN), true, "REJECT"), // drop 10 > accept 20
        (tcp(outside, 50_006, A4, 25, SYN), true, "REJECT"), // drop 2 > accept 20
        (tcp(outside, 50_007, A4, 443, SYN), true, "ACCEPT"), // accept 20 only
        (udp(outside, 50_008, A4, 53), true, "REJECT"),     // no rule: ingress drop
        (udp(A4, 5000, "198.51.100.53", 53), false, "ACCEPT"), // accept 6 > drop 7
        (udp(A4, 5001, "198.51.100.53", 123), false, "REJECT"), // drop 7 only
        (icmp(A4, "198.51.100.1", 8, 0), false, "ACCEPT"),  // accept 4 only
        (icmp(A4, "192.0.2.1", 8, 0), false, "REJECT"),     // drop 4 = accept 4
        (tcp(A4, 40_000, "192.0.2.1", 80, SYN), false, "ACCEPT"), // no rule: egress accept
    ];
    for (i, (p, inbound, _)) in cases.iter().enumerate() {
        let ms = 10 * i as u64;
        if *inbound {
            cap.inn(ms, MAC_A, *p);
        } else {
            cap.out(ms, MAC_A, *p);
        }
    }
    let mut w = Want::default();
    for (p, inbound, action) in &cases {
        w.add("eni-a", if *inbound { "in" } else { "out" }, action, p, 1);
    }
    let rejects = cases.iter().filter(|c| c.2 == "REJECT").count() as u64;

    // As given: 8 ingress rules (scanned linearly by the classifier).
    let enis = vec![eni("eni-a", MAC_A, &[A4], &["sg-x", "sg-y"])];
    let r = run(&config(enis, priority_groups(), None), &cap, &[]);
    w.check(&r, "priorities, 8 rules per direction");
    assert_eq!(pol(&r, "sg_drops"), rejects, "{}", r.summary);

    // The same with a third group of 24 rules at priorities 1-4 that match
    // none of these packets (large sets are compiled differently).
    let pad: Vec<Value> = (1..=24u8)
        .map(|i| {
            let cidr = format!("100.64.{i}.0/24");
            let (policy, dir) = if i % 2 == 0 {
                ("drop", "ingress")
            } else {
                ("accept", "egress")
            };
            let proto = ["tcp", "udp", "icmp", "all"][usize::from(i % 4)];
            rule(dir, policy, i % 4 + 1, proto, "-1/-1", &cidr)
        })
        .collect();
    let mut groups = priority_groups();
    groups.push(sg("sg-pad", pad));
    let enis = vec![eni("eni-a", MAC_A, &[A4], &["sg-pad", "sg-x", "sg-y"])];
    let r = run(&config(enis, groups, None), &cap, &[]);
    w.check(&r, "priorities, 16 and 20 rules per direction");
    assert_eq!(pol(&r, "sg_drops"), rejects, "{}", r.summary);
}

/// How rules match protocols and ports (CONFIG.md): SCTP only by `all`; a
/// non-first fragment has port 0, which `-1/-1` matches and `1/65535` does
/// not; a port range is ignored for other protocols than TCP and UDP; a port
/// range always matches the destination port, in egress too; `gre` rules.
#[test]
fn rules_match_protocols_and_ports_as_config_md_says() {
    let cfg = config(
        vec![eni("eni-a", MAC_A, &[A4], &["sg-a"])],
        vec![sg(
            "sg-a",
            vec![
                ingress("accept", 1, "all", "-1/-1", "192.0.2.0/24"),
                ingress("accept", 1, "tcp", "1/65535", "198.51.100.0/24"),
                ingress("accept", 1, "udp", "-1/-1", "203.0.113.0/24"),
                ingress("accept", 1, "icmp", "80/80", "198.51.100.0/24"),
                ingress("accept", 1, "gre", "-1/-1", "198.51.100.0/24"),
                egress("drop", 1, "tcp", "25/25", "0.0.0.0/0"),
            ],
        )],
        None,
    );
    let (x, y, z) = ("192.0.2.1", "198.51.100.1", "203.0.113.1");
    let sctp = |src| {
        l4(
            src,
            A4,
            L4::Sctp {
                sport: 5000,
                dport: 80,
            },
        )
    };
    let gre = |src| l4(src, A4, L4::Other { proto: 47 });
    let frag = |src, proto| l4(src, A4, L4::Fragment { proto });
    let cases = [
        // (packet, inbound?, action)
        (sctp(x), true, "ACCEPT"),    // `all`
        (sctp(y), true, "REJECT"),    // tcp and udp rules do not match SCTP
        (gre(y), true, "ACCEPT"),     // `gre`
        (gre(z), true, "REJECT"),     // udp rule only
        (frag(y, 6), true, "REJECT"), // port 0 is not in 1/65535
        (tcp(y, 5000, A4, 80, SYN), true, "ACCEPT"),
        (frag(z, 17), true, "ACCEPT"),       // port 0 is in -1/-1
        (frag(x, 6), true, "ACCEPT"),        // `all`
        (icmp(y, A4, 8, 0), true, "ACCEPT"), // the port range is ignored
        (icmp(z, A4, 8, 0), true, "REJECT"),
        (tcp(A4, 40_000, y, 25, SYN), false, "REJECT"), // destination port 25
        (tcp(A4, 25, y, 40_001, SYN), false, "ACCEPT"), // source port 25
    ];
    let mut cap = Cap::default();
    let mut w = Want::default();
    for (i, (p, inbound, action)) in cases.iter().enumerate() {
        let ms = 10 * i as u64;
        let dir = if *inbound {
            cap.inn(ms, MAC_A, *p);
            "in"
        } else {
            cap.out(ms, MAC_A, *p);
            "out"
        };
        w.add("eni-a", dir, action, p, 1);
    }
    let r = run(&cfg, &cap, &[]);
    w.check(&r, "protocols and ports");
}

// ---------------------------------------------------------------------------
// 5. A port scan

#[test]
fn port_scan_is_rejected_except_the_one_open_port() {
    let cfg = config(
        vec![eni("eni-a", MAC_A, &[A4, A6], &["sg-web"])],
        vec![sg(
            "sg-web",
            vec![ingress("accept", 1, "tcp", "443/443", "0.0.0.0/0")],
        )],
        None,
    );
    let (scanner, scanner6) = ("203.0.113.66", "2001:db8::66");
    let mut cap = Cap::default();
    for port in 1..=1024u16 {
        cap.inn(u64::from(port), MAC_A, tcp(scanner, 61_000, A4, port, SYN));
    }
    // The open port answers.
    let syn_ack = tcp(A4, 443, scanner, 61_000, SYN | ACK);
    cap.out(2_000, MAC_A, syn_ack);
    // Over IPv6 nothing is open: the only rule is for IPv4 peers.
    for port in 440..=446u16 {
        cap.inn(
            3_000 + u64::from(port),
            MAC_A,
            tcp(scanner6, 61_000, A6, port, SYN),
        );
    }

    let r = run(&cfg, &cap, &[]);
    let mut w = Want::default();
    for port in 1..=1024u16 {
        let action = if port == 443 { "ACCEPT" } else { "REJECT" };
        w.add(
            "eni-a",
            "in",
            action,
            &tcp(scanner, 61_000, A4, port, SYN),
            1,
        );
    }
    w.add("eni-a", "out", "ACCEPT", &syn_ack, 1);
    for port in 440..=446u16 {
        w.add(
            "eni-a",
            "in",
            "REJECT",
            &tcp(scanner6, 61_000, A6, port, SYN),
            1,
        );
    }
    w.check(&r, "port scan");
    assert_eq!(pol(&r, "sg_drops"), 1023 + 7, "{}", r.summary);
    assert_eq!(int(&r.summary, "rejected"), 1023 + 7, "{}", r.summary);
    assert_eq!(pol(&r, "opened"), 1, "{}", r.summary);
}

// ---------------------------------------------------------------------------
// 6. Telnet and the vSwitch boundary

#[test]
fn network_acl_drops_telnet_but_not_from_the_enis_own_vswitch() {
    let sgs = vec![sg(
        "sg-a",
        vec![
            ingress("accept", 1, "tcp", "23/23", "0.0.0.0/0"),
            ingress("accept", 1, "tcp", "23/23", "::/0"),
            ingress("accept", 1, "tcp", "22/22", "0.0.0.0/0"),
        ],
    )];
    let acl = nacl(
        "nacl-telnet",
        vec![
            nrule("drop", "tcp", "23/23", "0.0.0.0/0"),
            nrule("drop", "tcp", "23/23", "::/0"),
        ],
        vec![nrule("drop", "tcp", "23/23", "0.0.0.0/0")],
    );
    let enis = || vec![eni("eni-a", MAC_A, &[A4, A6], &["sg-a"])];
    let (far, near, vpc_other) = ("198.51.100.20", "10.0.1.20", "10.0.2.20");
    let (far6, near6) = ("2001:db8::20", "fd00:0:0:1::20");
    let far_telnet = tcp(far, 50_000, A4, 23, SYN);
    let near_telnet = tcp(near, 50_001, A4, 23, SYN);
    let near_answer = tcp(A4, 23, near, 50_001, SYN | ACK);
    let far_ssh = tcp(far, 50_002, A4, 22, SYN);
    let other_subnet = tcp(vpc_other, 50_003, A4, 23, SYN);
    let far6_telnet = tcp(far6, 50_004, A6, 23, SYN);
    let near6_telnet = tcp(near6, 50_005, A6, 23, SYN);
    let out_far = tcp(A4, 40_000, far, 23, SYN);
    let out_near = tcp(A4, 40_001, near, 23, SYN);
    let mut cap = Cap::default();
    cap.inn(0, MAC_A, far_telnet);
    cap.inn(10, MAC_A, near_telnet);
    cap.out(20, MAC_A, near_answer);
    cap.inn(30, MAC_A, far_ssh);
    cap.inn(40, MAC_A, other_subnet);
    cap.inn(50, MAC_A, far6_telnet);
    cap.inn(60, MAC_A, near6_telnet);
    cap.out(70, MAC_A, out_far);
    cap.out(80, MAC_A, out_near);

    let r = run(&config(enis(), sgs.clone(), Some(acl)), &cap, &[]);
    let mut w = Want::default();
    w.add("eni-a", "in", "REJECT", &far_telnet, 1)
        .add("eni-a", "in", "ACCEPT", &near_telnet, 1)
        .add("eni-a", "out", "ACCEPT", &near_answer, 1)
        .add("eni-a", "in", "ACCEPT", &far_ssh, 1)
        .add("eni-a", "in", "REJECT", &other_subnet, 1)
        .add("eni-a", "in", "REJECT", &far6_telnet, 1)
        .add("eni-a", "in", "ACCEPT", &near6_telnet, 1)
        .add("eni-a", "out", "REJECT", &out_far, 1)
        .add("eni-a", "out", "ACCEPT", &out_near, 1);
    w.check(&r, "telnet with the network ACL");
    assert_eq!(
        (pol(&r, "nacl_drops"), pol(&r, "sg_drops")),
        (4, 0),
        "{}",
        r.summary
    );

    // Without the ACL the security group lets every one of them through.
    let r = run(&config(enis(), sgs, None), &cap, &[]);
    let mut w = Want::default();
    for (p, dir) in [
        (&far_telnet, "in"),
        (&near_telnet, "in"),
        (&near_answer, "out"),
        (&far_ssh, "in"),
        (&other_subnet, "in"),
        (&far6_telnet, "in"),
        (&near6_telnet, "in"),
        (&out_far, "out"),
        (&out_near, "out"),
    ] {
        w.add("eni-a", dir, "ACCEPT", p, 1);
    }
    w.check(&r, "telnet without a network ACL");
}

// ---------------------------------------------------------------------------
// 7. A full connection table

/// `flows` UDP queries from A, one packet each, then one answer each.
fn many_queries(flows: u16) -> (Cap, Vec<Pkt>, Vec<Pkt>) {
    let dns = "198.51.100.53";
    let mut cap = Cap::default();
    let (mut qs, mut answers) = (Vec::new(), Vec::new());
    for i in 0..flows {
        let q = udp(A4, 20_000 + i, dns, 53);
        let a = udp(dns, 53, A4, 20_000 + i);
        cap.out(u64::from(i), MAC_A, q);
        cap.inn(1_000 + u64::from(i), MAC_A, a);
        qs.push(q);
        answers.push(a);
    }
    (cap, qs, answers)
}

#[test]
fn a_full_connection_table_leaves_return_traffic_to_the_rules() {
    const FLOWS: u16 = 40;
    let cfg = config(
        vec![eni("eni-a", MAC_A, &[A4], &["sg-a"])],
        vec![sg("sg-a", vec![])],
        None,
    );
    let (cap, qs, answers) = many_queries(FLOWS);

    // Every query is accepted (egress default) and tries to open a
    // connection: it opens one or finds the table full (nothing expires
    // here). The answers are REJECT exactly where no connection was opened
    // (no ingress rule), so their count is `conn_table_full`, one packet per
    // flow. How the table places keys is the table's business; what any
    // placement gives: a table of at least 8 slots in buckets of 8 has room
    // for the first 8 connections a worker sees, and the first 8 flows of
    // the capture are among the first 8 of their worker.
    let check = |r: &Replayed, what: &str| -> (u64, u64) {
        let (opened, full) = (pol(r, "opened"), pol(r, "conn_table_full"));
        assert_eq!(opened + full, u64::from(FLOWS), "{what}: {}", r.summary);
        assert_eq!(pol(r, "sg_drops"), full, "{what}: {}", r.summary);
        let got = ok_records(r, FLOW_LOG);
        let action = |p: &Pkt, dir: &str| -> &str {
            match (
                got.get(&key("eni-a", dir, "ACCEPT", p)),
                got.get(&key("eni-a", dir, "REJECT", p)),
            ) {
                (Some(1), None) => "ACCEPT",
                (None, Some(1)) => "REJECT",
                other => panic!("{what}: {dir} records of {p:?}: {other:?} in {got:?}"),
            }
        };
        assert!(
            qs.iter().all(|q| action(q, "out") == "ACCEPT"),
            "{what}: {got:?}"
        );
        let verdicts: Vec<&str> = answers.iter().map(|a| action(a, "in")).collect();
        let count = |v: &str| verdicts.iter().filter(|x| **x == v).count() as u64;
        assert_eq!(
            (count("ACCEPT"), count("REJECT")),
            (opened, full),
            "{what}: answers ACCEPT where a connection was opened, REJECT where the \
             table was full: {verdicts:?}; {}",
            r.summary
        );
        assert_eq!(got.len(), 2 * usize::from(FLOWS), "{what}: {got:?}");
        assert!(
            verdicts[..8].iter().all(|v| *v == "ACCEPT"),
            "{what}: the first 8 flows find room: {verdicts:?}"
        );
        (opened, full)
    };

    // --conns-per-core 8: far fewer slots than flows.
    for workers in ["1", "2"] {
        let r = run(&cfg, &cap, &["--workers", workers, "--conns-per-core", "8"]);
        let (_, full) = check(&r, &format!("--conns-per-core 8 --workers {workers}"));
        assert!(
            full > 0,
            "--workers {workers}: the table never filled: {}",
            r.summary
        );
    }
    // The same capture with room to spare: every answer is ACCEPT.
    let r = run(&cfg, &cap, &["--workers", "1", "--conns-per-core", "4096"]);
    assert_eq!(
        check(&r, "--conns-per-core 4096"),
        (u64::from(FLOWS), 0),
        "{}",
        r.summary
    );
}

// ---------------------------------------------------------------------------
// 8. East-west

#[test]
fn east_west_is_seen_at_both_enis_but_not_past_an_egress_drop() {
    let enis = |a: &str, b: &str| {
        vec![
            eni("eni-a", MAC_A, &[A4], &[a]),
            eni("eni-b", MAC_B, &[B4], &[b]),
        ]
    };
    let pg = tcp(A4, 40_000, B4, 5432, SYN);
    let web = |flags| tcp(A4, 40_001, B4, 80, flags);
    let web_back = tcp(B4, 80, A4, 40_001, SYN | ACK);

    // A's egress drops the database port; B accepts anything from the
    // vSwitch.
    let cfg = config(
        enis("sg-a", "sg-b"),
        vec![
            sg(
                "sg-a",
                vec![egress("drop", 1, "tcp", "5432/5432", "10.0.1.6/32")],
            ),
            sg("sg-b", vec![ingress("accept", 1, "tcp", "-1/-1", VSW_CIDR)]),
        ],
        None,
    );
    let mut cap = Cap::default();
    cap.add(0, MAC_A, MAC_B, pg);
    cap.add(10, MAC_A, MAC_B, web(SYN));
    cap.add(20, MAC_B, MAC_A, web_back);
    cap.add(30, MAC_A, MAC_B, pg);
    let r = run(&cfg, &cap, &[]);
    let mut w = Want::default();
    w.add("eni-a", "out", "REJECT", &pg, 2)
        .add("eni-a", "out", "ACCEPT", &web(SYN), 1)
        .add("eni-b", "in", "ACCEPT", &web(SYN), 1)
        .add("eni-b", "out", "ACCEPT", &web_back, 1)
        .add("eni-a", "in", "ACCEPT", &web_back, 1);
    w.check(&r, "east-west, dropped on A's egress");
    assert_eq!(int(&r.summary, "observations"), 6, "{}", r.summary);
    assert_eq!(pol(&r, "sg_drops"), 2, "{}", r.summary);

    // A accepts everything outbound; B's ingress drops the database port and
    // port 80 (a drop of higher priority than its accept). Each ENI keeps its own connection
    // table: once B has answered on port 80 (its own egress accepts, which
    // opens B's entry), B accepts A's next packet.
    let cfg = config(
        enis("sg-a", "sg-b"),
        vec![
            sg("sg-a", vec![]),
            sg(
                "sg-b",
                vec![
                    ingress("drop", 1, "tcp", "5432/5432", "10.0.1.5/32"),
                    ingress("accept", 2, "tcp", "-1/-1", "10.0.1.0/25"),
                    ingress("drop", 1, "tcp", "80/80", VSW_CIDR),
                ],
            ),
        ],
        None,
    );
    let mut cap = Cap::default();
    cap.add(0, MAC_A, MAC_B, pg);
    cap.add(10, MAC_A, MAC_B, web(SYN));
    cap.add(20, MAC_B, MAC_A, web_back);
    cap.add(30, MAC_A, MAC_B, web(ACK));
    let r = run(&cfg, &cap, &[]);
    let mut w = Want::default();
    w.add("eni-a", "out", "ACCEPT", &pg, 1)
        .add("eni-b", "in", "REJECT", &pg, 1)
        .add("eni-a", "out", "ACCEPT", &web(SYN), 2)
        .add("eni-b", "in", "REJECT", &web(SYN), 1)
        .add("eni-b", "out", "ACCEPT", &web_back, 1)
        .add("eni-a", "in", "ACCEPT", &web_back, 1)
        .add("eni-b", "in", "ACCEPT", &web(SYN), 1);
    w.check(&r, "east-west, dropped on B's ingress");
    assert_eq!(pol(&r, "sg_drops"), 2, "{}", r.summary);

    // Policy applies to every ENI, logged or not: B is of a family that
    // flow logs skip, so it has no record, but its egress drop still keeps
    // the packet from A.
    let mut unlogged = eni("eni-b", MAC_B, &[B4], &["sg-b"]);
    unlogged["instance_type"] = json!("ecs.t1.small");
    let cfg = config(
        vec![eni("eni-a", MAC_A, &[A4], &["sg-a"]), unlogged],
        vec![
            sg("sg-a", vec![ingress("accept", 1, "tcp", "-1/-1", VSW_CIDR)]),
            sg(
                "sg-b",
                vec![egress("drop", 1, "tcp", "5432/5432", "0.0.0.0/0")],
            ),
        ],
        None,
    );
    let dropped = tcp(B4, 40_000, A4, 5432, SYN);
    let passed = tcp(B4, 40_001, A4, 80, SYN);
    let mut cap = Cap::default();
    cap.add(0, MAC_B, MAC_A, dropped);
    cap.add(10, MAC_B, MAC_A, passed);
    let r = run(&cfg, &cap, &[]);
    let mut w = Want::default();
    w.add("eni-a", "in", "ACCEPT", &passed, 1);
    w.check(&r, "east-west from an ENI that flow logs skip");
    assert_eq!(
        (int(&r.summary, "observations"), pol(&r, "sg_drops")),
        (3, 1),
        "B's two `out` and A's one `in`: {}",
        r.summary
    );
}

// ---------------------------------------------------------------------------
// 9. Traffic types with real verdicts

#[test]
fn traffic_types_split_the_real_verdicts() {
    let mut cfg = config(
        vec![
            eni("eni-a", MAC_A, &[A4], &["sg-a"]),
            eni("eni-b", MAC_B, &[B4], &["sg-a"]),
            eni("eni-c", MAC_C, &[C4], &["sg-a"]),
            eni("eni-d", MAC_D, &[D4], &[]),
        ],
        vec![sg(
            "sg-a",
            vec![ingress("accept", 1, "tcp", "443/443", "0.0.0.0/0")],
        )],
        Some(nacl(
            "nacl-1",
            vec![nrule("drop", "tcp", "23/23", "0.0.0.0/0")],
            vec![],
        )),
    );
    cfg["flow_logs"] = json!([
        vpc_flow_log("fl-all", "All", 600, "all"),
        vpc_flow_log("fl-allow", "Allow", 600, "allow"),
        vpc_flow_log("fl-drop", "Drop", 600, "drop"),
    ]);
    let (peer, scanner) = ("198.51.100.7", "203.0.113.66");
    let mut cap = Cap::default();
    // A: both verdicts. B: only REJECT. C: nothing. D (no group): only
    // ACCEPT.
    cap.out(0, MAC_A, tcp(A4, 40_000, peer, 443, SYN));
    cap.inn(10, MAC_A, tcp(peer, 443, A4, 40_000, SYN | ACK));
    cap.inn(20, MAC_A, tcp(scanner, 61_000, A4, 22, SYN));
    cap.inn(30, MAC_A, tcp(scanner, 61_000, A4, 443, SYN));
    cap.inn(40, MAC_A, tcp(scanner, 61_000, A4, 23, SYN));
    cap.inn(50, MAC_B, tcp(scanner, 61_000, B4, 22, SYN));
    cap.inn(60, MAC_B, tcp(scanner, 61_000, B4, 23, SYN));
    cap.out(70, MAC_D, udp(D4, 5000, "198.51.100.53", 53));
    cap.inn(80, MAC_D, udp("198.51.100.53", 53, D4, 5000));
    cap.inn(90, MAC_D, tcp(scanner, 61_000, D4, 22, SYN));

    let tmp = tempfile::tempdir().unwrap();
    let pcap = cap.write(tmp.path(), "types.pcap");
    let r = replay_ok(&cfg, &pcap, &[]);
    let all = ok_records(&r, "fl-all");
    let only = |action: &str| -> BTreeMap<String, u64> {
        all.iter()
            .filter(|(k, _)| k.contains(&format!(" {action} ")))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    let (accepts, rejects) = (only("ACCEPT"), only("REJECT"));
    assert_eq!(accepts.len(), 6, "{all:?}");
    assert_eq!(rejects.len(), 4, "{all:?}");
    assert_eq!(accepts.len() + rejects.len(), all.len());
    assert_eq!(
        ok_records(&r, "fl-allow"),
        accepts,
        "Allow: the ACCEPT records"
    );
    assert_eq!(
        ok_records(&r, "fl-drop"),
        rejects,
        "Drop: the REJECT records"
    );

    // NODATA follows traffic, not the filter: C (silent) has one in every
    // flow log; B (only rejected traffic) and D (only accepted) have none,
    // even in the flow log that shows none of their records.
    let nodata = |fl: &str| -> BTreeSet<String> {
        r.records
            .iter()
            .filter(|x| x["flow-log-id"] == fl && x["log-status"] == "NODATA")
            .map(|x| x["eni-id"].as_str().unwrap().to_owned())
            .collect()
    };
    for fl in ["fl-all", "fl-allow", "fl-drop"] {
        assert_eq!(
            nodata(fl),
            BTreeSet::from(["eni-c".to_owned()]),
            "NODATA of {fl}"
        );
    }
    let enis_of = |fl: &str| -> BTreeSet<String> {
        r.records
            .iter()
            .filter(|x| x["flow-log-id"] == fl)
            .map(|x| x["eni-id"].as_str().unwrap().to_owned())
            .collect()
    };
    let set = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
    assert_eq!(enis_of("fl-allow"), set(&["eni-a", "eni-c", "eni-d"]));
    assert_eq!(enis_of("fl-drop"), set(&["eni-a", "eni-b", "eni-c"]));
}

// ---------------------------------------------------------------------------
// 10. Determinism across workers

/// A busy mixed capture: outbound TCP with replies, inbound to open and
/// closed ports, UDP answered in time and too late, east-west both ways,
/// traffic the network ACL drops, pings; over three 600-s windows.
fn mixed_capture() -> (Value, Cap) {
    let cfg = config(
        vec![
            eni("eni-a", MAC_A, &[A4, A6], &["sg-web"]),
            eni("eni-b", MAC_B, &[B4], &["sg-db"]),
            eni("eni-d", MAC_D, &[D4], &[]),
        ],
        vec![
            sg(
                "sg-web",
                vec![
                    ingress("accept", 1, "tcp", "443/443", "0.0.0.0/0"),
                    ingress("accept", 1, "tcp", "443/443", "::/0"),
                    ingress("accept", 1, "tcp", "22/22", "192.0.2.0/24"),
                    ingress("drop", 1, "tcp", "22/22", "192.0.2.128/25"),
                    egress("drop", 2, "udp", "123/123", "0.0.0.0/0"),
                ],
            ),
            sg(
                "sg-db",
                vec![
                    ingress("accept", 1, "tcp", "5432/5432", "10.0.1.5/32"),
                    egress("drop", 1, "all", "-1/-1", "192.0.2.0/24"),
                ],
            ),
        ],
        Some(nacl(
            "nacl-1",
            vec![
                nrule("drop", "all", "-1/-1", "203.0.113.0/24"),
                nrule("drop", "tcp", "23/23", "0.0.0.0/0"),
            ],
            vec![nrule("drop", "udp", "53/53", "198.51.100.0/26")],
        )),
    );
    let mut cap = Cap::default();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for i in 0..400u64 {
        let t = i * 4_000 + rnd(1_000);
        let port = 30_000 + u16::try_from(i).unwrap();
        let peer = format!("198.51.100.{}", rnd(120));
        let other = format!(
            "{}.{}",
            ["192.0.2", "203.0.113", "198.51.100"][usize::try_from(rnd(3)).unwrap()],
            rnd(250) + 1
        );
        match i % 7 {
            0 => {
                cap.out(t, MAC_A, tcp(A4, port, &peer, 443, SYN));
                cap.inn(t + 5, MAC_A, tcp(&peer, 443, A4, port, SYN | ACK));
                cap.out(t + 9, MAC_A, tcp(A4, port, &peer, 443, ACK));
            }
            1 => {
                let dport = [22, 23, 80, 443][usize::try_from(rnd(4)).unwrap()];
                cap.inn(t, MAC_A, tcp(&other, port, A4, dport, SYN));
                cap.out(t + 3, MAC_A, tcp(A4, dport, &other, port, SYN | ACK));
            }
            2 => {
                let late = if rnd(3) == 0 { sec(200) } else { 7 };
                let dport = [53, 123][usize::try_from(rnd(2)).unwrap()];
                cap.out(t, MAC_B, udp(B4, port, &peer, dport));
                cap.inn(t + late, MAC_B, udp(&peer, dport, B4, port));
            }
            3 => {
                let dport = [5432, 80][usize::try_from(rnd(2)).unwrap()];
                cap.add(t, MAC_A, MAC_B, tcp(A4, port, B4, dport, SYN));
                cap.add(t + 2, MAC_B, MAC_A, tcp(B4, dport, A4, port, SYN | ACK));
            }
            4 => {
                cap.out(t, MAC_D, icmp(D4, &other, 8, 0));
                cap.inn(t + 4, MAC_D, icmp(&other, D4, 0, 0));
                cap.inn(t + 6, MAC_A, icmp(&other, A4, 8, 0));
            }
            5 => {
                let peer6 = format!("2001:db8::{:x}", rnd(100) + 1);
                cap.inn(t, MAC_A, tcp(&peer6, port, A6, 443, SYN));
                cap.out(t + 1, MAC_A, tcp(A6, 443, &peer6, port, SYN | ACK));
                cap.out(t + 2, MAC_A, tcp(A6, port, &peer6, 8443, SYN));
                cap.inn(t + 3, MAC_A, tcp(&peer6, 8443, A6, port, SYN | ACK));
            }
            _ => {
                cap.out(t, MAC_B, tcp(B4, port, &other, 443, SYN));
                cap.inn(t + 5, MAC_B, tcp(&other, 443, B4, port, SYN | ACK));
            }
        }
    }
    (cfg, cap)
}

#[test]
fn one_and_two_workers_give_the_same_verdicts() {
    let (cfg, cap) = mixed_capture();
    let one = run(&cfg, &cap, &["--workers", "1"]);
    let two = run(&cfg, &cap, &["--workers", "2"]);
    let ok = ok_records(&one, FLOW_LOG);
    for action in ["ACCEPT", "REJECT"] {
        for dir in ["in", "out"] {
            assert!(
                ok.keys().any(|k| k.contains(&format!(" {dir} {action} "))),
                "the capture should give {dir}/{action} records: {ok:?}"
            );
        }
    }
    assert_eq!(
        canonical(&one.records),
        canonical(&two.records),
        "--workers 1 and --workers 2 differ"
    );
    for k in ["observations", "rejected"] {
        assert_eq!(one.summary[k], two.summary[k], "{k}");
    }
    for k in [
        "rule_lookups",
        "tracked",
        "opened",
        "conn_table_full",
        "nacl_drops",
        "sg_drops",
    ] {
        assert_eq!(pol(&one, k), pol(&two, k), "policy.{k}");
    }
}
