//! Which rule of the current configuration rejects a flow, judged by the
//! rules alone (CONFIG.md "Security groups", "Network ACLs", "Order of
//! evaluation").
//!
//! Connection state only ever lets packets through (a tracked connection
//! skips the security group's rules), so a REJECT is always the work of a
//! rule or a default: the network ACL's first matching `drop` rule, or the
//! security-group rule that wins (highest priority, `drop` before `accept`
//! at equal priority), or the security group's ingress default. Inbound,
//! the network ACL is evaluated first; outbound, the security group. When
//! both drop, the first is named and the other follows as "also …".
//!
//! This is a plain evaluator over the configuration's own types, written
//! like the reference model the datapath's rule compiler is tested
//! against (`vswitch-plugin/src/policy/rules.rs`, `reference`), and it
//! keeps what that one drops: which group and which rule.

use exporter::config::{
    Config, IpProtocol, NetworkAclRule, Policy, RuleDirection, SecurityGroupRule,
};
use std::net::IpAddr;

/// A flow as the explanation needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow<'a> {
    /// The ENI that logged it.
    pub eni_id: &'a str,
    /// `true` for `in` (delivered to the ENI), `false` for `out`.
    pub inbound: bool,
    /// The address on the other side (the source of `in`, the destination
    /// of `out`).
    pub peer: IpAddr,
    /// IANA protocol number.
    pub protocol: u8,
    /// Destination port (`type*256+code` for ICMP; ignored by rules then).
    pub dstport: u16,
}

/// The verdict of the rules alone, with the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// Whether the rules reject the flow.
    pub rejected: bool,
    /// What decided: `sg-1 rule 3 (ingress drop tcp 22/22 from
    /// 0.0.0.0/0, priority 1)`, `nacl-1 ingress rule 1 (drop tcp 23/23
    /// from 0.0.0.0/0)`, `no security-group rule matches: ingress default
    /// drop`, or why nothing rejects it.
    pub text: String,
}

fn proto_name(p: IpProtocol) -> &'static str {
    match p {
        IpProtocol::Tcp => "tcp",
        IpProtocol::Udp => "udp",
        IpProtocol::Icmp => "icmp",
        IpProtocol::Icmpv6 => "icmpv6",
        IpProtocol::Gre => "gre",
        IpProtocol::All => "all",
    }
}

fn rule_matches(
    proto: IpProtocol,
    ports: exporter::config::PortRange,
    cidr: exporter::config::Cidr,
    f: &Flow<'_>,
) -> bool {
    proto.matches(f.protocol)
        && (!proto.has_ports() || ports.contains(f.dstport))
        && cidr.contains(f.peer)
}

/// The network ACL's verdict: `Some(reason)` when its first matching rule
/// drops the flow.
fn nacl_drop(c: &Config, vswitch_id: &str, f: &Flow<'_>) -> Option<String> {
    let vsw = c.vswitch(vswitch_id)?;
    let acl = c.network_acl(vsw.network_acl_id.as_deref()?)?;
    if vsw.contains(f.peer) {
        return None; // the ACL guards the vSwitch's boundary only
    }
    let (list, dir, word): (&[NetworkAclRule], _, _) = if f.inbound {
        (&acl.ingress, "ingress", "from")
    } else {
        (&acl.egress, "egress", "to")
    };
    let (i, r) = list
        .iter()
        .enumerate()
        .find(|(_, r)| rule_matches(r.ip_protocol, r.port_range, r.cidr, f))?;
    (r.policy == Policy::Drop).then(|| {
        format!(
            "{} {dir} rule {} (drop {} {} {word} {})",
            acl.network_acl_id,
            i + 1,
            proto_name(r.ip_protocol),
            r.port_range,
            r.cidr
        )
    })
}

/// The security groups' verdict: `Some(reason)` when they drop the flow.
fn sg_drop(c: &Config, sg_ids: &[String], f: &Flow<'_>) -> Option<String> {
    if sg_ids.is_empty() {
        return None; // no security group: everything passes
    }
    let want = if f.inbound {
        RuleDirection::Ingress
    } else {
        RuleDirection::Egress
    };
    // (priority, drop first, order given, group, 1-based index in group, rule)
    let mut best: Option<(u8, bool, usize, &str, usize, &SecurityGroupRule)> = None;
    let mut order = 0;
    for id in sg_ids {
        let Some(g) = c.security_group(id) else {
            continue;
        };
        for (i, r) in g.rules.iter().enumerate() {
            order += 1;
            if r.direction != want || !rule_matches(r.ip_protocol, r.port_range, r.cidr, f) {
                continue;
            }
            let cand = (
                r.priority,
                r.policy != Policy::Drop,
                order,
                id.as_str(),
                i + 1,
                r,
            );
            if best.is_none_or(|b| (cand.0, cand.1, cand.2) < (b.0, b.1, b.2)) {
                best = Some(cand);
            }
        }
    }
    match best {
        Some((_, _, _, group, idx, r)) if r.policy == Policy::Drop => Some(format!(
            "{group} rule {idx} ({} drop {} {} {} {}, priority {})",
            if f.inbound { "ingress" } else { "egress" },
            proto_name(r.ip_protocol),
            r.port_range,
            if f.inbound { "from" } else { "to" },
            r.cidr,
            r.priority
        )),
        Some(_) => None,
        None if f.inbound => {
            Some("no security-group rule matches: ingress default drop".to_owned())
        }
        None => None,
    }
}

