//! The per-window merge: flows from every worker's tables (and their
//! evictions) are added per aggregation interval in use; when a window
//! closes, its records are fanned out to every active flow log that covers
//! the ENI, `traffic_type` applied, with NODATA and SKIPDATA records, and
//! handed to the sink callback one flow log window at a time.
//!
//! Windows are exact for any mix of intervals: workers rotate their tables
//! on slices of the greatest common divisor of the active intervals (all
//! epoch-aligned), so a slice lies wholly inside one window of every
//! interval, and a window is the union of its slices.

use crate::config::{Config, TrafficType};
use crate::key::FlowKey;
use crate::record::{LogStatus, Record, VERSION};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::collections::BTreeMap;

/// What the records of one ENI say about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EniInfo {
    /// `eni-id`.
    pub eni_id: String,
    /// `account-id`.
    pub account_id: String,
    /// `vpc-id`.
    pub vpc_id: String,
    /// `vswitch-id`.
    pub vswitch_id: String,
    /// `vm-id` (None if detached).
    pub vm_id: Option<String>,
    /// Indices (into [`Plan::flow_logs`]) of the active flow logs covering it.
    pub flow_logs: Vec<usize>,
}

/// One active flow log, as the exporter needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowLogInfo {
    /// `flow_log_id`.
    pub flow_log_id: String,
    /// Aggregation interval, seconds.
    pub interval: u64,
    /// `traffic_type`.
    pub traffic: TrafficType,
    /// `project_name`.
    pub project_name: String,
    /// `log_store_name`.
    pub log_store_name: String,
    /// ENI indices it covers (for NODATA and SKIPDATA).
    pub enis: Vec<u16>,
    /// Whether its `sink_ids` name `local` (the local log store).
    pub local: bool,
}

/// The exporter's view of a configuration: only active flow logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Every ENI of the configuration, by index.
    pub enis: Vec<EniInfo>,
    /// Active flow logs.
    pub flow_logs: Vec<FlowLogInfo>,
}

impl Plan {
    /// The plan of a validated configuration: every ENI, the active flow
    /// logs, and which of them cover which ENI (`Config::coverage`: its own,
    /// its vSwitch's and its VPC's; VSwitch and VPC flow logs skip ENIs of
    /// unsupported instance families).
    pub fn from_config(c: &Config) -> Plan {
        let active: Vec<usize> = (0..c.flow_logs.len())
            .filter(|&i| c.flow_logs[i].is_active())
            .collect();
        let pos = |cfg_idx: usize| active.iter().position(|&a| a == cfg_idx);
        let mut flow_logs: Vec<FlowLogInfo> = active
            .iter()
            .map(|&i| {
                let f = &c.flow_logs[i];
                FlowLogInfo {
                    flow_log_id: f.flow_log_id.clone(),
                    interval: u64::from(f.aggregation_interval),
                    traffic: f.traffic_type,
                    project_name: f.project_name.clone(),
                    log_store_name: f.log_store_name.clone(),
                    enis: Vec::new(),
                    local: f.sink_ids.iter().any(|s| s == crate::config::LOCAL_SINK),
                }
            })
            .collect();
        let coverage = c.coverage();
        let enis = c
            .enis
            .iter()
            .enumerate()
            .map(|(ei, e)| {
                let fls: Vec<usize> = coverage
                    .get(ei)
                    .into_iter()
                    .flatten()
                    .filter_map(|&f| pos(f))
                    .collect();
                for &f in &fls {
                    flow_logs[f].enis.push(ei as u16);
                }
                EniInfo {
                    eni_id: e.eni_id.clone(),
                    account_id: e.account_id.clone(),
                    vpc_id: e.vpc_id.clone(),
                    vswitch_id: e.vswitch_id.clone(),
                    vm_id: e.vm_id.clone(),
                    flow_logs: fls,
                }
            })
            .collect();
        Plan { enis, flow_logs }
    }

