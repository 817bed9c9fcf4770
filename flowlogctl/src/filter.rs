//! Which records a query keeps: a time range and conditions on fields,
//! all of which must hold (values within one condition are alternatives).

use crate::model::{Field, FieldSet, Row, V};
use exporter::config::Cidr;
use std::collections::HashMap;
use std::net::IpAddr;

/// An inclusive port range.
pub type PortSpan = (u16, u16);

/// Conditions on records. Empty lists mean "any".
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Keep records whose `start` is at or after this Unix second.
    pub from: Option<u64>,
    /// Keep records whose `start` is before this Unix second.
    pub to: Option<u64>,
    /// `srcaddr` in one of these networks.
    pub src: Vec<Cidr>,
    /// `dstaddr` in one of these networks.
    pub dst: Vec<Cidr>,
    /// `srcaddr` or `dstaddr` in one of these networks.
    pub addr: Vec<Cidr>,
    /// The peer (see [`Field::Peer`]) in one of these networks.
    pub peer: Vec<Cidr>,
    /// `srcport` in one of these ranges.
    pub srcport: Vec<PortSpan>,
    /// `dstport` in one of these ranges.
    pub dstport: Vec<PortSpan>,
    /// `srcport` or `dstport` in one of these ranges.
    pub port: Vec<PortSpan>,
    /// `protocol` one of these numbers.
    pub protocol: Vec<u8>,
    /// Exact string values: `direction`, `action`, `log-status` and the ids.
    /// `-` stands for null (a detached ENI's `vm-id`, say).
    pub equals: Vec<(Field, Vec<String>)>,
    /// `tcp-flags` has every one of these bits.
    pub tcp_flags: Option<u8>,
    /// `bytes` at least this.
    pub min_bytes: Option<u64>,
    /// `packets` at least this.
    pub min_packets: Option<u64>,
    /// Keep only records whose `dstaddr` lies outside every CIDR of the
    /// record's VPC (by `vpc-id`; a VPC with no CIDR has everything
    /// outside).
    pub outside_vpc: Option<HashMap<String, Vec<Cidr>>>,
}

impl Filter {
    /// Adds an exact-value condition on a string field.
    pub fn equals(&mut self, f: Field, values: Vec<String>) {
        if !values.is_empty() {
            self.equals.push((f, values));
        }
    }

    /// The fields the conditions read.
    pub fn needs(&self) -> FieldSet {
        let mut s = FieldSet::default();
        if self.from.is_some() || self.to.is_some() {
            s.add(Field::Start);
        }
        let pairs: [(bool, &[Field]); 11] = [
            (!self.src.is_empty(), &[Field::SrcAddr]),
            (!self.dst.is_empty(), &[Field::DstAddr]),
            (!self.addr.is_empty(), &[Field::SrcAddr, Field::DstAddr]),
            (!self.peer.is_empty(), &[Field::Peer]),
            (!self.srcport.is_empty(), &[Field::SrcPort]),
            (!self.dstport.is_empty(), &[Field::DstPort]),
            (!self.port.is_empty(), &[Field::SrcPort, Field::DstPort]),
            (!self.protocol.is_empty(), &[Field::Protocol]),
            (self.tcp_flags.is_some(), &[Field::TcpFlags]),
            (
                self.min_bytes.is_some() || self.min_packets.is_some(),
                &[Field::Bytes, Field::Packets],
            ),
            (self.outside_vpc.is_some(), &[Field::DstAddr, Field::VpcId]),
        ];
        for (on, fields) in pairs {
            if on {
                fields.iter().for_each(|f| s.add(*f));
            }
        }
        for (f, _) in &self.equals {
            s.add(*f);
        }
        s
    }

