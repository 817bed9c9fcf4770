//! What the operator socket shares with a running replay or host: the
//! configuration generations the datapath puts in force between bursts, and
//! the figures the workers, the dispatcher and the exporter publish for
//! `stats`. Nothing here is touched per packet: the datapath looks at one
//! flag per burst and publishes its counters every few thousand packets.

use crate::attrib::Attribution;
use crate::policy::{CompiledPolicy, Policy, PolicyCounters};
use crate::worker::{Worker, WorkerCounters};
use exporter::merge::{FlowLogStats, Plan};
use exporter::sink::DeliveryStatus;
use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The slice workers rotate on when the configuration may change live: the
/// smallest aggregation interval (CONFIG.md: 60, 300 or 600 s), so a flow log
/// of any interval created later fits.
pub const LIVE_SLICE: u64 = 60;

/// ENIs a host with the operator socket has room for (their skip counters
/// are allocated at start).
pub const LIVE_MAX_ENIS: usize = 4096;

/// A configuration ready for the datapath: what the exporter, the workers
/// and the dispatcher each need of it.
#[derive(Debug)]
pub struct Snapshot {
    /// The exporter's plan.
    pub plan: Plan,
    /// The workers' verdicts.
    pub compiled: Arc<CompiledPolicy>,
    /// The dispatcher's ENI lookups.
    pub attribution: Arc<Attribution>,
    /// Per ENI slot: the port its packets leave on (`flowlogd run`).
    pub ports: Vec<Option<u16>>,
}

/// Where a change took effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Its generation.
    pub gen: u32,
    /// Unix seconds of the packet clock.
    pub from: u64,
    /// Index (from 0) of the first frame read under it: every frame before
    /// it was judged and recorded under the previous generation.
    pub frame: u64,
}

/// A generation in force: its snapshot and the packet time it began at.
#[derive(Debug)]
pub struct Generation {
    /// Unix seconds of the packet clock when the datapath applied it.
    pub from: u64,
    /// The configuration.
    pub snapshot: Arc<Snapshot>,
}

/// One worker's figures, as last published.
#[derive(Clone, Copy, Debug, Default)]
pub struct WorkerView {
    /// Its counters.
    pub counters: WorkerCounters,
    /// Its policy's counters.
    pub policy: PolicyCounters,
    /// Flows in its table now.
    pub table_len: u64,
    /// Its table's capacity.
    pub table_capacity: u64,
    /// Tracked connections now.
    pub conns: u64,
    /// Connection-table capacity.
    pub conns_capacity: u64,
    /// Batches waiting on its input ring.
    pub ring_depth: u64,
    /// Capacity of its input ring.
    pub ring_capacity: u64,
    /// Packets it sent on a port (`run`; a replay forwards nothing).
    pub packets_out: u64,
    /// Frames it read with a malformed IP header (`run`; the replay's
    /// dispatcher counts its own).
    pub malformed: u64,
    /// IP frames of no ENI it read (`run`).
    pub unmatched: u64,
    /// Frames it read that are not IP (`run`).
    pub not_ip: u64,
}

impl WorkerView {
    /// What every datapath shows of a worker: its counters, its policy's,
    /// its table and connection table. Ring and frame figures are the
    /// caller's to add.
    pub fn of(w: &Worker<Policy>) -> WorkerView {
        WorkerView {
            counters: w.counters,
            policy: w.policy().counters,
            table_len: w.table_len() as u64,
            table_capacity: w.table_capacity() as u64,
            conns: w.policy().conns().len() as u64,
            conns_capacity: w.policy().conns().capacity() as u64,
            ..WorkerView::default()
        }
    }
}

/// Slice length and ENI room for a datapath: with the operator socket
/// (`live`), [`LIVE_SLICE`] and [`LIVE_MAX_ENIS`] so that flow logs of any
/// interval and new ENIs can come; without, the plan's slice (at most
/// [`crate::worker::MAX_SLICE_SECS`]) and the configuration's ENIs.
pub fn sizing(live: bool, plan: &Plan, enis: usize) -> (u64, usize) {
    if live {
        (LIVE_SLICE, LIVE_MAX_ENIS.max(enis))
    } else {
        (crate::worker::slice_for(plan.slice_secs()), enis)
    }
}

/// The dispatcher's figures (frames read and sorted), as last published.
#[derive(Clone, Copy, Debug, Default)]
pub struct DispatchView {
    /// Frames read.
    pub read: u64,
    /// Frames logged (of at least one ENI).
    pub logged: u64,
    /// Frames with a malformed IP header.
    pub malformed: u64,
    /// IP frames of no ENI.
    pub unmatched: u64,
    /// Frames that are not IP.
    pub not_ip: u64,
    /// The packet clock, Unix seconds (0 before the first packet).
    pub now: u64,
}

