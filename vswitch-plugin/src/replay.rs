//! The replay runtime: a capture and a configuration in, the local log store
//! out. A sibling of the DPDK host that feeds the same worker, table and
//! exporter code. The clock is the packets' timestamps, so a 10-minute
//! window replays in milliseconds and the output is deterministic.
//!
//! One dispatcher thread reads the mapped capture, parses each frame once,
//! attributes it to ENIs and hands it, in batches, to the worker chosen by a
//! symmetric hash of the connection ([`crate::attrib::symmetric_hash`]), so
//! both directions of a connection meet on one worker. At every slice
//! boundary it tells each worker the time (idle workers rotate too). The
//! dispatcher waits for the exporter, as a NIC's RX ring fills when a core
//! is busy: it starts a new slice only when every worker will find a free
//! table, so a replay never skips for lack of one. A worker waits for it
//! only where the capture's clock has run 180 s past a table the exporter
//! has not yet drained and written back to the connection table
//! ([`crate::worker::Worker::wait_for_writeback`]), so verdicts never
//! depend on the exporter's speed.

use crate::attrib::{symmetric_hash, Attribution};
use crate::capture::{Capture, TruncatedAt};
use crate::export::{run_store_exporter, Clock, Delivered};
use crate::flow::FlowTable;
use crate::live::{DispatchView, Live, WorkerView};
use crate::policy::{CompiledPolicy, Policy, PolicyCounters};
use crate::wire::{self, PacketMeta, ParseError};
use crate::worker::{Handoff, Seen, Tripwire, Worker, WorkerCounters, WORKER_BURST};
use crossbeam::queue::ArrayQueue;
use exporter::config::Config;
use exporter::merge::{FlowLogStats, Plan};
use exporter::sink::{DeliveryStatus, SinkSet};
use exporter::store::{Compress, LocalStore, StoreFormat};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Packets per dispatcher → worker batch.
const BATCH: usize = 4 * WORKER_BURST;
/// Batches in flight per worker.
const BATCHES: usize = 16;
/// Tables per worker (one active, the rest free or with the exporter).
pub const TABLES_PER_WORKER: usize = 3;
/// Side-ring (evictions) capacity per worker.
const SIDE_RING: usize = 1 << 16;

/// What `flowlogd replay` was asked to do.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// The host configuration (already validated).
    pub config: Config,
    /// The capture.
    pub pcap: PathBuf,
    /// Root of the local log store.
    pub out: PathBuf,
    /// Worker threads.
    pub workers: usize,
    /// Flow-table capacity per worker.
    pub flows_per_core: usize,
    /// Connection-table capacity per worker (stateful security groups).
    pub conns_per_core: usize,
    /// File format.
    pub format: StoreFormat,
    /// Compression.
    pub compress: Compress,
    /// Show a progress bar on stderr (when it is a terminal).
    pub progress: bool,
    /// Replay at the capture's speed times this factor (1.0: real time)
    /// instead of as fast as possible.
    pub pace: Option<f64>,
    /// The operator socket's view: configuration changes are put in force
    /// between packets and the figures published for `stats`.
    pub live: Option<Arc<Live>>,
}

/// What a replay did.
#[derive(Clone, Debug, Default)]
pub struct ReplaySummary {
    /// Frames read.
    pub read: u64,
    /// Frames logged (attributed to at least one ENI).
    pub logged: u64,
    /// Frames with a malformed IP header.
    pub malformed: u64,
    /// IP frames of no ENI.
    pub unmatched: u64,
    /// Frames that are not IPv4/IPv6 (or of an unsupported link type).
    pub not_ip: u64,
    /// Per active flow log: its id and what was delivered.
    pub flow_logs: Vec<(String, FlowLogStats)>,
    /// Sum of the workers' counters.
    pub workers: WorkerCounters,
    /// Sum of the workers' policy counters.
    pub policy: PolicyCounters,
    /// Where the capture was cut short, if it was.
    pub truncated: Option<TruncatedAt>,
    /// Wall time.
    pub elapsed: Duration,
    /// Flows that reached the exporter after their window was delivered.
    pub late: u64,
    /// Every local log store error (file and reason).
    pub errors: Vec<String>,
    /// Per flow log and sink besides the local log store: the delivery status.
    pub sinks: Vec<DeliveryStatus>,
    /// `(flow log, ENI, instance type)` for each ENI an active VSwitch or VPC
    /// flow log skips because its instance family does not support flow logs.
    pub unsupported: Vec<(String, String, String)>,
}

