//! One table-driven test per sentence of CONFIG.md's "Security groups",
//! "Network ACLs" and "Order of evaluation", on hand-built packets.

use super::*;
use crate::wire::PacketMeta;
use exporter::record::Action::{Accept, Reject};
use exporter::record::Direction::{In, Out};

/// The tests speak in whole seconds; the policy takes nanoseconds.
trait JudgeSecs {
    fn judge_s(&mut self, eni: u16, dir: Direction, m: &PacketMeta, secs: u64) -> Action;
}

impl JudgeSecs for Policy {
    fn judge_s(&mut self, eni: u16, dir: Direction, m: &PacketMeta, secs: u64) -> Action {
        self.judge(eni, dir, m, secs * conn::NS)
    }
}

/// eni-1 (index 0) in vsw-1 (10.0.1.0/24, fd00:1::/64, nacl-1), eni-2
/// (index 1) in vsw-2 (no ACL), eni-3 (index 2) without security groups.
fn policy(
    sg_rules: &str,
    extra_groups: &str,
    nacl_in: &str,
    nacl_out: &str,
    conns: usize,
) -> Policy {
    let text = format!(
        r#"{{"host":"h","enis":[
          {{"eni_id":"eni-1","mac":"02:00:00:00:00:01","ips":["10.0.1.5","fd00:1::5"],"instance_type":"ecs.g7.large",
            "vswitch_id":"vsw-1","vpc_id":"vpc-1","account_id":"1","security_group_ids":["sg-a"{extra}], "vm_id": null, "port": null}},
          {{"eni_id":"eni-2","mac":"02:00:00:00:00:02","ips":["10.0.2.5"],"instance_type":"ecs.g7.large",
            "vswitch_id":"vsw-2","vpc_id":"vpc-1","account_id":"1","security_group_ids":["sg-a"], "vm_id": null, "port": null}},
          {{"eni_id":"eni-3","mac":"02:00:00:00:00:03","ips":["10.0.1.7"],"instance_type":"ecs.g7.large",
            "vswitch_id":"vsw-1","vpc_id":"vpc-1","account_id":"1", "vm_id": null, "port": null}}],
        "vswitches":[{{"vswitch_id":"vsw-1","vpc_id":"vpc-1","cidr":"10.0.1.0/24","ipv6_cidr":"fd00:1::/64","network_acl_id":"nacl-1"}},
                     {{"vswitch_id":"vsw-2","vpc_id":"vpc-1","cidr":"10.0.2.0/24"}}],
        "security_groups":[{{"security_group_id":"sg-a","rules":[{sg_rules}]}}{groups}],
        "network_acls":[{{"network_acl_id":"nacl-1","ingress":[{nacl_in}],"egress":[{nacl_out}]}}],
        "flow_logs":[]}}"#,
        extra = if extra_groups.is_empty() {
            ""
        } else {
            r#","sg-b""#
        },
        groups = if extra_groups.is_empty() {
            String::new()
        } else {
            format!(r#",{{"security_group_id":"sg-b","rules":[{extra_groups}]}}"#)
        },
    );
    let cfg = exporter::config::from_json(&text, "test").expect("valid test configuration");
    Policy::new(Arc::new(CompiledPolicy::from_config(&cfg)), conns)
}

fn rule(dir: &str, policy: &str, prio: u8, proto: &str, ports: &str, cidr: &str) -> String {
    format!(
        r#"{{"direction":"{dir}","policy":"{policy}","priority":{prio},"ip_protocol":"{proto}","port_range":"{ports}","cidr":"{cidr}"}}"#
    )
}

fn acl(policy: &str, proto: &str, ports: &str, cidr: &str) -> String {
    format!(
        r#"{{"policy":"{policy}","ip_protocol":"{proto}","port_range":"{ports}","cidr":"{cidr}"}}"#
    )
}

fn v4(src: &str, sport: u16, dst: &str, dport: u16, proto: u8) -> PacketMeta {
    let mut m = PacketMeta {
        protocol: proto,
        src_port: sport,
        dst_port: dport,
        ..PacketMeta::default()
    };
    let s: std::net::Ipv4Addr = src.parse().expect("address");
    let d: std::net::Ipv4Addr = dst.parse().expect("address");
    m.src[..4].copy_from_slice(&s.octets());
    m.dst[..4].copy_from_slice(&d.octets());
    m
}

fn v6(src: &str, sport: u16, dst: &str, dport: u16, proto: u8) -> PacketMeta {
    let mut m = PacketMeta {
        protocol: proto,
        src_port: sport,
        dst_port: dport,
        v6: true,
        ..PacketMeta::default()
    };
    m.src = src.parse::<std::net::Ipv6Addr>().expect("address").octets();
    m.dst = dst.parse::<std::net::Ipv6Addr>().expect("address").octets();
    m
}

