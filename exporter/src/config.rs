//! The host configuration, exactly as CONFIG.md specifies it.
//!
//! Reading a configuration takes two steps:
//!
//! 1. serde reads the JSON into private mirror structs (the `raw` module below)
//!    with `deny_unknown_fields` everywhere and the contract's defaults. A
//!    syntax error, a wrong JSON type, an unknown key or a missing required key
//!    stops here, with the file name, line and column.
//! 2. One validation step turns the mirrors into the public, typed structs of
//!    this module (MACs, CIDRs, port ranges parsed) and checks every rule of
//!    the contract (ids, references, ranges, quota, instance families, sinks).
//!    It does not stop at the first problem: [`ConfigError::Invalid`] lists
//!    every one, each with its path (`flow_logs[2].resource_id: no VPC "vpc-9"`).
//!    A configuration with any problem is refused whole.
//!
//! The mirrors keep text fields as text so that step 2, not serde, judges
//! them: one bad MAC does not hide a bad CIDR three objects further on.
//! Everything here runs off the datapath; plain `Vec`s and linear scans are
//! fine. The datapath gets its precomputed views ([`Config::coverage`],
//! [`Config::eni_index`]) from a validated [`Config`].

use crate::record::Action;
use crate::store::{file_part_problem, folder_name_problem};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Instance families whose ENIs do not support flow logs (CONFIG.md, "Flow
/// logs"). The family of an instance type is the type up to its second dot.
pub const UNSUPPORTED_FAMILIES: &[&str] = &[
    "ecs.c1", "ecs.c2", "ecs.c4", "ecs.ce4", "ecs.cm4", "ecs.d1", "ecs.e3", "ecs.e4", "ecs.ga1",
    "ecs.gn4", "ecs.gn5", "ecs.i1", "ecs.m1", "ecs.m2", "ecs.mn4", "ecs.n1", "ecs.n2", "ecs.n4",
    "ecs.s1", "ecs.s2", "ecs.s3", "ecs.se1", "ecs.sn1", "ecs.sn2", "ecs.t1", "ecs.xn4",
];

/// The aggregation intervals a flow log may have, in seconds.
pub const AGGREGATION_INTERVALS: [u32; 3] = [60, 300, 600];

/// The sink id of the local log store; always defined, never declared.
pub const LOCAL_SINK: &str = "local";

/// The `type`s a declared sink may have.
pub const SINK_TYPES: &[&str] = &["ipfix", "clickhouse"];

/// Default of `aggregation_interval`, in seconds.
pub const DEFAULT_AGGREGATION_INTERVAL: u32 = 600;

/// Default of `quota.flow_logs_per_account`.
pub const DEFAULT_FLOW_LOGS_PER_ACCOUNT: u32 = 10;

/// Default of a security-group rule's `priority`.
pub const DEFAULT_PRIORITY: u8 = 1;

/// The family of an instance type: the type up to its second dot
/// (`ecs.t1.small` is `ecs.t1`; a type with fewer than two dots is its own
/// family).
pub fn instance_family(instance_type: &str) -> &str {
    match instance_type.match_indices('.').nth(1) {
        Some((i, _)) => &instance_type[..i],
        None => instance_type,
    }
}

// ---------------------------------------------------------------------------
// Errors

/// One problem found by validation: where, and what is wrong (with the fix
/// where one is obvious).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Path of the key in the document, e.g. `flow_logs[2].resource_id`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a configuration was refused. Nothing of a refused configuration is
/// applied.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{origin}: cannot read the configuration: {source}")]
    Read {
        /// The file.
        origin: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Not JSON, or JSON of the wrong shape: a wrong type, an unknown key, a
    /// missing required key, an enum value the contract does not spell.
    #[error("{origin}:{line}:{column}: {message}")]
    Json {
        /// The file (or other origin) of the text.
        origin: String,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// What serde found.
        message: String,
    },
    /// Well-formed, but breaks the contract; every problem found is listed.
    #[error("{}", format_problems(origin, problems))]
    Invalid {
        /// The file (or other origin) of the text.
        origin: String,
        /// Every problem, in document order per check.
        problems: Vec<Problem>,
    },
}

fn format_problems(origin: &str, problems: &[Problem]) -> String {
    let n = problems.len();
    let mut s = format!(
        "{origin}: {n} problem{}, the configuration is refused:",
        if n == 1 { "" } else { "s" }
    );
    for p in problems {
        s.push('\n');
        s.push_str(origin);
        s.push_str(": ");
        s.push_str(&p.to_string());
    }
    s
}

// ---------------------------------------------------------------------------
// Small parsed types

/// An Ethernet address. Written `02:00:00:00:00:01` (`-` is accepted as the
/// separator on input, hex digits in either case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Whether this is a group (multicast or broadcast) address.
    pub fn is_multicast(self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!("{s:?} is not a MAC address; write six hex bytes, e.g. \"02:00:00:00:00:01\"")
        };
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut out = [0u8; 6];
        let mut n = 0;
        for part in s.split(sep) {
            if n == 6 || part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            out[n] = u8::from_str_radix(part, 16).map_err(|_| bad())?;
            n += 1;
        }
        if n != 6 {
            return Err(bad());
        }
        Ok(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// An IPv4 or IPv6 network: an address and a prefix length. Host bits given
/// on input are cleared (`10.0.1.5/24` is `10.0.1.0/24`); a bare address is
/// a host route (`/32` or `/128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The network `addr/prefix` with host bits cleared, or `None` when the
    /// prefix is longer than the address.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<Cidr> {
        let network = match addr {
            IpAddr::V4(a) if prefix <= 32 => {
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(prefix)))
            }
            IpAddr::V6(a) if prefix <= 128 => {
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(prefix)))
            }
            _ => return None,
        };
        Some(Cidr { network, prefix })
    }

    /// The network address (host bits zero).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length in bits.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether this is an IPv4 network.
    pub fn is_ipv4(&self) -> bool {
        self.network.is_ipv4()
    }

    /// Whether `ip` lies in this network. An address of the other family
    /// never does (`0.0.0.0/0` does not match IPv6, as with the provider).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => u32::from(a) & mask32(self.prefix) == u32::from(n),
            (IpAddr::V6(n), IpAddr::V6(a)) => u128::from(a) & mask128(self.prefix) == u128::from(n),
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    /// Why the text is not a CIDR (without the text itself).
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{addr:?} is not an IPv4 or IPv6 address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                let n: u8 = p
                    .parse()
                    .map_err(|_| format!("the prefix length is 0-{max}"))?;
                if n > max {
                    return Err(format!("the prefix length is 0-{max}"));
                }
                n
            }
            Some(_) => return Err(format!("the prefix length is a number 0-{max}")),
        };
        Ok(Cidr::new(addr, prefix).expect("prefix checked"))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A destination-port range, written `"from/to"`; `"-1/-1"` is every port.
/// "Every port" also matches port 0 (a non-first fragment); `"1/65535"`
/// does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    from: u16,
    to: u16,
}

impl PortRange {
    /// Every port (`"-1/-1"`), port 0 included.
    pub const ALL: PortRange = PortRange {
        from: 0,
        to: u16::MAX,
    };

    /// `from..=to`, or `None` unless `1 <= from <= to`.
    pub fn new(from: u16, to: u16) -> Option<PortRange> {
        (from >= 1 && from <= to).then_some(PortRange { from, to })
    }

    /// Lowest port matched (0 for [`PortRange::ALL`]).
    pub fn from(&self) -> u16 {
        self.from
    }

    /// Highest port matched.
    pub fn to(&self) -> u16 {
        self.to
    }

    /// Whether this is `"-1/-1"`.
    pub fn is_all(&self) -> bool {
        *self == PortRange::ALL
    }

    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        self.from <= port && port <= self.to
    }
}

impl Default for PortRange {
    fn default() -> Self {
        PortRange::ALL
    }
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage =
            "write \"from/to\" with ports 1-65535, e.g. \"443/443\", or \"-1/-1\" for all ports";
        if s == "-1/-1" {
            return Ok(PortRange::ALL);
        }
        let Some((a, b)) = s.split_once('/') else {
            return Err(format!("{s:?} is not a port range; {usage}"));
        };
        let port = |t: &str| -> Option<u16> {
            if t.is_empty() || t.len() > 5 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            t.parse::<u16>().ok().filter(|&p| p >= 1)
        };
        let (Some(from), Some(to)) = (port(a), port(b)) else {
            return Err(format!("{s:?} is not a port range; {usage}"));
        };
        PortRange::new(from, to).ok_or_else(|| {
            format!("{s:?} is not a port range: {from} is above {to}; write \"{to}/{from}\"")
        })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            f.write_str("-1/-1")
        } else {
            write!(f, "{}/{}", self.from, self.to)
        }
    }
}

macro_rules! serde_via_string {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(|e: String| serde::de::Error::custom(format!("{text:?}: {e}")))
            }
        }
    )*};
}
serde_via_string!(Mac, Cidr, PortRange);

// ---------------------------------------------------------------------------
// Enumerations, spelled as the contract spells them

/// What a flow log is attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResourceType {
    /// One ENI (`NetworkInterface`).
    NetworkInterface,
    /// Every ENI of a vSwitch (`VSwitch`).
    VSwitch,
    /// Every ENI of a VPC (`VPC`).
    #[serde(rename = "VPC")]
    Vpc,
}

/// Which records a flow log receives (RECORDS.md, "Filters and fan-out").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum TrafficType {
    /// Every record.
    #[default]
    All,
    /// Only `ACCEPT` records (and status records).
    Allow,
    /// Only `REJECT` records (and status records).
    Drop,
}

impl TrafficType {
    /// Whether an OK record with this action goes to the flow log.
    pub fn admits(self, action: Action) -> bool {
        match self {
            TrafficType::All => true,
            TrafficType::Allow => action == Action::Accept,
            TrafficType::Drop => action == Action::Reject,
        }
    }
}

/// Whether a flow log produces records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum FlowLogStatus {
    /// Produces records.
    #[default]
    Active,
    /// Produces nothing, covers nothing, still counts against the quota.
    Inactive,
}

/// The direction a security-group rule applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleDirection {
    /// Traffic to the ENI; the rule's `cidr` is the source.
    Ingress,
    /// Traffic from the ENI; the rule's `cidr` is the destination.
    Egress,
}

/// What a matching rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Let the packet through.
    Accept,
    /// Drop the packet.
    Drop,
}

/// The protocol a rule matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpProtocol {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// ICMP (1).
    Icmp,
    /// ICMPv6 (58).
    Icmpv6,
    /// GRE (47).
    Gre,
    /// Every protocol (the only way to match SCTP or anything else).
    All,
}

impl IpProtocol {
    /// The IANA protocol number, `None` for `all`.
    pub fn number(self) -> Option<u8> {
        match self {
            IpProtocol::Tcp => Some(6),
            IpProtocol::Udp => Some(17),
            IpProtocol::Icmp => Some(1),
            IpProtocol::Icmpv6 => Some(58),
            IpProtocol::Gre => Some(47),
            IpProtocol::All => None,
        }
    }

    /// Whether a packet of IANA protocol `proto` matches.
    pub fn matches(self, proto: u8) -> bool {
        match self.number() {
            Some(n) => n == proto,
            None => true,
        }
    }

    /// Whether `port_range` applies (only to `tcp` and `udp` rules).
    pub fn has_ports(self) -> bool {
        matches!(self, IpProtocol::Tcp | IpProtocol::Udp)
    }
}

/// File format of the local log store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStoreFormat {
    /// JSON Lines (RECORDS.md).
    #[default]
    Jsonl,
    /// The space-separated text form (RECORDS.md, "Text form").
    Text,
    /// Apache Parquet.
    Parquet,
}

/// Compression of the local log store's files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStoreCompress {
    /// Plain files.
    #[default]
    None,
    /// zstd frames (`.zst`).
    Zstd,
}

/// Transport of an IPFIX sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// UDP datagrams.
    Udp,
    /// One TCP connection.
    Tcp,
}

// ---------------------------------------------------------------------------
// The configuration (validated, typed)

/// The whole host configuration (CONFIG.md). Get one from [`load`] or
/// [`from_json`]; deserialising it with serde runs the same validation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Config {
    /// `host`: this hypervisor's name; it starts every local log store file
    /// name. Required, non-empty, no `/`.
    pub host: String,
    /// `enis`: the ENIs on this host. Required (may be empty).
    pub enis: Vec<Eni>,
    /// `vswitches`: the vSwitches the ENIs are in. Required (may be empty).
    pub vswitches: Vec<VSwitch>,
    /// `security_groups`. Required (may be empty).
    pub security_groups: Vec<SecurityGroup>,
    /// `network_acls`. Required (may be empty).
    pub network_acls: Vec<NetworkAcl>,
    /// `flow_logs`. Required (may be empty).
    pub flow_logs: Vec<FlowLog>,
    /// `quota`. Optional; default `{ "flow_logs_per_account": 10 }`.
    pub quota: Quota,
    /// `sinks`: sinks besides the local log store. Optional; default none.
    pub sinks: Vec<Sink>,
    /// `log_store_root`: folder of the local log store, used when `flowlogd`
    /// gets no `--out`. Optional; no default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_store_root: Option<PathBuf>,
    /// `log_store_format`: `jsonl`, `text` or `parquet`. Optional; default `jsonl`.
    pub log_store_format: LogStoreFormat,
    /// `log_store_compress`: `none` or `zstd`. Optional; default `none`.
    pub log_store_compress: LogStoreCompress,
}