impl ReplaySummary {
    /// Frames per second, millions.
    pub fn mpps(&self) -> f64 {
        self.read as f64 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }
}

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The capture cannot be read.
    #[error(transparent)]
    Capture(#[from] crate::capture::CaptureError),
    /// An option is out of range.
    #[error("{0}")]
    Options(String),
    /// The log store could not be written.
    #[error("writing the log store: {0}")]
    Store(String),
    /// A sink of the configuration could not be opened.
    #[error("opening the sinks: {0}")]
    Sink(String),
}

struct Batch {
    advance: u64,
    /// A configuration generation to put in force before these packets.
    reconfig: Option<(u32, Arc<CompiledPolicy>)>,
    n: usize,
    pkts: [Seen; BATCH],
}

struct Lane {
    full: ArrayQueue<Box<Batch>>,
    empty: ArrayQueue<Box<Batch>>,
}

/// Replays a capture into the local log store.
pub fn replay(opts: &ReplayOptions) -> Result<ReplaySummary, ReplayError> {
    if opts.workers == 0 || opts.workers > 64 {
        return Err(ReplayError::Options(format!(
            "--workers {}: must be 1 to 64",
            opts.workers
        )));
    }
    if opts.conns_per_core < 8 || opts.conns_per_core > 1 << 28 {
        return Err(ReplayError::Options(format!(
            "--conns-per-core {}: must be 8 to 268435456",
            opts.conns_per_core
        )));
    }
    if opts.flows_per_core < 16 || opts.flows_per_core > 1 << 28 {
        return Err(ReplayError::Options(format!(
            "--flows-per-core {}: must be 16 to 268435456",
            opts.flows_per_core
        )));
    }
    let capture = Capture::open(&opts.pcap)?;
    let cfg = &opts.config;
    if let Some(p) = opts.pace {
        if !(p.is_finite() && p > 0.0) {
            return Err(ReplayError::Options(format!(
                "--pace {p}: must be realtime or a factor above 0 such as 10x"
            )));
        }
    }
    let live = opts.live.as_deref();
    let plan = Plan::from_config(cfg);
    let (slice, enis) = crate::live::sizing(live.is_some(), &plan, cfg.enis.len());
    let attribution = Arc::new(Attribution::from_config(cfg));
    let compiled = Arc::new(CompiledPolicy::from_config(cfg));
    let store = LocalStore::new(opts.out.clone(), opts.format, opts.compress, &cfg.host);
    let sinks = SinkSet::open(cfg).map_err(ReplayError::Sink)?;
    let started = Instant::now();

    let clock = Clock::default();
    let mut handoffs: Vec<Arc<Handoff>> = Vec::new();
    let mut actives = Vec::new();
    for _ in 0..opts.workers {
        let pool = (0..TABLES_PER_WORKER)
            .map(|_| Box::new(FlowTable::new(opts.flows_per_core, enis)))
            .collect();
        let (h, active) = Handoff::new(pool, SIDE_RING);
        handoffs.push(h);
        actives.push(active);
    }
    let lanes: Vec<Arc<Lane>> = (0..opts.workers)
        .map(|_| {
            let l = Lane {
                full: ArrayQueue::new(BATCHES),
                empty: ArrayQueue::new(BATCHES),
            };
            for _ in 0..BATCHES {
                let b = Box::new(Batch {
                    advance: 0,
                    reconfig: None,
                    n: 0,
                    pkts: [Seen::default(); BATCH],
                });
                let _ = l.empty.push(b);
            }
            Arc::new(l)
        })
        .collect();
    let stop = AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        let exporter = {
            let (handoffs, clock, store, stop) = (&handoffs, &clock, &store, &stop);
            std::thread::Builder::new()
                .name("flowlog-exporter".into())
                .spawn_scoped(s, move || {
                    let _trip = Tripwire { handoffs, stop };
                    run_store_exporter(plan, handoffs, clock, store, sinks, live)
                })
                .expect("spawn exporter")
        };
        let mut counters = WorkerCounters::default();
        let mut pcounters = PolicyCounters::default();
        let trip = Tripwire {
            handoffs: &handoffs,
            stop: &stop,
        };
        let summary = if opts.workers == 1 {
            // One worker: it runs on the reading thread, no handoff at all.
            let active = actives.pop().expect("one table set");
            let policy = Policy::new(compiled.clone(), opts.conns_per_core);
            let mut worker = Worker::new(active, handoffs[0].clone(), slice, enis, policy);
            // The capture's clock runs ahead of the exporter.
            worker.wait_for_writeback(true);
            let mut feed = Inline {
                worker,
                handoff: handoffs[0].clone(),
                burst: [Seen::default(); WORKER_BURST],
                n: 0,
            };
            let summary = dispatch(
                &capture,
                attribution.clone(),
                &mut feed,
                slice,
                &clock,
                opts,
            );
            feed.flush();
            if let Some(l) = live {
                feed.publish(l);
                l.close();
            }
            let (c, p) = feed.worker.finish();
            counters.add(&c);
            pcounters.add(&p.counters);
            summary
        } else {
            let mut workers = Vec::new();
            for (i, active) in actives.into_iter().enumerate() {
                let lane = lanes[i].clone();
                let h = handoffs[i].clone();
                let (stop, handoffs) = (&stop, &handoffs);
                let policy = Policy::new(compiled.clone(), opts.conns_per_core);
                workers.push(
                    std::thread::Builder::new()
                        .name(format!("flowlog-worker-{i}"))
                        .spawn_scoped(s, move || {
                            let _trip = Tripwire { handoffs, stop };
                            let mut w = Worker::new(active, h, slice, enis, policy);
                            w.wait_for_writeback(true);
                            worker_loop(w, &lane, stop, live.map(|l| (l, i)))
                        })
                        .expect("spawn worker"),
                );
            }
            let mut feed = Threads {
                pending: lanes
                    .iter()
                    .zip(&handoffs)
                    .map(|(l, h)| take_empty(l, h))
                    .collect(),
                lanes: &lanes,
                handoffs: &handoffs,
            };
            let summary = dispatch(
                &capture,
                attribution.clone(),
                &mut feed,
                slice,
                &clock,
                opts,
            );
            feed.flush();
            if let Some(l) = live {
                l.close();
            }
            stop.store(true, Ordering::Release);
            for w in workers {
                let (c, p) = w.join().expect("worker thread");
                counters.add(&c);
                pcounters.add(&p);
            }
            summary
        };
        drop(trip);
        let done = exporter.join().expect("exporter thread");
        (summary, counters, pcounters, done)
    });
    let (mut summary, counters, pcounters, done) = result;
    let Delivered {
        stats,
        late,
        errors,
        sinks,
    } = done;
    summary.sinks = sinks;
    summary.workers = counters;
    summary.policy = pcounters;
    summary.late = late;
    summary.flow_logs = stats;
    summary.errors = errors;
    summary.unsupported = cfg
        .skipped_unsupported()
        .into_iter()
        .map(|(f, e)| {
            let eni = &cfg.enis[e];
            (
                cfg.flow_logs[f].flow_log_id.clone(),
                eni.eni_id.clone(),
                eni.instance_type.clone(),
            )
        })
        .collect();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

