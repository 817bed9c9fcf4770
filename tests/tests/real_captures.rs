//! Replays the real captures of `shared/testdata` (see its README) through
//! `flowlogd` and compares the `out` records with what Zeek and Suricata
//! computed from the same captures; the tcpdump captures are for robustness.
//!
//! The configuration is the README's: every unicast source MAC (or, for
//! captures without Ethernet addresses, every source address) is an ENI, all
//! in one VPC with one VPC flow log, no security groups (everything
//! ACCEPT), 600 s windows. Each packet is then logged once as `out` at its
//! sender, so the `out` records summed per oriented 5-tuple (over ENIs and
//! windows) are comparable with the per-direction rows of
//! `expected_directional.tsv`.
//!
//! There is one test per case folder (so a case that fails is named), and
//! `every_case_folder_has_a_test` fails when a folder is added without one.

use flowlog_tests::{
    case_names, config_for, encapsulated_only, int, only_file_with_ext, out_totals, read_tsv,
    replay_ok, retime, senders, sent_from_group_macs, testdata, totals, FiveTuple, Replayed,
    Senders, Totals, FLOW_LOG,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

/// One `#[test]` per case folder, and the list of folders they cover.
macro_rules! case_tests {
    ($list:ident, $check:ident, { $($(#[$attr:meta])* $test:ident => $dir:literal,)* }) => {
        const $list: &[&str] = &[$($dir),*];
        $(
            #[test]
            $(#[$attr])*
            fn $test() {
                $check($dir);
            }
        )*
    };
}

case_tests!(ZEEK, zeek_case, {
    zeek_dhcp => "dhcp",
    zeek_ftp_ipv4 => "ftp-ipv4",
    zeek_ftp_ipv6 => "ftp-ipv6",
    zeek_q_in_q => "q-in-q",
    zeek_sctp => "sctp",
    zeek_tcp_padding => "tcp-padding",
    zeek_vlan_mpls => "vlan-mpls",
    zeek_wikipedia => "wikipedia",
});

case_tests!(SURICATA, suricata_case, {
    suricata_app_layer_template => "app-layer-template",
    suricata_bug_2646_02 => "bug-2646-02",
    suricata_bug_6733_syn_packet_flow_output => "bug-6733-syn-packet-flow-output",
    suricata_community_id_ipv6 => "community-id-ipv6",
    suricata_dhcp_eve_extended => "dhcp-eve-extended",
    suricata_dns_udp_eve_txt => "dns__dns-udp-eve-txt",
    suricata_firewall_ruleset_vs_ping => "firewall__ruletype-firewall-50-ruleset-vs-ping",
});

case_tests!(TCPDUMP, tcpdump_case, {
    tcpdump_802_1ad_qinq => "802.1ad_QinQ",
    tcpdump_linktype_raw_ipv4 => "LINKTYPE_RAW_ipv4",
    tcpdump_linktype_raw_ipv6 => "LINKTYPE_RAW_ipv6",
    tcpdump_bigtcp_ipv4 => "bigtcp-ipv4",
    tcpdump_ipv4_tcp_http_xml_tso => "ipv4_tcp_http_xml_tso",
    tcpdump_ipv6_jumbogram_1 => "ipv6_jumbogram_1",
    tcpdump_quic_handshake_truncated => "quic_handshake_truncated",
    tcpdump_tcp_handshake_nano => "tcp-handshake-nano",
    tcpdump_tcp_eight_lowest_weight_flags_set => "tcp_eight_lowest_weight_flags_set",
    tcpdump_tcp_header_heapoverflow => "tcp_header_heapoverflow",
    tcpdump_udp_length_heapoverflow => "udp-length-heapoverflow",
});

#[test]
fn every_case_folder_has_a_test() {
    for (suite, list) in [
        ("zeek", ZEEK),
        ("suricata-verify", SURICATA),
        ("tcpdump", TCPDUMP),
    ] {
        let on_disk = case_names(suite);
        let mut tested: Vec<String> = list.iter().map(|s| (*s).to_owned()).collect();
        tested.sort();
        assert_eq!(
            on_disk, tested,
            "testdata/{suite}: the case folders and the tests of this file differ; add a test"
        );
    }
}

/// Windows a case may span before its gaps are shortened (see [`replay_case`]).
const MAX_WINDOWS: usize = 4;

/// The README's configuration for `pcap`, replayed (see [`replay_ok`]).
///
/// `zeek/vlan-mpls` merges captures taken ten years apart: a faithful replay
/// covers the 544,153 windows of 600 s in between and writes one NODATA
/// record, in one file, per window (RECORDS.md): over ten minutes here.
/// The comparisons here are per 5-tuple summed over windows and do not
/// depend on time (no security groups, so no connection state either), so
/// a capture spanning more than [`MAX_WINDOWS`] windows is replayed from a
/// copy whose gaps between frames are shortened to 1 s (see [`retime`]).
fn replay_case(pcap: &Path) -> (Senders, Replayed) {
    let s = senders(pcap);
    if s.windows(600).len() <= MAX_WINDOWS {
        let r = replay_ok(&config_for(&s), pcap, &[]);
        return (s, r);
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let short = tmp.path().join("retimed.pcap");
    retime(pcap, &short, 1_000_000_000);
    let s2 = senders(&short);
    assert_eq!(
        (s2.macs.clone(), s2.ips.clone(), s2.frames),
        (s.macs, s.ips, s.frames)
    );
    assert!(
        s2.windows(600).len() <= 2,
        "retimed capture still spans many windows"
    );
    let r = replay_ok(&config_for(&s2), &short, &[]);
    (s2, r)
}

/// Our totals per oriented 5-tuple, each packet counted once: the `out`
/// records (the packet at its sender), except for the 5-tuples the capture
/// sends from a group (multicast) source MAC. Such a source is invalid
/// Ethernet and cannot be an ENI (CONFIG.md: an ENI's MAC is unicast), so
/// the README's "every unicast source MAC is an ENI" leaves these packets
/// without a sender; they are seen once, as `in` at their receiver, and
/// those records stand in. (The Suricata case `firewall__…-vs-ping` answers
/// its ping from `05:04:03:02:01:00`.)
fn our_totals(r: &Replayed, pcap: &Path) -> BTreeMap<FiveTuple, Totals> {
    let mut ours = out_totals(&r.records, FLOW_LOG);
    let ins = totals(&r.records, FLOW_LOG, "in");
    for t in sent_from_group_macs(pcap) {
        assert!(
            !ours.contains_key(&t),
            "{t} is sent both from an ENI and from a group MAC; the comparison cannot tell them apart"
        );
        if let Some(i) = ins.get(&t) {
            ours.insert(t, *i);
        }
    }
    ours
}

/// A readable list of the differences between two maps.
fn diff(expected: &BTreeMap<FiveTuple, Totals>, ours: &BTreeMap<FiveTuple, Totals>) -> String {
    let keys: BTreeSet<&FiveTuple> = expected.keys().chain(ours.keys()).collect();
    let mut s = String::new();
    for k in keys {
        let (e, o) = (expected.get(k), ours.get(k));
        if e != o {
            s += &format!("  {k}: expected {e:?}, ours {o:?}\n");
        }
    }
    s
}

// ---------------------------------------------------------------------------
// Zeek

/// Zeek and our records agree on packets and IP bytes per oriented 5-tuple.
///
/// Conventions normalised (testdata README):
/// - Zeek may split one 5-tuple into several rows, and we into windows: both
///   are summed per oriented 5-tuple.
/// - Zeek's originator can be flipped: we match on addresses and ports only.
/// - SCTP: Zeek logs ports 0, we log the SCTP ports: ports are set to 0 on
///   both sides for protocol 132.
/// - ICMP / ICMPv6: Zeek puts the type pair in its ports, we put
///   `type*256+code` in `dstport`: ports are set to 0 on both sides, so that
///   packets and bytes are compared per address pair.
///
/// Rows left out, because they are not comparable by design:
/// - a `layer` other than `outer`: the inner connection of a tunnel, which
///   we log by its outer header (the outer connection has its own row);
/// - a 5-tuple the capture carries only inside MPLS or PPPoE: RECORDS.md
///   says those frames are not IP at the Ethernet layer and are counted,
///   not logged (`not_ip`), while Zeek decodes through the labels.
///
/// Zero rows (a direction without packets) are absent on our side.
fn zeek_case(case: &str) {
    let dir = testdata().join("zeek").join(case);
    let pcap = only_file_with_ext(&dir, "pcap");
    let (_, r) = replay_case(&pcap);

    let normalise = |mut t: FiveTuple| {
        if matches!(t.proto, 132 | 1 | 58) {
            t.sport = 0;
            t.dport = 0;
        }
        t
    };
    let encapsulated: BTreeSet<FiveTuple> = encapsulated_only(&pcap)
        .into_iter()
        .map(normalise)
        .collect();

    // The folder may hold several baseline logs of the same capture (from
    // several Zeek tests, `log` column): each must agree with ours.
    let mut expected: BTreeMap<String, BTreeMap<FiveTuple, Totals>> = BTreeMap::new();
    let mut left_out = BTreeSet::new();
    for row in read_tsv(&dir.join("expected_directional.tsv")) {
        let t = normalise(zeek_tuple(&row));
        let log = expected.entry(row["log"].clone()).or_default();
        if row["layer"] != "outer" {
            left_out.insert(format!("{t} (layer {})", row["layer"]));
            continue;
        }
        if encapsulated.contains(&t) {
            left_out.insert(format!("{t} (only inside MPLS/PPPoE)"));
            continue;
        }
        assert_eq!(
            row["bytes_kind"], "ip_bytes",
            "{case}: unknown bytes kind in {row:?}"
        );
        let e = log.entry(t).or_default();
        e.packets += num(&row["pkts"]);
        e.bytes += num(&row["bytes"]);
    }

    let mut ours: BTreeMap<FiveTuple, Totals> = BTreeMap::new();
    for (t, tot) in our_totals(&r, &pcap) {
        let o = ours.entry(normalise(t)).or_default();
        o.packets += tot.packets;
        o.bytes += tot.bytes;
    }

    assert!(!expected.is_empty(), "{case}: no expectation");
    for (log, mut expected) in expected {
        expected.retain(|_, t| t.packets > 0);
        assert!(!expected.is_empty(), "{case}/{log}: nothing comparable");
        assert!(
            expected == ours,
            "zeek/{case}: our records differ from Zeek's {log} per oriented 5-tuple \
             (packets, IP bytes; flags not compared):\n{}left out: {left_out:?}\nsummary: {}",
            diff(&expected, &ours),
            r.summary
        );
    }
    if !left_out.is_empty() {
        // What was left out must not be logged as plain IP either.
        assert!(
            int(&r.summary, "not_ip") > 0,
            "{case}: {left_out:?} but not_ip is 0"
        );
    }
}

fn num(s: &str) -> u64 {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}"))
}

fn zeek_tuple(row: &BTreeMap<String, String>) -> FiveTuple {
    let ip = |k: &str| -> IpAddr {
        row[k]
            .parse()
            .unwrap_or_else(|_| panic!("{k} is not an address in {row:?}"))
    };
    let port = |k: &str| -> u16 {
        row[k]
            .parse()
            .unwrap_or_else(|_| panic!("{k} is not a port in {row:?}"))
    };
    FiveTuple {
        src: ip("src"),
        sport: port("sport"),
        dst: ip("dst"),
        dport: port("dport"),
        proto: row["ip_proto"]
            .parse()
            .unwrap_or_else(|_| panic!("ip_proto in {row:?}")),
    }
}

// ---------------------------------------------------------------------------
// Suricata

/// The reply side of a flow whose first packet is `t`: the reversed 5-tuple,
/// or for an ICMP request the reply's type. `None` for ICMP messages that
/// get no reply (errors, replies): their flows are one-sided.
fn partner(t: &FiveTuple) -> Option<FiveTuple> {
    let (ty, code) = (t.dport >> 8, t.dport & 0xff);
    let dport = match t.proto {
        1 => match ty {
            8 => code,
            13 | 15 | 17 => (ty + 1) << 8 | code,
            _ => return None,
        },
        58 => match ty {
            128 => 129 << 8 | code,
            _ => return None,
        },
        _ => t.sport,
    };
    let sport = if matches!(t.proto, 1 | 58) {
        0
    } else {
        t.dport
    };
    Some(FiveTuple {
        src: t.dst,
        sport,
        dst: t.src,
        dport,
        proto: t.proto,
    })
}

fn suricata_proto(p: &str) -> u8 {
    match p {
        "TCP" => 6,
        "UDP" => 17,
        "ICMP" => 1,
        "IPv6-ICMP" | "ICMPv6" => 58,
        "SCTP" => 132,
        other => panic!("unknown Suricata protocol {other}"),
    }
}

/// Whether one direction's row (`-` = not asserted) holds for our totals of
/// the 5-tuple `t` of that direction.
fn suricata_row_holds(row: &BTreeMap<String, String>, t: &FiveTuple, ours: &Totals) -> bool {
    let given = |k: &str| row[k] != "-";
    (!given("src") || row["src"].parse::<IpAddr>().ok() == Some(t.src))
        && (!given("dst") || row["dst"].parse::<IpAddr>().ok() == Some(t.dst))
        && (!given("sport") || row["sport"].parse::<u16>().ok() == Some(t.sport))
        && (!given("dport") || row["dport"].parse::<u16>().ok() == Some(t.dport))
        && (!given("proto") || suricata_proto(&row["proto"]) == t.proto)
        && (!given("pkts") || num(&row["pkts"]) == ours.packets)
        && (!given("tcp_flags_dir_hex")
            || u64::from_str_radix(&row["tcp_flags_dir_hex"], 16).ok() == Some(ours.flags))
}

/// Suricata's flow events and our records agree on packets and TCP flags per
/// direction. Suricata's bytes are captured frame lengths (Ethernet header
/// included), not IP bytes, so they are not compared (README).
///
/// Each check is a pair of rows, `toserver` and `toclient`. With all of its
/// 5-tuple given, the check names one flow: our totals of its two oriented
/// 5-tuples must match (no record means 0 packets and flags 0, like
/// Suricata's `00` for a direction without packets). With wildcards (`-`),
/// the check must match exactly `count` flows among ours, a flow being an
/// `out` 5-tuple and its [`partner`].
fn suricata_case(case: &str) {
    let dir = testdata().join("suricata-verify").join(case);
    let pcap = only_file_with_ext(&dir, "pcap");
    let (_, r) = replay_case(&pcap);
    let ours = our_totals(&r, &pcap);
    let get = |t: &FiveTuple| ours.get(t).copied().unwrap_or_default();

    let rows = read_tsv(&dir.join("expected_directional.tsv"));
    let mut checks: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for row in rows {
        checks.entry(row["check"].clone()).or_default().push(row);
    }
    assert!(!checks.is_empty(), "{case}: no checks");
    for (n, rows) in checks {
        let dir_row = |d: &str| {
            rows.iter()
                .find(|r| r["dir"] == d)
                .unwrap_or_else(|| panic!("{case}: check {n} has no {d} row"))
        };
        let (ts, tc) = (dir_row("toserver"), dir_row("toclient"));
        let concrete = ["src", "sport", "dst", "dport", "proto"]
            .iter()
            .all(|k| ts[*k] != "-");
        if concrete {
            let t = FiveTuple {
                src: ts["src"].parse().expect("src"),
                sport: ts["sport"].parse().expect("sport"),
                dst: ts["dst"].parse().expect("dst"),
                dport: ts["dport"].parse().expect("dport"),
                proto: suricata_proto(&ts["proto"]),
            };
            let back = partner(&t).expect("a TCP/UDP flow has a reply side");
            assert!(
                suricata_row_holds(ts, &t, &get(&t)) && suricata_row_holds(tc, &back, &get(&back)),
                "suricata-verify/{case} check {n}: expected toserver {} pkts flags {}, toclient {} \
                 pkts flags {}; ours {t}: {:?}, {back}: {:?}\nall ours: {ours:#?}",
                ts["pkts"],
                ts["tcp_flags_dir_hex"],
                tc["pkts"],
                tc["tcp_flags_dir_hex"],
                get(&t),
                get(&back),
            );
        } else {
            let count = num(&ts["count"]);
            let mut matching = BTreeSet::new();
            for t in ours.keys() {
                let Some(back) = partner(t) else {
                    // One-sided (an ICMP error): no reply direction at all.
                    if suricata_row_holds(ts, t, &get(t))
                        && tc["pkts"].parse::<u64>().is_ok_and(|p| p == 0)
                    {
                        matching.insert((*t, *t));
                    }
                    continue;
                };
                if suricata_row_holds(ts, t, &get(t)) && suricata_row_holds(tc, &back, &get(&back))
                {
                    matching.insert(if *t <= back { (*t, back) } else { (back, *t) });
                }
            }
            assert_eq!(
                matching.len() as u64,
                count,
                "suricata-verify/{case} check {n} (wildcards): want {count} flow(s) with \
                 toserver {} pkts and toclient {} pkts; matching: {matching:?}\nall ours: {ours:#?}",
                ts["pkts"],
                tc["pkts"],
            );
        }
    }
}

// ---------------------------------------------------------------------------
// tcpdump

/// The number of packets tcpdump printed: its lines that start with a
/// packet number (`    1  …`), taking the largest.
fn tcpdump_packets(out: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(out).ok()?;
    text.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let (n, rest) = l.split_once(' ')?;
            (rest.starts_with(' ') && n.bytes().all(|b| b.is_ascii_digit()))
                .then(|| n.parse::<u64>().ok())
                .flatten()
        })
        .max()
}

/// Odd link types, odd lengths and malformed headers: the replay succeeds,
/// its counters add up, the store keeps the contract (see `check_store`),
/// every OK record has packets and bytes, and `read` is the number of
/// packets tcpdump decoded.
fn tcpdump_case(case: &str) {
    let dir = testdata().join("tcpdump").join(case);
    let pcap = only_file_with_ext(&dir, "pcap");
    let (s, r) = replay_case(&pcap);
    assert!(
        !s.macs.is_empty() || !s.ips.is_empty(),
        "{case}: no sender found to make an ENI of"
    );
    for rec in &r.records {
        if rec["log-status"] == "OK" {
            assert!(
                int(rec, "packets") > 0 && int(rec, "bytes") > 0,
                "{case}: {rec}"
            );
        }
    }
    let read = int(&r.summary, "read");
    assert_eq!(read, s.frames, "{case}: frames read");
    let outs: Vec<_> = std::fs::read_dir(&dir)
        .expect("case dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "out"))
        .collect();
    assert!(!outs.is_empty(), "{case}: no .out file");
    for out in outs {
        if let Some(n) = tcpdump_packets(&out) {
            assert_eq!(read, n, "{case}: {} shows {n} packets", out.display());
        }
    }
    tcpdump_expectations(case, &dir, &r);
}

/// What each tcpdump case's decode (`.out`) says that RECORDS.md turns into
/// record values: the `out` totals per oriented 5-tuple (packets, and IP
/// bytes and TCP flags where tcpdump prints them).
fn tcpdump_expectations(case: &str, dir: &Path, r: &Replayed) {
    let ours = out_totals(&r.records, FLOW_LOG);
    let ok = r.records.iter().filter(|x| x["log-status"] == "OK").count();
    let one = |src: &str, sport, dst: &str, dport, proto| FiveTuple {
        src: src.parse().expect("address"),
        sport,
        dst: dst.parse().expect("address"),
        dport,
        proto,
    };
    // `expect(tuple, packets, bytes, flags)`; `None` = not printed by tcpdump.
    let expect = |t: FiveTuple, packets: u64, bytes: Option<u64>, flags: Option<u64>| {
        let o = ours
            .get(&t)
            .unwrap_or_else(|| panic!("{case}: no out record for {t}; ours: {ours:#?}"));
        assert_eq!(o.packets, packets, "{case}: packets of {t}");
        if let Some(b) = bytes {
            assert_eq!(o.bytes, b, "{case}: bytes of {t}");
        }
        if let Some(f) = flags {
            assert_eq!(o.flags, f, "{case}: tcp-flags of {t}");
        }
    };
    match case {
        // Two ARP frames under an 802.1ad and an 802.1Q tag: not IP.
        "802.1ad_QinQ" => {
            assert_eq!(int(&r.summary, "not_ip"), 2, "{case}: {}", r.summary);
            assert_eq!(ok, 0, "{case}: ARP was logged");
        }
        // `IP 192.168.1.100.12345 > 9.9.9.9.53: … (29)`: raw IP, link type 101.
        "LINKTYPE_RAW_ipv4" => {
            expect(
                one("192.168.1.100", 12345, "9.9.9.9", 53, 17),
                1,
                Some(20 + 8 + 29),
                None,
            );
        }
        "LINKTYPE_RAW_ipv6" => {
            expect(
                one("2001:db8::1", 12345, "2620:fe::9", 53, 17),
                1,
                Some(40 + 8 + 29),
                None,
            );
        }
        // `length 80052 [was 0, presumed BIG TCP]`, `Flags [P.]`.
        "bigtcp-ipv4" => {
            let t = one("10.25.132.13", 35871, "10.25.132.11", 36425, 6);
            expect(t, 1, Some(80052), Some(0x18));
        }
        // `length 2016 [was 0, presumed TSO]`, `Flags [P.]`.
        "ipv4_tcp_http_xml_tso" => {
            let t = one("30.7.181.121", 39556, "199.43.68.163", 8080, 6);
            expect(t, 1, Some(2016), Some(0x18));
        }
        // `payload length 0 … HBH (jumbo: 65536) … ICMP6, echo request`:
        // 40 + the jumbo length; echo request is type 128 → dstport 128*256.
        "ipv6_jumbogram_1" => {
            let t = one(
                "2200::244:212:3fff:feae:22f7",
                0,
                "2200::240:2:0:0:4",
                128 * 256,
                58,
            );
            expect(t, 1, Some(40 + 65536), Some(0));
        }
        // IPv6 on a loopback capture (link type 0): 40 + `payload length`,
        // summed per direction from the decode.
        "quic_handshake_truncated" => {
            let want = ipv6_totals_from_decode(&dir.join("quic_handshake_truncated.out"));
            assert_eq!(want.len(), 2, "{case}: decode parsed wrongly: {want:?}");
            for (t, (packets, bytes)) in want {
                expect(t, packets, Some(bytes), Some(0));
            }
        }
        // Linux cooked capture: SYN, SYN-ACK, ACK (`tcp 0` each).
        "tcp-handshake-nano" => {
            expect(
                one("131.155.215.69", 46656, "137.116.81.94", 80, 6),
                2,
                None,
                Some(0x12),
            );
            expect(
                one("137.116.81.94", 80, "131.155.215.69", 46656, 6),
                1,
                None,
                Some(0x12),
            );
        }
        // `Flags [FSRP.UEW]`: all eight bits.
        "tcp_eight_lowest_weight_flags_set" => {
            expect(
                one("10.0.0.2", 6260, "10.128.0.2", 80, 6),
                1,
                None,
                Some(0xff),
            );
        }
        // `length 12336` and `[|tcp]` / `[|udp]`: the snap length (46 and 38
        // bytes) cuts the L4 header, the wire length (262144) holds the
        // packet. Logged with the header's length, ports and flags 0.
        "tcp_header_heapoverflow" => {
            expect(
                one("48.48.48.48", 0, "48.48.48.48", 0, 6),
                1,
                Some(12336),
                Some(0),
            );
        }
        "udp-length-heapoverflow" => {
            expect(
                one("48.48.48.48", 0, "48.48.48.48", 0, 17),
                1,
                Some(12336),
                Some(0),
            );
        }
        other => panic!("no expectations written for tcpdump/{other}"),
    }
    if case != "802.1ad_QinQ" {
        assert_eq!(int(&r.summary, "malformed"), 0, "{case}: {}", r.summary);
    }
}

/// From a `tcpdump -v` decode of IPv6: `(… payload length N) A.p > B.q:` per
/// packet, summed per oriented 5-tuple (UDP) as (packets, 40 + N).
fn ipv6_totals_from_decode(out: &Path) -> BTreeMap<FiveTuple, (u64, u64)> {
    let text = std::fs::read_to_string(out).expect("decode");
    let mut m: BTreeMap<FiveTuple, (u64, u64)> = BTreeMap::new();
    for line in text.lines() {
        let Some((_, rest)) = line.split_once("payload length ") else {
            continue;
        };
        let (len, rest) = rest.split_once(") ").expect("payload length N) …");
        let (a, rest) = rest.split_once(" > ").expect("A > B");
        let (b, _) = rest.split_once(": ").expect("A > B: …");
        let ep = |s: &str| -> (IpAddr, u16) {
            let (ip, port) = s.rsplit_once('.').expect("address.port");
            (ip.parse().expect("address"), port.parse().expect("port"))
        };
        let ((src, sport), (dst, dport)) = (ep(a), ep(b));
        let e = m
            .entry(FiveTuple {
                src,
                sport,
                dst,
                dport,
                proto: 17,
            })
            .or_default();
        e.0 += 1;
        e.1 += 40 + num(len);
    }
    m
}
