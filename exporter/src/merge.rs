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

/// What one generation's data adds to a window.
#[derive(Default)]
struct GenAcc {
    flows: HashMap<FlowKey, Agg>,
    skipped: HashMap<u16, (u64, u64)>,
    traffic: HashSet<u16>,
}

/// One window of one interval: its data per generation (usually one).
#[derive(Default)]
struct WindowAcc {
    by_gen: Vec<(u32, GenAcc)>,
}

impl WindowAcc {
    #[inline]
    fn gen(&mut self, g: u32) -> &mut GenAcc {
        let i = match self.by_gen.iter().position(|(x, _)| *x == g) {
            Some(i) => i,
            None => {
                self.by_gen.push((g, GenAcc::default()));
                self.by_gen.len() - 1
            }
        };
        &mut self.by_gen[i].1
    }
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

/// One configuration generation: the plan in force from `from` (Unix
/// seconds of the packet clock) until the next generation's `from`.
struct Gen {
    from: u64,
    plan: Plan,
    /// Plan flow-log position → index among every flow log ever seen.
    union: Vec<usize>,
}

/// Merges flows per window and emits records when windows close.
///
/// The configuration may change while it runs ([`Merger::push_generation`]):
/// every flow and skip count carries the generation it was recorded under,
/// and a window goes to the flow logs of every generation in force during it
/// (both at the second of a change), each flow to the flow logs its own
/// generation gave its ENI. So a flow log created at time T gets the packets
/// from T on, one stopped or deleted at T still delivers the window holding
/// T with the packets up to T, and an ENI that appears at T is logged from
/// its first packet.
pub struct Merger {
    gens: Vec<Gen>,
    /// Every flow log ever in a plan, by index (the union).
    fl_ids: Vec<String>,
    fl_index: HashMap<String, usize>,
    intervals: Vec<u64>,
    open: Vec<BTreeMap<u64, WindowAcc>>,
    next_emit: Vec<Option<u64>>,
    began: Option<u64>,
    stats: Vec<FlowLogStats>,
    late: u64,
}

impl std::fmt::Debug for Merger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Merger")
            .field("intervals", &self.intervals)
            .field("generations", &self.gens.len())
            .finish_non_exhaustive()
    }
}

impl Merger {
    /// A merger for `plan` (generation 0).
    pub fn new(plan: Plan) -> Merger {
        let mut m = Merger {
            gens: Vec::new(),
            fl_ids: Vec::new(),
            fl_index: HashMap::default(),
            intervals: Vec::new(),
            open: Vec::new(),
            next_emit: Vec::new(),
            began: None,
            stats: Vec::new(),
            late: 0,
        };
        m.push_generation(0, plan);
        m
    }

    /// Puts `plan` in force from `from` (Unix seconds; never before the
    /// previous generation's start). Returns the generation's number, which
    /// the data recorded under it must carry.
    pub fn push_generation(&mut self, from: u64, plan: Plan) -> u32 {
        let from = self.gens.last().map_or(from, |g| g.from.max(from));
        let mut union = Vec::with_capacity(plan.flow_logs.len());
        for f in &plan.flow_logs {
            let u = match self.fl_index.get(&f.flow_log_id) {
                Some(&u) => u,
                None => {
                    self.fl_ids.push(f.flow_log_id.clone());
                    self.stats.push(FlowLogStats::default());
                    self.fl_index
                        .insert(f.flow_log_id.clone(), self.fl_ids.len() - 1);
                    self.fl_ids.len() - 1
                }
            };
            union.push(u);
            if !self.intervals.contains(&f.interval) {
                self.intervals.push(f.interval);
                self.open.push(BTreeMap::new());
                // A new interval's windows start with the one holding `from`
                // (or the first time, once known).
                self.next_emit
                    .push(self.began.map(|b| b.max(from) / f.interval));
            }
        }
        self.gens.push(Gen { from, plan, union });
        (self.gens.len() - 1) as u32
    }

    /// The plan of the latest generation.
    pub fn plan(&self) -> &Plan {
        &self.gens.last().expect("generation 0").plan
    }

    /// Every flow log the merger has delivered to (or will), in the order of
    /// [`Merger::stats`]: those of the first plan first.
    pub fn flow_log_ids(&self) -> &[String] {
        &self.fl_ids
    }

    /// Delivery stats per flow log, in the order of [`Merger::flow_log_ids`].
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
        self.began = Some(secs);
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