fn worker_loop(
    mut w: Worker<Policy>,
    lane: &Lane,
    stop: &AtomicBool,
    live: Option<(&Live, usize)>,
) -> (WorkerCounters, PolicyCounters) {
    let publish = |w: &Worker<Policy>| {
        if let Some((l, i)) = live {
            let v = WorkerView {
                ring_depth: lane.full.len() as u64,
                ring_capacity: BATCHES as u64,
                ..WorkerView::of(w)
            };
            if let Some(slot) = l.workers.lock().get_mut(i) {
                *slot = v;
            }
        }
    };
    loop {
        if let Some(mut b) = lane.full.pop() {
            if let Some((gen, compiled)) = b.reconfig.take() {
                w.reconfigure(gen, |p| p.set_compiled(compiled));
            }
            if b.advance > 0 {
                w.advance(b.advance);
            }
            for chunk in b.pkts[..b.n].chunks(WORKER_BURST) {
                w.process(chunk);
            }
            b.n = 0;
            b.advance = 0;
            let _ = lane.empty.push(b);
            publish(&w);
        } else if stop.load(Ordering::Acquire) && lane.full.is_empty() {
            break;
        } else {
            std::hint::spin_loop();
            std::thread::yield_now();
        }
    }
    publish(&w);
    let (c, p) = w.finish();
    (c, p.counters)
}