/// Inbound to eni-1 (index 0) from `src`.
fn inbound(src: &str, dport: u16, proto: u8) -> PacketMeta {
    v4(src, 40000, "10.0.1.5", dport, proto)
}

/// Outbound from eni-1 to `dst`.
fn outbound(dst: &str, dport: u16, proto: u8) -> PacketMeta {
    v4("10.0.1.5", 40000, dst, dport, proto)
}

#[test]
fn the_highest_priority_wins() {
    let rules = [
        rule("ingress", "drop", 2, "tcp", "80/80", "0.0.0.0/0"),
        rule("ingress", "accept", 1, "tcp", "80/80", "198.51.100.0/24"),
    ]
    .join(",");
    let mut p = policy(&rules, "", "", "", 64);
    assert_eq!(
        p.judge_s(0, In, &inbound("198.51.100.7", 80, 6), 0),
        Accept,
        "priority 1 beats 2"
    );
    assert_eq!(
        p.judge_s(0, In, &inbound("203.0.113.7", 80, 6), 0),
        Reject,
        "only the drop matches"
    );
}

#[test]
fn at_equal_priority_drop_beats_accept() {
    let rules = [
        rule("ingress", "accept", 5, "tcp", "80/80", "0.0.0.0/0"),
        rule("ingress", "drop", 5, "tcp", "80/80", "198.51.100.0/24"),
    ]
    .join(",");
    let mut p = policy(&rules, "", "", "", 64);
    assert_eq!(p.judge_s(0, In, &inbound("198.51.100.7", 80, 6), 0), Reject);
    assert_eq!(p.judge_s(0, In, &inbound("203.0.113.7", 80, 6), 0), Accept);
}

#[test]
fn the_rules_of_all_security_groups_count_together() {
    let a = rule("ingress", "accept", 10, "tcp", "22/22", "0.0.0.0/0");
    let b = rule("ingress", "drop", 1, "tcp", "22/22", "203.0.113.0/24");
    let mut p = policy(&a, &b, "", "", 64);
    assert_eq!(
        p.judge_s(0, In, &inbound("203.0.113.9", 22, 6), 0),
        Reject,
        "sg-b's priority 1 drop"
    );
    assert_eq!(
        p.judge_s(0, In, &inbound("198.51.100.9", 22, 6), 0),
        Accept,
        "sg-a's accept"
    );
    // eni-2 has only sg-a.
    assert_eq!(
        p.judge_s(1, In, &v4("203.0.113.9", 1, "10.0.2.5", 22, 6), 0),
        Accept
    );
}

#[test]
fn no_matching_rule_drops_ingress_and_accepts_egress() {
    let mut p = policy(
        &rule("ingress", "accept", 1, "tcp", "443/443", "0.0.0.0/0"),
        "",
        "",
        "",
        64,
    );
    assert_eq!(p.judge_s(0, In, &inbound("198.51.100.7", 80, 6), 0), Reject);
    assert_eq!(
        p.judge_s(0, Out, &outbound("198.51.100.7", 80, 6), 0),
        Accept
    );
}

#[test]
fn a_security_group_with_no_rules_gives_the_defaults() {
    let mut p = policy("", "", "", "", 64);
    assert_eq!(p.judge_s(0, In, &inbound("198.51.100.7", 80, 6), 0), Reject);
    assert_eq!(
        p.judge_s(0, Out, &outbound("198.51.100.7", 80, 6), 0),
        Accept
    );
}

#[test]
fn an_eni_without_security_groups_accepts_everything() {
    let mut p = policy("", "", "", "", 64);
    assert_eq!(
        p.judge_s(2, In, &v4("10.0.1.9", 1, "10.0.1.7", 23, 6), 0),
        Accept
    );
    assert_eq!(
        p.judge_s(2, Out, &v4("10.0.1.7", 1, "10.0.1.9", 23, 6), 0),
        Accept
    );
    assert_eq!(p.counters.opened, 0, "and keeps no state");
}

