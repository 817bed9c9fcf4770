//! The ready-made questions: who talks most, what is rejected (and by
//! which rule), what leaves the VPC, where records are missing.

use crate::explain::{explain, Flow};
use crate::filter::Filter;
use crate::model::Field;
use crate::query::{Answer, Metric, Order, Query};
use anyhow::{bail, Result};
use exporter::config::{Cidr, Config};
use serde_json::Value;
use std::collections::HashMap;

/// Top talkers: OK records by source and destination, largest bytes first.
pub fn top_talkers(mut filter: Filter) -> Query {
    filter.equals(Field::LogStatus, vec!["OK".into()]);
    Query {
        filter,
        group_by: vec![Field::SrcAddr, Field::DstAddr],
        top: Some(10),
        order: Order::Desc(Metric::Bytes),
    }
}

/// Rejected traffic by ENI, direction, peer, protocol and destination port,
/// most packets first.
pub fn rejected(mut filter: Filter) -> Query {
    filter.equals(Field::Action, vec!["REJECT".into()]);
    Query {
        filter,
        group_by: vec![
            Field::EniId,
            Field::Direction,
            Field::Peer,
            Field::Protocol,
            Field::DstPort,
        ],
        top: Some(20),
        order: Order::Desc(Metric::Packets),
    }
}

/// The networks of each VPC of a configuration: its vSwitches' `cidr` and
/// `ipv6_cidr` (a VPC named only by an ENI has none).
pub fn vpc_networks(c: &Config) -> HashMap<String, Vec<Cidr>> {
    let mut m: HashMap<String, Vec<Cidr>> = HashMap::new();
    for e in &c.enis {
        m.entry(e.vpc_id.clone()).or_default();
    }
    for v in &c.vswitches {
        let nets = m.entry(v.vpc_id.clone()).or_default();
        nets.extend(v.cidr.iter().chain(v.ipv6_cidr.iter()).copied());
    }
    m
}

/// Traffic leaving the VPC: accepted `out` records whose destination lies
/// outside every network of the record's VPC, by ENI and destination,
/// largest bytes first.
pub fn egress(mut filter: Filter, c: &Config) -> Query {
    filter.equals(Field::Direction, vec!["out".into()]);
    filter.equals(Field::Action, vec!["ACCEPT".into()]);
    filter.equals(Field::LogStatus, vec!["OK".into()]);
    filter.outside_vpc = Some(vpc_networks(c));
    Query {
        filter,
        group_by: vec![Field::EniId, Field::DstAddr],
        top: Some(20),
        order: Order::Desc(Metric::Bytes),
    }
}

/// VPCs of the configuration without any network (everything they send
/// counts as leaving): worth a warning.
pub fn vpcs_without_networks(c: &Config) -> Vec<String> {
    let mut v: Vec<String> = vpc_networks(c)
        .into_iter()
        .filter(|(_, n)| n.is_empty())
        .map(|(k, _)| k)
        .collect();
    v.sort();
    v
}

/// NODATA and SKIPDATA records by ENI, window and status, in time order.
pub fn health(mut filter: Filter) -> Query {
    filter.equals(Field::LogStatus, vec!["NODATA".into(), "SKIPDATA".into()]);
    Query {
        filter,
        group_by: vec![Field::EniId, Field::WindowStart, Field::LogStatus],
        top: None,
        order: Order::Key,
    }
}

/// Bytes per window and ENI (the report's line chart), in time order.
pub fn bytes_over_time(mut filter: Filter) -> Query {
    filter.equals(Field::LogStatus, vec!["OK".into()]);
    Query {
        filter,
        group_by: vec![Field::WindowStart, Field::EniId],
        top: None,
        order: Order::Key,
    }
}

/// The explanation of each group of a rejected-traffic answer, by the
/// configuration's rules. The groups must carry `eni-id`, `direction`,
/// the peer (`peer`, or `srcaddr` and `dstaddr`), `protocol` and `dstport`.
pub fn explain_groups(a: &Answer, c: &Config) -> Result<Vec<String>> {
    let pos = |f: Field| a.group_by.iter().position(|g| *g == f);
    let (Some(eni), Some(dir), Some(proto), Some(port)) = (
        pos(Field::EniId),
        pos(Field::Direction),
        pos(Field::Protocol),
        pos(Field::DstPort),
    ) else {
        bail!(crate::UsageError(
            "--explain needs eni-id, direction, protocol, dstport and the peer (peer, or srcaddr \
             and dstaddr) in --group-by"
                .into()
        ));
    };
    let peer = pos(Field::Peer);
    let (src, dst) = (pos(Field::SrcAddr), pos(Field::DstAddr));
    if peer.is_none() && (src.is_none() || dst.is_none()) {
        bail!(crate::UsageError(
            "--explain needs the peer in --group-by: peer, or srcaddr and dstaddr".into()
        ));
    }
    Ok(a.groups
        .iter()
        .map(|g| {
            let s = |i: usize| g.key[i].as_str().unwrap_or_default();
            let inbound = match s(dir) {
                "in" => true,
                "out" => false,
                _ => return "not a flow (status record)".to_owned(),
            };
            let peer_i = peer.unwrap_or_else(|| {
                if inbound {
                    src.unwrap_or(0)
                } else {
                    dst.unwrap_or(0)
                }
            });
            let (Ok(peer), Some(protocol), Some(dstport)) = (
                s(peer_i).parse(),
                g.key[proto].as_u64().and_then(|p| u8::try_from(p).ok()),
                g.key[port].as_u64().and_then(|p| u16::try_from(p).ok()),
            ) else {
                return "not a flow (no address, protocol or port)".to_owned();
            };
            let f = Flow {
                eni_id: s(eni),
                inbound,
                peer,
                protocol,
                dstport,
            };
            explain(c, &f).text
        })
        .collect())
}

/// The explanations as JSON values (for a table column).
pub fn explain_column(a: &Answer, c: &Config) -> Result<Vec<Value>> {
    Ok(explain_groups(a, c)?
        .into_iter()
        .map(Value::String)
        .collect())
}