/// An elastic network interface on this host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Eni {
    /// `eni_id`. Required, unique.
    pub eni_id: String,
    /// `mac`: its Ethernet address, unicast, unique on the host. Required.
    pub mac: Mac,
    /// `ips`: its IPv4 and IPv6 addresses. Required (may be empty).
    pub ips: Vec<IpAddr>,
    /// `vm_id`: the instance it is attached to; `null` when detached (the
    /// records' `vm-id` is then `null`). Required, like every key without a
    /// default (CONFIG.md), but may be `null`.
    pub vm_id: Option<String>,
    /// `instance_type`, e.g. `ecs.g7.large`; its family decides whether flow
    /// logs are supported. Required.
    pub instance_type: String,
    /// `vswitch_id`: names a vSwitch of this document. Required.
    pub vswitch_id: String,
    /// `vpc_id`: must be its vSwitch's VPC. Required.
    pub vpc_id: String,
    /// `account_id`: owner account. Required.
    pub account_id: String,
    /// `security_group_ids`: each names a security group of this document;
    /// none means accept everything. Optional; default empty.
    pub security_group_ids: Vec<String>,
    /// `port`: the DPDK port id of its vSwitch port. Required; `null` for an
    /// ENI with no port of its own on this host (`flowlogd run` reaches it
    /// through the uplink; replay does not use ports).
    pub port: Option<u16>,
}

impl Eni {
    /// Its instance family ([`instance_family`]).
    pub fn family(&self) -> &str {
        instance_family(&self.instance_type)
    }

    /// Whether its instance family supports flow logs.
    pub fn supports_flow_logs(&self) -> bool {
        !Config::unsupported_family(&self.instance_type)
    }
}

/// A vSwitch. Its `vpc_id` is what makes a VPC exist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VSwitch {
    /// `vswitch_id`. Required, unique.
    pub vswitch_id: String,
    /// `vpc_id`. Required.
    pub vpc_id: String,
    /// `cidr`: its IPv4 network. Optional; no default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cidr: Option<Cidr>,
    /// `ipv6_cidr`: its IPv6 network. Optional; no default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6_cidr: Option<Cidr>,
    /// `network_acl_id`: names a network ACL of this document. Optional; default none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_acl_id: Option<String>,
}

impl VSwitch {
    /// Whether `ip` lies in this vSwitch's `cidr` or `ipv6_cidr`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.cidr.is_some_and(|c| c.contains(ip)) || self.ipv6_cidr.is_some_and(|c| c.contains(ip))
    }
}

/// A stateful security group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SecurityGroup {
    /// `security_group_id`. Required, unique.
    pub security_group_id: String,
    /// `rules`. Required (may be empty: ingress dropped, egress accepted).
    pub rules: Vec<SecurityGroupRule>,
}

/// One security-group rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SecurityGroupRule {
    /// `direction`: `ingress` or `egress`. Required.
    pub direction: RuleDirection,
    /// `policy`: `accept` or `drop`. Required.
    pub policy: Policy,
    /// `priority`: 1-100, 1 is highest. Optional; default 1.
    pub priority: u8,
    /// `ip_protocol`: `tcp`, `udp`, `icmp`, `icmpv6`, `gre` or `all`. Required.
    pub ip_protocol: IpProtocol,
    /// `port_range`: destination ports `"from/to"` (1-65535), for `tcp` and
    /// `udp` only. Optional; default `"-1/-1"` (all).
    pub port_range: PortRange,
    /// `cidr`: the peer (source for ingress, destination for egress), IPv4 or
    /// IPv6. Required.
    pub cidr: Cidr,
}

/// A stateless network ACL, guarding a vSwitch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NetworkAcl {
    /// `network_acl_id`. Required, unique.
    pub network_acl_id: String,
    /// `ingress`: rules in evaluation order, first match decides. Required (may be empty).
    pub ingress: Vec<NetworkAclRule>,
    /// `egress`: rules in evaluation order, first match decides. Required (may be empty).
    pub egress: Vec<NetworkAclRule>,
}

/// One network-ACL rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NetworkAclRule {
    /// `policy`: `accept` or `drop`. Required.
    pub policy: Policy,
    /// `ip_protocol`, as for security groups. Required.
    pub ip_protocol: IpProtocol,
    /// `port_range`, as for security groups. Optional; default `"-1/-1"`.
    pub port_range: PortRange,
    /// `cidr`: the peer (source for ingress, destination for egress). Required.
    pub cidr: Cidr,
}

/// A flow log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowLog {
    /// `flow_log_id`. Required, unique, no `/` (it is part of file names).
    pub flow_log_id: String,
    /// `account_id`: the account the quota counts it against. Required.
    pub account_id: String,
    /// `resource_type`: `NetworkInterface`, `VSwitch` or `VPC`. Required.
    pub resource_type: ResourceType,
    /// `resource_id`: an ENI, vSwitch or VPC of this document. Required.
    pub resource_id: String,
    /// `traffic_type`: `All`, `Allow` or `Drop`. Optional; default `All`.
    #[serde(default)]
    pub traffic_type: TrafficType,
    /// `aggregation_interval`: window length in seconds, 60, 300 or 600.
    /// Optional; default 600.
    #[serde(default = "default_aggregation_interval")]
    pub aggregation_interval: u32,
    /// `project_name`: first folder under the local log store root. Required;
    /// a single folder name.
    pub project_name: String,
    /// `log_store_name`: folder under the project. Required; a single folder name.
    pub log_store_name: String,
    /// `status`: `Active` or `Inactive`. Optional; default `Active`.
    #[serde(default)]
    pub status: FlowLogStatus,
    /// `sink_ids`: where its records go; `local` is the local log store.
    /// Optional; absent, `null` or empty means `["local"]`, which is what it
    /// holds then.
    #[serde(default = "local_only", deserialize_with = "sink_ids_or_local")]
    pub sink_ids: Vec<String>,
}

impl FlowLog {
    /// Whether it produces records.
    pub fn is_active(&self) -> bool {
        self.status == FlowLogStatus::Active
    }

    /// Whether its resource is `eni` (ignoring status and instance family).
    pub fn names(&self, eni: &Eni) -> bool {
        let id = match self.resource_type {
            ResourceType::NetworkInterface => &eni.eni_id,
            ResourceType::VSwitch => &eni.vswitch_id,
            ResourceType::Vpc => &eni.vpc_id,
        };
        *id == self.resource_id
    }
}

fn local_only() -> Vec<String> {
    vec![LOCAL_SINK.to_owned()]
}

fn sink_ids_or_local<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let ids = Option::<Vec<String>>::deserialize(d)?.unwrap_or_default();
    Ok(if ids.is_empty() { local_only() } else { ids })
}

fn default_aggregation_interval() -> u32 {
    DEFAULT_AGGREGATION_INTERVAL
}

/// Limits per account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// `flow_logs_per_account`: most flow logs (active or not) one account
    /// may have. Optional; default 10.
    #[serde(default = "default_flow_logs_per_account")]
    pub flow_logs_per_account: u32,
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            flow_logs_per_account: DEFAULT_FLOW_LOGS_PER_ACCOUNT,
        }
    }
}

fn default_flow_logs_per_account() -> u32 {
    DEFAULT_FLOW_LOGS_PER_ACCOUNT
}

/// A declared sink: `{ "sink_id": …, "type": …, options of its type }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sink {
    /// `sink_id`: the name flow logs use in `sink_ids`. Required, unique, not `local`.
    pub sink_id: String,
    /// `type` and the options of that type.
    #[serde(flatten)]
    pub kind: SinkKind,
}

/// A sink's `type` (one of [`SINK_TYPES`]) and its options.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SinkKind {
    /// `"type": "ipfix"`: IPFIX (RFC 7011) export to a collector.
    Ipfix(IpfixSink),
    /// `"type": "clickhouse"`: inserts over ClickHouse's HTTP interface.
    Clickhouse(ClickhouseSink),
}

/// Options of an `ipfix` sink.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpfixSink {
    /// `address`: the collector, `host:port` (e.g. `127.0.0.1:4739`). Required.
    pub address: String,
    /// `transport`: `udp` or `tcp`. Required.
    pub transport: Transport,
}

/// Options of a `clickhouse` sink.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickhouseSink {
    /// `endpoints`: HTTP base URLs (`http://…` or `https://…`), at least one. Required.
    pub endpoints: Vec<String>,
    /// `database`. Required.
    pub database: String,
    /// `table`. Required.
    pub table: String,
    /// `spool_dir`: folder that keeps batches while ClickHouse is unreachable. Required.
    /// One process per folder.
    pub spool_dir: PathBuf,
    /// `mode`: how batches spread over `endpoints`: `shards` (default; batch
    /// `n` starts at endpoint `n mod len`) or `replicas` (every batch starts
    /// at the endpoint that last took one). Either way a batch goes to one
    /// endpoint only, and moves on to the next only when the failure is
    /// certain (docs/DESIGN.md, "ClickHouse sink").
    #[serde(default)]
    pub mode: ClickhouseMode,
    /// `batch_records`: records per INSERT at most, 1 to 1000000. Default 100000.
    #[serde(default = "default_batch_records")]
    pub batch_records: u32,
    /// `batch_ms`: a batch is sealed once its first record is this old,
    /// milliseconds. Default 1000.
    #[serde(default = "default_batch_ms")]
    pub batch_ms: u64,
    /// `max_spool_bytes`: the spool's size past which windows are refused
    /// (and counted as lost), bytes. Default 4 GiB.
    #[serde(default = "default_max_spool_bytes")]
    pub max_spool_bytes: u64,
    /// `timeout_ms`: one HTTP request's limit, milliseconds. Default 30000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// `senders`: INSERTs in flight at once, 1 to 16, each from its own
    /// thread and connection. Default 2. Batches start in spool order; with
    /// more than one, a later batch may land before an earlier one (1 keeps
    /// arrival order strict; docs/DESIGN.md, "ClickHouse sink").
    #[serde(default = "default_senders")]
    pub senders: u32,
}

/// A `clickhouse` sink's `mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClickhouseMode {
    /// Each endpoint holds a part of the table; batches take turns.
    #[default]
    Shards,
    /// Each endpoint holds all of the table (replicas); batches stay on one.
    Replicas,
}

fn default_batch_records() -> u32 {
    100_000
}

fn default_batch_ms() -> u64 {
    1000
}

fn default_max_spool_bytes() -> u64 {
    4 << 30
}

fn default_timeout_ms() -> u64 {
    30_000
}

fn default_senders() -> u32 {
    2
}

// ---------------------------------------------------------------------------
// The JSON mirrors (step 1)

mod raw {
    //! What serde reads: the contract's keys and defaults, text left as text.
    //! Each struct mirrors the public one of the same name; docs are there.

    use super::{FlowLog, IpProtocol, LogStoreCompress, LogStoreFormat, Policy, Quota};
    use super::{RuleDirection, DEFAULT_PRIORITY};
    use serde::Deserialize;
    use std::path::PathBuf;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Config {
        pub host: String,
        pub enis: Vec<Eni>,
        pub vswitches: Vec<VSwitch>,
        pub security_groups: Vec<SecurityGroup>,
        pub network_acls: Vec<NetworkAcl>,
        pub flow_logs: Vec<FlowLog>,
        #[serde(default)]
        pub quota: Quota,
        /// Kept as objects: each type has its own options, read in step 2.
        #[serde(default)]
        pub sinks: Vec<serde_json::Map<String, serde_json::Value>>,
        #[serde(default)]
        pub log_store_root: Option<PathBuf>,
        #[serde(default)]
        pub log_store_format: LogStoreFormat,
        #[serde(default)]
        pub log_store_compress: LogStoreCompress,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct Eni {
        pub eni_id: String,
        pub mac: String,
        pub ips: Vec<String>,
        /// Outer `None`: the key is absent (it is required; `null` is
        /// `Some(None)`).
        #[serde(default, deserialize_with = "present")]
        pub vm_id: Option<Option<String>>,
        pub instance_type: String,
        pub vswitch_id: String,
        pub vpc_id: String,
        pub account_id: String,
        #[serde(default)]
        pub security_group_ids: Option<Vec<String>>,
        /// As `vm_id`: required, `null` allowed.
        #[serde(default, deserialize_with = "present")]
        pub port: Option<Option<u16>>,
    }

    /// A key that must be present but may be `null`: present gives
    /// `Some(value or None)`, and `#[serde(default)]` gives `None` when the
    /// key is absent.
    fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: serde::Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct VSwitch {
        pub vswitch_id: String,
        pub vpc_id: String,
        #[serde(default)]
        pub cidr: Option<String>,
        #[serde(default)]
        pub ipv6_cidr: Option<String>,
        #[serde(default)]
        pub network_acl_id: Option<String>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct SecurityGroup {
        pub security_group_id: String,
        pub rules: Vec<SecurityGroupRule>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct SecurityGroupRule {
        pub direction: RuleDirection,
        pub policy: Policy,
        /// Wide, so that 0 or 1000 is a range problem with a path, not a type error.
        #[serde(default = "default_priority")]
        pub priority: i64,
        pub ip_protocol: IpProtocol,
        #[serde(default = "all_ports")]
        pub port_range: String,
        pub cidr: String,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct NetworkAcl {
        pub network_acl_id: String,
        pub ingress: Vec<NetworkAclRule>,
        pub egress: Vec<NetworkAclRule>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    pub(super) struct NetworkAclRule {
        pub policy: Policy,
        pub ip_protocol: IpProtocol,
        #[serde(default = "all_ports")]
        pub port_range: String,
        pub cidr: String,
    }

    fn default_priority() -> i64 {
        i64::from(DEFAULT_PRIORITY)
    }

    fn all_ports() -> String {
        "-1/-1".to_owned()
    }
}

// ---------------------------------------------------------------------------
// Loading

/// Reads and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        origin: origin.clone(),
        source,
    })?;
    from_json(&text, &origin)
}

/// Reads and validates a configuration from JSON text; `origin` (a file
/// name, `<socket>`, …) starts every error line.
pub fn from_json(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let raw: raw::Config = serde_json::from_str(text).map_err(|e| json_error(origin, &e))?;
    build(raw).map_err(|problems| ConfigError::Invalid {
        origin: origin.to_owned(),
        problems,
    })
}

fn json_error(origin: &str, e: &serde_json::Error) -> ConfigError {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = full.strip_suffix(&suffix).unwrap_or(&full);
    let message = match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            format!("not valid JSON: {message}")
        }
        _ => message.to_owned(),
    };
    ConfigError::Json {
        origin: origin.to_owned(),
        line: e.line(),
        column: e.column(),
        message,
    }
}