#[test]
fn port_range_matches_the_destination_port_of_tcp_and_udp_only() {
    let rules = [
        rule("ingress", "accept", 1, "tcp", "8000/8080", "0.0.0.0/0"),
        rule("ingress", "accept", 1, "icmp", "1/1", "0.0.0.0/0"),
    ]
    .join(",");
    let mut p = policy(&rules, "", "", "", 64);
    assert_eq!(
        p.judge_s(0, In, &inbound("198.51.100.7", 8000, 6), 0),
        Accept
    );
    assert_eq!(
        p.judge_s(0, In, &inbound("198.51.100.8", 8080, 6), 0),
        Accept
    );
    assert_eq!(
        p.judge_s(0, In, &inbound("198.51.100.9", 8081, 6), 0),
        Reject
    );
    // The source port is not what port_range matches.
    assert_eq!(
        p.judge_s(0, In, &v4("198.51.100.10", 8000, "10.0.1.5", 9, 6), 0),
        Reject
    );
    // ICMP echo (dstport 8*256) matches an icmp rule whatever its port_range.
    assert_eq!(
        p.judge_s(0, In, &inbound("198.51.100.11", 8 << 8, 1), 0),
        Accept
    );
    // UDP to 8000 is not matched by a tcp rule.
    assert_eq!(
        p.judge_s(0, In, &inbound("198.51.100.12", 8000, 17), 0),
        Reject
    );
}

#[test]
fn sctp_is_matched_only_by_all() {
    let tcp = rule("ingress", "accept", 1, "tcp", "-1/-1", "0.0.0.0/0");
    let mut p = policy(&tcp, "", "", "", 64);
    assert_eq!(
        p.judge_s(0, In, &inbound("198.51.100.7", 9899, 132), 0),
        Reject
    );
    let all = rule("ingress", "accept", 1, "all", "9000/9000", "0.0.0.0/0");
    let mut p = policy(&all, "", "", "", 64);
    assert_eq!(
        p.judge_s(0, In, &inbound("198.51.100.7", 9899, 132), 0),
        Accept,
        "all ignores ports"
    );
    let mut gre = policy(
        &rule("ingress", "accept", 1, "gre", "-1/-1", "0.0.0.0/0"),
        "",
        "",
        "",
        64,
    );
    assert_eq!(
        gre.judge_s(0, In, &inbound("198.51.100.7", 0, 47), 0),
        Accept
    );
}

#[test]
fn a_non_first_fragment_has_port_zero() {
    let rules = [
        rule("ingress", "accept", 1, "udp", "1/65535", "198.51.100.0/24"),
        rule("ingress", "accept", 1, "udp", "-1/-1", "203.0.113.0/24"),
    ]
    .join(",");
    let mut p = policy(&rules, "", "", "", 64);
    let mut frag = inbound("198.51.100.7", 0, 17);
    frag.src_port = 0;
    frag.fragment = true;
    assert_eq!(
        p.judge_s(0, In, &frag, 0),
        Reject,
        "1/65535 does not match port 0"
    );
    let mut frag = inbound("203.0.113.7", 0, 17);
    frag.fragment = true;
    assert_eq!(p.judge_s(0, In, &frag, 0), Accept, "-1/-1 does");
}

#[test]
fn cidr_is_the_source_for_ingress_and_the_destination_for_egress() {
    let rules = [
        rule("ingress", "accept", 1, "all", "-1/-1", "198.51.100.0/24"),
        rule("egress", "drop", 1, "all", "-1/-1", "198.51.100.0/24"),
    ]
    .join(",");
    let mut p = policy(&rules, "", "", "", 64);
    assert_eq!(p.judge_s(0, In, &inbound("198.51.100.7", 80, 6), 0), Accept);
    assert_eq!(
        p.judge_s(0, Out, &outbound("198.51.100.7", 80, 6), 0),
        Reject
    );
    assert_eq!(
        p.judge_s(0, Out, &outbound("203.0.113.7", 80, 6), 0),
        Accept
    );
}

#[test]
fn ipv4_and_ipv6_cidrs_match_their_own_family() {
    let rules = [
        rule("ingress", "accept", 1, "tcp", "443/443", "0.0.0.0/0"),
        rule("ingress", "accept", 1, "udp", "53/53", "::/0"),
    ]
    .join(",");
    let mut p = policy(&rules, "", "", "", 64);
    assert_eq!(
        p.judge_s(0, In, &v6("2001:db8::1", 1, "fd00:1::5", 443, 6), 0),
        Reject
    );
    assert_eq!(
        p.judge_s(0, In, &v6("2001:db8::1", 1, "fd00:1::5", 53, 17), 0),
        Accept
    );
    assert_eq!(
        p.judge_s(0, In, &inbound("198.51.100.1", 53, 17), 0),
        Reject
    );
}