    /// The distinct aggregation intervals of the active flow logs, ascending.
    pub fn intervals(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.flow_logs.iter().map(|f| f.interval).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The slice on which workers rotate their tables: the greatest common
    /// divisor of the active intervals (600 when none is active).
    pub fn slice_secs(&self) -> u64 {
        fn gcd(a: u64, b: u64) -> u64 {
            if b == 0 {
                a
            } else {
                gcd(b, a % b)
            }
        }
        self.intervals()
            .into_iter()
            .reduce(gcd)
            .unwrap_or(600)
            .max(1)
    }
}

/// Aggregated counters of one key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Agg {
    /// Packets.
    pub packets: u64,
    /// IP-level bytes.
    pub bytes: u64,
    /// Unix seconds of the first packet.
    pub start: u64,
    /// Unix seconds of the last packet.
    pub end: u64,
    /// OR of TCP flags.
    pub flags: u8,
}

impl Agg {
    fn merge(&mut self, o: &Agg) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.start = self.start.min(o.start);
        self.end = self.end.max(o.end);
        self.flags |= o.flags;
    }
}

#[derive(Default)]
struct WindowAcc {
    flows: HashMap<FlowKey, Agg>,
    skipped: HashMap<u16, (u64, u64)>,
    traffic: HashSet<u16>,
}

/// Per flow log: what was delivered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowLogStats {
    /// Records delivered (all statuses).
    pub records: u64,
    /// OK records.
    pub ok: u64,
    /// NODATA records.
    pub nodata: u64,
    /// SKIPDATA records.
    pub skipdata: u64,
    /// Windows delivered.
    pub windows: u64,
    /// Start of the last window delivered, Unix seconds.
    pub last_window: Option<u64>,
    /// The last delivery error, if the last delivery failed.
    pub error: Option<String>,
}

/// Where the records of one flow log window go.
pub type Sink<'a> = dyn FnMut(&FlowLogInfo, u64, &[Record]) -> Result<(), String> + 'a;

/// Merges flows per window and emits records when windows close.
pub struct Merger {
    plan: Plan,
    intervals: Vec<u64>,
    open: Vec<BTreeMap<u64, WindowAcc>>,
    next_emit: Vec<Option<u64>>,
    stats: Vec<FlowLogStats>,
    late: u64,
}

impl std::fmt::Debug for Merger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Merger")
            .field("intervals", &self.intervals)
            .finish_non_exhaustive()
    }
}