    /// Whether the record is kept.
    #[inline]
    pub fn matches(&self, r: &Row<'_>) -> bool {
        if self.from.is_some() || self.to.is_some() {
            let Some(start) = r.get(Field::Start).num() else {
                return false;
            };
            if self.from.is_some_and(|f| start < f) || self.to.is_some_and(|t| start >= t) {
                return false;
            }
        }
        for (f, values) in &self.equals {
            let ok = match r.get(*f) {
                V::Null => values.iter().any(|v| v == "-"),
                V::Str(s) => values.iter().any(|v| v.as_bytes() == s),
                other => {
                    let n = other.num();
                    values.iter().any(|v| v.parse::<u64>().ok() == n)
                }
            };
            if !ok {
                return false;
            }
        }
        if !self.protocol.is_empty() {
            match r.get(Field::Protocol).num() {
                Some(p) if self.protocol.iter().any(|x| u64::from(*x) == p) => {}
                _ => return false,
            }
        }
        let port_in = |f: Field, spans: &[PortSpan]| -> bool {
            r.get(f).num().is_some_and(|p| {
                spans
                    .iter()
                    .any(|(a, b)| u64::from(*a) <= p && p <= u64::from(*b))
            })
        };
        if !self.srcport.is_empty() && !port_in(Field::SrcPort, &self.srcport) {
            return false;
        }
        if !self.dstport.is_empty() && !port_in(Field::DstPort, &self.dstport) {
            return false;
        }
        if !self.port.is_empty()
            && !port_in(Field::SrcPort, &self.port)
            && !port_in(Field::DstPort, &self.port)
        {
            return false;
        }
        if let Some(mask) = self.tcp_flags {
            match r.get(Field::TcpFlags).num() {
                Some(f) if f & u64::from(mask) == u64::from(mask) => {}
                _ => return false,
            }
        }
        if self.min_bytes.is_some_and(|m| r.bytes() < m)
            || self.min_packets.is_some_and(|m| r.packets() < m)
        {
            return false;
        }
        let addr_in = |f: Field, nets: &[Cidr]| -> bool {
            addr_of(r.get(f)).is_some_and(|a| nets.iter().any(|n| n.contains(a)))
        };
        if !self.src.is_empty() && !addr_in(Field::SrcAddr, &self.src) {
            return false;
        }
        if !self.dst.is_empty() && !addr_in(Field::DstAddr, &self.dst) {
            return false;
        }
        if !self.addr.is_empty()
            && !addr_in(Field::SrcAddr, &self.addr)
            && !addr_in(Field::DstAddr, &self.addr)
        {
            return false;
        }
        if !self.peer.is_empty() && !addr_in(Field::Peer, &self.peer) {
            return false;
        }
        if let Some(vpcs) = &self.outside_vpc {
            let Some(dst) = addr_of(r.get(Field::DstAddr)) else {
                return false;
            };
            let inside = r
                .get(Field::VpcId)
                .str()
                .and_then(|v| vpcs.get(v))
                .is_some_and(|nets| nets.iter().any(|n| n.contains(dst)));
            if inside {
                return false;
            }
        }
        true
    }
}

/// The address in a value, if it holds one.
#[inline]
pub fn addr_of(v: V<'_>) -> Option<IpAddr> {
    match v {
        V::Str(s) => std::str::from_utf8(s).ok()?.parse().ok(),
        _ => None,
    }
}

/// Parses `10.0.0.0/8,fd00::/8,192.0.2.1` (a bare address is a host).
pub fn parse_cidrs(s: &str) -> Result<Vec<Cidr>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<Cidr>().map_err(|e| {
                format!(
                    "{p:?} is not an address or network: {e}; write e.g. 10.0.0.0/8 or fd00::/8"
                )
            })
        })
        .collect()
}

/// Parses `80`, `80,443`, `1024-65535` (or `1024/65535`).
pub fn parse_ports(s: &str) -> Result<Vec<PortSpan>, String> {
    let help = "write a port (443), a range (1024-65535) or a list (80,443)";
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (a, b) = p
                .split_once('-')
                .or_else(|| p.split_once('/'))
                .unwrap_or((p, p));
            let a: u16 = a
                .trim()
                .parse()
                .map_err(|_| format!("{p:?} is not a port; {help}"))?;
            let b: u16 = b
                .trim()
                .parse()
                .map_err(|_| format!("{p:?} is not a port; {help}"))?;
            if a > b {
                return Err(format!("{p:?}: {a} is above {b}; write {b}-{a}"));
            }
            Ok((a, b))
        })
        .collect()
}

/// The IANA numbers of the protocols a user is likely to name.
pub const PROTOCOLS: [(&str, u8); 12] = [
    ("icmp", 1),
    ("igmp", 2),
    ("ipip", 4),
    ("tcp", 6),
    ("udp", 17),
    ("ipv6", 41),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("icmpv6", 58),
    ("ospf", 89),
    ("sctp", 132),
];

/// The name of protocol number `n`, if it has one here.
pub fn protocol_name(n: u64) -> Option<&'static str> {
    PROTOCOLS
        .iter()
        .find(|(_, p)| u64::from(*p) == n)
        .map(|(name, _)| *name)
}

/// Parses `tcp`, `6`, `tcp,udp`.
pub fn parse_protocols(s: &str) -> Result<Vec<u8>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let l = p.to_ascii_lowercase();
            let l = if l == "ipv6-icmp" {
                "icmpv6".to_owned()
            } else {
                l
            };
            if let Some((_, n)) = PROTOCOLS.iter().find(|(name, _)| *name == l) {
                return Ok(*n);
            }
            l.parse::<u8>().map_err(|_| {
                let names: Vec<&str> = PROTOCOLS.iter().map(|(n, _)| *n).collect();
                format!(
                    "{p:?} is not a protocol; write a number 0-255 or one of {}",
                    names.join(", ")
                )
            })
        })
        .collect()
}

/// Parses `SYN`, `SYN,ACK`, `0x12`, `18` into a flags mask.
pub fn parse_tcp_flags(s: &str) -> Result<u8, String> {
    let t = s.trim();
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return u8::from_str_radix(h, 16).map_err(|_| format!("{s:?} is not a flags byte"));
    }
    if let Ok(n) = t.parse::<u8>() {
        return Ok(n);
    }
    let mut m = 0u8;
    for name in t.split(',').map(str::trim) {
        m |= match name.to_ascii_uppercase().as_str() {
            "FIN" => 0x01,
            "SYN" => 0x02,
            "RST" => 0x04,
            "PSH" => 0x08,
            "ACK" => 0x10,
            "URG" => 0x20,
            "ECE" => 0x40,
            "CWR" => 0x80,
            _ => {
                return Err(format!(
                    "{name:?} is not a TCP flag; write FIN, SYN, RST, PSH, ACK, URG, ECE, CWR, or a number"
                ))
            }
        };
    }
    Ok(m)
}