#[test]
fn return_traffic_of_an_accepted_connection_passes_without_rules() {
    // Egress accepted by default; ingress has no rule at all.
    let mut p = policy("", "", "", "", 64);
    let out = outbound("198.51.100.7", 443, 6);
    let back = v4("198.51.100.7", 443, "10.0.1.5", 40000, 6);
    assert_eq!(
        p.judge_s(0, In, &back, 10),
        Reject,
        "unsolicited: default ingress drop"
    );
    assert_eq!(p.judge_s(0, Out, &out, 11), Accept);
    assert_eq!(
        p.judge_s(0, In, &back, 12),
        Accept,
        "return traffic of a tracked connection"
    );
    assert_eq!(p.counters.tracked, 1);
    // Another port of the same peer is another connection.
    let other = v4("198.51.100.7", 444, "10.0.1.5", 40000, 6);
    assert_eq!(p.judge_s(0, In, &other, 13), Reject);
}

#[test]
fn any_packet_opens_a_connection_and_fin_or_rst_do_not_close_it() {
    let mut p = policy("", "", "", "", 64);
    let mut out = outbound("198.51.100.7", 443, 6);
    out.tcp_flags = 0x10; // a bare ACK, no SYN
    assert_eq!(p.judge_s(0, Out, &out, 1), Accept);
    let mut fin = v4("198.51.100.7", 443, "10.0.1.5", 40000, 6);
    fin.tcp_flags = 0x04; // RST
    assert_eq!(p.judge_s(0, In, &fin, 2), Accept);
    assert_eq!(
        p.judge_s(0, In, &fin, 3),
        Accept,
        "still tracked after a RST"
    );
}

#[test]
fn connections_are_per_eni() {
    let mut p = policy("", "", "", "", 64);
    assert_eq!(
        p.judge_s(1, Out, &v4("10.0.2.5", 40000, "198.51.100.7", 443, 6), 1),
        Accept
    );
    // The same endpoints at eni-1 are not tracked.
    assert_eq!(
        p.judge_s(0, In, &v4("198.51.100.7", 443, "10.0.2.5", 40000, 6), 2),
        Reject
    );
    assert_eq!(
        p.judge_s(1, In, &v4("198.51.100.7", 443, "10.0.2.5", 40000, 6), 2),
        Accept
    );
}

#[test]
fn icmp_connections_are_keyed_by_addresses_only() {
    let mut p = policy("", "", "", "", 64);
    assert_eq!(
        p.judge_s(0, Out, &outbound("198.51.100.7", 8 << 8, 1), 1),
        Accept,
        "echo request"
    );
    let reply = v4("198.51.100.7", 0, "10.0.1.5", 0, 1);
    assert_eq!(p.judge_s(0, In, &reply, 2), Accept, "echo reply");
}

#[test]
fn icmp_errors_get_no_state_from_the_connection_they_refer_to() {
    let mut p = policy("", "", "", "", 64);
    assert_eq!(
        p.judge_s(0, Out, &outbound("198.51.100.7", 53, 17), 1),
        Accept
    );
    // Port unreachable from the peer: ICMP, a connection of its own.
    let unreachable = v4("198.51.100.7", 0, "10.0.1.5", 3 << 8 | 3, 1);
    assert_eq!(p.judge_s(0, In, &unreachable, 2), Reject);
}

#[test]
fn only_a_final_accept_opens_or_refreshes_a_connection() {
    // Egress to port 25 is dropped by the network ACL: no state.
    let mut p = policy("", "", "", &acl("drop", "tcp", "25/25", "0.0.0.0/0"), 64);
    assert_eq!(
        p.judge_s(0, Out, &outbound("198.51.100.7", 25, 6), 1),
        Reject
    );
    assert_eq!(
        p.judge_s(0, In, &v4("198.51.100.7", 25, "10.0.1.5", 40000, 6), 2),
        Reject
    );
    assert_eq!(p.counters.opened, 0);
}

#[test]
fn a_tracked_packet_is_still_judged_by_the_network_acl() {
    let mut p = policy(
        "",
        "",
        &acl("drop", "tcp", "-1/-1", "198.51.100.0/24"),
        "",
        64,
    );
    assert_eq!(
        p.judge_s(0, Out, &outbound("198.51.100.7", 443, 6), 1),
        Accept
    );
    let back = v4("198.51.100.7", 443, "10.0.1.5", 40000, 6);
    assert_eq!(
        p.judge_s(0, In, &back, 2),
        Reject,
        "tracked by the SG, dropped by the ACL"
    );
}

#[test]
fn expiry_is_exact_below_the_second() {
    let mut p = policy("", "", "", "", 64);
    let s = conn::NS;
    assert_eq!(
        p.judge(0, Out, &outbound("198.51.100.7", 53, 17), 900_000_000),
        Accept
    );
    let back = v4("198.51.100.7", 53, "10.0.1.5", 40000, 17);
    // 179.6 s after the last packet: alive, though the whole seconds differ by 180.
    assert_eq!(p.judge(0, In, &back, 180 * s + 500_000_000), Accept);
    // That refreshed it; exactly 180 s later it is gone.
    assert_eq!(p.judge(0, In, &back, 360 * s + 500_000_000), Reject);
}

