//! Security groups (stateful, per ENI) and network ACLs (stateless, per
//! vSwitch), judged inline per packet (CONFIG.md, "Security groups",
//! "Network ACLs", "Order of evaluation").
//!
//! Rules are compiled when a configuration is loaded ([`CompiledPolicy`]):
//! per ENI, the rules of all its security groups in one first-match
//! [`rules::RuleSet`] per direction, sorted by priority with `drop` before
//! `accept` at equal priority — so "the highest priority wins, drop beats
//! accept" is "the first match wins"; per vSwitch, its network ACL's lists in
//! their own order. Each worker has its own [`Policy`]: the compiled rules
//! (shared, immutable) and its connection table ([`conn::ConnTable`]).
//!
//! Both directions of a connection meet the same connection table because
//! packets are dispatched to workers by `attrib::symmetric_hash`, which
//! hashes each endpoint alone and combines them symmetrically (ICMP by its
//! addresses only, as the connection key here).

pub mod conn;
pub mod rules;

use crate::wire::PacketMeta;
use crate::worker::{Verdicts, HINT_NONE, HINT_STATELESS};
use conn::{ConnKey, ConnTable};
use exporter::config::{Cidr, Config, Policy as RulePolicy, RuleDirection};
use exporter::record::{Action, Direction};
use rules::{Rule, RuleSet};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// A vSwitch's own networks: a network ACL does not filter a peer in them.
#[derive(Clone, Copy, Debug, Default)]
struct OwnNets {
    v4: Option<(u32, u32)>,
    v6: Option<(u128, u128)>,
}

impl OwnNets {
    fn from(c4: Option<&Cidr>, c6: Option<&Cidr>) -> OwnNets {
        let mut n = OwnNets::default();
        for c in [c4, c6].into_iter().flatten() {
            match c.network() {
                IpAddr::V4(a) => {
                    let mask = if c.prefix() == 0 {
                        0
                    } else {
                        u32::MAX << (32 - u32::from(c.prefix()))
                    };
                    n.v4 = Some((u32::from(a) & mask, mask));
                }
                IpAddr::V6(a) => {
                    let mask = if c.prefix() == 0 {
                        0
                    } else {
                        u128::MAX << (128 - u32::from(c.prefix()))
                    };
                    n.v6 = Some((u128::from(a) & mask, mask));
                }
            }
        }
        n
    }

    #[inline]
    fn contains(&self, a: &[u8; 16], v6: bool) -> bool {
        if v6 {
            self.v6
                .is_some_and(|(net, mask)| u128::from_be_bytes(*a) & mask == net)
        } else {
            self.v4.is_some_and(|(net, mask)| {
                u32::from_be_bytes([a[0], a[1], a[2], a[3]]) & mask == net
            })
        }
    }
}

/// Both directions' rules of one security-group set or network ACL.
#[derive(Debug)]
struct Sets {
    ingress: RuleSet,
    egress: RuleSet,
}

#[derive(Debug, Clone)]
struct EniPolicy {
    /// None: the ENI has no security group and accepts everything.
    sg: Option<Arc<Sets>>,
    /// None: the vSwitch has no network ACL.
    nacl: Option<Arc<Sets>>,
    own: OwnNets,
}

/// The rules of a configuration, compiled for per-packet lookup; shared by
/// every worker, immutable.
#[derive(Debug, Default)]
pub struct CompiledPolicy {
    enis: Vec<EniPolicy>,
    rules: usize,
}