/// Waits until a worker at its `rotations`-th rotation will find a free
/// table: it started with TABLES-1 and has had `returned` given back.
fn pace(h: &Handoff, rotations: u64) {
    let need = rotations.saturating_sub(TABLES_PER_WORKER as u64 - 1);
    while h.returned.load(Ordering::Acquire) < need {
        give_up_if_failed(h);
        std::thread::yield_now();
    }
}

/// Ends a wait on a thread that will never answer: it stopped by a panic
/// (its message is above).
fn give_up_if_failed(h: &Handoff) {
    if h.failed.load(Ordering::Acquire) {
        panic!("replay stopped: another of its threads failed (see above)");
    }
}

/// Where the dispatcher puts packets and clock ticks.
trait Feed {
    /// Workers.
    fn workers(&self) -> usize;
    /// The clock reached a new slice (`rotations` boundaries so far, the
    /// first one not counted).
    fn boundary(&mut self, secs: u64, rotations: u64);
    /// A packet for worker `w`.
    fn packet(&mut self, w: usize, s: Seen);
    /// Hands over what is pending.
    fn flush(&mut self);
    /// Puts generation `gen` in force from the next packet on.
    fn reconfigure(&mut self, gen: u32, compiled: &Arc<CompiledPolicy>);
    /// Publishes the figures of the workers it runs itself.
    fn publish(&self, live: &Live);
}

/// One worker on the reading thread.
struct Inline {
    worker: Worker<Policy>,
    handoff: Arc<Handoff>,
    burst: [Seen; WORKER_BURST],
    n: usize,
}

impl Feed for Inline {
    fn workers(&self) -> usize {
        1
    }
    fn boundary(&mut self, secs: u64, rotations: u64) {
        self.flush();
        pace(&self.handoff, rotations);
        self.worker.advance(secs);
    }
    #[inline]
    fn packet(&mut self, _: usize, s: Seen) {
        self.burst[self.n] = s;
        self.n += 1;
        if self.n == WORKER_BURST {
            self.worker.process(&self.burst);
            self.n = 0;
        }
    }
    fn flush(&mut self) {
        if self.n > 0 {
            self.worker.process(&self.burst[..self.n]);
            self.n = 0;
        }
    }
    fn reconfigure(&mut self, gen: u32, compiled: &Arc<CompiledPolicy>) {
        self.flush();
        let c = compiled.clone();
        self.worker.reconfigure(gen, |p| p.set_compiled(c));
    }
    fn publish(&self, live: &Live) {
        if let Some(slot) = live.workers.lock().get_mut(0) {
            *slot = WorkerView::of(&self.worker);
        }
    }
}

/// Worker threads fed in batches over SPSC rings.
struct Threads<'a> {
    lanes: &'a [Arc<Lane>],
    handoffs: &'a [Arc<Handoff>],
    pending: Vec<Box<Batch>>,
}