#[test]
fn connections_expire_tcp_910_s_and_others_180_s_after_their_last_packet() {
    let mut p = policy("", "", "", "", 64);
    assert_eq!(
        p.judge_s(0, Out, &outbound("198.51.100.7", 443, 6), 1000),
        Accept
    );
    assert_eq!(
        p.judge_s(0, Out, &outbound("198.51.100.7", 53, 17), 1000),
        Accept
    );
    let tcp_back = v4("198.51.100.7", 443, "10.0.1.5", 40000, 6);
    let udp_back = v4("198.51.100.7", 53, "10.0.1.5", 40000, 17);
    assert_eq!(p.judge_s(0, In, &udp_back, 1179), Accept, "179 s");
    // That reply refreshed it: 180 s from 1179.
    assert_eq!(p.judge_s(0, In, &udp_back, 1358), Accept);
    assert_eq!(
        p.judge_s(0, In, &udp_back, 1538),
        Reject,
        "180 s after the last packet"
    );
    assert_eq!(p.judge_s(0, In, &tcp_back, 1909), Accept, "909 s");
    assert_eq!(
        p.judge_s(0, In, &tcp_back, 1909 + 910),
        Reject,
        "910 s after the last packet"
    );
}

#[test]
fn a_full_connection_table_is_counted_and_the_rules_judge_alone() {
    // The smallest table: two buckets, which every key has as candidates.
    let cap = 2 * conn::WINDOW;
    let mut p = policy("", "", "", "", cap);
    for port in 0..(2 * cap) as u16 {
        assert_eq!(
            p.judge_s(0, Out, &outbound("198.51.100.7", 1000 + port, 17), 1),
            Accept
        );
    }
    assert_eq!(p.counters.opened, cap as u64);
    assert_eq!(p.counters.conn_table_full, cap as u64);
    // Return traffic of a connection that found no room: rules alone (drop).
    let mut rejected = 0;
    for port in 0..(2 * cap) as u16 {
        if p.judge_s(
            0,
            In,
            &v4("198.51.100.7", 1000 + port, "10.0.1.5", 40000, 17),
            2,
        ) == Reject
        {
            rejected += 1;
        }
    }
    assert_eq!(rejected, cap);
}

#[test]
fn network_acl_first_match_in_list_order_default_accept() {
    let ins = [
        acl("accept", "tcp", "23/23", "198.51.100.0/24"),
        acl("drop", "tcp", "23/23", "0.0.0.0/0"),
    ]
    .join(",");
    let sg = rule("ingress", "accept", 1, "all", "-1/-1", "0.0.0.0/0");
    let mut p = policy(&sg, "", &ins, "", 64);
    assert_eq!(
        p.judge_s(0, In, &inbound("198.51.100.7", 23, 6), 0),
        Accept,
        "first match: accept"
    );
    assert_eq!(
        p.judge_s(0, In, &inbound("203.0.113.7", 23, 6), 0),
        Reject,
        "second: drop"
    );
    assert_eq!(
        p.judge_s(0, In, &inbound("203.0.113.7", 22, 6), 0),
        Accept,
        "no match: accept"
    );
    assert_eq!(p.counters.nacl_drops, 1);
}

#[test]
fn network_acls_are_stateless() {
    let outs = acl("accept", "all", "-1/-1", "0.0.0.0/0");
    let ins = acl("drop", "tcp", "-1/-1", "198.51.100.0/24");
    let mut p = policy("", "", &ins, &outs, 64);
    assert_eq!(
        p.judge_s(0, Out, &outbound("198.51.100.7", 443, 6), 1),
        Accept
    );
    // The security group tracks it, but the ACL has no state: its own rule drops.
    assert_eq!(
        p.judge_s(0, In, &v4("198.51.100.7", 443, "10.0.1.5", 40000, 6), 2),
        Reject
    );
}

