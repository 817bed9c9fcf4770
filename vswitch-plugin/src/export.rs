//! The exporter thread: takes retired tables and side messages from every
//! worker's rings, merges them per window (`exporter::merge`), returns the
//! cleared tables, and delivers closed windows to the local log store and
//! the other sinks.

use crate::flow::FlowEntry;
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
        packets: e.packets,
        bytes: e.bytes,
        start: slice + u64::from(e.first),
        end: slice + u64::from(e.last),
        flags: e.flags,
    }
}

/// Runs the exporter until every worker is done, then flushes every window
/// up to the clock's last time. Returns the per-flow-log delivery stats.
pub fn run_exporter(
    mut merger: Merger,
    workers: &[Arc<Handoff>],
    clock: &Clock,
    sink: &mut Sink<'_>,
) -> (Vec<FlowLogStats>, u64) {
    let mut began = false;
    loop {
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
                let slice = t.slice_start();
                let mut skips = Vec::new();
                t.drain(
                    |e| merger.add_flow(&e.key, &agg_of(e, slice)),
                    |eni, s| skips.push((eni, s)),
                );
                for (eni, s) in skips {
                    merger.add_skipped(eni, slice, s.packets, s.bytes);
                }
                // The pool is as large as the ring: this cannot fail.
                let _ = h.free.push(t);
                h.returned.fetch_add(1, Ordering::Release);
            }
            while let Some(m) = h.side.pop() {
                work = true;
                match m {
                    Side::Evicted { slice, entry } => {
                        merger.add_flow(&entry.key, &agg_of(&entry, slice))
                    }
                    Side::Skipped {
                        slice,
                        eni,
                        packets,
                        bytes,
                    } => merger.add_skipped(eni, slice, packets, bytes),
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
        if !work {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    (merger.stats().to_vec(), merger.late())
}

/// How long the sinks get, once the last window is queued, to deliver what
/// they hold before the exporter returns (what a ClickHouse sink cannot send
/// by then stays in its spool for the next start).
pub const SINK_CLOSE: Duration = Duration::from_secs(15);

/// What the exporter delivered.
#[derive(Clone, Debug, Default)]
pub struct Delivered {
    /// Per active flow log (the plan's order).
    pub stats: Vec<FlowLogStats>,
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
    let (stats, late) = run_exporter(Merger::new(plan), workers, clock, &mut sink);
    let sinks = sinks.close(Instant::now() + SINK_CLOSE);
    Delivered {
        stats,
        late,
        errors,
        sinks,
    }
}