impl CompiledPolicy {
    /// Compiles the policy of every ENI of `c` (by index). ENIs with the same
    /// list of security groups share one compiled set.
    pub fn from_config(c: &Config) -> CompiledPolicy {
        let mut sg_cache: HashMap<Vec<String>, Arc<Sets>> = HashMap::new();
        let mut nacl_cache: HashMap<String, Arc<Sets>> = HashMap::new();
        let mut total = 0;
        let enis = c
            .enis
            .iter()
            .map(|e| {
                let sg = if e.security_group_ids.is_empty() {
                    None
                } else {
                    let key = e.security_group_ids.clone();
                    Some(
                        sg_cache
                            .entry(key)
                            .or_insert_with(|| {
                                let mut ing: Vec<(u8, bool, usize, Rule)> = Vec::new();
                                let mut eg: Vec<(u8, bool, usize, Rule)> = Vec::new();
                                for id in &e.security_group_ids {
                                    let Some(g) = c.security_group(id) else {
                                        continue;
                                    };
                                    for r in &g.rules {
                                        let drop = r.policy == RulePolicy::Drop;
                                        let rule = Rule {
                                            proto: r.ip_protocol,
                                            ports: r.port_range,
                                            cidr: r.cidr,
                                            drop,
                                        };
                                        // Sort key: priority, then drop first, then order given.
                                        let k = (r.priority, !drop, ing.len() + eg.len(), rule);
                                        match r.direction {
                                            RuleDirection::Ingress => ing.push(k),
                                            RuleDirection::Egress => eg.push(k),
                                        }
                                    }
                                }
                                ing.sort_by_key(|x| (x.0, x.1, x.2));
                                eg.sort_by_key(|x| (x.0, x.1, x.2));
                                let ing: Vec<Rule> = ing.into_iter().map(|x| x.3).collect();
                                let eg: Vec<Rule> = eg.into_iter().map(|x| x.3).collect();
                                Arc::new(Sets {
                                    ingress: RuleSet::new(&ing),
                                    egress: RuleSet::new(&eg),
                                })
                            })
                            .clone(),
                    )
                };
                let vsw = c.vswitch(&e.vswitch_id);
                let nacl = vsw.and_then(|v| v.network_acl_id.as_ref()).and_then(|id| {
                    let acl = c.network_acl(id)?;
                    Some(
                        nacl_cache
                            .entry(id.clone())
                            .or_insert_with(|| {
                                let conv = |rs: &[exporter::config::NetworkAclRule]| -> Vec<Rule> {
                                    rs.iter()
                                        .map(|r| Rule {
                                            proto: r.ip_protocol,
                                            ports: r.port_range,
                                            cidr: r.cidr,
                                            drop: r.policy == RulePolicy::Drop,
                                        })
                                        .collect()
                                };
                                Arc::new(Sets {
                                    ingress: RuleSet::new(&conv(&acl.ingress)),
                                    egress: RuleSet::new(&conv(&acl.egress)),
                                })
                            })
                            .clone(),
                    )
                });
                let own = vsw
                    .map(|v| OwnNets::from(v.cidr.as_ref(), v.ipv6_cidr.as_ref()))
                    .unwrap_or_default();
                total += sg.as_ref().map_or(0, |s| s.ingress.len() + s.egress.len());
                EniPolicy { sg, nacl, own }
            })
            .collect();
        CompiledPolicy { enis, rules: total }
    }

    /// Security-group rules compiled, over all ENIs.
    pub fn rule_count(&self) -> usize {
        self.rules
    }
}

/// Counters of one worker's policy (written only by it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PolicyCounters {
    /// Packets judged by the security-group rules (no tracked connection).
    pub rule_lookups: u64,
    /// Packets let through the security group by a tracked connection.
    pub tracked: u64,
    /// Connections opened.
    pub opened: u64,
    /// Packets that could not open a connection: the table was full.
    pub conn_table_full: u64,
    /// Connections expired by the sweep.
    pub expired: u64,
    /// REJECT verdicts by a network ACL.
    pub nacl_drops: u64,
    /// REJECT verdicts by a security group.
    pub sg_drops: u64,
}

impl PolicyCounters {
    /// Adds another worker's counters.
    pub fn add(&mut self, c: &PolicyCounters) {
        self.rule_lookups += c.rule_lookups;
        self.tracked += c.tracked;
        self.opened += c.opened;
        self.conn_table_full += c.conn_table_full;
        self.expired += c.expired;
        self.nacl_drops += c.nacl_drops;
        self.sg_drops += c.sg_drops;
    }
}

/// One worker's policy: the shared compiled rules and its own connection
/// table. No allocation per packet.
#[derive(Debug)]
pub struct Policy {
    compiled: Arc<CompiledPolicy>,
    conns: ConnTable,
    /// Counters.
    pub counters: PolicyCounters,
}

/// Connection-table slots the sweep looks at per judged packet: bounded, so
/// no burst waits on expiry.
const SWEEP_PER_PACKET: usize = 2;

/// Slots the sweep looks at per burst whose packets passed by a reused
/// verdict (one bucket): a pass over 262 144 slots every 32 768 such
/// bursts, while expired slots are also taken over by new connections as
/// they come.
const SWEEP_PER_BURST: usize = conn::WINDOW;

impl Policy {
    /// A policy with a connection table of `conns` connections.
    pub fn new(compiled: Arc<CompiledPolicy>, conns: usize) -> Policy {
        Policy {
            compiled,
            conns: ConnTable::new(conns),
            counters: PolicyCounters::default(),
        }
    }

    /// Judges from now on by `compiled` (new rules, new ENIs); the tracked
    /// connections stay, as a stateful firewall keeps them when its rules
    /// change.
    pub fn set_compiled(&mut self, compiled: Arc<CompiledPolicy>) {
        self.compiled = compiled;
    }

    /// The connection table. Packets that passed by a remembered verdict
    /// are in it once their flow table was written back (see
    /// [`conn::ConnDeadlines`]).
    pub fn conns(&self) -> &ConnTable {
        &self.conns
    }
}

impl Verdicts for Policy {
    #[inline]
    fn judge(&mut self, eni: u16, dir: Direction, m: &PacketMeta, now: u64) -> Action {
        self.judge_hinted(eni, dir, m, now).0
    }