#[test]
fn a_network_acl_does_not_filter_peers_in_the_enis_own_vswitch() {
    let ins = acl("drop", "all", "-1/-1", "0.0.0.0/0");
    let ins6 = acl("drop", "all", "-1/-1", "::/0");
    let sg = [
        rule("ingress", "accept", 1, "all", "-1/-1", "0.0.0.0/0"),
        rule("ingress", "accept", 1, "all", "-1/-1", "::/0"),
    ]
    .join(",");
    let mut p = policy(&sg, "", &[ins, ins6].join(","), "", 64);
    assert_eq!(
        p.judge_s(0, In, &inbound("10.0.1.9", 80, 6), 0),
        Accept,
        "same vSwitch (cidr)"
    );
    assert_eq!(
        p.judge_s(0, In, &v6("fd00:1::9", 1, "fd00:1::5", 80, 6), 0),
        Accept,
        "same vSwitch (ipv6_cidr)"
    );
    assert_eq!(
        p.judge_s(0, In, &inbound("10.0.2.9", 80, 6), 0),
        Reject,
        "another vSwitch of the VPC"
    );
    assert_eq!(
        p.judge_s(0, In, &v6("fd00:2::9", 1, "fd00:1::5", 80, 6), 0),
        Reject
    );
}

#[test]
fn the_verdict_is_reject_if_either_drops_in_both_orders() {
    // Inbound: ACL accepts, SG drops / ACL drops, SG accepts.
    let sg = rule("ingress", "accept", 1, "tcp", "80/80", "0.0.0.0/0");
    let ins = acl("drop", "tcp", "8080/8080", "0.0.0.0/0");
    let outs = acl("drop", "udp", "53/53", "0.0.0.0/0");
    let mut p = policy(&sg, "", &ins, &outs, 64);
    assert_eq!(p.judge_s(0, In, &inbound("198.51.100.7", 80, 6), 0), Accept);
    assert_eq!(
        p.judge_s(0, In, &inbound("198.51.100.7", 8080, 6), 0),
        Reject
    );
    assert_eq!(p.judge_s(0, In, &inbound("198.51.100.7", 81, 6), 0), Reject);
    // Outbound: SG accepts by default, the ACL egress drops DNS.
    assert_eq!(
        p.judge_s(0, Out, &outbound("198.51.100.7", 53, 17), 0),
        Reject
    );
    assert_eq!(
        p.judge_s(0, Out, &outbound("198.51.100.7", 443, 6), 0),
        Accept
    );
}

/// A worker over `p` (asked for 600-second slices, it rotates every 60 s)
/// and its handoff, on which [`export`] plays the exporter.
fn worker_and_handoff(
    p: Policy,
    capacity: usize,
) -> (
    crate::worker::Worker<Policy>,
    std::sync::Arc<crate::worker::Handoff>,
) {
    use crate::flow::FlowTable;
    use crate::worker::{Handoff, Worker};
    let pool = (0..2)
        .map(|_| Box::new(FlowTable::new(capacity, 3)))
        .collect();
    let (handoff, active) = Handoff::new(pool, 64);
    (Worker::new(active, handoff.clone(), 600, 3, p), handoff)
}

fn worker(p: Policy) -> crate::worker::Worker<Policy> {
    worker_and_handoff(p, 64).0
}

/// What the exporter does with a retired table before it returns it:
/// every entry's times written back to the connection deadlines.
fn export(h: &crate::worker::Handoff) {
    use std::sync::atomic::Ordering;
    while let Some(mut t) = h.retired.pop() {
        let slice = t.slice_start();
        let conns = h.conn_deadlines.get().expect("a stateful policy");
        t.drain(|e| conns.write_back(e, slice), |_, _| {});
        let _ = h.free.push(t);
        h.returned.fetch_add(1, Ordering::Release);
    }
}

/// Packet `m` at eni-1 (index 0), sent in direction `dir`, at `ns` (Unix
/// nanoseconds), as the worker sees it.
fn seen(dir: Direction, m: PacketMeta, ns: u64) -> crate::worker::Seen {
    use crate::worker::NO_ENI;
    let (out_eni, in_eni) = match dir {
        Out => (0, NO_ENI),
        In => (NO_ENI, 0),
    };
    crate::worker::Seen {
        meta: m,
        secs: ns / conn::NS,
        ns,
        out_eni,
        in_eni,
        host_verdict: None,
    }
}

/// The verdict of one packet at eni-1 (index 0), sent in direction `dir`,
/// at `ns` (Unix nanoseconds).
fn through(
    w: &mut crate::worker::Worker<Policy>,
    dir: Direction,
    m: PacketMeta,
    ns: u64,
) -> Action {
    w.process(&[seen(dir, m, ns)]);
    w.verdicts()[0]
}