impl<'de> Deserialize<'de> for Config {
    /// The same two steps as [`from_json`]; every problem is in the error.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = raw::Config::deserialize(d)?;
        build(raw).map_err(|problems| {
            let list: Vec<String> = problems.iter().map(Problem::to_string).collect();
            serde::de::Error::custom(format!("invalid configuration: {}", list.join("; ")))
        })
    }
}

// ---------------------------------------------------------------------------
// Validation (step 2)

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    /// The problems in document order: keys in the order CONFIG.md lists
    /// them, indices numerically; problems of one path keep their order.
    fn into_sorted(mut self) -> Vec<Problem> {
        // Every key, ranked so that each object's keys come in its order.
        const KEYS: &[&str] = &[
            "host",
            "enis",
            "vswitches",
            "security_groups",
            "network_acls",
            "flow_logs",
            "quota",
            "sinks",
            "log_store_root",
            "log_store_format",
            "log_store_compress",
            "eni_id",
            "flow_log_id",
            "sink_id",
            "mac",
            "ips",
            "vm_id",
            "instance_type",
            "vswitch_id",
            "vpc_id",
            "account_id",
            "security_group_ids",
            "port",
            "security_group_id",
            "rules",
            "direction",
            "policy",
            "priority",
            "ip_protocol",
            "port_range",
            "cidr",
            "ipv6_cidr",
            "network_acl_id",
            "ingress",
            "egress",
            "resource_type",
            "resource_id",
            "traffic_type",
            "aggregation_interval",
            "project_name",
            "log_store_name",
            "status",
            "sink_ids",
            "type",
            "address",
            "transport",
            "endpoints",
            "database",
            "table",
            "spool_dir",
        ];
        self.0.sort_by_cached_key(|p| {
            p.path
                .split(['.', '[', ']'])
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<usize>()
                        .unwrap_or_else(|_| KEYS.iter().position(|k| *k == s).unwrap_or(KEYS.len()))
                })
                .collect::<Vec<usize>>()
        });
        self.0
    }

    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// The most ENIs one host's configuration may hold.
pub const MAX_ENIS: usize = 65_533;

/// Converts the mirrors into the typed configuration and checks it; every
/// problem is returned. A field that does not parse gets a placeholder so
/// that the checks that follow still run (the result is then discarded).
fn build(raw: raw::Config) -> Result<Config, Vec<Problem>> {
    let mut p = Problems::default();
    let mut mac_ok = Vec::with_capacity(raw.enis.len());
    // The datapath names an ENI by its index in a u16, with the top two
    // values reserved (no ENI, not yet looked up).
    if raw.enis.len() > MAX_ENIS {
        p.push(
            "enis",
            format!(
                "{} ENIs: one host holds at most {MAX_ENIS}; split the host's configuration",
                raw.enis.len()
            ),
        );
    }

    let enis = raw
        .enis
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let at = format!("enis[{i}]");
            let mac = match e.mac.parse::<Mac>() {
                Ok(m) => {
                    mac_ok.push(true);
                    m
                }
                Err(why) => {
                    p.push(format!("{at}.mac"), why);
                    mac_ok.push(false);
                    Mac::default()
                }
            };
            let ips = e
                .ips
                .iter()
                .enumerate()
                .filter_map(|(j, ip)| match ip.parse::<IpAddr>() {
                    Ok(a) => Some(a),
                    Err(_) => {
                        p.push(
                            format!("{at}.ips[{j}]"),
                            format!("{ip:?} is not an IPv4 or IPv6 address"),
                        );
                        None
                    }
                })
                .collect();
            // Every key without a default is required (CONFIG.md); these
            // two may be null.
            let vm_id = e.vm_id.unwrap_or_else(|| {
                p.push(
                    format!("{at}.vm_id"),
                    "missing: give the instance's id, or null for an ENI not attached to one",
                );
                None
            });
            let port = e.port.unwrap_or_else(|| {
                p.push(
                    format!("{at}.port"),
                    "missing: give the DPDK port id of its vSwitch port, or null for an ENI reached through the uplink",
                );
                None
            });
            Eni {
                eni_id: e.eni_id,
                mac,
                ips,
                vm_id,
                instance_type: e.instance_type,
                vswitch_id: e.vswitch_id,
                vpc_id: e.vpc_id,
                account_id: e.account_id,
                security_group_ids: e.security_group_ids.unwrap_or_default(),
                port,
            }
        })
        .collect();

    let vswitches = raw
        .vswitches
        .into_iter()
        .enumerate()
        .map(|(i, v)| VSwitch {
            cidr: v
                .cidr
                .and_then(|c| family_cidr(&mut p, &format!("vswitches[{i}].cidr"), &c, true)),
            ipv6_cidr: v
                .ipv6_cidr
                .and_then(|c| family_cidr(&mut p, &format!("vswitches[{i}].ipv6_cidr"), &c, false)),
            vswitch_id: v.vswitch_id,
            vpc_id: v.vpc_id,
            network_acl_id: v.network_acl_id,
        })
        .collect();

    let security_groups = raw
        .security_groups
        .into_iter()
        .enumerate()
        .map(|(i, g)| SecurityGroup {
            security_group_id: g.security_group_id,
            rules: g
                .rules
                .into_iter()
                .enumerate()
                .map(|(j, r)| {
                    let at = format!("security_groups[{i}].rules[{j}]");
                    let priority = match u8::try_from(r.priority) {
                        Ok(n @ 1..=100) => n,
                        _ => {
                            p.push(
                                format!("{at}.priority"),
                                format!("{} is out of range 1-100 (1 is highest)", r.priority),
                            );
                            DEFAULT_PRIORITY
                        }
                    };
                    SecurityGroupRule {
                        direction: r.direction,
                        policy: r.policy,
                        priority,
                        ip_protocol: r.ip_protocol,
                        port_range: port_range(&mut p, &at, &r.port_range),
                        cidr: any_cidr(&mut p, &at, &r.cidr),
                    }
                })
                .collect(),
        })
        .collect();

    let acl_rules = |p: &mut Problems, at: String, rules: Vec<raw::NetworkAclRule>| {
        rules
            .into_iter()
            .enumerate()
            .map(|(j, r)| {
                let at = format!("{at}[{j}]");
                NetworkAclRule {
                    policy: r.policy,
                    ip_protocol: r.ip_protocol,
                    port_range: port_range(p, &at, &r.port_range),
                    cidr: any_cidr(p, &at, &r.cidr),
                }
            })
            .collect()
    };
    let network_acls = raw
        .network_acls
        .into_iter()
        .enumerate()
        .map(|(i, a)| NetworkAcl {
            network_acl_id: a.network_acl_id,
            ingress: acl_rules(&mut p, format!("network_acls[{i}].ingress"), a.ingress),
            egress: acl_rules(&mut p, format!("network_acls[{i}].egress"), a.egress),
        })
        .collect();

    let flow_logs = raw.flow_logs;

    // Sinks refused for their type or options are not declared, but their
    // ids are, so that the flow logs naming them get no second problem.
    let declared_sinks: Vec<String> = raw
        .sinks
        .iter()
        .filter_map(|s| s.get("sink_id")?.as_str().map(str::to_owned))
        .collect();
    let sinks = raw
        .sinks
        .into_iter()
        .enumerate()
        .filter_map(|(i, s)| sink(&mut p, i, s))
        .collect();

    let config = Config {
        host: raw.host,
        enis,
        vswitches,
        security_groups,
        network_acls,
        flow_logs,
        quota: raw.quota,
        sinks,
        log_store_root: raw.log_store_root,
        log_store_format: raw.log_store_format,
        log_store_compress: raw.log_store_compress,
    };
    check(
        &config,
        &Leniency {
            mac_ok,
            declared_sinks,
        },
        &mut p,
    );
    if p.0.is_empty() {
        Ok(config)
    } else {
        Err(p.into_sorted())
    }
}

fn family_cidr(p: &mut Problems, path: &str, text: &str, v4: bool) -> Option<Cidr> {
    let (want, other, other_key) = if v4 {
        ("IPv4", "IPv6", "ipv6_cidr")
    } else {
        ("IPv6", "IPv4", "cidr")
    };
    match text.parse::<Cidr>() {
        Ok(c) if c.is_ipv4() == v4 => Some(c),
        Ok(_) => {
            p.push(
                path,
                format!("{text:?} is not an {want} CIDR; an {other} network goes in {other_key}"),
            );
            None
        }
        Err(why) => {
            p.push(path, format!("{text:?} is not an {want} CIDR: {why}"));
            None
        }
    }
}

fn any_cidr(p: &mut Problems, at: &str, text: &str) -> Cidr {
    text.parse().unwrap_or_else(|why| {
        p.push(
            format!("{at}.cidr"),
            format!("{text:?} is not an IPv4 or IPv6 CIDR: {why}"),
        );
        Cidr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).expect("valid")
    })
}

fn port_range(p: &mut Problems, at: &str, text: &str) -> PortRange {
    text.parse().unwrap_or_else(|why| {
        p.push(format!("{at}.port_range"), why);
        PortRange::ALL
    })
}

/// Reads one declared sink: its id, its type, and that type's options.
fn sink(
    p: &mut Problems,
    i: usize,
    mut obj: serde_json::Map<String, serde_json::Value>,
) -> Option<Sink> {
    let at = format!("sinks[{i}]");
    let mut text_key =
        |obj: &mut serde_json::Map<String, serde_json::Value>, key: &str| match obj.remove(key) {
            Some(serde_json::Value::String(s)) => Some(s),
            Some(other) => {
                p.push(
                    format!("{at}.{key}"),
                    format!("expected a string, found {other}"),
                );
                None
            }
            None => {
                p.push(&at, format!("missing key {key:?}"));
                None
            }
        };
    let sink_id = text_key(&mut obj, "sink_id");
    let kind = text_key(&mut obj, "type");
    let (sink_id, kind) = (sink_id?, kind?);
    let options = serde_json::Value::Object(obj);
    let parsed = match kind.as_str() {
        "ipfix" => serde_json::from_value(options).map(SinkKind::Ipfix),
        "clickhouse" => serde_json::from_value(options).map(SinkKind::Clickhouse),
        other => {
            p.push(
                format!("{at}.type"),
                format!(
                    "unknown sink type {other:?}; the types are {}",
                    quoted(SINK_TYPES.iter().copied())
                ),
            );
            return None;
        }
    };
    match parsed {
        Ok(kind) => Some(Sink { sink_id, kind }),
        Err(e) => {
            p.push(&at, format!("{kind} sink: {e}"));
            None
        }
    }
}

/// `"a", "b", "c"` (at most eight, then `…`), or `none` for no ids.
fn quoted<'a>(ids: impl Iterator<Item = &'a str>) -> String {
    let ids: Vec<String> = ids.map(|s| format!("{s:?}")).collect();
    match ids.len() {
        0 => "none".to_owned(),
        n if n <= 8 => ids.join(", "),
        _ => format!("{}, …", ids[..8].join(", ")),
    }
}

/// Reports ids that are empty or repeated; returns the set of ids.
fn unique_ids<'a>(
    p: &mut Problems,
    section: &str,
    key: &str,
    ids: impl Iterator<Item = &'a str>,
) -> HashSet<&'a str> {
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, id) in ids.enumerate() {
        if id.is_empty() {
            p.push(format!("{section}[{i}].{key}"), "is empty; give it an id");
        } else if let Some(j) = first.get(id) {
            p.push(
                format!("{section}[{i}].{key}"),
                format!("{id:?} is also {section}[{j}].{key}; ids must be unique"),
            );
        } else {
            first.insert(id, i);
        }
    }
    first.into_keys().collect()
}