    /// The hint of an ACCEPT: [`HINT_STATELESS`] where the ENI has no
    /// security group (the verdict is the network ACL's, a function of the
    /// flow key), the connection's slot where a tracked connection let it
    /// through or was opened, [`HINT_NONE`] when the connection table was
    /// full (the next packet may find room).
    #[inline]
    fn judge_hinted(
        &mut self,
        eni: u16,
        dir: Direction,
        m: &PacketMeta,
        now: u64,
    ) -> (Action, u32) {
        let Some(p) = self.compiled.enis.get(usize::from(eni)) else {
            return (Action::Accept, HINT_STATELESS);
        };
        let peer = match dir {
            Direction::In => &m.src,
            Direction::Out => &m.dst,
        };
        // Network ACL: stateless, first match in list order, default accept;
        // a peer inside the ENI's own vSwitch is not filtered.
        let mut nacl_drop = false;
        if let Some(acl) = &p.nacl {
            if !p.own.contains(peer, m.v6) {
                let set = match dir {
                    Direction::In => &acl.ingress,
                    Direction::Out => &acl.egress,
                };
                nacl_drop = set.first_match(m.protocol, m.dst_port, peer, m.v6) == Some(true);
            }
        }
        let Some(sg) = &p.sg else {
            // No security group: everything passes it (and needs no state).
            if nacl_drop {
                self.counters.nacl_drops += 1;
                return (Action::Reject, HINT_NONE);
            }
            return (Action::Accept, HINT_STATELESS);
        };
        let key = ConnKey::new(eni, m);
        self.conns
            .sweep(now, SWEEP_PER_PACKET, &mut self.counters.expired);
        let probe = self.conns.probe(&key);
        let tracked = self.conns.tracked(&probe, now);
        let sg_accept = if tracked {
            self.counters.tracked += 1;
            true
        } else {
            self.counters.rule_lookups += 1;
            let set = match dir {
                Direction::In => &sg.ingress,
                Direction::Out => &sg.egress,
            };
            match set.first_match(m.protocol, m.dst_port, peer, m.v6) {
                Some(drop) => !drop,
                // No matching rule: ingress dropped, egress accepted.
                None => dir == Direction::Out,
            }
        };
        if nacl_drop {
            self.counters.nacl_drops += 1;
            return (Action::Reject, HINT_NONE);
        }
        if !sg_accept {
            self.counters.sg_drops += 1;
            return (Action::Reject, HINT_NONE);
        }
        // Only a final ACCEPT opens or refreshes a connection.
        let (touch, slot) = self.conns.touch_slot(&key, &probe, now);
        match touch {
            conn::Touch::Refreshed => {}
            conn::Touch::Opened => self.counters.opened += 1,
            conn::Touch::Full => self.counters.conn_table_full += 1,
        }
        let hint = slot
            .and_then(|i| u32::try_from(i).ok())
            .filter(|&i| i < HINT_STATELESS)
            .unwrap_or(HINT_NONE);
        (Action::Accept, hint)
    }

    /// A later packet of a flow accepted before, in the same table and
    /// configuration. Stateless: accepted again (same key, same rules).
    /// Through connection `hint`: accepted if the flow's last packet is less
    /// than the connection's idle timeout old (`secs - last_secs` whole
    /// seconds below it means less than it in nanoseconds). The flow's first
    /// packet in this table was accepted and touched the connection, less
    /// than a slice (at most 60 s) ago, so it is still live in the same
    /// slot: the packet passes the security group as tracked, and the
    /// network ACL (a function of the key) as it did then. Its time stays
    /// in the flow's entry, and reaches the connection table when the
    /// entry is written back (see [`conn::ConnDeadlines`]): nothing here
    /// touches the connection table.
    #[inline]
    fn reuse(&mut self, hint: u32, proto: u8, last_secs: u64, secs: u64, _now: u64) -> bool {
        if hint == HINT_STATELESS {
            return true;
        }
        if hint == HINT_NONE {
            return false;
        }
        let idle = if proto == 6 {
            conn::TCP_IDLE
        } else {
            conn::OTHER_IDLE
        };
        if secs.saturating_sub(last_secs) >= idle / conn::NS {
            return false;
        }
        self.counters.tracked += 1;
        true
    }

    #[inline]
    fn housekeeping(&mut self, now: u64) {
        self.conns
            .sweep(now, SWEEP_PER_BURST, &mut self.counters.expired);
    }

    fn conn_deadlines(&self) -> Option<Arc<conn::ConnDeadlines>> {
        Some(self.conns.deadlines())
    }

    #[inline]
    fn evicted(&mut self, e: &crate::flow::FlowEntry, slice_start: u64) {
        self.conns.write_back(e, slice_start);
    }
}

#[cfg(test)]
mod tests;
