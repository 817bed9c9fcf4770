//! The exporter thread: takes retired tables and side messages from every
//! worker's rings, merges them per window (`exporter::merge`), returns the
//! cleared tables, and delivers closed windows to the local log store and
//! the other sinks.

use crate::flow::FlowEntry;
use crate::live::{ExporterView, Live};
use crate::worker::{Handoff, Side};
use exporter::merge::{Agg, FlowLogStats, Merger, Sink};
use exporter::sink::{DeliveryStatus, SinkSet, Window};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the replay's (or run's) clock ends, set before the workers finish;
/// `u64::MAX` until then.
#[derive(Debug)]
pub struct Clock {
    /// First packet time, Unix seconds (`u64::MAX` until known).
    pub first: AtomicU64,
    /// Last packet time, Unix seconds.
    pub last: AtomicU64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            first: AtomicU64::new(u64::MAX),
            last: AtomicU64::new(0),
        }
    }
}

fn agg_of(e: &FlowEntry, slice: u64) -> Agg {
    Agg {
        packets: u64::from(e.packets),
        bytes: e.bytes,
        start: slice + u64::from(e.first),
        end: slice + u64::from(e.last),
        flags: e.flags,
    }
}

/// Runs the exporter until every worker is done, then flushes every window
/// up to the clock's last time. Returns the per-flow-log delivery stats
/// (every flow log that was ever in force) and the late flows.
///
/// With `live`, it takes the configuration generations the datapath put in
/// force before it drains the tables recorded under them, and publishes its
/// figures (at most every 50 ms, through `publish`, which may add its own).
pub fn run_exporter(
    mut merger: Merger,
    workers: &[Arc<Handoff>],
    clock: &Clock,
    live: Option<&Live>,
    sink: &mut Sink<'_>,
    publish: &mut dyn FnMut(&mut ExporterView),
) -> (Vec<(String, FlowLogStats)>, u64) {
    let mut began = false;
    let mut synced: u32 = 0;
    let mut per_eni: Vec<(u64, u64)> = Vec::new();
    let mut published = Instant::now();
    loop {
        // Generations first: a table recorded under one was pushed after
        // the datapath put it in force, hence after it was listed.
        if let Some(l) = live {
            for (g, gen) in l.generations_from(synced + 1) {
                let n = merger.push_generation(gen.from, gen.snapshot.plan.clone());
                debug_assert_eq!(n, g);
                synced = g;
            }
        }
        // Read the watermarks first: every table and side message a worker
        // pushed before storing its watermark is then visible to the drains.
        let wm = workers
            .iter()
            .map(|h| h.watermark.load(Ordering::Acquire))
            .min()
            .unwrap_or(u64::MAX);
        let all_done = workers.iter().all(|h| h.done.load(Ordering::Acquire));
        // The first time is read after `done`: a finished worker's done flag
        // comes after the first time was set, so an exporter that sees every
        // worker done also sees the first time (and delivers every window).
        if !began {
            let first = clock.first.load(Ordering::Acquire);
            if first != u64::MAX {
                merger.begin(first);
                began = true;
            }
        }
        let mut work = false;
        for h in workers {
            while let Some(mut t) = h.retired.pop() {
                work = true;
                let (slice, gen) = (t.slice_start(), t.gen());
                let mut skips = Vec::new();
                // Before the table goes back: the worker counts on every
                // returned table's connection times being in its deadlines.
                let conns = h.conn_deadlines.get();
                t.drain(
                    |e| {
                        if let Some(d) = conns {
                            d.write_back(e, slice);
                        }
                        count(&mut per_eni, e.key.eni, u64::from(e.packets), e.bytes);
                        merger.add_flow_in(gen, &e.key, &agg_of(e, slice))
                    },
                    |eni, s| skips.push((eni, s)),
                );
                for (eni, s) in skips {
                    merger.add_skipped_in(gen, eni, slice, s.packets, s.bytes);
                }
                // The pool is as large as the ring: this cannot fail.
                let _ = h.free.push(t);
                h.returned.fetch_add(1, Ordering::Release);
            }
            while let Some(m) = h.side.pop() {
                work = true;
                match m {
                    Side::Evicted { slice, gen, entry } => {
                        count(
                            &mut per_eni,
                            entry.key.eni,
                            u64::from(entry.packets),
                            entry.bytes,
                        );
                        merger.add_flow_in(gen, &entry.key, &agg_of(&entry, slice))
                    }
                    Side::Skipped {
                        slice,
                        gen,
                        eni,
                        packets,
                        bytes,
                    } => merger.add_skipped_in(gen, eni, slice, packets, bytes),
                }
            }
        }
        if all_done {
            if began {
                merger.finish(clock.last.load(Ordering::Acquire), sink);
            }
            break;
        }
        if began && wm != u64::MAX {
            merger.close_before(wm, sink);
        }
        if let Some(l) = live {
            if published.elapsed() >= Duration::from_millis(50) {
                published = Instant::now();
                let mut v = l.exporter.lock();
                v.flow_logs = stats_of(&merger);
                v.per_eni.clone_from(&per_eni);
                v.watermark = if wm == u64::MAX { v.watermark } else { wm };
                v.late = merger.late();
                publish(&mut v);
            }
        }
        if !work {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let stats = stats_of(&merger);
    if let Some(l) = live {
        let mut v = l.exporter.lock();
        v.flow_logs.clone_from(&stats);
        v.per_eni = per_eni;
        v.late = merger.late();
        publish(&mut v);
    }
    (stats, merger.late())
}

fn count(per_eni: &mut Vec<(u64, u64)>, eni: u16, packets: u64, bytes: u64) {
    let i = usize::from(eni);
    if i >= per_eni.len() {
        per_eni.resize(i + 1, (0, 0));
    }
    per_eni[i].0 += packets;
    per_eni[i].1 += bytes;
}

fn stats_of(m: &Merger) -> Vec<(String, FlowLogStats)> {
    m.flow_log_ids()
        .iter()
        .cloned()
        .zip(m.stats().iter().cloned())
        .collect()
}

/// How long the sinks get, once the last window is queued, to deliver what
/// they hold before the exporter returns (what a ClickHouse sink cannot send
/// by then stays in its spool for the next start).
pub const SINK_CLOSE: Duration = Duration::from_secs(15);

/// What the exporter delivered.
#[derive(Clone, Debug, Default)]
pub struct Delivered {
    /// Per flow log ever in force (those of the first configuration first,
    /// in its order).
    pub stats: Vec<(String, FlowLogStats)>,
    /// Flows that arrived after their window was delivered.
    pub late: u64,
    /// Every local log store error (flow log, window, reason).
    pub errors: Vec<String>,
    /// Per flow log and sink besides the local log store: the delivery status.
    pub sinks: Vec<DeliveryStatus>,
}

/// Runs the exporter (as [`run_exporter`]) writing every window of a flow
/// log that names `local` to the local log store `store`, and queueing it for
/// every other sink the flow log names in `sinks`. Closes the sinks at the
/// end (see [`SINK_CLOSE`]).
pub fn run_store_exporter(
    plan: exporter::merge::Plan,
    workers: &[Arc<Handoff>],
    clock: &Clock,
    store: &exporter::store::LocalStore,
    sinks: SinkSet,
    live: Option<&Live>,
) -> Delivered {
    let mut errors = Vec::new();
    let mut sink =
        |fl: &exporter::merge::FlowLogInfo, ws: u64, recs: &[exporter::record::Record]| {
            if sinks.routes(&fl.flow_log_id) {
                sinks.send(Window {
                    flow_log_id: fl.flow_log_id.clone(),
                    start: ws,
                    interval: fl.interval,
                    records: recs.to_vec(),
                });
            }
            if !fl.local {
                return Ok(());
            }
            store
                .write_window(
                    &fl.project_name,
                    &fl.log_store_name,
                    &fl.flow_log_id,
                    ws,
                    recs,
                )
                .map(|_| ())
                .map_err(|e| {
                    let m = format!("flow log {} window {ws}: {e}", fl.flow_log_id);
                    errors.push(m.clone());
                    m
                })
        };
    let mut publish = |v: &mut ExporterView| v.sinks = sinks.status();
    let (stats, late) = run_exporter(
        Merger::new(plan),
        workers,
        clock,
        live,
        &mut sink,
        &mut publish,
    );
    let sinks = sinks.close(Instant::now() + SINK_CLOSE);
    if let Some(l) = live {
        l.exporter.lock().sinks.clone_from(&sinks);
    }
    Delivered {
        stats,
        late,
        errors,
        sinks,
    }
}