fn send(lane: &Lane, h: &Handoff, b: Box<Batch>) {
    let mut b = b;
    loop {
        match lane.full.push(b) {
            Ok(()) => return,
            Err(back) => {
                b = back;
                give_up_if_failed(h);
                std::thread::yield_now();
            }
        }
    }
}

fn take_empty(lane: &Lane, h: &Handoff) -> Box<Batch> {
    loop {
        if let Some(b) = lane.empty.pop() {
            return b;
        }
        give_up_if_failed(h);
        std::thread::yield_now();
    }
}

impl Feed for Threads<'_> {
    fn workers(&self) -> usize {
        self.lanes.len()
    }
    fn boundary(&mut self, secs: u64, rotations: u64) {
        for (i, lane) in self.lanes.iter().enumerate() {
            pace(&self.handoffs[i], rotations);
            let old = std::mem::replace(&mut self.pending[i], take_empty(lane, &self.handoffs[i]));
            if old.n > 0 || old.advance > 0 || old.reconfig.is_some() {
                send(lane, &self.handoffs[i], old);
            } else {
                let _ = lane.empty.push(old);
            }
            self.pending[i].advance = secs.max(1);
        }
    }
    #[inline]
    fn packet(&mut self, w: usize, s: Seen) {
        let b = &mut self.pending[w];
        b.pkts[b.n] = s;
        b.n += 1;
        if b.n == BATCH {
            let full = std::mem::replace(b, take_empty(&self.lanes[w], &self.handoffs[w]));
            send(&self.lanes[w], &self.handoffs[w], full);
        }
    }
    fn flush(&mut self) {
        for (i, lane) in self.lanes.iter().enumerate() {
            let b = std::mem::replace(&mut self.pending[i], take_empty(lane, &self.handoffs[i]));
            if b.n > 0 || b.advance > 0 || b.reconfig.is_some() {
                send(lane, &self.handoffs[i], b);
            } else {
                let _ = lane.empty.push(b);
            }
        }
    }
    fn reconfigure(&mut self, gen: u32, compiled: &Arc<CompiledPolicy>) {
        // The packets so far go under the old generation; the next batch
        // opens with the change.
        self.flush();
        for b in &mut self.pending {
            b.reconfig = Some((gen, compiled.clone()));
        }
    }
    fn publish(&self, _: &Live) {}
}

/// Puts a waiting configuration change in force now (`now`: Unix seconds
/// of the packet clock), before frame `frame`. Returns whether it did.
fn apply_pending(
    live: &Live,
    now: u64,
    frame: u64,
    started: bool,
    feed: &mut impl Feed,
    attribution: &mut Arc<Attribution>,
    rotations: &mut u64,
) -> bool {
    let Some((gen, g)) = live.take_pending(now) else {
        return false;
    };
    feed.reconfigure(gen, &g.snapshot.compiled);
    *attribution = g.snapshot.attribution.clone();
    if started {
        // The cut took a table, as a rotation does.
        *rotations += 1;
    }
    live.applied(gen, g.from, frame);
    true
}

fn publish_dispatch(live: &Live, sum: &ReplaySummary, now: u64, feed: &impl Feed) {
    *live.dispatch.lock() = DispatchView {
        read: sum.read,
        logged: sum.logged,
        malformed: sum.malformed,
        unmatched: sum.unmatched,
        not_ip: sum.not_ip,
        now,
    };
    feed.publish(live);
}