    /// Adds one flow's counters (a table entry or an eviction) recorded
    /// under generation 0.
    pub fn add_flow(&mut self, key: &FlowKey, agg: &Agg) {
        self.add_flow_in(0, key, agg);
    }

    /// Adds one flow's counters recorded under generation `gen`.
    pub fn add_flow_in(&mut self, gen: u32, key: &FlowKey, agg: &Agg) {
        for i in 0..self.intervals.len() {
            if let Some(acc) = self.window_acc(i, agg.start) {
                let acc = acc.gen(gen);
                acc.traffic.insert(key.eni);
                acc.flows
                    .entry(*key)
                    .and_modify(|a| a.merge(agg))
                    .or_insert(*agg);
            }
        }
    }

    /// Adds packets of `eni` that could not be recorded in the slice
    /// holding `secs` (generation 0).
    pub fn add_skipped(&mut self, eni: u16, secs: u64, packets: u64, bytes: u64) {
        self.add_skipped_in(0, eni, secs, packets, bytes);
    }

    /// Adds skipped packets recorded under generation `gen`.
    pub fn add_skipped_in(&mut self, gen: u32, eni: u16, secs: u64, packets: u64, bytes: u64) {
        for i in 0..self.intervals.len() {
            if let Some(acc) = self.window_acc(i, secs) {
                let acc = acc.gen(gen);
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

    /// The generations in force during `[ws, we)`: each from its start to
    /// the next one's, both ends included (at the second of a change both
    /// were in force).
    fn gens_during(&self, ws: u64, we: u64) -> Vec<u32> {
        (0..self.gens.len())
            .filter(|&g| {
                let from = self.gens[g].from;
                let until = self.gens.get(g + 1).map_or(u64::MAX, |n| n.from);
                from < we && until >= ws
            })
            .map(|g| g as u32)
            .collect()
    }

    fn record(e: &EniInfo, flow_log_id: &str, window_start: u64) -> Record {
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
            flow_log_id: flow_log_id.to_owned(),
            window_start,
        }
    }

    fn emit(&mut self, i: usize, w: u64, sink: &mut Sink<'_>) {
        let iv = self.intervals[i];
        let acc = self.open[i].remove(&w).unwrap_or_default();
        let ws = w * iv;
        let during = self.gens_during(ws, ws + iv);
        // The flow logs of this interval in force during the window (union
        // index → the latest generation and plan position that has it).
        let mut fls: BTreeMap<usize, (u32, usize)> = BTreeMap::new();
        for &g in &during {
            let gen = &self.gens[g as usize];
            for (pos, f) in gen.plan.flow_logs.iter().enumerate() {
                if f.interval == iv {
                    fls.insert(gen.union[pos], (g, pos));
                }
            }
        }
        // OK records: each flow to the flow logs of its own generation.
        let mut ok: BTreeMap<usize, HashMap<FlowKey, (Agg, u32)>> = BTreeMap::new();
        for (g, gacc) in &acc.by_gen {
            let gen = &self.gens[*g as usize];
            for (key, agg) in &gacc.flows {
                let Some(eni) = gen.plan.enis.get(usize::from(key.eni)) else {
                    continue;
                };
                let action = key.action();
                for &pos in &eni.flow_logs {
                    let info = &gen.plan.flow_logs[pos];
                    if info.interval != iv || !info.traffic.admits(action) {
                        continue;
                    }
                    let u = gen.union[pos];
                    fls.entry(u).or_insert((*g, pos));
                    ok.entry(u)
                        .or_default()
                        .entry(*key)
                        .and_modify(|(a, lg)| {
                            a.merge(agg);
                            *lg = (*lg).max(*g);
                        })
                        .or_insert((*agg, *g));
                }
            }
        }
        for (&u, &(lg, lpos)) in &fls {
            let mut recs = Vec::new();
            let mut flows: Vec<(FlowKey, (Agg, u32))> =
                ok.remove(&u).unwrap_or_default().into_iter().collect();
            let eni_of = |k: &FlowKey, g: u32| &self.gens[g as usize].plan.enis[usize::from(k.eni)];
            flows.sort_unstable_by(|a, b| {
                eni_of(&a.0, a.1 .1)
                    .eni_id
                    .cmp(&eni_of(&b.0, b.1 .1).eni_id)
                    .then(a.0.cmp(&b.0))
            });
            let id = &self.fl_ids[u];
            for (key, (agg, g)) in &flows {
                let (src, dst) = key.addrs();
                let mut r = Self::record(eni_of(key, *g), id, ws);
                r.srcaddr = Some(src);
                r.dstaddr = Some(dst);
                r.srcport = Some(key.sport);
                r.dstport = Some(key.dport);
                r.protocol = Some(key.proto);
                r.direction = Some(key.direction());
                r.action = Some(key.action());
                r.packets = agg.packets;
                r.bytes = agg.bytes;
                r.start = agg.start;
                r.end = agg.end;
                r.tcp_flags = agg.flags;
                recs.push(r);
            }
            // Status records: every ENI the flow log covered during the
            // window (in any generation of this interval), by ENI id.
            let mut covered: BTreeMap<&str, (u16, u32)> = BTreeMap::new();
            for &g in &during {
                let gen = &self.gens[g as usize];
                for (pos, f) in gen.plan.flow_logs.iter().enumerate() {
                    if gen.union[pos] == u && f.interval == iv {
                        for &e in &f.enis {
                            covered.insert(&gen.plan.enis[usize::from(e)].eni_id, (e, g));
                        }
                    }
                }
            }
            for (_, (eni, g)) in covered {
                // Traffic and skips of this ENI under a generation in which
                // this flow log covered it.
                let mut traffic = false;
                let mut skipped: Option<(u64, u64)> = None;
                for (ag, gacc) in &acc.by_gen {
                    let gen = &self.gens[*ag as usize];
                    let covers = gen
                        .plan
                        .enis
                        .get(usize::from(eni))
                        .is_some_and(|e| e.flow_logs.iter().any(|&pos| gen.union[pos] == u));
                    if !covers {
                        continue;
                    }
                    traffic |= gacc.traffic.contains(&eni);
                    if let Some(&(p, b)) = gacc.skipped.get(&eni) {
                        let s = skipped.get_or_insert((0, 0));
                        s.0 += p;
                        s.1 += b;
                    }
                }
                let e = &self.gens[g as usize].plan.enis[usize::from(eni)];
                let mut status = Vec::new();
                if !traffic {
                    status.push((LogStatus::NoData, 0, 0));
                }
                if let Some((p, b)) = skipped {
                    status.push((LogStatus::SkipData, p, b));
                }
                for (st, p, b) in status {
                    let mut r = Self::record(e, id, ws);
                    r.log_status = st;
                    r.packets = p;
                    r.bytes = b;
                    r.start = ws;
                    r.end = ws + iv - 1;
                    recs.push(r);
                }
            }
            let st = &mut self.stats[u];
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
            let info = &self.gens[lg as usize].plan.flow_logs[lpos];
            st.error = sink(info, ws, &recs).err();
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

    fn statuses(out: &Out, id: &str) -> Vec<(u64, String, LogStatus, u64)> {
        out.iter()
            .filter(|(i, _, _)| i == id)
            .flat_map(|(_, ws, recs)| {
                recs.iter()
                    .map(move |r| (*ws, r.eni_id.clone(), r.log_status, r.packets))
            })
            .collect()
    }

    #[test]
    fn a_flow_log_created_at_t_gets_the_packets_from_t_on() {
        let plan0 = Plan {
            enis: vec![eni("eni-a", vec![])],
            flow_logs: vec![],
        };
        let mut m = Merger::new(plan0);
        m.begin(0);
        m.add_flow_in(0, &key(0, META_OUT, 1), &agg(1, 10, 10));
        let plan1 = Plan {
            enis: vec![eni("eni-a", vec![0])],
            flow_logs: vec![fl("new", 60, TrafficType::All, vec![0])],
        };
        let g = m.push_generation(70, plan1);
        assert_eq!(g, 1);
        // The same flow goes on after the change: only its part from T counts.
        m.add_flow_in(1, &key(0, META_OUT, 1), &agg(2, 75, 80));
        let out = run(&mut m, |m, s| m.finish(200, s));
        assert_eq!(
            statuses(&out, "new"),
            vec![
                (60, "eni-a".into(), LogStatus::Ok, 2),
                (120, "eni-a".into(), LogStatus::NoData, 0),
                (180, "eni-a".into(), LogStatus::NoData, 0),
            ]
        );
        assert_eq!(m.flow_log_ids(), &["new".to_string()]);
        assert_eq!(m.stats()[0].windows, 3);
    }

    #[test]
    fn a_flow_log_stopped_at_t_delivers_the_window_in_progress_up_to_t_then_nothing() {
        let both = Plan {
            enis: vec![eni("eni-a", vec![0, 1])],
            flow_logs: vec![
                fl("stays", 60, TrafficType::All, vec![0]),
                fl("stops", 60, TrafficType::All, vec![0]),
            ],
        };
        let mut m = Merger::new(both);
        m.begin(0);
        let k = key(0, META_OUT, 1);
        m.add_flow_in(0, &k, &agg(3, 61, 65));
        let one = Plan {
            enis: vec![eni("eni-a", vec![0])],
            flow_logs: vec![fl("stays", 60, TrafficType::All, vec![0])],
        };
        assert_eq!(m.push_generation(90, one), 1);
        m.add_flow_in(1, &k, &agg(4, 95, 100));
        m.add_flow_in(1, &k, &agg(5, 130, 130));
        let out = run(&mut m, |m, s| m.finish(130, s));
        assert_eq!(
            statuses(&out, "stops"),
            vec![
                (0, "eni-a".into(), LogStatus::NoData, 0),
                (60, "eni-a".into(), LogStatus::Ok, 3)
            ]
        );
        // The flow log that stays gets one record per window, both
        // generations' parts merged.
        assert_eq!(
            statuses(&out, "stays"),
            vec![
                (0, "eni-a".into(), LogStatus::NoData, 0),
                (60, "eni-a".into(), LogStatus::Ok, 7),
                (120, "eni-a".into(), LogStatus::Ok, 5)
            ]
        );
        let stays = out
            .iter()
            .find(|(i, w, _)| i == "stays" && *w == 60)
            .unwrap();
        assert_eq!((stays.2[0].start, stays.2[0].end), (61, 100));
    }

    #[test]
    fn an_eni_that_appears_at_t_is_logged_from_its_first_packet_and_nodata_from_t() {
        let p0 = Plan {
            enis: vec![eni("eni-a", vec![0])],
            flow_logs: vec![fl("vpc", 60, TrafficType::All, vec![0])],
        };
        let mut m = Merger::new(p0);
        m.begin(0);
        m.add_flow_in(0, &key(0, META_OUT, 1), &agg(1, 5, 5));
        let p1 = Plan {
            enis: vec![eni("eni-a", vec![0]), eni("eni-b", vec![0])],
            flow_logs: vec![fl("vpc", 60, TrafficType::All, vec![0, 1])],
        };
        m.push_generation(130, p1);
        m.add_flow_in(1, &key(1, META_OUT, 9), &agg(1, 130, 130));
        let out = run(&mut m, |m, s| m.finish(190, s));
        assert_eq!(
            statuses(&out, "vpc"),
            vec![
                (0, "eni-a".into(), LogStatus::Ok, 1),
                (60, "eni-a".into(), LogStatus::NoData, 0),
                (120, "eni-b".into(), LogStatus::Ok, 1),
                (120, "eni-a".into(), LogStatus::NoData, 0),
                (180, "eni-a".into(), LogStatus::NoData, 0),
                (180, "eni-b".into(), LogStatus::NoData, 0),
            ]
        );
    }

    #[test]
    fn an_interval_changed_at_t_goes_on_in_the_new_interval_from_the_window_holding_t() {
        let p0 = Plan {
            enis: vec![eni("eni-a", vec![0])],
            flow_logs: vec![fl("f", 300, TrafficType::All, vec![0])],
        };
        let mut m = Merger::new(p0.clone());
        m.begin(0);
        m.add_flow_in(0, &key(0, META_OUT, 1), &agg(1, 10, 10));
        let mut p1 = p0;
        p1.flow_logs[0].interval = 60;
        m.push_generation(100, p1);
        m.add_flow_in(1, &key(0, META_OUT, 1), &agg(2, 130, 130));
        let out = run(&mut m, |m, s| m.finish(130, s));
        let ws: Vec<u64> = out.iter().map(|(_, w, _)| *w).collect();
        // 300 s window 0 (up to the change, and the part after: a flow of
        // generation 1 goes to the 60 s windows only), then 60 s windows
        // from the one holding 100.
        assert_eq!(ws, vec![0, 60, 120]);
        assert_eq!(
            statuses(&out, "f")[0],
            (0, "eni-a".into(), LogStatus::Ok, 1)
        );
        assert_eq!(
            statuses(&out, "f")[2],
            (120, "eni-a".into(), LogStatus::Ok, 2)
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