/// What step 2's conversion already reported, so that [`check`] does not
/// report it again in other words.
#[derive(Default)]
struct Leniency {
    /// `mac_ok[i]` is false when ENI `i`'s MAC did not parse (missing: true).
    mac_ok: Vec<bool>,
    /// Ids of declared sinks, including those refused for their type or options.
    declared_sinks: Vec<String>,
}

/// The contract's checks, on a typed configuration.
fn check(c: &Config, known: &Leniency, p: &mut Problems) {
    if let Some(why) = file_part_problem(&c.host) {
        p.push(
            "host",
            format!(
                "{:?} {why}; it starts the log store's file names, e.g. \"hv-0001\"",
                c.host
            ),
        );
    }

    // Ids.
    let eni_ids = unique_ids(
        p,
        "enis",
        "eni_id",
        c.enis.iter().map(|e| e.eni_id.as_str()),
    );
    let vsw_ids = unique_ids(
        p,
        "vswitches",
        "vswitch_id",
        c.vswitches.iter().map(|v| v.vswitch_id.as_str()),
    );
    let sg_ids = unique_ids(
        p,
        "security_groups",
        "security_group_id",
        c.security_groups
            .iter()
            .map(|g| g.security_group_id.as_str()),
    );
    let acl_ids = unique_ids(
        p,
        "network_acls",
        "network_acl_id",
        c.network_acls.iter().map(|a| a.network_acl_id.as_str()),
    );
    unique_ids(
        p,
        "flow_logs",
        "flow_log_id",
        c.flow_logs.iter().map(|f| f.flow_log_id.as_str()),
    );
    let mut sink_ids = unique_ids(
        p,
        "sinks",
        "sink_id",
        c.sinks.iter().map(|s| s.sink_id.as_str()),
    );
    for (i, s) in c.sinks.iter().enumerate() {
        if s.sink_id == LOCAL_SINK {
            p.push(
                format!("sinks[{i}].sink_id"),
                "\"local\" is the local log store, always defined; give this sink another id",
            );
        }
    }
    sink_ids.insert(LOCAL_SINK);
    sink_ids.extend(known.declared_sinks.iter().map(String::as_str));
    let vpcs: HashSet<&str> = c
        .vswitches
        .iter()
        .map(|v| v.vpc_id.as_str())
        .chain(c.enis.iter().map(|e| e.vpc_id.as_str()))
        .collect();
    let sorted = |set: &HashSet<&str>| {
        let mut v: Vec<&str> = set.iter().copied().collect();
        v.sort_unstable();
        quoted(v.into_iter())
    };

    // ENIs.
    let mut macs: HashMap<Mac, usize> = HashMap::new();
    for (i, e) in c.enis.iter().enumerate() {
        let at = format!("enis[{i}]");
        if known.mac_ok.get(i).copied().unwrap_or(true) {
            if e.mac.is_multicast() {
                p.push(
                    format!("{at}.mac"),
                    format!("{} is a multicast address; an ENI's MAC is unicast", e.mac),
                );
            } else if let Some(j) = macs.get(&e.mac) {
                p.push(
                    format!("{at}.mac"),
                    format!(
                        "{} is also the MAC of enis[{j}]; MACs must be unique on a host",
                        e.mac
                    ),
                );
            } else {
                macs.insert(e.mac, i);
            }
        }
        if e.vpc_id.is_empty() {
            p.push(format!("{at}.vpc_id"), "is empty; name the ENI's VPC");
        }
        if e.account_id.is_empty() {
            p.push(
                format!("{at}.account_id"),
                "is empty; name the ENI's owner account",
            );
        }
        match c.vswitch(&e.vswitch_id) {
            None => p.push(
                format!("{at}.vswitch_id"),
                format!("no vSwitch {:?}; the vSwitches are {}", e.vswitch_id, sorted(&vsw_ids)),
            ),
            Some(v) if v.vpc_id != e.vpc_id => p.push(
                format!("{at}.vpc_id"),
                format!(
                    "{:?} differs from the VPC of its vSwitch {:?} ({:?}); an ENI is in its vSwitch's VPC",
                    e.vpc_id, v.vswitch_id, v.vpc_id
                ),
            ),
            Some(_) => {}
        }
        for (j, g) in e.security_group_ids.iter().enumerate() {
            if !sg_ids.contains(g.as_str()) {
                p.push(
                    format!("{at}.security_group_ids[{j}]"),
                    format!(
                        "no security group {g:?}; the security groups are {}",
                        sorted(&sg_ids)
                    ),
                );
            }
        }
    }

    // vSwitches.
    for (i, v) in c.vswitches.iter().enumerate() {
        if v.vpc_id.is_empty() {
            p.push(
                format!("vswitches[{i}].vpc_id"),
                "is empty; name the vSwitch's VPC",
            );
        }
        if let Some(a) = &v.network_acl_id {
            if !acl_ids.contains(a.as_str()) {
                p.push(
                    format!("vswitches[{i}].network_acl_id"),
                    format!(
                        "no network ACL {a:?}; the network ACLs are {}",
                        sorted(&acl_ids)
                    ),
                );
            }
        }
        // A typed config built by hand may hold the wrong family.
        if v.cidr.is_some_and(|x| !x.is_ipv4()) {
            p.push(
                format!("vswitches[{i}].cidr"),
                "is not an IPv4 CIDR; an IPv6 network goes in ipv6_cidr",
            );
        }
        if v.ipv6_cidr.is_some_and(|x| x.is_ipv4()) {
            p.push(
                format!("vswitches[{i}].ipv6_cidr"),
                "is not an IPv6 CIDR; an IPv4 network goes in cidr",
            );
        }
    }

    // Security-group rules built by hand.
    for (i, g) in c.security_groups.iter().enumerate() {
        for (j, r) in g.rules.iter().enumerate() {
            if !(1..=100).contains(&r.priority) {
                p.push(
                    format!("security_groups[{i}].rules[{j}].priority"),
                    format!("{} is out of range 1-100 (1 is highest)", r.priority),
                );
            }
        }
    }

    // Flow logs.
    for (i, f) in c.flow_logs.iter().enumerate() {
        let at = format!("flow_logs[{i}]");
        if let Some(why) = file_part_problem(&f.flow_log_id) {
            if !f.flow_log_id.is_empty() {
                p.push(
                    format!("{at}.flow_log_id"),
                    format!("{:?} {why}; it is part of file names", f.flow_log_id),
                );
            }
        }
        if f.account_id.is_empty() {
            p.push(
                format!("{at}.account_id"),
                "is empty; name the account the flow log belongs to",
            );
        }
        match f.resource_type {
            ResourceType::NetworkInterface => match c.eni_index(&f.resource_id) {
                None => p.push(
                    format!("{at}.resource_id"),
                    format!(
                        "no ENI {:?}; the ENIs are {}",
                        f.resource_id,
                        sorted(&eni_ids)
                    ),
                ),
                Some(e) => {
                    let eni = &c.enis[e];
                    if !eni.supports_flow_logs() {
                        p.push(
                            format!("{at}.resource_id"),
                            format!(
                                "ENI {:?} has instance type {}, whose family {} does not support flow logs; \
                                 remove this flow log (VSwitch and VPC flow logs skip such ENIs)",
                                eni.eni_id,
                                eni.instance_type,
                                eni.family()
                            ),
                        );
                    }
                }
            },
            ResourceType::VSwitch => {
                if !vsw_ids.contains(f.resource_id.as_str()) {
                    p.push(
                        format!("{at}.resource_id"),
                        format!(
                            "no vSwitch {:?}; the vSwitches are {}",
                            f.resource_id,
                            sorted(&vsw_ids)
                        ),
                    );
                }
            }
            ResourceType::Vpc => {
                if f.resource_id.is_empty() || !vpcs.contains(f.resource_id.as_str()) {
                    p.push(
                        format!("{at}.resource_id"),
                        format!(
                            "no VPC {:?}; a VPC exists when a vSwitch or an ENI names it, and the VPCs are {}",
                            f.resource_id,
                            sorted(&vpcs)
                        ),
                    );
                }
            }
        }
        if !AGGREGATION_INTERVALS.contains(&f.aggregation_interval) {
            p.push(
                format!("{at}.aggregation_interval"),
                format!(
                    "{} is not one of 60, 300, 600 (seconds)",
                    f.aggregation_interval
                ),
            );
        }
        for (key, name) in [
            ("project_name", &f.project_name),
            ("log_store_name", &f.log_store_name),
        ] {
            if let Some(why) = folder_name_problem(name) {
                p.push(
                    format!("{at}.{key}"),
                    format!("{name:?} {why}; it must be one folder name under the log store root"),
                );
            }
        }
        if f.sink_ids.is_empty() {
            p.push(
                format!("{at}.sink_ids"),
                "is empty; name \"local\" for the local log store",
            );
        }
        let mut seen = HashSet::new();
        for (j, s) in f.sink_ids.iter().enumerate() {
            if !sink_ids.contains(s.as_str()) {
                p.push(
                    format!("{at}.sink_ids[{j}]"),
                    format!(
                        "no sink {s:?}; declare it in sinks, or use one of {}",
                        sorted(&sink_ids)
                    ),
                );
            } else if !seen.insert(s.as_str()) {
                p.push(
                    format!("{at}.sink_ids[{j}]"),
                    format!("{s:?} is listed twice; list each sink once"),
                );
            }
        }
    }

    // Quota, per account, active or not.
    let mut per_account: Vec<(&str, usize)> = Vec::new();
    for f in &c.flow_logs {
        match per_account.iter_mut().find(|(a, _)| *a == f.account_id) {
            Some((_, n)) => *n += 1,
            None => per_account.push((&f.account_id, 1)),
        }
    }
    let quota = c.quota.flow_logs_per_account;
    for (account, n) in per_account {
        if n > quota as usize {
            p.push(
                "flow_logs",
                format!(
                    "account {account:?} has {n} flow logs, over the quota of {quota} (quota.flow_logs_per_account)"
                ),
            );
        }
    }

    // Sink options.
    for (i, s) in c.sinks.iter().enumerate() {
        let at = format!("sinks[{i}]");
        match &s.kind {
            SinkKind::Ipfix(x) => {
                let ok = x.address.parse::<SocketAddr>().is_ok()
                    || x.address.rsplit_once(':').is_some_and(|(h, port)| {
                        !h.is_empty() && !h.contains(':') && port.parse::<u16>().is_ok()
                    });
                if !ok {
                    p.push(
                        format!("{at}.address"),
                        format!("{:?} is not host:port; e.g. \"127.0.0.1:4739\"", x.address),
                    );
                }
            }
            SinkKind::Clickhouse(x) => {
                if x.endpoints.is_empty() {
                    p.push(
                        format!("{at}.endpoints"),
                        "is empty; give at least one, e.g. \"http://127.0.0.1:8123\"",
                    );
                }
                for (j, url) in x.endpoints.iter().enumerate() {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        p.push(
                            format!("{at}.endpoints[{j}]"),
                            format!("{url:?} is not an http:// or https:// URL"),
                        );
                    }
                }
                if x.database.is_empty() {
                    p.push(format!("{at}.database"), "is empty; name the database");
                }
                if x.table.is_empty() {
                    p.push(format!("{at}.table"), "is empty; name the table");
                }
                if x.spool_dir.as_os_str().is_empty() {
                    p.push(
                        format!("{at}.spool_dir"),
                        "is empty; name a folder for the spool",
                    );
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Views

impl Config {
    /// Runs the contract's checks on a configuration built or changed in
    /// code (the operator socket); [`from_json`] already did.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let mut p = Problems::default();
        check(self, &Leniency::default(), &mut p);
        if p.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                origin: origin.to_owned(),
                problems: p.into_sorted(),
            })
        }
    }

    /// Whether ENIs of instances of this type do not support flow logs
    /// (its family, up to the second dot, is in [`UNSUPPORTED_FAMILIES`]).
    pub fn unsupported_family(instance_type: &str) -> bool {
        UNSUPPORTED_FAMILIES.contains(&instance_family(instance_type))
    }

    /// Index of the ENI `eni_id` in [`Config::enis`].
    pub fn eni_index(&self, eni_id: &str) -> Option<usize> {
        self.enis.iter().position(|e| e.eni_id == eni_id)
    }

    /// The vSwitch `id`.
    pub fn vswitch(&self, id: &str) -> Option<&VSwitch> {
        self.vswitches.iter().find(|v| v.vswitch_id == id)
    }

    /// The security group `id`.
    pub fn security_group(&self, id: &str) -> Option<&SecurityGroup> {
        self.security_groups
            .iter()
            .find(|g| g.security_group_id == id)
    }

    /// The network ACL `id`.
    pub fn network_acl(&self, id: &str) -> Option<&NetworkAcl> {
        self.network_acls.iter().find(|a| a.network_acl_id == id)
    }

    /// The declared sink `id` (`None` for `local`, which is not declared).
    pub fn sink(&self, id: &str) -> Option<&Sink> {
        self.sinks.iter().find(|s| s.sink_id == id)
    }

    /// Index of the flow log `flow_log_id` in [`Config::flow_logs`].
    pub fn flow_log_index(&self, flow_log_id: &str) -> Option<usize> {
        self.flow_logs
            .iter()
            .position(|f| f.flow_log_id == flow_log_id)
    }

    /// Per ENI index, the indices (ascending) of the active flow logs that
    /// cover it: its own `NetworkInterface` flow log, its vSwitch's and its
    /// VPC's. An ENI of an unsupported family is covered by none (VSwitch and
    /// VPC flow logs skip it; see [`Config::skipped_unsupported`]). A VSwitch
    /// or VPC flow log covers every ENI in it, whenever the ENI appeared.
    pub fn coverage(&self) -> Vec<Vec<usize>> {
        self.enis
            .iter()
            .map(|e| {
                if !e.supports_flow_logs() {
                    return Vec::new();
                }
                self.flow_logs
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| f.is_active() && f.names(e))
                    .map(|(j, _)| j)
                    .collect()
            })
            .collect()
    }

    /// `(flow log index, ENI index)` for each ENI that an active VSwitch or
    /// VPC flow log would cover but skips because of its instance family; for
    /// the stats.
    pub fn skipped_unsupported(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (j, f) in self.flow_logs.iter().enumerate() {
            if !f.is_active() || f.resource_type == ResourceType::NetworkInterface {
                continue;
            }
            for (i, e) in self.enis.iter().enumerate() {
                if f.names(e) && !e.supports_flow_logs() {
                    out.push((j, i));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// The example document of CONFIG.md, verbatim.
    const EXAMPLE: &str = r#"{
  "host": "hv-0001",
  "enis": [
    { "eni_id": "eni-a1", "mac": "02:00:00:00:00:01",
      "ips": ["10.0.1.5", "fd00::1:5"],
      "vm_id": "i-a1", "instance_type": "ecs.g7.large",
      "vswitch_id": "vsw-1", "vpc_id": "vpc-1", "account_id": "1234567890",
      "security_group_ids": ["sg-web"], "port": 0 }
  ],
  "vswitches": [
    { "vswitch_id": "vsw-1", "vpc_id": "vpc-1", "cidr": "10.0.1.0/24",
      "network_acl_id": "nacl-1" }
  ],
  "security_groups": [
    { "security_group_id": "sg-web", "rules": [
      { "direction": "ingress", "policy": "accept", "priority": 1,
        "ip_protocol": "tcp", "port_range": "443/443", "cidr": "0.0.0.0/0" },
      { "direction": "ingress", "policy": "accept", "priority": 1,
        "ip_protocol": "icmp", "port_range": "-1/-1", "cidr": "10.0.0.0/8" }
    ] }
  ],
  "network_acls": [
    { "network_acl_id": "nacl-1",
      "ingress": [ { "policy": "drop", "ip_protocol": "tcp",
                     "port_range": "23/23", "cidr": "0.0.0.0/0" } ],
      "egress": [] }
  ],
  "flow_logs": [
    { "flow_log_id": "fl-1", "account_id": "1234567890",
      "resource_type": "VPC", "resource_id": "vpc-1",
      "traffic_type": "All", "aggregation_interval": 600,
      "project_name": "net-audit", "log_store_name": "vpc1-flows",
      "status": "Active" }
  ],
  "quota": { "flow_logs_per_account": 10 }
}"#;

    fn example() -> Value {
        serde_json::from_str(EXAMPLE).unwrap()
    }

    fn parse(v: &Value) -> Result<Config, ConfigError> {
        from_json(&serde_json::to_string_pretty(v).unwrap(), "host.json")
    }

    fn del(v: &mut Value, key: &str) {
        v.as_object_mut().unwrap().remove(key).expect("key present");
    }

    fn eni(id: &str, vsw: &str, vpc: &str, instance_type: &str, mac_last: u8) -> Value {
        json!({ "eni_id": id, "mac": format!("02:00:00:00:01:{mac_last:02x}"), "ips": [],
                "instance_type": instance_type, "vswitch_id": vsw, "vpc_id": vpc,
                "account_id": "1234567890", "vm_id": null, "port": null })
    }

    fn flow_log(id: &str, account: &str, rtype: &str, rid: &str) -> Value {
        json!({ "flow_log_id": id, "account_id": account, "resource_type": rtype,
                "resource_id": rid, "project_name": "p", "log_store_name": "s" })
    }

    fn sinks_example() -> Value {
        json!([
          { "sink_id": "collector", "type": "ipfix",
            "address": "127.0.0.1:4739", "transport": "udp" },
          { "sink_id": "analytics", "type": "clickhouse",
            "endpoints": ["http://127.0.0.1:8123"], "database": "flowlogs",
            "table": "records", "spool_dir": "/var/lib/flowlogd/spool" }
        ])
    }

    fn push(v: &mut Value, key: &str, item: Value) {
        v[key].as_array_mut().unwrap().push(item);
    }

    enum Expect {
        /// Accepted.
        Valid,
        /// Refused by step 1 with a message containing this.
        Json(&'static str),
        /// Refused by step 2 with exactly these problems (each `path: start
        /// of message`, in any order).
        Problems(&'static [&'static str]),
    }

    /// One row per sentence of CONFIG.md's general, flow-log and sink
    /// sections (and the checks that follow from the security-group and
    /// network-ACL rule shapes).
    #[allow(clippy::type_complexity)]
    const CASES: &[(&str, fn(&mut Value), Expect)] = &[
        // --- General
        ("example as is", |_| {}, Expect::Valid),
        ("unknown top-level key", |v| v["hosts"] = json!("x"), Expect::Json("unknown field `hosts`")),
        ("unknown ENI key", |v| v["enis"][0]["vpcid"] = json!("x"), Expect::Json("unknown field `vpcid`")),
        ("unknown vSwitch key", |v| v["vswitches"][0]["zone"] = json!("x"), Expect::Json("unknown field `zone`")),
        ("unknown security group key", |v| v["security_groups"][0]["name"] = json!("x"), Expect::Json("unknown field `name`")),
        ("unknown rule key", |v| v["security_groups"][0]["rules"][0]["ports"] = json!("1/2"), Expect::Json("unknown field `ports`")),
        ("NACL rule has no priority", |v| v["network_acls"][0]["ingress"][0]["priority"] = json!(1), Expect::Json("unknown field `priority`")),
        ("NACL rule has no direction", |v| v["network_acls"][0]["ingress"][0]["direction"] = json!("ingress"), Expect::Json("unknown field `direction`")),
        ("unknown flow log key", |v| v["flow_logs"][0]["trafic_type"] = json!("All"), Expect::Json("unknown field `trafic_type`")),
        ("unknown quota key", |v| v["quota"]["flow_logs"] = json!(3), Expect::Json("unknown field `flow_logs`")),
        ("missing host", |v| del(v, "host"), Expect::Json("missing field `host`")),
        ("missing enis", |v| del(v, "enis"), Expect::Json("missing field `enis`")),
        ("missing vswitches", |v| del(v, "vswitches"), Expect::Json("missing field `vswitches`")),
        ("missing security_groups", |v| del(v, "security_groups"), Expect::Json("missing field `security_groups`")),
        ("missing network_acls", |v| del(v, "network_acls"), Expect::Json("missing field `network_acls`")),
        ("missing flow_logs", |v| del(v, "flow_logs"), Expect::Json("missing field `flow_logs`")),
        ("missing ENI mac", |v| del(&mut v["enis"][0], "mac"), Expect::Json("missing field `mac`")),
        ("missing ENI ips", |v| del(&mut v["enis"][0], "ips"), Expect::Json("missing field `ips`")),
        ("missing ENI instance_type", |v| del(&mut v["enis"][0], "instance_type"), Expect::Json("missing field `instance_type`")),
        ("missing ENI account_id", |v| del(&mut v["enis"][0], "account_id"), Expect::Json("missing field `account_id`")),
        ("missing vSwitch vpc_id", |v| del(&mut v["vswitches"][0], "vpc_id"), Expect::Json("missing field `vpc_id`")),
        ("missing rule cidr", |v| del(&mut v["security_groups"][0]["rules"][0], "cidr"), Expect::Json("missing field `cidr`")),
        ("missing rule policy", |v| del(&mut v["security_groups"][0]["rules"][0], "policy"), Expect::Json("missing field `policy`")),
        ("missing rule direction", |v| del(&mut v["security_groups"][0]["rules"][0], "direction"), Expect::Json("missing field `direction`")),
        ("missing rules", |v| del(&mut v["security_groups"][0], "rules"), Expect::Json("missing field `rules`")),
        ("missing NACL egress", |v| del(&mut v["network_acls"][0], "egress"), Expect::Json("missing field `egress`")),
        ("missing flow log project_name", |v| del(&mut v["flow_logs"][0], "project_name"), Expect::Json("missing field `project_name`")),
        ("missing flow log resource_id", |v| del(&mut v["flow_logs"][0], "resource_id"), Expect::Json("missing field `resource_id`")),
        ("defaults fill traffic_type, status, interval, priority, port_range, quota", |v| {
            for k in ["traffic_type", "status", "aggregation_interval"] {
                del(&mut v["flow_logs"][0], k);
            }
            del(&mut v["security_groups"][0]["rules"][0], "priority");
            del(&mut v["security_groups"][0]["rules"][0], "port_range");
            del(&mut v["network_acls"][0]["ingress"][0], "port_range");
            del(v, "quota");
        }, Expect::Valid),
        ("empty quota object", |v| v["quota"] = json!({}), Expect::Valid),
        ("values keep the contract's spelling: Vpc", |v| v["flow_logs"][0]["resource_type"] = json!("Vpc"), Expect::Json("unknown variant `Vpc`")),
        ("values keep the contract's spelling: all", |v| v["flow_logs"][0]["traffic_type"] = json!("all"), Expect::Json("unknown variant `all`")),
        ("values keep the contract's spelling: active", |v| v["flow_logs"][0]["status"] = json!("active"), Expect::Json("unknown variant `active`")),
        ("values keep the contract's spelling: Ingress", |v| v["security_groups"][0]["rules"][0]["direction"] = json!("Ingress"), Expect::Json("unknown variant `Ingress`")),
        ("values keep the contract's spelling: allow", |v| v["security_groups"][0]["rules"][0]["policy"] = json!("allow"), Expect::Json("unknown variant `allow`")),
        ("values keep the contract's spelling: TCP", |v| v["security_groups"][0]["rules"][0]["ip_protocol"] = json!("TCP"), Expect::Json("unknown variant `TCP`")),
        ("protocols udp icmpv6 gre all", |v| {
            for (i, p) in ["udp", "icmpv6", "gre", "all"].into_iter().enumerate() {
                v["security_groups"][0]["rules"][i % 2]["ip_protocol"] = json!(p);
                push(&mut v["network_acls"][0], "egress", json!({"policy": "accept", "ip_protocol": p, "cidr": "::/0"}));
            }
        }, Expect::Valid),
        ("wrong JSON type", |v| v["enis"][0]["port"] = json!("0"), Expect::Json("invalid type: string \"0\"")),
        // Each id an object names must exist.
        ("ENI's vSwitch", |v| v["enis"][0]["vswitch_id"] = json!("vsw-7"), Expect::Problems(&[
            "enis[0].vswitch_id: no vSwitch \"vsw-7\"; the vSwitches are \"vsw-1\"",
        ])),
        ("vSwitch's network ACL", |v| v["vswitches"][0]["network_acl_id"] = json!("nacl-9"), Expect::Problems(&[
            "vswitches[0].network_acl_id: no network ACL \"nacl-9\"",
        ])),
        ("ENI's security groups", |v| v["enis"][0]["security_group_ids"] = json!(["sg-web", "sg-db"]), Expect::Problems(&[
            "enis[0].security_group_ids[1]: no security group \"sg-db\"",
        ])),
        ("flow log's ENI", |v| v["flow_logs"][0]["resource_type"] = json!("NetworkInterface"), Expect::Problems(&[
            "flow_logs[0].resource_id: no ENI \"vpc-1\"; the ENIs are \"eni-a1\"",
        ])),
        ("flow log's vSwitch", |v| v["flow_logs"][0]["resource_type"] = json!("VSwitch"), Expect::Problems(&[
            "flow_logs[0].resource_id: no vSwitch \"vpc-1\"",
        ])),
        ("flow log's VPC", |v| v["flow_logs"][0]["resource_id"] = json!("vpc-9"), Expect::Problems(&[
            "flow_logs[0].resource_id: no VPC \"vpc-9\"",
        ])),
        ("flow logs on an ENI and a vSwitch", |v| {
            push(v, "flow_logs", flow_log("fl-2", "1", "NetworkInterface", "eni-a1"));
            push(v, "flow_logs", flow_log("fl-3", "1", "VSwitch", "vsw-1"));
        }, Expect::Valid),
        ("a VPC named by a vSwitch alone exists", |v| {
            push(v, "vswitches", json!({"vswitch_id": "vsw-2", "vpc_id": "vpc-2"}));
            push(v, "flow_logs", flow_log("fl-2", "1", "VPC", "vpc-2"));
        }, Expect::Valid),
        ("a VPC named by an ENI exists (its vSwitch mismatch is the one problem)", |v| {
            v["enis"][0]["vpc_id"] = json!("vpc-2");
            push(v, "flow_logs", flow_log("fl-2", "1", "VPC", "vpc-2"));
        }, Expect::Problems(&[
            "enis[0].vpc_id: \"vpc-2\" differs from the VPC of its vSwitch \"vsw-1\" (\"vpc-1\")",
        ])),
        ("ENI without security groups", |v| del(&mut v["enis"][0], "security_group_ids"), Expect::Valid),
        ("ENI with empty or null security groups", |v| {
            v["enis"][0]["security_group_ids"] = json!(null);
            push(v, "enis", json!({"eni_id": "eni-b", "mac": "02:00:00:00:00:02", "ips": [],
                "instance_type": "ecs.g7.large", "vswitch_id": "vsw-1", "vpc_id": "vpc-1",
                "account_id": "1", "security_group_ids": [], "vm_id": null, "port": null}));
        }, Expect::Valid),
        ("ENI without vm_id or port: both required (no default)", |v| {
            del(&mut v["enis"][0], "vm_id");
            del(&mut v["enis"][0], "port");
        }, Expect::Problems(&[
            "enis[0].vm_id: missing: give the instance's id, or null for an ENI not attached to one",
            "enis[0].port: missing: give the DPDK port id of its vSwitch port, or null for an ENI reached through the uplink",
        ])),
        ("ENI with null vm_id and port", |v| {
            v["enis"][0]["vm_id"] = json!(null);
            v["enis"][0]["port"] = json!(null);
        }, Expect::Valid),
        ("security group without rules", |v| v["security_groups"][0]["rules"] = json!([]), Expect::Valid),
        // cidr is IPv4, ipv6_cidr IPv6; both optional, as is network_acl_id.
        ("vSwitch without cidr and ACL", |v| {
            del(&mut v["vswitches"][0], "cidr");
            del(&mut v["vswitches"][0], "network_acl_id");
        }, Expect::Valid),
        ("vSwitch with ipv6_cidr", |v| v["vswitches"][0]["ipv6_cidr"] = json!("fd00::/64"), Expect::Valid),
        ("cidr prefix too long", |v| v["vswitches"][0]["cidr"] = json!("10.0.0.0/33"), Expect::Problems(&[
            "vswitches[0].cidr: \"10.0.0.0/33\" is not an IPv4 CIDR",
        ])),
        ("cidr is IPv6", |v| v["vswitches"][0]["cidr"] = json!("fd00::/64"), Expect::Problems(&[
            "vswitches[0].cidr: \"fd00::/64\" is not an IPv4 CIDR; an IPv6 network goes in ipv6_cidr",
        ])),
        ("ipv6_cidr is IPv4", |v| v["vswitches"][0]["ipv6_cidr"] = json!("10.0.0.0/8"), Expect::Problems(&[
            "vswitches[0].ipv6_cidr: \"10.0.0.0/8\" is not an IPv6 CIDR; an IPv4 network goes in cidr",
        ])),
        ("ipv6_cidr prefix too long", |v| v["vswitches"][0]["ipv6_cidr"] = json!("fd00::/129"), Expect::Problems(&[
            "vswitches[0].ipv6_cidr: \"fd00::/129\" is not an IPv6 CIDR",
        ])),
        ("rule cidr not an address", |v| v["security_groups"][0]["rules"][1]["cidr"] = json!("10.0.0/8"), Expect::Problems(&[
            "security_groups[0].rules[1].cidr: \"10.0.0/8\" is not an IPv4 or IPv6 CIDR",
        ])),
        ("rule cidr IPv6 is fine", |v| v["security_groups"][0]["rules"][1]["cidr"] = json!("::/0"), Expect::Valid),
        ("NACL rule cidr bad", |v| v["network_acls"][0]["ingress"][0]["cidr"] = json!("any"), Expect::Problems(&[
            "network_acls[0].ingress[0].cidr: \"any\" is not an IPv4 or IPv6 CIDR",
        ])),
        // Ids, MACs, addresses.
        ("duplicate ENI id", |v| {
            let e = v["enis"][0].clone();
            push(v, "enis", e);
            v["enis"][1]["mac"] = json!("02:00:00:00:00:02");
        }, Expect::Problems(&["enis[1].eni_id: \"eni-a1\" is also enis[0].eni_id"])),
        ("duplicate vSwitch id", |v| {
            let x = v["vswitches"][0].clone();
            push(v, "vswitches", x);
        }, Expect::Problems(&["vswitches[1].vswitch_id: \"vsw-1\" is also vswitches[0].vswitch_id"])),
        ("duplicate security group id", |v| {
            let x = v["security_groups"][0].clone();
            push(v, "security_groups", x);
        }, Expect::Problems(&["security_groups[1].security_group_id: \"sg-web\" is also"])),
        ("duplicate network ACL id", |v| {
            let x = v["network_acls"][0].clone();
            push(v, "network_acls", x);
        }, Expect::Problems(&["network_acls[1].network_acl_id: \"nacl-1\" is also"])),
        ("duplicate flow log id", |v| {
            let x = v["flow_logs"][0].clone();
            push(v, "flow_logs", x);
        }, Expect::Problems(&["flow_logs[1].flow_log_id: \"fl-1\" is also flow_logs[0].flow_log_id"])),
        ("empty id", |v| v["enis"][0]["eni_id"] = json!(""), Expect::Problems(&["enis[0].eni_id: is empty"])),
        ("empty host", |v| v["host"] = json!(""), Expect::Problems(&["host: \"\" is empty"])),
        ("host with a slash", |v| v["host"] = json!("a/b"), Expect::Problems(&["host: \"a/b\" contains \"/\""])),
        ("bad MAC", |v| v["enis"][0]["mac"] = json!("02:00:00:00:01"), Expect::Problems(&[
            "enis[0].mac: \"02:00:00:00:01\" is not a MAC address; write six hex bytes",
        ])),
        ("bad MAC digits", |v| v["enis"][0]["mac"] = json!("02:00:00:00:00:0g"), Expect::Problems(&["enis[0].mac: "])),
        ("MAC with dashes and capitals", |v| v["enis"][0]["mac"] = json!("02-00-00-00-00-AB"), Expect::Valid),
        ("multicast MAC", |v| v["enis"][0]["mac"] = json!("01:00:5e:00:00:01"), Expect::Problems(&[
            "enis[0].mac: 01:00:5e:00:00:01 is a multicast address",
        ])),
        ("duplicate MAC", |v| {
            push(v, "enis", eni("eni-b", "vsw-1", "vpc-1", "ecs.g7.large", 0));
            v["enis"][1]["mac"] = json!("02:00:00:00:00:01");
        }, Expect::Problems(&["enis[1].mac: 02:00:00:00:00:01 is also the MAC of enis[0]"])),
        ("bad IP", |v| v["enis"][0]["ips"] = json!(["10.0.1.5", "10.0.1.300"]), Expect::Problems(&[
            "enis[0].ips[1]: \"10.0.1.300\" is not an IPv4 or IPv6 address",
        ])),
        ("ENI's VPC differs from its vSwitch's", |v| {
            push(v, "vswitches", json!({"vswitch_id": "vsw-2", "vpc_id": "vpc-2"}));
            v["enis"][0]["vswitch_id"] = json!("vsw-2");
        }, Expect::Problems(&["enis[0].vpc_id: \"vpc-1\" differs from the VPC of its vSwitch \"vsw-2\" (\"vpc-2\")"])),
        // Security-group rules.
        ("priority 0", |v| v["security_groups"][0]["rules"][1]["priority"] = json!(0), Expect::Problems(&[
            "security_groups[0].rules[1].priority: 0 is out of range 1-100",
        ])),
        ("priority 101", |v| v["security_groups"][0]["rules"][0]["priority"] = json!(101), Expect::Problems(&[
            "security_groups[0].rules[0].priority: 101 is out of range 1-100",
        ])),
        ("priority -1 and 1000", |v| {
            v["security_groups"][0]["rules"][0]["priority"] = json!(-1);
            v["security_groups"][0]["rules"][1]["priority"] = json!(1000);
        }, Expect::Problems(&[
            "security_groups[0].rules[0].priority: -1 is out of range",
            "security_groups[0].rules[1].priority: 1000 is out of range",
        ])),
        ("priority 100", |v| v["security_groups"][0]["rules"][0]["priority"] = json!(100), Expect::Valid),
        ("port range reversed", |v| v["security_groups"][0]["rules"][0]["port_range"] = json!("443/80"), Expect::Problems(&[
            "security_groups[0].rules[0].port_range: \"443/80\" is not a port range: 443 is above 80; write \"80/443\"",
        ])),
        ("port 0", |v| v["security_groups"][0]["rules"][0]["port_range"] = json!("0/80"), Expect::Problems(&[
            "security_groups[0].rules[0].port_range: \"0/80\" is not a port range",
        ])),
        ("port 65536", |v| v["network_acls"][0]["ingress"][0]["port_range"] = json!("1/65536"), Expect::Problems(&[
            "network_acls[0].ingress[0].port_range: \"1/65536\" is not a port range",
        ])),
        ("half of all", |v| v["security_groups"][0]["rules"][0]["port_range"] = json!("-1/80"), Expect::Problems(&[
            "security_groups[0].rules[0].port_range: \"-1/80\" is not a port range",
        ])),
        ("no slash", |v| v["security_groups"][0]["rules"][0]["port_range"] = json!("443"), Expect::Problems(&[
            "security_groups[0].rules[0].port_range: \"443\" is not a port range; write \"from/to\"",
        ])),
        ("port range 1/65535", |v| v["security_groups"][0]["rules"][0]["port_range"] = json!("1/65535"), Expect::Valid),
        ("port range on icmp is checked but ignored", |v| v["security_groups"][0]["rules"][1]["port_range"] = json!("8/8"), Expect::Valid),
        // --- Flow logs
        ("traffic types Allow and Drop", |v| {
            v["flow_logs"][0]["traffic_type"] = json!("Allow");
            let mut f = flow_log("fl-2", "1", "VPC", "vpc-1");
            f["traffic_type"] = json!("Drop");
            push(v, "flow_logs", f);
        }, Expect::Valid),
        ("interval 60 and 300", |v| {
            v["flow_logs"][0]["aggregation_interval"] = json!(60);
            let mut f = flow_log("fl-2", "1", "VPC", "vpc-1");
            f["aggregation_interval"] = json!(300);
            push(v, "flow_logs", f);
        }, Expect::Valid),
        ("interval 120", |v| v["flow_logs"][0]["aggregation_interval"] = json!(120), Expect::Problems(&[
            "flow_logs[0].aggregation_interval: 120 is not one of 60, 300, 600",
        ])),
        ("interval 0", |v| v["flow_logs"][0]["aggregation_interval"] = json!(0), Expect::Problems(&[
            "flow_logs[0].aggregation_interval: 0 is not one of 60, 300, 600",
        ])),
        ("Inactive", |v| v["flow_logs"][0]["status"] = json!("Inactive"), Expect::Valid),
        ("project name escapes the root", |v| v["flow_logs"][0]["project_name"] = json!(".."), Expect::Problems(&[
            "flow_logs[0].project_name: \"..\" would escape its parent folder",
        ])),
        ("log store name with a slash", |v| v["flow_logs"][0]["log_store_name"] = json!("a/b"), Expect::Problems(&[
            "flow_logs[0].log_store_name: \"a/b\" contains \"/\"",
        ])),
        ("empty log store name", |v| v["flow_logs"][0]["log_store_name"] = json!(""), Expect::Problems(&[
            "flow_logs[0].log_store_name: \"\" is empty",
        ])),
        ("two flow logs share a log store", |v| {
            let mut f = flow_log("fl-2", "1", "VSwitch", "vsw-1");
            f["project_name"] = json!("net-audit");
            f["log_store_name"] = json!("vpc1-flows");
            push(v, "flow_logs", f);
        }, Expect::Valid),
        ("quota: 10 flow logs of one account, active or not", |v| {
            for i in 2..=10 {
                let mut f = flow_log(&format!("fl-{i}"), "1234567890", "VPC", "vpc-1");
                if i % 2 == 0 {
                    f["status"] = json!("Inactive");
                }
                push(v, "flow_logs", f);
            }
        }, Expect::Valid),
        ("quota: the 11th, Inactive ones counted", |v| {
            for i in 2..=11 {
                let mut f = flow_log(&format!("fl-{i}"), "1234567890", "VPC", "vpc-1");
                if i % 2 == 0 {
                    f["status"] = json!("Inactive");
                }
                push(v, "flow_logs", f);
            }
        }, Expect::Problems(&[
            "flow_logs: account \"1234567890\" has 11 flow logs, over the quota of 10 (quota.flow_logs_per_account)",
        ])),
        ("quota: counted per account", |v| {
            for i in 2..=12 {
                let account = if i % 2 == 0 { "1234567890" } else { "222" };
                push(v, "flow_logs", flow_log(&format!("fl-{i}"), account, "VPC", "vpc-1"));
            }
        }, Expect::Valid),
        ("quota: per the flow log's account, not the ENI's", |v| {
            for i in 2..=12 {
                push(v, "flow_logs", flow_log(&format!("fl-{i}"), "123", "NetworkInterface", "eni-a1"));
            }
        }, Expect::Problems(&["flow_logs: account \"123\" has 11 flow logs, over the quota of 10"])),
        ("quota set lower", |v| {
            v["quota"]["flow_logs_per_account"] = json!(1);
            push(v, "flow_logs", flow_log("fl-2", "1234567890", "VSwitch", "vsw-1"));
            push(v, "flow_logs", flow_log("fl-3", "9", "VSwitch", "vsw-1"));
            push(v, "flow_logs", flow_log("fl-4", "9", "VSwitch", "vsw-1"));
            push(v, "flow_logs", flow_log("fl-5", "9", "VSwitch", "vsw-1"));
        }, Expect::Problems(&[
            "flow_logs: account \"1234567890\" has 2 flow logs, over the quota of 1 (quota.flow_logs_per_account)",
            "flow_logs: account \"9\" has 3 flow logs, over the quota of 1 (quota.flow_logs_per_account)",
        ])),
        ("quota set higher", |v| {
            v["quota"]["flow_logs_per_account"] = json!(20);
            for i in 2..=20 {
                push(v, "flow_logs", flow_log(&format!("fl-{i}"), "1234567890", "VPC", "vpc-1"));
            }
        }, Expect::Valid),
        ("NetworkInterface flow log on ecs.t1.small", |v| {
            v["enis"][0]["instance_type"] = json!("ecs.t1.small");
            push(v, "flow_logs", flow_log("fl-2", "1", "NetworkInterface", "eni-a1"));
        }, Expect::Problems(&[
            "flow_logs[1].resource_id: ENI \"eni-a1\" has instance type ecs.t1.small, whose family ecs.t1 does not support flow logs",
        ])),
        ("... even if Inactive", |v| {
            v["enis"][0]["instance_type"] = json!("ecs.sn2.medium");
            let mut f = flow_log("fl-2", "1", "NetworkInterface", "eni-a1");
            f["status"] = json!("Inactive");
            push(v, "flow_logs", f);
        }, Expect::Problems(&["flow_logs[1].resource_id: ENI \"eni-a1\" has instance type ecs.sn2.medium, whose family ecs.sn2 does not"])),
        ("... a type with one dot is its own family", |v| {
            v["enis"][0]["instance_type"] = json!("ecs.t1");
            push(v, "flow_logs", flow_log("fl-2", "1", "NetworkInterface", "eni-a1"));
        }, Expect::Problems(&["flow_logs[1].resource_id: ENI \"eni-a1\" has instance type ecs.t1, whose family ecs.t1 does not"])),
        ("ecs.t10.x is not ecs.t1", |v| {
            v["enis"][0]["instance_type"] = json!("ecs.t10.x");
            push(v, "flow_logs", flow_log("fl-2", "1", "NetworkInterface", "eni-a1"));
        }, Expect::Valid),
        ("VSwitch and VPC flow logs over an unsupported ENI are fine", |v| {
            v["enis"][0]["instance_type"] = json!("ecs.t1.small");
            push(v, "flow_logs", flow_log("fl-2", "1", "VSwitch", "vsw-1"));
        }, Expect::Valid),
        // --- Sinks
        ("the sinks example", |v| {
            v["sinks"] = sinks_example();
            v["flow_logs"][0]["sink_ids"] = json!(["local", "collector"]);
            push(v, "flow_logs", {
                let mut f = flow_log("fl-2", "1", "VPC", "vpc-1");
                f["sink_ids"] = json!(["analytics"]);
                f
            });
        }, Expect::Valid),
        ("local needs no declaration", |v| v["flow_logs"][0]["sink_ids"] = json!(["local"]), Expect::Valid),
        ("sink_ids naming no sink", |v| v["flow_logs"][0]["sink_ids"] = json!(["local", "collector"]), Expect::Problems(&[
            "flow_logs[0].sink_ids[1]: no sink \"collector\"; declare it in sinks",
        ])),
        ("a sink listed twice", |v| v["flow_logs"][0]["sink_ids"] = json!(["local", "local"]), Expect::Problems(&[
            "flow_logs[0].sink_ids[1]: \"local\" is listed twice",
        ])),
        ("unknown sink type (and no second problem where it is named)", |v| {
            v["sinks"] = sinks_example();
            v["sinks"][1]["type"] = json!("kafka");
            v["flow_logs"][0]["sink_ids"] = json!(["analytics"]);
        }, Expect::Problems(&[
            "sinks[1].type: unknown sink type \"kafka\"; the types are \"ipfix\", \"clickhouse\"",
        ])),
        ("sink without a type", |v| {
            v["sinks"] = sinks_example();
            del(&mut v["sinks"][0], "type");
        }, Expect::Problems(&["sinks[0]: missing key \"type\""])),
        ("sink declared as local", |v| {
            v["sinks"] = sinks_example();
            v["sinks"][0]["sink_id"] = json!("local");
        }, Expect::Problems(&["sinks[0].sink_id: \"local\" is the local log store"])),
        ("duplicate sink id", |v| {
            v["sinks"] = sinks_example();
            v["sinks"][1]["sink_id"] = json!("collector");
        }, Expect::Problems(&["sinks[1].sink_id: \"collector\" is also sinks[0].sink_id"])),
        ("unknown sink option", |v| {
            v["sinks"] = sinks_example();
            v["sinks"][0]["adress"] = json!("x");
        }, Expect::Problems(&["sinks[0]: ipfix sink: unknown field `adress`"])),
        ("missing sink option", |v| {
            v["sinks"] = sinks_example();
            del(&mut v["sinks"][1], "spool_dir");
        }, Expect::Problems(&["sinks[1]: clickhouse sink: missing field `spool_dir`"])),
        ("bad ipfix transport", |v| {
            v["sinks"] = sinks_example();
            v["sinks"][0]["transport"] = json!("sctp");
        }, Expect::Problems(&["sinks[0]: ipfix sink: unknown variant `sctp`"])),
        ("bad ipfix address", |v| {
            v["sinks"] = sinks_example();
            v["sinks"][0]["address"] = json!("127.0.0.1");
        }, Expect::Problems(&["sinks[0].address: \"127.0.0.1\" is not host:port"])),
        ("ipfix address by name, tcp", |v| {
            v["sinks"] = sinks_example();
            v["sinks"][0]["address"] = json!("collector.example:4739");
            v["sinks"][0]["transport"] = json!("tcp");
        }, Expect::Valid),
        ("clickhouse without endpoints", |v| {
            v["sinks"] = sinks_example();
            v["sinks"][1]["endpoints"] = json!([]);
        }, Expect::Problems(&["sinks[1].endpoints: is empty"])),
        ("clickhouse endpoint not a URL", |v| {
            v["sinks"] = sinks_example();
            v["sinks"][1]["endpoints"] = json!(["127.0.0.1:8123"]);
        }, Expect::Problems(&["sinks[1].endpoints[0]: \"127.0.0.1:8123\" is not an http:// or https:// URL"])),
        ("sink that is not an object", |v| v["sinks"] = json!(["collector"]), Expect::Json("invalid type: string \"collector\", expected a map")),
        ("log store format and compression", |v| {
            v["log_store_format"] = json!("text");
            v["log_store_compress"] = json!("zstd");
            v["log_store_root"] = json!("/var/log/flowlogs");
        }, Expect::Valid),
        ("log store format parquet", |v| v["log_store_format"] = json!("parquet"), Expect::Valid),
        ("log store format csv", |v| v["log_store_format"] = json!("csv"), Expect::Json("unknown variant `csv`, expected one of `jsonl`, `text`, `parquet`")),
        ("log store compress gzip", |v| v["log_store_compress"] = json!("gzip"), Expect::Json("unknown variant `gzip`, expected `none` or `zstd`")),
    ];

    #[test]
    fn contract_table() {
        let mut failures = Vec::new();
        for (name, edit, expect) in CASES {
            let mut v = example();
            edit(&mut v);
            let got = parse(&v);
            let ok = match (expect, &got) {
                (Expect::Valid, Ok(_)) => true,
                (Expect::Json(want), Err(ConfigError::Json { message, .. })) => {
                    message.contains(want)
                }
                (Expect::Problems(want), Err(ConfigError::Invalid { problems, .. })) => {
                    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
                    lines.len() == want.len()
                        && want.iter().all(|w| lines.iter().any(|l| l.starts_with(w)))
                }
                _ => false,
            };
            if !ok {
                let got = match got {
                    Ok(_) => "accepted".to_owned(),
                    Err(e) => e.to_string(),
                };
                failures.push(format!("{name}:\n  got: {got}"));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} cases failed:\n{}",
            failures.len(),
            CASES.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn a_host_with_more_enis_than_an_index_holds_is_refused() {
        let mut v = example();
        let e0 = v["enis"][0].clone();
        let many = |n: usize| -> Value {
            (0..n)
                .map(|i| {
                    let mut e = e0.clone();
                    e["eni_id"] = json!(format!("eni-{i}"));
                    e["mac"] = json!(format!("02:01:00:00:{:02x}:{:02x}", i >> 8, i & 0xff));
                    e["port"] = Value::Null;
                    e
                })
                .collect()
        };
        let at_enis = |r: &Result<Config, ConfigError>| match r {
            Err(ConfigError::Invalid { problems, .. }) => problems
                .iter()
                .filter(|p| p.path == "enis")
                .map(|p| p.message.clone())
                .collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        v["enis"] = many(MAX_ENIS + 1);
        assert_eq!(
            at_enis(&parse(&v)),
            ["65534 ENIs: one host holds at most 65533; split the host's configuration"]
        );
        v["enis"] = many(MAX_ENIS);
        assert!(at_enis(&parse(&v)).is_empty());
    }

    #[test]
    fn example_values() {
        let c = from_json(EXAMPLE, "host.json").unwrap();
        assert_eq!(c.host, "hv-0001");
        let e = &c.enis[0];
        assert_eq!(e.mac, Mac([2, 0, 0, 0, 0, 1]));
        assert_eq!(
            e.ips,
            vec![
                "10.0.1.5".parse::<IpAddr>().unwrap(),
                "fd00::1:5".parse().unwrap()
            ]
        );
        assert_eq!(e.vm_id.as_deref(), Some("i-a1"));
        assert_eq!(e.port, Some(0));
        assert_eq!(e.family(), "ecs.g7");
        assert_eq!(c.vswitches[0].cidr, Some("10.0.1.0/24".parse().unwrap()));
        assert!(c.vswitches[0].contains("10.0.1.200".parse().unwrap()));
        assert!(!c.vswitches[0].contains("10.0.2.1".parse().unwrap()));
        let r = &c.security_groups[0].rules[0];
        assert_eq!(
            (r.direction, r.policy, r.priority, r.ip_protocol),
            (RuleDirection::Ingress, Policy::Accept, 1, IpProtocol::Tcp)
        );
        assert_eq!(r.port_range, PortRange::new(443, 443).unwrap());
        assert!(c.security_groups[0].rules[1].port_range.is_all());
        assert_eq!(c.network_acls[0].ingress[0].policy, Policy::Drop);
        assert!(c.network_acls[0].egress.is_empty());
        let f = &c.flow_logs[0];
        assert_eq!(f.resource_type, ResourceType::Vpc);
        assert_eq!(
            (f.traffic_type, f.status, f.aggregation_interval),
            (TrafficType::All, FlowLogStatus::Active, 600)
        );
        assert_eq!(f.sink_ids, vec!["local"]);
        assert_eq!(c.quota.flow_logs_per_account, 10);
        assert!(c.sinks.is_empty());
        assert_eq!(
            (c.log_store_format, c.log_store_compress),
            (LogStoreFormat::Jsonl, LogStoreCompress::None)
        );
        assert_eq!(c.log_store_root, None);
        assert_eq!(c.coverage(), vec![vec![0]]);
    }

    #[test]
    fn defaults() {
        let mut v = example();
        for k in ["traffic_type", "status", "aggregation_interval"] {
            del(&mut v["flow_logs"][0], k);
        }
        del(&mut v["security_groups"][0]["rules"][0], "priority");
        del(&mut v["security_groups"][0]["rules"][0], "port_range");
        del(&mut v["network_acls"][0]["ingress"][0], "port_range");
        v["enis"][0]["vm_id"] = json!(null);
        del(&mut v["enis"][0], "security_group_ids");
        v["enis"][0]["port"] = json!(null);
        del(&mut v["vswitches"][0], "cidr");
        del(&mut v["vswitches"][0], "network_acl_id");
        del(&mut v, "quota");
        let c = parse(&v).unwrap();
        let f = &c.flow_logs[0];
        assert_eq!(f.traffic_type, TrafficType::All);
        assert_eq!(f.status, FlowLogStatus::Active);
        assert_eq!(f.aggregation_interval, 600);
        assert_eq!(f.sink_ids, vec![LOCAL_SINK]);
        assert_eq!(c.security_groups[0].rules[0].priority, 1);
        assert_eq!(c.security_groups[0].rules[0].port_range, PortRange::ALL);
        assert_eq!(c.network_acls[0].ingress[0].port_range, PortRange::ALL);
        assert_eq!(c.quota.flow_logs_per_account, 10);
        assert_eq!(c.enis[0].vm_id, None);
        assert!(c.enis[0].security_group_ids.is_empty());
        assert_eq!(c.enis[0].port, None);
        assert_eq!(
            (
                c.vswitches[0].cidr,
                c.vswitches[0].network_acl_id.as_deref()
            ),
            (None, None)
        );
        assert_eq!(
            (c.log_store_format, c.log_store_compress),
            (LogStoreFormat::Jsonl, LogStoreCompress::None)
        );
        // An empty or null sink_ids list is the same as none.
        v["flow_logs"][0]["sink_ids"] = json!([]);
        assert_eq!(parse(&v).unwrap().flow_logs[0].sink_ids, vec![LOCAL_SINK]);
        v["flow_logs"][0]["sink_ids"] = json!(null);
        assert_eq!(parse(&v).unwrap().flow_logs[0].sink_ids, vec![LOCAL_SINK]);
        // A flow log read on its own (the operator socket) gets the same defaults.
        let f: FlowLog = serde_json::from_value(flow_log("fl-9", "1", "VPC", "vpc-1")).unwrap();
        assert_eq!(
            (f.traffic_type, f.status, f.aggregation_interval, f.sink_ids),
            (
                TrafficType::All,
                FlowLogStatus::Active,
                600,
                vec![LOCAL_SINK.to_owned()]
            )
        );
    }

    /// The first JSON block of CONFIG.md itself, when shared/ is beside the
    /// repository (it is for developers and CI), is the example above.
    #[test]
    fn config_md_example_is_this_one() {
        let md = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/design/CONFIG.md");
        let Ok(md) = std::fs::read_to_string(&md) else {
            eprintln!("{} not found; checked the embedded copy only", md.display());
            return;
        };
        let block = md
            .split("```json\n")
            .nth(1)
            .unwrap()
            .split("```")
            .next()
            .unwrap();
        assert_eq!(
            from_json(block, "CONFIG.md").unwrap(),
            from_json(EXAMPLE, "example").unwrap()
        );
    }

    #[test]
    fn every_problem_listed_with_its_path() {
        let mut v = example();
        v["enis"][0]["vswitch_id"] = json!("vsw-7");
        v["enis"][0]["mac"] = json!("nope");
        v["vswitches"][0]["cidr"] = json!("10.0.0.0/33");
        v["security_groups"][0]["rules"][1]["priority"] = json!(0);
        v["flow_logs"][0]["resource_id"] = json!("vpc-9");
        v["flow_logs"][0]["aggregation_interval"] = json!(30);
        v["flow_logs"][0]["sink_ids"] = json!(["collector"]);
        let err = parse(&v).unwrap_err();
        let ConfigError::Invalid { origin, problems } = &err else {
            panic!("{err}")
        };
        assert_eq!(origin, "host.json");
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths.len(), 7, "{err}");
        for want in [
            "enis[0].vswitch_id",
            "enis[0].mac",
            "vswitches[0].cidr",
            "security_groups[0].rules[1].priority",
            "flow_logs[0].resource_id",
            "flow_logs[0].aggregation_interval",
            "flow_logs[0].sink_ids[0]",
        ] {
            assert!(paths.contains(&want), "{want} missing from\n{err}");
        }
        assert_eq!(
            paths,
            [
                "enis[0].mac",
                "enis[0].vswitch_id",
                "vswitches[0].cidr",
                "security_groups[0].rules[1].priority",
                "flow_logs[0].resource_id",
                "flow_logs[0].aggregation_interval",
                "flow_logs[0].sink_ids[0]",
            ],
            "in document order"
        );
        let text = err.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "host.json: 7 problems, the configuration is refused:"
        );
        assert_eq!(lines.len(), 8);
        assert!(
            lines[1..].iter().all(|l| l.starts_with("host.json: ")),
            "{text}"
        );
        assert!(lines.contains(&"host.json: flow_logs[0].resource_id: no VPC \"vpc-9\"; a VPC exists when a vSwitch or an ENI names it, and the VPCs are \"vpc-1\""), "{text}");
        assert!(lines.contains(&"host.json: security_groups[0].rules[1].priority: 0 is out of range 1-100 (1 is highest)"), "{text}");
    }

    #[test]
    fn json_errors_name_file_line_and_column() {
        let text = "{\n  \"host\": \"hv\",\n  \"enis\": [,]\n}";
        let err = from_json(text, "bad.json").unwrap_err();
        let ConfigError::Json { line, column, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!((*line, *column), (3, 12));
        assert!(
            err.to_string()
                .starts_with("bad.json:3:12: not valid JSON: "),
            "{err}"
        );

        let text = EXAMPLE.replace("\"vm_id\"", "\"vmid\"");
        let err = from_json(&text, "typo.json").unwrap_err().to_string();
        assert!(
            err.starts_with("typo.json:6:12: unknown field `vmid`, expected one of"),
            "{err}"
        );
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.json");
        let err = load(&path).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
        assert!(err
            .to_string()
            .starts_with(&format!("{}: cannot read", path.display())));
        std::fs::write(&path, EXAMPLE).unwrap();
        assert_eq!(load(&path).unwrap(), from_json(EXAMPLE, "x").unwrap());
        std::fs::write(
            &path,
            EXAMPLE.replace("vpc-1\", \"account_id", "vpc-2\", \"account_id"),
        )
        .unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{}: enis[0].vpc_id: ", path.display())),
            "{err}"
        );
    }

    #[test]
    fn serialises_back_to_the_same_config() {
        let mut v = example();
        v["sinks"] = sinks_example();
        v["flow_logs"][0]["sink_ids"] = json!(["local", "analytics"]);
        v["vswitches"][0]["ipv6_cidr"] = json!("fd00:0:0:1::/64");
        let c = parse(&v).unwrap();
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(from_json(&text, "again").unwrap(), c);
        // serde's own entry point validates too.
        assert_eq!(serde_json::from_str::<Config>(&text).unwrap(), c);
        v["flow_logs"][0]["resource_id"] = json!("vpc-9");
        let err = serde_json::from_value::<Config>(v).unwrap_err().to_string();
        assert!(
            err.contains("flow_logs[0].resource_id: no VPC \"vpc-9\""),
            "{err}"
        );
    }

    #[test]
    fn validate_checks_a_config_changed_in_code() {
        let mut c = from_json(EXAMPLE, "x").unwrap();
        assert!(c.validate("socket").is_ok());
        c.security_groups[0].rules[0].priority = 0;
        c.flow_logs[0].aggregation_interval = 61;
        c.enis[0].vswitch_id = "vsw-x".into();
        c.flow_logs[0].sink_ids.clear();
        let err = c.validate("socket").unwrap_err().to_string();
        assert!(err.starts_with("socket: 4 problems"), "{err}");
    }

    #[test]
    fn unsupported_families() {
        for family in UNSUPPORTED_FAMILIES {
            assert!(
                Config::unsupported_family(&format!("{family}.large")),
                "{family}"
            );
            assert!(Config::unsupported_family(family), "{family}");
        }
        assert_eq!(UNSUPPORTED_FAMILIES.len(), 26);
        for ok in [
            "ecs.t10.x",
            "ecs.t5-lc1m1.small",
            "ecs.g7.large",
            "ecs.c10.xlarge",
            "ecs",
            "",
            "ecs.t1x.small",
        ] {
            assert!(!Config::unsupported_family(ok), "{ok}");
        }
        assert_eq!(instance_family("ecs.t1.small"), "ecs.t1");
        assert_eq!(instance_family("ecs.g7.large.extra"), "ecs.g7");
        assert_eq!(instance_family("ecs.t1"), "ecs.t1");
    }

    /// A host with two VPCs: vpc-1 has vsw-1 (eni-a, eni-b) and vsw-2
    /// (eni-c, of an unsupported family); vpc-2 has vsw-3 (eni-d).
    fn host(flow_logs: Value) -> Config {
        let mut v = example();
        v["enis"] = json!([
            eni("eni-a", "vsw-1", "vpc-1", "ecs.g7.large", 1),
            eni("eni-b", "vsw-1", "vpc-1", "ecs.g7.large", 2),
            eni("eni-c", "vsw-2", "vpc-1", "ecs.t1.small", 3),
            eni("eni-d", "vsw-3", "vpc-2", "ecs.g7.large", 4),
        ]);
        v["vswitches"] = json!([
            { "vswitch_id": "vsw-1", "vpc_id": "vpc-1" },
            { "vswitch_id": "vsw-2", "vpc_id": "vpc-1" },
            { "vswitch_id": "vsw-3", "vpc_id": "vpc-2" },
        ]);
        v["flow_logs"] = flow_logs;
        parse(&v).unwrap()
    }

    #[test]
    fn coverage_own_vswitch_and_vpc_flow_logs() {
        let c = host(json!([
            flow_log("fl-vpc1", "1", "VPC", "vpc-1"),
            flow_log("fl-vsw1", "1", "VSwitch", "vsw-1"),
            flow_log("fl-a", "1", "NetworkInterface", "eni-a"),
            flow_log("fl-vpc2", "1", "VPC", "vpc-2"),
            flow_log("fl-vsw2", "1", "VSwitch", "vsw-2"),
        ]));
        assert_eq!(c.eni_index("eni-c"), Some(2));
        assert_eq!(c.eni_index("eni-z"), None);
        assert_eq!(c.flow_log_index("fl-vpc2"), Some(3));
        // eni-a: all three of its own; eni-b: VPC and vSwitch; eni-c: skipped;
        // eni-d: its VPC's.
        assert_eq!(
            c.coverage(),
            vec![vec![0, 1, 2], vec![0, 1], vec![], vec![3]]
        );
        assert_eq!(c.skipped_unsupported(), vec![(0, 2), (4, 2)]);
    }

    #[test]
    fn inactive_flow_logs_cover_nothing() {
        let mut logs = json!([
            flow_log("fl-vpc1", "1", "VPC", "vpc-1"),
            flow_log("fl-a", "1", "NetworkInterface", "eni-a"),
            flow_log("fl-vsw2", "1", "VSwitch", "vsw-2"),
        ]);
        for f in logs.as_array_mut().unwrap() {
            f["status"] = json!("Inactive");
        }
        let c = host(logs);
        assert_eq!(c.coverage(), vec![Vec::<usize>::new(); 4]);
        assert!(c.skipped_unsupported().is_empty());
    }

    #[test]
    fn vpc_flow_log_covers_enis_attached_later() {
        let logs = json!([flow_log("fl-vpc1", "1", "VPC", "vpc-1")]);
        let mut v = example();
        v["flow_logs"] = logs;
        let before = parse(&v).unwrap();
        assert_eq!(before.coverage(), vec![vec![0]]);
        // Attach two ENIs, one in a new vSwitch of the same VPC, one elsewhere.
        push(
            &mut v,
            "vswitches",
            json!({"vswitch_id": "vsw-new", "vpc_id": "vpc-1"}),
        );
        push(
            &mut v,
            "vswitches",
            json!({"vswitch_id": "vsw-x", "vpc_id": "vpc-x"}),
        );
        push(
            &mut v,
            "enis",
            eni("eni-new", "vsw-new", "vpc-1", "ecs.g7.large", 9),
        );
        push(
            &mut v,
            "enis",
            eni("eni-x", "vsw-x", "vpc-x", "ecs.g7.large", 10),
        );
        let after = parse(&v).unwrap();
        assert_eq!(after.coverage(), vec![vec![0], vec![0], vec![]]);
    }

    #[test]
    fn parsed_types() {
        let c: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains("10.255.0.1".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(
            !c.contains("::a01:203".parse().unwrap()),
            "no cross-family match"
        );
        let any: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains("255.255.255.255".parse().unwrap()));
        assert!(!any.contains("::1".parse().unwrap()));
        let host: Cidr = "10.0.0.1".parse().unwrap();
        assert_eq!(host.prefix(), 32);
        let v6: Cidr = "fd00::1:5/112".parse().unwrap();
        assert_eq!(v6.to_string(), "fd00::1:0/112");
        assert!(v6.contains("fd00::1:ffff".parse().unwrap()));
        assert!("::/0"
            .parse::<Cidr>()
            .unwrap()
            .contains("fd00::1".parse().unwrap()));
        for bad in [
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/8/8",
            "x/8",
            "fd00::/200",
            "",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert_eq!(
            "02:AB:00:00:00:ff".parse::<Mac>().unwrap().to_string(),
            "02:ab:00:00:00:ff"
        );
        for bad in [
            "02:00:00:00:00",
            "02:00:00:00:00:00:00",
            "2:0:0:0:0:1",
            "02:00:00:00:00:0g",
            "02.00.00.00.00.01",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad}");
        }
        let all = PortRange::ALL;
        assert!(all.contains(0) && all.contains(65535));
        assert_eq!(all.to_string(), "-1/-1");
        let r: PortRange = "1/65535".parse().unwrap();
        assert!(!r.contains(0) && r.contains(1) && r.contains(65535) && !r.is_all());
        assert_eq!("80/80".parse::<PortRange>().unwrap().to_string(), "80/80");
        assert!(
            IpProtocol::All.matches(132)
                && !IpProtocol::Tcp.matches(17)
                && IpProtocol::Icmpv6.matches(58)
        );
        assert!(
            TrafficType::Allow.admits(Action::Accept) && !TrafficType::Allow.admits(Action::Reject)
        );
        assert!(
            TrafficType::Drop.admits(Action::Reject) && TrafficType::All.admits(Action::Reject)
        );
    }
}