fn dispatch(
    capture: &Capture,
    mut attribution: Arc<Attribution>,
    feed: &mut impl Feed,
    slice: u64,
    clock: &Clock,
    opts: &ReplayOptions,
) -> ReplaySummary {
    let live = opts.live.as_deref();
    let progress = opts.progress;
    // Pacing: packet time `t` is due at wall time `wall0 + (t - t0) / pace`.
    let mut paced: Option<(Instant, u64)> = None;
    let n = feed.workers();
    let mut sum = ReplaySummary::default();
    let mut now_ns: u64 = 0;
    let mut next_boundary: u64 = 0;
    let mut rotations: u64 = 0;
    let mut started = false;
    let mut meta = PacketMeta::default();
    let bar = progress_bar(capture.len_bytes(), progress);
    let mut frames = capture.frames();
    while let Some(item) = frames.next() {
        let f = match item {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("{e}; replayed up to there");
                break;
            }
        };
        sum.read += 1;
        if sum.read & 0xFFFF == 0 {
            if let Some(b) = &bar {
                b.set_position(frames.position());
            }
        }
        if let Some(p) = opts.pace {
            let (wall0, t0) = *paced.get_or_insert((Instant::now(), f.ts_nanos));
            let due =
                wall0 + Duration::from_secs_f64(f.ts_nanos.saturating_sub(t0) as f64 / 1e9 / p);
            if Instant::now() < due {
                // Everything read so far is recorded before the wait, so a
                // change made during it starts exactly at this packet.
                feed.flush();
                if let Some(l) = live {
                    publish_dispatch(l, &sum, now_ns / 1_000_000_000, feed);
                }
            }
            while let Some(left) = due.checked_duration_since(Instant::now()) {
                if let Some(l) = live.filter(|l| l.has_pending()) {
                    // The packet clock now: where the wait is.
                    let virt = t0 + (wall0.elapsed().as_secs_f64() * p * 1e9) as u64;
                    let at = now_ns.max(virt.min(f.ts_nanos)) / 1_000_000_000;
                    let frame = sum.read - 1;
                    if apply_pending(
                        l,
                        at,
                        frame,
                        started,
                        feed,
                        &mut attribution,
                        &mut rotations,
                    ) {
                        publish_dispatch(l, &sum, at, feed);
                    }
                }
                std::thread::sleep(left.min(Duration::from_millis(5)));
            }
        }
        now_ns = now_ns.max(f.ts_nanos);
        let secs = now_ns / 1_000_000_000;
        if let Some(l) = live {
            if l.has_pending() {
                apply_pending(
                    l,
                    secs,
                    sum.read - 1,
                    started,
                    feed,
                    &mut attribution,
                    &mut rotations,
                );
            }
            if sum.read & 0xFFF == 0 {
                publish_dispatch(l, &sum, secs, feed);
            }
        }
        if !started || secs >= next_boundary {
            if !started {
                clock.first.store(secs, Ordering::Release);
                started = true;
            } else {
                rotations += 1;
            }
            next_boundary = secs - secs % slice + slice;
            feed.boundary(secs, rotations);
        }
        let Some(link) = f.link else {
            sum.not_ip += 1;
            continue;
        };
        match wire::parse(link, f.data, f.orig_len, &mut meta) {
            Err(ParseError::NotIp) => sum.not_ip += 1,
            Err(ParseError::Malformed(_)) => sum.malformed += 1,
            Ok(()) => {
                let (out_eni, in_eni) = attribution.attribute(link.has_mac(), &meta);
                if out_eni == crate::worker::NO_ENI && in_eni == crate::worker::NO_ENI {
                    sum.unmatched += 1;
                    continue;
                }
                sum.logged += 1;
                let w = if n == 1 {
                    0
                } else {
                    (symmetric_hash(&meta) % n as u64) as usize
                };
                feed.packet(
                    w,
                    Seen {
                        meta,
                        secs,
                        ns: now_ns,
                        out_eni,
                        in_eni,
                        host_verdict: None,
                    },
                );
            }
        }
    }
    sum.truncated = frames.truncated();
    if let Some(l) = live {
        publish_dispatch(l, &sum, now_ns / 1_000_000_000, feed);
    }
    clock.last.store(now_ns / 1_000_000_000, Ordering::Release);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    sum
}

fn progress_bar(len: u64, enabled: bool) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !enabled || !std::io::stderr().is_terminal() || len < (64 << 20) {
        return None;
    }
    let b = indicatif::ProgressBar::new(len);
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} replay {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(b)
}