/// The exporter's figures, as last published.
#[derive(Clone, Debug, Default)]
pub struct ExporterView {
    /// Per flow log (every one ever in force): what was delivered.
    pub flow_logs: Vec<(String, FlowLogStats)>,
    /// Per flow log and sink besides the local log store.
    pub sinks: Vec<DeliveryStatus>,
    /// Per ENI index: packets and bytes merged so far.
    pub per_eni: Vec<(u64, u64)>,
    /// The workers' common watermark: windows ending before it are
    /// delivered (Unix seconds).
    pub watermark: u64,
    /// Flows that came after their window was delivered.
    pub late: u64,
    /// Local log store errors so far.
    pub errors: u64,
}

/// The state a replay or host shares with the operator socket.
#[derive(Debug, Default)]
pub struct Live {
    /// Generations after the first (element `k` is generation `k + 1`).
    gens: Mutex<Vec<Arc<Generation>>>,
    /// A change waiting for the datapath.
    pending: Mutex<Option<Arc<Snapshot>>>,
    has_pending: AtomicBool,
    /// The last change applied.
    applied: Mutex<Option<Applied>>,
    applied_cv: Condvar,
    /// Set when the datapath is gone (no change will be applied any more).
    closed: AtomicBool,
    /// Per worker.
    pub workers: Mutex<Vec<WorkerView>>,
    /// The dispatcher.
    pub dispatch: Mutex<DispatchView>,
    /// The exporter.
    pub exporter: Mutex<ExporterView>,
    /// When the datapath started.
    pub started: Mutex<Option<Instant>>,
}

impl Live {
    /// A live state for `workers` workers.
    pub fn new(workers: usize) -> Arc<Live> {
        let l = Live::default();
        *l.workers.lock() = vec![WorkerView::default(); workers];
        *l.started.lock() = Some(Instant::now());
        Arc::new(l)
    }

    /// Hands `snapshot` to the datapath and waits (up to `timeout`) until it
    /// is in force; says where it took effect.
    pub fn propose(&self, snapshot: Arc<Snapshot>, timeout: Duration) -> Result<Applied, String> {
        if self.closed.load(Ordering::Acquire) {
            return Err("the datapath has stopped; the change is saved for the next start".into());
        }
        let before = *self.applied.lock();
        *self.pending.lock() = Some(snapshot);
        self.has_pending.store(true, Ordering::Release);
        let deadline = Instant::now() + timeout;
        let mut applied = self.applied.lock();
        while *applied == before {
            if self.closed.load(Ordering::Acquire) {
                return Err("the datapath stopped before it applied the change; it is saved for the next start".into());
            }
            if self
                .applied_cv
                .wait_until(&mut applied, deadline)
                .timed_out()
                && *applied == before
            {
                return Err(format!(
                    "the datapath did not apply the change within {} s; it is saved for the next start",
                    timeout.as_secs()
                ));
            }
        }
        applied.ok_or_else(|| "no change applied".to_string())
    }

    /// Whether a change waits (one relaxed load: the datapath checks it per
    /// burst).
    #[inline]
    pub fn has_pending(&self) -> bool {
        self.has_pending.load(Ordering::Relaxed)
    }

    /// Takes the waiting change and makes it generation `n` from `now`
    /// (Unix seconds of the packet clock); the caller puts it in force
    /// before the next packet, then calls [`Live::applied`].
    pub fn take_pending(&self, now: u64) -> Option<(u32, Arc<Generation>)> {
        let snap = self.pending.lock().take()?;
        self.has_pending.store(false, Ordering::Release);
        let mut gens = self.gens.lock();
        let from = gens.last().map_or(now, |g| g.from.max(now));
        let g = Arc::new(Generation {
            from,
            snapshot: snap,
        });
        gens.push(g.clone());
        Some((gens.len() as u32, g))
    }

    /// Tells the proposer that generation `gen` is in force from frame
    /// `frame` on.
    pub fn applied(&self, gen: u32, from: u64, frame: u64) {
        *self.applied.lock() = Some(Applied { gen, from, frame });
        self.applied_cv.notify_all();
    }

    /// Generation `gen` (1 and up).
    pub fn generation(&self, gen: u32) -> Option<Arc<Generation>> {
        let i = (gen as usize).checked_sub(1)?;
        self.gens.lock().get(i).cloned()
    }

    /// Generations from `first` (1 and up) on, with their numbers.
    pub fn generations_from(&self, first: u32) -> Vec<(u32, Arc<Generation>)> {
        let gens = self.gens.lock();
        let start = (first.max(1) - 1) as usize;
        gens.iter()
            .enumerate()
            .skip(start)
            .map(|(i, g)| (i as u32 + 1, g.clone()))
            .collect()
    }

    /// The datapath is gone: proposals fail from now on.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let _guard = self.applied.lock();
        self.applied_cv.notify_all();
    }

    /// Whether the datapath is gone.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}