#[test]
fn a_reused_verdict_reaches_the_connection_to_the_nanosecond_when_its_table_is_written_back() {
    let (mut w, h) = worker_and_handoff(policy("", "", "", "", 64), 64);
    let s = conn::NS;
    // A slice start (a multiple of 60 s).
    let t0 = 1_800_000_000 * s;
    let out = outbound("198.51.100.7", 53, 17);
    let back = v4("198.51.100.7", 53, "10.0.1.5", 40000, 17);
    let key = conn::ConnKey::new(0, &back);
    assert_eq!(
        through(&mut w, Out, out, t0),
        Accept,
        "opens the connection"
    );
    // The flow's second packet, in the same slice, reuses the verdict: no
    // judgement, and nothing written to the connection table yet.
    let (judged, tracked) = (
        w.policy().counters.rule_lookups,
        w.policy().counters.tracked,
    );
    assert_eq!(through(&mut w, Out, out, t0 + 50 * s + 500_000_000), Accept);
    assert_eq!(w.policy().counters.rule_lookups, judged, "not judged");
    assert_eq!(
        w.policy().counters.tracked,
        tracked + 1,
        "passed as tracked"
    );
    assert!(!w.policy().conns().lookup(&key, t0 + 200 * s));
    // The slice ends; the exporter drains the table and writes its times
    // back: the connection now lasts 180 s from the reused packet.
    w.advance(1_800_000_061);
    export(&h);
    assert!(w.policy().conns().lookup(&key, t0 + 230 * s + 499_999_999));
    assert!(!w.policy().conns().lookup(&key, t0 + 230 * s + 500_000_000));
    // The reply 179.9 s after the reused packet is tracked, though 230.4 s
    // after the packet that opened the connection ...
    assert_eq!(
        through(&mut w, In, back, t0 + 230 * s + 400_000_000),
        Accept
    );
    assert_eq!(w.counters.late_writebacks, 0);
    // ... and its next packet 180.1 s later is too late.
    w.advance(1_800_000_300);
    export(&h);
    assert_eq!(
        through(&mut w, In, back, t0 + 410 * s + 500_000_000),
        Reject
    );
}

#[test]
fn a_reused_packet_older_than_the_latest_does_not_shorten_the_connection() {
    // Captures are not always in time order. A reused packet earlier than
    // the latest one of its flow leaves the flow's last time, and with it
    // the connection's expiry, where the latest packet put it.
    let (mut w, h) = worker_and_handoff(policy("", "", "", "", 64), 64);
    let s = conn::NS;
    let t0 = 1_800_000_000 * s;
    let out = outbound("198.51.100.7", 53, 17);
    let back = v4("198.51.100.7", 53, "10.0.1.5", 40000, 17);
    assert_eq!(through(&mut w, Out, out, t0), Accept, "opens");
    assert_eq!(through(&mut w, Out, out, t0 + 50 * s + 7), Accept);
    // Out of order: 30 s and then 1 ns before the packet just seen.
    let judged = w.policy().counters.rule_lookups;
    assert_eq!(through(&mut w, Out, out, t0 + 20 * s), Accept);
    assert_eq!(through(&mut w, Out, out, t0 + 50 * s + 6), Accept);
    assert_eq!(w.policy().counters.rule_lookups, judged, "reused");
    w.advance(1_800_000_060);
    export(&h);
    let key = conn::ConnKey::new(0, &back);
    assert!(w.policy().conns().lookup(&key, t0 + 230 * s + 6));
    assert!(!w.policy().conns().lookup(&key, t0 + 230 * s + 7));
    assert_eq!(
        through(&mut w, In, back, t0 + 229 * s + 900_000_000),
        Accept
    );
}

#[test]
fn an_evicted_entry_is_written_back_by_the_worker_itself() {
    // A table of 16 slots, one probe window: the 16th other flow evicts the
    // entry whose last packet is the oldest, the tracked flow's; its time
    // reaches the connection then, with no exporter involved.
    let (mut w, _h) = worker_and_handoff(
        policy(
            &rule("egress", "accept", 1, "all", "-1/-1", "0.0.0.0/0"),
            "",
            "",
            "",
            64,
        ),
        16,
    );
    let s = conn::NS;
    let t0 = 1_800_000_000 * s;
    let out = outbound("198.51.100.7", 53, 17);
    let key = conn::ConnKey::new(0, &out);
    assert_eq!(through(&mut w, Out, out, t0), Accept);
    assert_eq!(through(&mut w, Out, out, t0 + 40 * s + 1), Accept);
    assert!(!w.policy().conns().lookup(&key, t0 + 200 * s));
    for i in 0..16u16 {
        let m = v4("10.0.1.5", 1000 + i, "198.51.100.9", 80, 6);
        assert_eq!(through(&mut w, Out, m, t0 + 45 * s), Accept);
    }
    assert_eq!(w.counters.evictions, 1);
    assert!(w.policy().conns().lookup(&key, t0 + 220 * s));
    assert!(!w.policy().conns().lookup(&key, t0 + 220 * s + 1));
}