/// Explains a flow by the configuration's rules.
pub fn explain(c: &Config, f: &Flow<'_>) -> Explanation {
    let Some(eni) = c.enis.iter().find(|e| e.eni_id == f.eni_id) else {
        return Explanation {
            rejected: false,
            text: format!("{} is not in the configuration", f.eni_id),
        };
    };
    let nacl = nacl_drop(c, &eni.vswitch_id, f);
    let sg = sg_drop(c, &eni.security_group_ids, f);
    let (first, second) = if f.inbound { (nacl, sg) } else { (sg, nacl) };
    match (first, second) {
        (Some(a), Some(b)) => Explanation {
            rejected: true,
            text: format!("{a}; also {b}"),
        },
        (Some(a), None) | (None, Some(a)) => Explanation {
            rejected: true,
            text: a,
        },
        (None, None) => Explanation {
            rejected: false,
            text: "the current rules accept it (the configuration changed since, or the host \
                   vSwitch decided)"
                .to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        let text = r#"{"host":"h","enis":[
          {"eni_id":"eni-1","mac":"02:00:00:00:00:01","ips":["10.0.1.5"],"instance_type":"ecs.g7.large",
           "vswitch_id":"vsw-1","vpc_id":"vpc-1","account_id":"1","security_group_ids":["sg-a","sg-b"], "vm_id": null, "port": null},
          {"eni_id":"eni-2","mac":"02:00:00:00:00:02","ips":["10.0.2.5"],"instance_type":"ecs.g7.large",
           "vswitch_id":"vsw-2","vpc_id":"vpc-1","account_id":"1", "vm_id": null, "port": null}],
          "vswitches":[{"vswitch_id":"vsw-1","vpc_id":"vpc-1","cidr":"10.0.1.0/24","network_acl_id":"nacl-1"},
                       {"vswitch_id":"vsw-2","vpc_id":"vpc-1","cidr":"10.0.2.0/24","network_acl_id":"nacl-1"}],
          "security_groups":[
            {"security_group_id":"sg-a","rules":[
              {"direction":"ingress","policy":"accept","priority":5,"ip_protocol":"tcp","port_range":"22/22","cidr":"0.0.0.0/0"},
              {"direction":"egress","policy":"drop","priority":1,"ip_protocol":"udp","port_range":"53/53","cidr":"9.9.9.9/32"},
              {"direction":"ingress","policy":"accept","priority":1,"ip_protocol":"tcp","port_range":"443/443","cidr":"0.0.0.0/0"}]},
            {"security_group_id":"sg-b","rules":[
              {"direction":"ingress","policy":"accept","priority":1,"ip_protocol":"tcp","port_range":"22/22","cidr":"10.0.0.0/8"},
              {"direction":"ingress","policy":"drop","priority":5,"ip_protocol":"tcp","port_range":"22/22","cidr":"0.0.0.0/0"}]}],
          "network_acls":[{"network_acl_id":"nacl-1",
            "ingress":[{"policy":"accept","ip_protocol":"tcp","port_range":"23/23","cidr":"10.0.0.0/8"},
                       {"policy":"drop","ip_protocol":"tcp","port_range":"23/23","cidr":"0.0.0.0/0"}],
            "egress":[{"policy":"drop","ip_protocol":"all","cidr":"203.0.113.0/24"}]}],
          "flow_logs":[]}"#;
        exporter::config::from_json(text, "test").unwrap()
    }

    fn flow(eni: &str, inbound: bool, peer: &str, protocol: u8, dstport: u16) -> String {
        let c = cfg();
        let f = Flow {
            eni_id: eni,
            inbound,
            peer: peer.parse().unwrap(),
            protocol,
            dstport,
        };
        explain(&c, &f).text
    }

    #[test]
    fn names_the_rule() {
        // Equal priority 5: sg-b's drop beats sg-a's accept.
        assert_eq!(
            flow("eni-1", true, "198.51.100.1", 6, 22),
            "sg-b rule 2 (ingress drop tcp 22/22 from 0.0.0.0/0, priority 5)"
        );
        // Priority 1 accept from 10/8 wins.
        assert!(flow("eni-1", true, "10.9.0.1", 6, 22).starts_with("the current rules accept"));
        assert_eq!(
            flow("eni-1", true, "198.51.100.1", 6, 80),
            "no security-group rule matches: ingress default drop"
        );
        assert_eq!(
            flow("eni-1", true, "198.51.100.1", 6, 23),
            "nacl-1 ingress rule 2 (drop tcp 23/23 from 0.0.0.0/0); also no security-group rule \
             matches: ingress default drop"
        );
        // First match: rule 1 accepts 10/8 on 23; the SG default drops.
        assert_eq!(
            flow("eni-1", true, "10.9.0.1", 6, 23),
            "no security-group rule matches: ingress default drop"
        );
        // Peers in the ENI's own vSwitch are not filtered by the ACL.
        assert_eq!(
            flow("eni-1", true, "10.0.1.9", 6, 23),
            "no security-group rule matches: ingress default drop"
        );
        // eni-2 has no security group: only the ACL can reject.
        assert_eq!(
            flow("eni-2", true, "198.51.100.1", 6, 23),
            "nacl-1 ingress rule 2 (drop tcp 23/23 from 0.0.0.0/0)"
        );
        assert_eq!(
            flow("eni-1", false, "9.9.9.9", 17, 53),
            "sg-a rule 2 (egress drop udp 53/53 to 9.9.9.9/32, priority 1)"
        );
        assert_eq!(
            flow("eni-2", false, "203.0.113.7", 1, 2048),
            "nacl-1 egress rule 1 (drop all -1/-1 to 203.0.113.0/24)"
        );
        assert!(flow("eni-1", false, "8.8.8.8", 6, 80).starts_with("the current rules accept"));
        assert_eq!(
            flow("eni-9", true, "8.8.8.8", 6, 80),
            "eni-9 is not in the configuration"
        );
    }
}