/// Normalises the values of an enumerated field (`direction`, `action`,
/// `log-status`) to the record's spelling, refusing others.
pub fn parse_enum(field: Field, s: &str) -> Result<Vec<String>, String> {
    let allowed: &[&str] = match field {
        Field::Direction => &["in", "out"],
        Field::Action => &["ACCEPT", "REJECT"],
        Field::LogStatus => &["OK", "NODATA", "SKIPDATA"],
        _ => &[],
    };
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            allowed
                .iter()
                .find(|a| a.eq_ignore_ascii_case(p))
                .map(|a| (*a).to_owned())
                .ok_or_else(|| format!("{field} {p:?} is not one of {}", allowed.join(", ")))
        })
        .collect()
}

/// Splits a comma-separated list of ids.
pub fn parse_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{parse_line, Parsed};

    fn row(line: &str) -> Row<'_> {
        let mut r = Row::default();
        match parse_line(line.as_bytes(), &mut r) {
            Parsed::Fast => r,
            _ => panic!("{line}"),
        }
    }

    const L: &str = r#"{"vpc-id":"vpc-1","vm-id":null,"eni-id":"eni-1","srcaddr":"10.0.1.5","dstaddr":"8.8.8.8","srcport":40000,"dstport":53,"protocol":17,"direction":"out","packets":2,"bytes":150,"start":100,"tcp-flags":0,"log-status":"OK","action":"ACCEPT"}"#;

    #[test]
    fn conditions() {
        let r = row(L);
        let yes = |f: Filter| assert!(f.matches(&r), "{f:?}");
        let no = |f: Filter| assert!(!f.matches(&r), "{f:?}");
        yes(Filter::default());
        yes(Filter {
            from: Some(100),
            to: Some(101),
            ..Default::default()
        });
        no(Filter {
            from: Some(101),
            ..Default::default()
        });
        no(Filter {
            to: Some(100),
            ..Default::default()
        });
        yes(Filter {
            src: parse_cidrs("10.0.0.0/8").unwrap(),
            ..Default::default()
        });
        no(Filter {
            dst: parse_cidrs("10.0.0.0/8").unwrap(),
            ..Default::default()
        });
        yes(Filter {
            addr: parse_cidrs("8.8.8.8").unwrap(),
            ..Default::default()
        });
        yes(Filter {
            peer: parse_cidrs("8.0.0.0/8").unwrap(),
            ..Default::default()
        });
        no(Filter {
            peer: parse_cidrs("10.0.0.0/8").unwrap(),
            ..Default::default()
        });
        yes(Filter {
            dstport: parse_ports("50-60").unwrap(),
            ..Default::default()
        });
        yes(Filter {
            port: parse_ports("40000").unwrap(),
            ..Default::default()
        });
        no(Filter {
            srcport: parse_ports("53").unwrap(),
            ..Default::default()
        });
        yes(Filter {
            protocol: parse_protocols("udp").unwrap(),
            ..Default::default()
        });
        no(Filter {
            protocol: parse_protocols("tcp,1").unwrap(),
            ..Default::default()
        });
        let mut f = Filter::default();
        f.equals(Field::VmId, vec!["-".into()]);
        f.equals(Field::Action, parse_enum(Field::Action, "accept").unwrap());
        yes(f);
        let mut f = Filter::default();
        f.equals(Field::EniId, vec!["eni-2".into()]);
        no(f);
        let mut vpcs = HashMap::new();
        vpcs.insert("vpc-1".to_owned(), parse_cidrs("10.0.0.0/16").unwrap());
        yes(Filter {
            outside_vpc: Some(vpcs.clone()),
            ..Default::default()
        });
        vpcs.insert("vpc-1".to_owned(), parse_cidrs("8.0.0.0/8").unwrap());
        no(Filter {
            outside_vpc: Some(vpcs),
            ..Default::default()
        });
        no(Filter {
            min_bytes: Some(151),
            ..Default::default()
        });
        no(Filter {
            tcp_flags: Some(2),
            ..Default::default()
        });
    }

    #[test]
    fn parsing() {
        assert_eq!(
            parse_ports("80, 1000-2000").unwrap(),
            vec![(80, 80), (1000, 2000)]
        );
        assert!(parse_ports("2000-1000").unwrap_err().contains("1000-2000"));
        assert_eq!(parse_protocols("TCP,17,icmpv6").unwrap(), vec![6, 17, 58]);
        assert!(parse_protocols("tpc").unwrap_err().contains("tcp"));
        assert_eq!(parse_tcp_flags("SYN,ACK").unwrap(), 0x12);
        assert_eq!(parse_tcp_flags("0x12").unwrap(), 0x12);
        assert!(parse_enum(Field::Direction, "sideways").is_err());
        assert!(parse_cidrs("10.0.0.0/33").is_err());
    }
}