#[test]
fn a_table_not_written_back_in_time_is_counted_late() {
    // A live worker never waits for the exporter. From 180 s after the
    // earliest judgement in a table still unreturned, a connection could
    // look expired while a later packet of it waits in that table: the
    // worker counts the table late (once) and goes on.
    let (mut w, h) = worker_and_handoff(policy("", "", "", "", 64), 64);
    let s = conn::NS;
    let t0 = 1_800_000_000 * s;
    let out = outbound("198.51.100.7", 53, 17);
    let back = v4("198.51.100.7", 53, "10.0.1.5", 40000, 17);
    assert_eq!(through(&mut w, Out, out, t0 + s), Accept, "judged");
    assert_eq!(through(&mut w, Out, out, t0 + 50 * s), Accept, "reused");
    w.advance(1_800_000_060);
    assert_eq!(
        through(&mut w, In, back, t0 + 180 * s + 999_999_999),
        Accept
    );
    assert_eq!(w.counters.late_writebacks, 0, "still in time");
    assert_eq!(through(&mut w, In, back, t0 + 181 * s), Accept);
    assert_eq!(w.counters.late_writebacks, 1, "180 s after t0 + 1 s");
    assert_eq!(through(&mut w, In, back, t0 + 182 * s), Accept);
    assert_eq!(w.counters.late_writebacks, 1, "counted once");
    export(&h);
    assert_eq!(through(&mut w, In, back, t0 + 183 * s), Accept);
    assert_eq!(w.counters.late_writebacks, 1);
}

#[test]
fn a_table_retired_within_a_burst_is_waited_for_on_the_packets_clock() {
    // A capture's clock can jump minutes within one burst: the table the
    // burst's first packets went to is retired by a later packet of the
    // same burst, whose reply needs that table's reused packet.
    use std::sync::atomic::{AtomicBool, Ordering};
    let (mut w, h) = worker_and_handoff(policy("", "", "", "", 64), 64);
    w.wait_for_writeback(true);
    let s = conn::NS;
    let t0 = 1_800_000_000 * s;
    let out = outbound("198.51.100.7", 53, 17);
    let back = v4("198.51.100.7", 53, "10.0.1.5", 40000, 17);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(Ordering::Acquire) {
                export(&h);
                std::thread::yield_now();
            }
        });
        w.process(&[
            seen(Out, out, t0 + s),
            seen(Out, out, t0 + 50 * s),
            // 199 s after the connection was opened, 149 s after the
            // reused packet.
            seen(In, back, t0 + 200 * s),
        ]);
        stop.store(true, Ordering::Release);
    });
    assert_eq!(w.verdicts(), &[Accept, Accept, Accept]);
    assert_eq!(w.counters.late_writebacks, 0);
}

#[test]
fn a_reject_is_never_reused() {
    let mut w = worker(policy("", "", "", "", 64));
    let s = conn::NS;
    let t0 = 1_800_000_000 * s;
    let back = v4("198.51.100.7", 53, "10.0.1.5", 40000, 17);
    assert_eq!(
        through(&mut w, In, back, t0),
        Reject,
        "default ingress drop"
    );
    assert_eq!(through(&mut w, In, back, t0 + s), Reject);
    // The ENI opens the connection; the same inbound flow is now let in.
    assert_eq!(
        through(&mut w, Out, outbound("198.51.100.7", 53, 17), t0 + 2 * s),
        Accept
    );
    assert_eq!(through(&mut w, In, back, t0 + 3 * s), Accept);
}

#[test]
fn a_tracked_flow_with_a_full_connection_table_is_judged_every_packet() {
    // Room for 16 connections; 16 others fill it first.
    let mut w = worker(policy(
        &rule("egress", "accept", 1, "all", "-1/-1", "0.0.0.0/0"),
        "",
        "",
        "",
        16,
    ));
    let s = conn::NS;
    let t0 = 1_800_000_000 * s;
    for i in 0..16u16 {
        let m = v4("10.0.1.5", 1000 + i, "198.51.100.7", 80, 6);
        assert_eq!(through(&mut w, Out, m, t0), Accept);
    }
    let full = w.policy().counters.conn_table_full;
    let m = v4("10.0.1.5", 2000, "198.51.100.7", 80, 6);
    assert_eq!(through(&mut w, Out, m, t0), Accept);
    assert_eq!(through(&mut w, Out, m, t0 + s), Accept);
    assert_eq!(
        w.policy().counters.conn_table_full,
        full + 2,
        "no connection to reuse: each packet tries again"
    );
}