impl Merger {
    /// A merger for `plan`.
    pub fn new(plan: Plan) -> Merger {
        let intervals = plan.intervals();
        let n = intervals.len();
        let stats = vec![FlowLogStats::default(); plan.flow_logs.len()];
        Merger {
            plan,
            intervals,
            open: (0..n).map(|_| BTreeMap::new()).collect(),
            next_emit: vec![None; n],
            stats,
            late: 0,
        }
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Delivery stats per flow log (same order as the plan's).
    pub fn stats(&self) -> &[FlowLogStats] {
        &self.stats
    }

    /// Flows that arrived for a window already delivered (should stay 0).
    pub fn late(&self) -> u64 {
        self.late
    }

    /// Sets the first covered time: windows from the one holding `secs` on
    /// are delivered (NODATA included). Called once, before any data.
    ///
    /// Data that arrived before `begin` may have set a later start; `begin`
    /// moves it back (nothing is delivered before `begin`, so the windows in
    /// between still get their NODATA).
    pub fn begin(&mut self, secs: u64) {
        for (i, &iv) in self.intervals.iter().enumerate() {
            let w = secs / iv;
            self.next_emit[i] = Some(self.next_emit[i].map_or(w, |n| n.min(w)));
        }
    }

    fn window_acc(&mut self, i: usize, secs: u64) -> Option<&mut WindowAcc> {
        let w = secs / self.intervals[i];
        if self.next_emit[i].is_some_and(|n| w < n) {
            self.late += 1;
            return None;
        }
        if self.next_emit[i].is_none() {
            self.next_emit[i] = Some(w);
        }
        Some(self.open[i].entry(w).or_default())
    }

    /// Adds one flow's counters (a table entry or an eviction).
    pub fn add_flow(&mut self, key: &FlowKey, agg: &Agg) {
        for i in 0..self.intervals.len() {
            if let Some(acc) = self.window_acc(i, agg.start) {
                acc.traffic.insert(key.eni);
                acc.flows
                    .entry(*key)
                    .and_modify(|a| a.merge(agg))
                    .or_insert(*agg);
            }
        }
    }

    /// Adds packets of `eni` that could not be recorded in the slice
    /// holding `secs`.
    pub fn add_skipped(&mut self, eni: u16, secs: u64, packets: u64, bytes: u64) {
        for i in 0..self.intervals.len() {
            if let Some(acc) = self.window_acc(i, secs) {
                acc.traffic.insert(eni);
                let s = acc.skipped.entry(eni).or_default();
                s.0 += packets;
                s.1 += bytes;
            }
        }
    }

    /// Delivers every window that ends at or before `watermark` (Unix
    /// seconds): no worker will add to it any more.
    pub fn close_before(&mut self, watermark: u64, sink: &mut Sink<'_>) {
        for i in 0..self.intervals.len() {
            let iv = self.intervals[i];
            let Some(mut w) = self.next_emit[i] else {
                continue;
            };
            while (w + 1) * iv <= watermark {
                self.emit(i, w, sink);
                w += 1;
                self.next_emit[i] = Some(w);
            }
        }
    }

    /// Delivers every window up to and including the one holding `last`
    /// (the end of a replay, or an orderly stop).
    pub fn finish(&mut self, last: u64, sink: &mut Sink<'_>) {
        for i in 0..self.intervals.len() {
            let iv = self.intervals[i];
            let end = (last / iv + 1) * iv;
            let Some(mut w) = self.next_emit[i] else {
                continue;
            };
            while w * iv < end {
                self.emit(i, w, sink);
                w += 1;
                self.next_emit[i] = Some(w);
            }
            // Anything later than `last` (cannot happen in replay) still goes out.
            while let Some((&w, _)) = self.open[i].iter().next() {
                self.emit(i, w, sink);
            }
        }
    }

    fn record(&self, eni: u16, fl: usize, window_start: u64) -> Record {
        let e = &self.plan.enis[usize::from(eni)];
        Record {
            version: VERSION,
            account_id: e.account_id.clone(),
            vpc_id: e.vpc_id.clone(),
            vswitch_id: e.vswitch_id.clone(),
            vm_id: e.vm_id.clone(),
            eni_id: e.eni_id.clone(),
            srcaddr: None,
            dstaddr: None,
            srcport: None,
            dstport: None,
            protocol: None,
            direction: None,
            packets: 0,
            bytes: 0,
            start: 0,
            end: 0,
            tcp_flags: 0,
            log_status: LogStatus::Ok,
            action: None,
            flow_log_id: self.plan.flow_logs[fl].flow_log_id.clone(),
            window_start,
        }
    }

    fn emit(&mut self, i: usize, w: u64, sink: &mut Sink<'_>) {
        let iv = self.intervals[i];
        let acc = self.open[i].remove(&w).unwrap_or_default();
        let ws = w * iv;
        let fls: Vec<usize> = (0..self.plan.flow_logs.len())
            .filter(|&f| self.plan.flow_logs[f].interval == iv)
            .collect();
        let mut out: HashMap<usize, Vec<Record>> = fls.iter().map(|&f| (f, Vec::new())).collect();

        let mut flows: Vec<(FlowKey, Agg)> = acc.flows.into_iter().collect();
        flows.sort_unstable_by(|a, b| {
            let ea = &self.plan.enis[usize::from(a.0.eni)].eni_id;
            let eb = &self.plan.enis[usize::from(b.0.eni)].eni_id;
            ea.cmp(eb).then(a.0.cmp(&b.0))
        });
        for (key, agg) in &flows {
            let Some(eni) = self.plan.enis.get(usize::from(key.eni)) else {
                continue;
            };
            let action = key.action();
            for &fl in &eni.flow_logs {
                let info = &self.plan.flow_logs[fl];
                if info.interval != iv || !info.traffic.admits(action) {
                    continue;
                }
                let (src, dst) = key.addrs();
                let mut r = self.record(key.eni, fl, ws);
                r.srcaddr = Some(src);
                r.dstaddr = Some(dst);
                r.srcport = Some(key.sport);
                r.dstport = Some(key.dport);
                r.protocol = Some(key.proto);
                r.direction = Some(key.direction());
                r.action = Some(action);
                r.packets = agg.packets;
                r.bytes = agg.bytes;
                r.start = agg.start;
                r.end = agg.end;
                r.tcp_flags = agg.flags;
                out.get_mut(&fl).expect("interval's flow log").push(r);
            }
        }
        for &fl in &fls {
            let mut enis = self.plan.flow_logs[fl].enis.clone();
            enis.sort_by(|a, b| {
                self.plan.enis[usize::from(*a)]
                    .eni_id
                    .cmp(&self.plan.enis[usize::from(*b)].eni_id)
            });
            for eni in enis {
                let mut status = Vec::new();
                if !acc.traffic.contains(&eni) {
                    status.push((LogStatus::NoData, 0, 0));
                }
                if let Some(&(p, b)) = acc.skipped.get(&eni) {
                    status.push((LogStatus::SkipData, p, b));
                }
                for (st, p, b) in status {
                    let mut r = self.record(eni, fl, ws);
                    r.log_status = st;
                    r.packets = p;
                    r.bytes = b;
                    r.start = ws;
                    r.end = ws + iv - 1;
                    out.get_mut(&fl).expect("flow log").push(r);
                }
            }
        }
        for fl in fls {
            let recs = out.remove(&fl).unwrap_or_default();
            let st = &mut self.stats[fl];
            st.windows += 1;
            st.last_window = Some(ws);
            if recs.is_empty() {
                continue;
            }
            for r in &recs {
                st.records += 1;
                match r.log_status {
                    LogStatus::Ok => st.ok += 1,
                    LogStatus::NoData => st.nodata += 1,
                    LogStatus::SkipData => st.skipdata += 1,
                }
            }
            st.error = sink(&self.plan.flow_logs[fl], ws, &recs).err();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrafficType;
    use crate::key::{META_OUT, META_REJECT};
    use crate::record::{Action, Direction};

    fn eni(id: &str, fls: Vec<usize>) -> EniInfo {
        EniInfo {
            eni_id: id.into(),
            account_id: "1".into(),
            vpc_id: "vpc-1".into(),
            vswitch_id: "vsw-1".into(),
            vm_id: None,
            flow_logs: fls,
        }
    }

    fn fl(id: &str, interval: u64, traffic: TrafficType, enis: Vec<u16>) -> FlowLogInfo {
        FlowLogInfo {
            flow_log_id: id.into(),
            interval,
            traffic,
            project_name: "p".into(),
            log_store_name: "s".into(),
            enis,
            local: true,
        }
    }

    fn key(eni: u16, meta: u8, sport: u16) -> FlowKey {
        let mut k = FlowKey {
            eni,
            meta,
            proto: 6,
            sport,
            dport: 80,
            ..FlowKey::default()
        };
        k.src[..4].copy_from_slice(&[10, 0, 0, 1]);
        k.dst[..4].copy_from_slice(&[10, 0, 0, 2]);
        k
    }

    fn agg(packets: u64, start: u64, end: u64) -> Agg {
        Agg {
            packets,
            bytes: packets * 100,
            start,
            end,
            flags: 0x10,
        }
    }

    type Out = Vec<(String, u64, Vec<Record>)>;

    fn run(m: &mut Merger, f: impl FnOnce(&mut Merger, &mut Sink<'_>)) -> Out {
        let mut out: Out = Vec::new();
        let mut sink = |i: &FlowLogInfo, ws: u64, r: &[Record]| {
            out.push((i.flow_log_id.clone(), ws, r.to_vec()));
            Ok(())
        };
        f(m, &mut sink);
        out
    }

    #[test]
    fn merges_slices_and_workers_into_one_record_per_key() {
        let plan = Plan {
            enis: vec![eni("eni-a", vec![0])],
            flow_logs: vec![fl("fl", 300, TrafficType::All, vec![0])],
        };
        let mut m = Merger::new(plan);
        m.begin(600);
        let k = key(0, META_OUT, 1000);
        m.add_flow(
            &k,
            &Agg {
                flags: 0x02,
                ..agg(1, 610, 615)
            },
        );
        m.add_flow(&k, &agg(2, 660, 700)); // next 60 s slice, another worker
        m.add_flow(
            &k,
            &Agg {
                flags: 0x01,
                ..agg(4, 640, 650)
            },
        );
        let out = run(&mut m, |m, s| m.close_before(900, s));
        assert_eq!(out.len(), 1);
        let (id, ws, recs) = &out[0];
        assert_eq!((id.as_str(), *ws), ("fl", 600));
        assert_eq!(recs.len(), 1);
        let r = &recs[0];
        assert_eq!(
            (r.packets, r.bytes, r.start, r.end, r.tcp_flags),
            (7, 700, 610, 700, 0x13)
        );
        assert_eq!(r.direction, Some(Direction::Out));
        assert_eq!(r.action, Some(Action::Accept));
        assert_eq!(r.log_status, LogStatus::Ok);
    }

    #[test]
    fn a_window_closes_only_when_the_watermark_passes_its_end() {
        let plan = Plan {
            enis: vec![eni("eni-a", vec![0])],
            flow_logs: vec![fl("fl", 60, TrafficType::All, vec![0])],
        };
        let mut m = Merger::new(plan);
        m.begin(60);
        m.add_flow(&key(0, 0, 1), &agg(1, 61, 61));
        assert!(run(&mut m, |m, s| m.close_before(119, s)).is_empty());
        let out = run(&mut m, |m, s| m.close_before(120, s));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1, 60);
    }

    #[test]
    fn fan_out_filters_nodata_and_skipdata() {
        // eni-a is covered by an All (60 s) and a Drop (60 s) flow log, and
        // by a 300 s Allow log; eni-b only by the All log and is silent.
        let plan = Plan {
            enis: vec![eni("eni-a", vec![0, 1, 2]), eni("eni-b", vec![0])],
            flow_logs: vec![
                fl("all", 60, TrafficType::All, vec![0, 1]),
                fl("drop", 60, TrafficType::Drop, vec![0]),
                fl("allow5", 300, TrafficType::Allow, vec![0]),
            ],
        };
        assert_eq!(plan.slice_secs(), 60);
        let mut m = Merger::new(plan);
        m.begin(0);
        m.add_flow(&key(0, META_OUT, 1), &agg(3, 10, 20));
        m.add_flow(&key(0, META_REJECT, 2), &agg(1, 30, 30));
        m.add_skipped(0, 0, 5, 500);
        let out = run(&mut m, |m, s| m.finish(59, s));
        let get = |id: &str, ws: u64| {
            out.iter()
                .find(|(i, w, _)| i == id && *w == ws)
                .map(|x| x.2.clone())
                .unwrap_or_default()
        };
        let all = get("all", 0);
        let statuses: Vec<_> = all
            .iter()
            .map(|r| (r.eni_id.as_str(), r.log_status))
            .collect();
        assert_eq!(
            statuses,
            vec![
                ("eni-a", LogStatus::Ok),
                ("eni-a", LogStatus::Ok),
                ("eni-a", LogStatus::SkipData),
                ("eni-b", LogStatus::NoData)
            ]
        );
        let skip = &all[2];
        assert_eq!(
            (skip.packets, skip.bytes, skip.start, skip.end),
            (5, 500, 0, 59)
        );
        assert_eq!(
            (skip.srcaddr, skip.direction, skip.action, skip.tcp_flags),
            (None, None, None, 0)
        );
        let nodata = &all[3];
        assert_eq!(
            (nodata.packets, nodata.bytes, nodata.start, nodata.end),
            (0, 0, 0, 59)
        );
        let drop = get("drop", 0);
        assert_eq!(
            drop.iter()
                .filter(|r| r.log_status == LogStatus::Ok)
                .count(),
            1
        );
        assert_eq!(drop[0].action, Some(Action::Reject));
        assert!(
            drop.iter().any(|r| r.log_status == LogStatus::SkipData),
            "status records go to every flow log"
        );
        let allow = get("allow5", 0);
        assert_eq!(
            allow
                .iter()
                .filter(|r| r.log_status == LogStatus::Ok)
                .count(),
            1
        );
        assert_eq!(allow[0].action, Some(Action::Accept));
    }

    #[test]
    fn nodata_for_every_covered_window_even_empty_ones() {
        let plan = Plan {
            enis: vec![eni("eni-a", vec![0])],
            flow_logs: vec![fl("fl", 60, TrafficType::All, vec![0])],
        };
        let mut m = Merger::new(plan);
        m.begin(100);
        m.add_flow(&key(0, 0, 1), &agg(1, 100, 100));
        m.add_flow(&key(0, 0, 1), &agg(1, 290, 290));
        let out = run(&mut m, |m, s| m.finish(290, s));
        let windows: Vec<(u64, LogStatus)> = out
            .iter()
            .map(|(_, ws, r)| (*ws, r[0].log_status))
            .collect();
        assert_eq!(
            windows,
            vec![
                (60, LogStatus::Ok),
                (120, LogStatus::NoData),
                (180, LogStatus::NoData),
                (240, LogStatus::Ok)
            ]
        );
    }

    #[test]
    fn an_allow_log_of_an_eni_with_only_rejected_packets_gets_nothing() {
        let plan = Plan {
            enis: vec![eni("eni-a", vec![0])],
            flow_logs: vec![fl("fl", 60, TrafficType::Allow, vec![0])],
        };
        let mut m = Merger::new(plan);
        m.begin(0);
        m.add_flow(&key(0, META_REJECT, 1), &agg(1, 5, 5));
        let out = run(&mut m, |m, s| m.finish(5, s));
        assert!(out.is_empty(), "neither OK nor NODATA: {out:?}");
        assert_eq!(m.stats()[0].windows, 1);
    }

    #[test]
    fn begin_after_data_still_covers_from_the_first_time() {
        let plan = Plan {
            enis: vec![eni("eni-a", vec![0])],
            flow_logs: vec![fl("fl", 60, TrafficType::All, vec![0])],
        };
        let mut m = Merger::new(plan);
        m.add_flow(&key(0, 0, 1), &agg(1, 130, 130));
        m.begin(10);
        let out = run(&mut m, |m, s| m.finish(130, s));
        let windows: Vec<(u64, LogStatus)> = out
            .iter()
            .map(|(_, ws, r)| (*ws, r[0].log_status))
            .collect();
        assert_eq!(
            windows,
            vec![
                (0, LogStatus::NoData),
                (60, LogStatus::NoData),
                (120, LogStatus::Ok)
            ]
        );
    }

    #[test]
    fn slice_is_the_gcd_of_active_intervals() {
        let mk = |ivs: &[u64]| Plan {
            enis: vec![],
            flow_logs: ivs
                .iter()
                .map(|&i| fl("f", i, TrafficType::All, vec![]))
                .collect(),
        };
        assert_eq!(mk(&[600]).slice_secs(), 600);
        assert_eq!(mk(&[300, 600]).slice_secs(), 300);
        assert_eq!(mk(&[60, 300, 600]).slice_secs(), 60);
        assert_eq!(mk(&[]).slice_secs(), 600);
    }
}
