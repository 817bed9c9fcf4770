//! What a `flowlog_plugin` handle holds: per-worker datapath state behind
//! one lock each, the exporter thread and the log store. Safe Rust only; the
//! C surface in `mod.rs` turns pointers into the slices and closures used
//! here.
//!
//! Each worker is what one core of `flowlogd run` is (`crate::host`): its
//! own flow tables, connection table and clock, handed to the exporter over
//! its own rings. A host thread that keeps to its own worker index takes its
//! lock uncontended; only the control call (stats) and destroy take the
//! others'.

use super::{
    flowlog_pkt_info, flowlog_status, FLOWLOG_DIR_IN, FLOWLOG_DIR_OUT, FLOWLOG_ENI_BY_MAC,
    FLOWLOG_MAX_BURST, FLOWLOG_VERDICT_ACCEPT, FLOWLOG_VERDICT_NONE, FLOWLOG_VERDICT_REJECT,
};
use crate::attrib::Attribution;
use crate::export::{run_store_exporter, Clock, Delivered};
use crate::flow::FlowTable;
use crate::policy::{CompiledPolicy, Policy, PolicyCounters};
use crate::replay::TABLES_PER_WORKER;
use crate::wire::{self, LinkType, ParseError};
use crate::worker::{Handoff, Seen, Worker, WorkerCounters, NO_ENI, WORKER_BURST};
use crossbeam::utils::CachePadded;
use exporter::config::Config;
use exporter::merge::Plan;
use exporter::record::Action;
use exporter::store::{Compress, LocalStore, StoreFormat};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

const NS: u64 = 1_000_000_000;

/// Side-ring (evictions) capacity per worker, as replay's.
const SIDE_RING: usize = 1 << 16;

/// The most workers a plugin runs (as `flowlogd replay --workers`).
pub(crate) const MAX_WORKERS: usize = 64;

/// `seen_of` entry of a packet the worker did not see.
const NOT_SEEN: u8 = u8::MAX;

const _: () = assert!(FLOWLOG_MAX_BURST as usize == WORKER_BURST);
const _: () = assert!(WORKER_BURST < NOT_SEEN as usize);

/// Why a call was refused; the text goes to the caller's error buffer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AbiError {
    /// The host was built for another ABI version.
    #[error("{0}")]
    Version(String),
    /// The configuration text is not a valid configuration.
    #[error("{0}")]
    Config(String),
    /// An argument or option is out of range.
    #[error("{0}")]
    Arg(String),
    /// The log store or a thread could not be set up, or a window could not
    /// be written.
    #[error("{0}")]
    Io(String),
}

impl AbiError {
    pub(crate) fn status(&self) -> flowlog_status {
        match self {
            AbiError::Version(_) => flowlog_status::FLOWLOG_ERR_VERSION,
            AbiError::Config(_) => flowlog_status::FLOWLOG_ERR_CONFIG,
            AbiError::Arg(_) => flowlog_status::FLOWLOG_ERR_ARG,
            AbiError::Io(_) => flowlog_status::FLOWLOG_ERR_IO,
        }
    }
}

/// `flowlog_options` with the defaults filled in.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// Root of the local log store.
    pub root: PathBuf,
    /// Workers (host threads, each with its own index).
    pub workers: usize,
    /// Flow-table capacity per worker.
    pub flows_per_core: usize,
    /// Connection-table capacity per worker.
    pub conns_per_core: usize,
}

impl Settings {
    /// Defaults for zeros (those of `flowlogd replay`), then range checks.
    pub(crate) fn new(
        root: PathBuf,
        workers: u32,
        flows: u32,
        conns: u32,
    ) -> Result<Settings, AbiError> {
        let pick = |v: u32, default: usize| {
            if v == 0 {
                default
            } else {
                v as usize
            }
        };
        let s = Settings {
            root,
            workers: pick(workers, 1),
            flows_per_core: pick(flows, 1 << 18),
            conns_per_core: pick(conns, 1 << 18),
        };
        if s.workers > MAX_WORKERS {
            return Err(AbiError::Arg(format!(
                "options.workers {}: must be 1 to {MAX_WORKERS} (0 = 1)",
                s.workers
            )));
        }
        if !(16..=1 << 28).contains(&s.flows_per_core) {
            return Err(AbiError::Arg(format!(
                "options.flows_per_core {}: must be 16 to 268435456 (0 = 262144)",
                s.flows_per_core
            )));
        }
        if !(8..=1 << 28).contains(&s.conns_per_core) {
            return Err(AbiError::Arg(format!(
                "options.conns_per_core {}: must be 8 to 268435456 (0 = 262144)",
                s.conns_per_core
            )));
        }
        Ok(s)
    }
}

/// Per-worker counters of the ABI layer (the worker and its policy keep
/// their own).
#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    bursts: u64,
    ticks: u64,
    received: u64,
    logged: u64,
    accepted: u64,
    rejected: u64,
    host_verdicts: u64,
    not_ip: u64,
    malformed: u64,
    unmatched: u64,
}

/// One worker's state, touched only under its lock. Every array is sized
/// for a full burst up front: a burst allocates nothing.
struct Slot {
    /// `None` once destroy finished it.
    worker: Option<Worker<Policy>>,
    seen: [Seen; WORKER_BURST],
    /// Per packet of the burst: its index in `seen`, or [`NOT_SEEN`].
    seen_of: [u8; WORKER_BURST],
    /// The worker's clock, Unix ns: the latest packet (or tick) time.
    now_ns: u64,
    /// Whether the clock has started.
    started: bool,
    counters: Counters,
}

/// What the exporter thread shares with the handle.
struct Shared {
    handoffs: Vec<Arc<Handoff>>,
    clock: Clock,
    store: LocalStore,
}

/// The state behind a `flowlog_plugin` handle.
pub(crate) struct Plugin {
    attribution: Attribution,
    enis: usize,
    slots: Box<[CachePadded<Mutex<Slot>>]>,
    shared: Arc<Shared>,
    exporter: Option<JoinHandle<Delivered>>,
    /// Set when a call panicked: the state it was changing may be half
    /// done, so every later call but destroy answers `FLOWLOG_ERR_PANIC`.
    broken: AtomicBool,
}

// Host threads call in at once, each with its own worker index.
const _: () = {
    const fn shared_between_threads<T: Send + Sync>() {}
    shared_between_threads::<Plugin>();
};

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("workers", &self.slots.len())
            .field("enis", &self.enis)
            .field("broken", &self.broken.load(Ordering::Relaxed))
            .finish()
    }
}

/// Marks the plugin broken if dropped while a panic unwinds.
struct Poison<'a>(&'a AtomicBool);

impl Drop for Poison<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Release);
        }
    }
}

impl Plugin {
    /// Compiles the configuration, allocates every worker's tables and
    /// starts the exporter thread.
    pub(crate) fn new(config: Config, s: &Settings) -> Result<Plugin, AbiError> {
        let format = StoreFormat::try_from(config.log_store_format)
            .map_err(|e| AbiError::Config(format!("log_store_format: {e}")))?;
        let compress = Compress::from(config.log_store_compress);
        std::fs::create_dir_all(&s.root).map_err(|e| {
            AbiError::Io(format!(
                "log store root {}: cannot create it: {e}",
                s.root.display()
            ))
        })?;
        let plan = Plan::from_config(&config);
        let slice = crate::worker::slice_for(plan.slice_secs());
        let sinks = exporter::sink::SinkSet::open(&config).map_err(AbiError::Config)?;
        let enis = config.enis.len();
        let compiled = Arc::new(CompiledPolicy::from_config(&config));
        let mut handoffs = Vec::with_capacity(s.workers);
        let mut slots = Vec::with_capacity(s.workers);
        for _ in 0..s.workers {
            let pool = (0..TABLES_PER_WORKER)
                .map(|_| Box::new(FlowTable::new(s.flows_per_core, enis)))
                .collect();
            let (h, active) = Handoff::new(pool, SIDE_RING);
            let policy = Policy::new(compiled.clone(), s.conns_per_core);
            slots.push(CachePadded::new(Mutex::new(Slot {
                worker: Some(Worker::new(active, h.clone(), slice, enis, policy)),
                seen: [Seen::default(); WORKER_BURST],
                seen_of: [NOT_SEEN; WORKER_BURST],
                now_ns: 0,
                started: false,
                counters: Counters::default(),
            })));
            handoffs.push(h);
        }
        let shared = Arc::new(Shared {
            handoffs,
            clock: Clock::default(),
            store: LocalStore::new(s.root.clone(), format, compress, &config.host),
        });
        let exporter = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("flowlog-exporter".into())
                .spawn(move || {
                    run_store_exporter(
                        plan,
                        &shared.handoffs,
                        &shared.clock,
                        &shared.store,
                        sinks,
                        None,
                    )
                })
                .map_err(|e| AbiError::Io(format!("starting the exporter thread: {e}")))?
        };
        Ok(Plugin {
            attribution: Attribution::from_config(&config),
            enis,
            slots: slots.into_boxed_slice(),
            shared,
            exporter: Some(exporter),
            broken: AtomicBool::new(false),
        })
    }

    /// Workers.
    pub(crate) fn workers(&self) -> usize {
        self.slots.len()
    }

    /// Whether an earlier call panicked.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    fn started(&self, secs: u64) {
        // Several workers may start at slightly different times: the
        // exporter begins at the earliest it has seen when it looks.
        self.shared.clock.first.fetch_min(secs, Ordering::AcqRel);
    }

    /// Checks a burst's per-packet information before anything is touched,
    /// so a refused burst changes no state.
    pub(crate) fn check(
        &self,
        worker: usize,
        n: usize,
        info: impl Fn(usize) -> flowlog_pkt_info,
        now_ns: u64,
    ) -> Result<(), flowlog_status> {
        if worker >= self.slots.len() || n > WORKER_BURST {
            return Err(flowlog_status::FLOWLOG_ERR_ARG);
        }
        for i in 0..n {
            let p = info(i);
            let eni_ok = p.eni == FLOWLOG_ENI_BY_MAC
                || (usize::from(p.eni) < self.enis
                    && (p.direction == FLOWLOG_DIR_IN || p.direction == FLOWLOG_DIR_OUT));
            let verdict_ok = p.host_verdict <= FLOWLOG_VERDICT_REJECT;
            let time_ok = p.time_ns != 0 || now_ns != 0;
            if !(eni_ok && verdict_ok && time_ok) {
                return Err(flowlog_status::FLOWLOG_ERR_ARG);
            }
        }
        Ok(())
    }

    /// Parses, attributes, judges and records a burst of `n` packets (already
    /// [`Plugin::check`]ed): `frame(i)` is packet `i`'s first segment and its
    /// whole length; `verdicts[i]` gets its `FLOWLOG_VERDICT_*`. The mirror
    /// of one port's burst in `crate::host::run`.
    pub(crate) fn process<'a>(
        &self,
        worker: usize,
        n: usize,
        info: impl Fn(usize) -> flowlog_pkt_info,
        frame: impl Fn(usize) -> (&'a [u8], u32),
        now_ns: u64,
        verdicts: &mut [u8],
    ) {
        debug_assert!(n <= WORKER_BURST && verdicts.len() >= n);
        let _poison = Poison(&self.broken);
        let mut guard = self.slots[worker].lock();
        let Slot {
            worker,
            seen,
            seen_of,
            now_ns: clock_ns,
            started,
            counters: c,
        } = &mut *guard;
        let Some(worker) = worker.as_mut() else {
            verdicts[..n].fill(FLOWLOG_VERDICT_NONE);
            return;
        };
        let mut k = 0;
        for (i, slot) in seen_of.iter_mut().enumerate().take(n) {
            let p = info(i);
            let t = if p.time_ns != 0 { p.time_ns } else { now_ns };
            *clock_ns = (*clock_ns).max(t);
            let secs = *clock_ns / NS;
            if !*started {
                *started = true;
                self.started(secs);
            }
            *slot = NOT_SEEN;
            let (data, len) = frame(i);
            // Parsed in place into the next free `Seen` (as `host` does).
            let s = &mut seen[k];
            match wire::parse(LinkType::Ethernet, data, len, &mut s.meta) {
                Err(ParseError::NotIp) => c.not_ip += 1,
                Err(ParseError::Malformed(_)) => c.malformed += 1,
                Ok(()) => {
                    let (out_eni, in_eni) = if p.eni == FLOWLOG_ENI_BY_MAC {
                        self.attribution.attribute(true, &s.meta)
                    } else if p.direction == FLOWLOG_DIR_OUT {
                        (p.eni, NO_ENI)
                    } else {
                        (NO_ENI, p.eni)
                    };
                    if out_eni == NO_ENI && in_eni == NO_ENI {
                        c.unmatched += 1;
                        continue;
                    }
                    let host_verdict = match p.host_verdict {
                        FLOWLOG_VERDICT_ACCEPT => Some(Action::Accept),
                        FLOWLOG_VERDICT_REJECT => Some(Action::Reject),
                        _ => None,
                    };
                    c.host_verdicts += u64::from(host_verdict.is_some());
                    s.secs = secs;
                    s.ns = *clock_ns;
                    s.out_eni = out_eni;
                    s.in_eni = in_eni;
                    s.host_verdict = host_verdict;
                    *slot = k as u8;
                    k += 1;
                }
            }
        }
        // (The worker moves its clock packet by packet.)
        worker.process(&seen[..k]);
        let judged = worker.verdicts();
        for (v, &s) in verdicts.iter_mut().zip(seen_of.iter()).take(n) {
            *v = match judged.get(usize::from(s)) {
                None => FLOWLOG_VERDICT_NONE,
                Some(Action::Accept) => {
                    c.accepted += 1;
                    FLOWLOG_VERDICT_ACCEPT
                }
                Some(Action::Reject) => {
                    c.rejected += 1;
                    FLOWLOG_VERDICT_REJECT
                }
            };
        }
        c.bursts += 1;
        c.received += n as u64;
        c.logged += k as u64;
        if *started {
            // Packets nobody logs move the clock too: windows close on time.
            worker.advance(*clock_ns / NS);
        }
    }

    /// Moves an idle worker's clock to `now_ns` (Unix ns; never backwards),
    /// so its windows close. A tick at time 0 before any packet does nothing.
    pub(crate) fn tick(&self, worker: usize, now_ns: u64) -> Result<(), flowlog_status> {
        let slot = self
            .slots
            .get(worker)
            .ok_or(flowlog_status::FLOWLOG_ERR_ARG)?;
        let _poison = Poison(&self.broken);
        let mut g = slot.lock();
        g.counters.ticks += 1;
        if now_ns == 0 && !g.started {
            return Ok(());
        }
        g.now_ns = g.now_ns.max(now_ns);
        let secs = g.now_ns / NS;
        if !g.started {
            g.started = true;
            self.started(secs);
        }
        if let Some(w) = g.worker.as_mut() {
            w.advance(secs);
        }
        Ok(())
    }

    /// The counters, summed over workers and per worker, as JSON.
    pub(crate) fn stats(&self) -> Value {
        let _poison = Poison(&self.broken);
        let mut sum = Counters::default();
        let mut wsum = WorkerCounters::default();
        let mut psum = PolicyCounters::default();
        let mut per = Vec::with_capacity(self.slots.len());
        for (i, slot) in self.slots.iter().enumerate() {
            let (c, wc, pc, now_ns) = {
                let g = slot.lock();
                let (wc, pc) = g
                    .worker
                    .as_ref()
                    .map(|w| (w.counters, w.policy().counters))
                    .unwrap_or_default();
                (g.counters, wc, pc, g.now_ns)
            };
            add(&mut sum, &c);
            wsum.add(&wc);
            add_policy(&mut psum, &pc);
            let mut o = counters_json(&c, &wc);
            o["worker"] = json!(i);
            o["clock_ns"] = json!(now_ns);
            per.push(o);
        }
        let mut o = counters_json(&sum, &wsum);
        o["workers"] = json!(self.slots.len());
        o["broken"] = json!(self.is_broken());
        o["policy"] = json!({
            "rule_lookups": psum.rule_lookups, "tracked": psum.tracked,
            "opened": psum.opened, "conn_table_full": psum.conn_table_full,
            "expired": psum.expired, "nacl_drops": psum.nacl_drops,
            "sg_drops": psum.sg_drops,
        });
        o["per_worker"] = Value::Array(per);
        o
    }

    /// Answers one request of the operator protocol (JSON text). Every
    /// problem with the request is an error reply, never a failed call.
    pub(crate) fn control(&self, request: &[u8]) -> String {
        let reply = match serde_json::from_slice::<Value>(request) {
            Err(e) => error_reply(Value::Null, &format!("the request is not JSON: {e}")),
            Ok(Value::Object(req)) => {
                let id = req.get("id").cloned().unwrap_or(Value::Null);
                match (req.get("version"), req.get("cmd")) {
                    (Some(v), _) if v.as_u64() != Some(1) => error_reply(
                        id,
                        &format!("protocol version {v} is not supported; this plugin speaks 1"),
                    ),
                    (None, _) => error_reply(id, "missing \"version\" (this plugin speaks 1)"),
                    (_, Some(Value::String(cmd))) if cmd == "stats" => {
                        json!({"id": id, "ok": true, "result": self.stats()})
                    }
                    (_, Some(Value::String(cmd))) => error_reply(
                        id,
                        &format!("unknown command \"{cmd}\"; this plugin supports: stats"),
                    ),
                    (_, _) => error_reply(id, "missing \"cmd\" (a string, such as \"stats\")"),
                }
            }
            Ok(_) => error_reply(Value::Null, "the request is not a JSON object"),
        };
        reply.to_string()
    }

    /// Waits until the exporter has given every worker back all its spare
    /// tables. A test that feeds minutes of capture in microseconds calls
    /// it between bursts, as replay paces its dispatcher; a host in real
    /// time never needs to.
    #[cfg(test)]
    pub(crate) fn settle(&self) {
        for h in &self.shared.handoffs {
            while h.free.len() < TABLES_PER_WORKER - 1 {
                std::thread::yield_now();
            }
        }
    }

    /// Ends every worker, flushes every open window through the exporter to
    /// the log store and joins the exporter thread.
    pub(crate) fn finish(mut self) -> Result<(), AbiError> {
        let last = self
            .slots
            .iter()
            .filter_map(|s| {
                let g = s.lock();
                g.started.then_some(g.now_ns)
            })
            .max();
        if let Some(ns) = last {
            // Before any worker is done: the exporter reads it once all are.
            self.shared.clock.last.store(ns / NS, Ordering::Release);
        }
        for s in self.slots.iter() {
            if let Some(w) = s.lock().worker.take() {
                w.finish();
            }
        }
        let delivered = match self.exporter.take().map(JoinHandle::join) {
            Some(Ok(d)) => d,
            Some(Err(_)) => return Err(AbiError::Io("the exporter thread panicked".into())),
            None => Delivered::default(),
        };
        let mut errors = delivered.errors;
        for st in delivered.sinks.iter().filter(|s| s.lost_records > 0) {
            errors.push(format!(
                "flow log {} lost {} records at sink {}: {}",
                st.flow_log_id,
                st.lost_records,
                st.sink_id,
                st.reason.as_deref().unwrap_or("")
            ));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(AbiError::Io(errors.join("; ")))
        }
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        // Only reached without `finish` when a call panicked half way: end
        // the workers so the exporter thread stops, and wait for it.
        if self.exporter.is_some() {
            for s in self.slots.iter() {
                if let Some(w) = s.lock().worker.take() {
                    w.finish();
                }
            }
            if let Some(h) = self.exporter.take() {
                let _ = h.join();
            }
        }
    }
}

fn error_reply(id: Value, msg: &str) -> Value {
    json!({"id": id, "ok": false, "error": msg})
}

fn counters_json(c: &Counters, w: &WorkerCounters) -> Value {
    json!({
        "bursts": c.bursts, "ticks": c.ticks, "received": c.received,
        "logged": c.logged, "accepted": c.accepted, "rejected": c.rejected,
        "host_verdicts": c.host_verdicts, "not_ip": c.not_ip,
        "malformed": c.malformed, "unmatched": c.unmatched,
        "observations": w.observations, "evictions": w.evictions,
        "skipped": w.skipped, "rotations": w.rotations,
        "no_free_table": w.no_free_table, "high_water": w.high_water,
        "late_writebacks": w.late_writebacks,
    })
}

fn add(s: &mut Counters, c: &Counters) {
    s.bursts += c.bursts;
    s.ticks += c.ticks;
    s.received += c.received;
    s.logged += c.logged;
    s.accepted += c.accepted;
    s.rejected += c.rejected;
    s.host_verdicts += c.host_verdicts;
    s.not_ip += c.not_ip;
    s.malformed += c.malformed;
    s.unmatched += c.unmatched;
}

fn add_policy(s: &mut PolicyCounters, c: &PolicyCounters) {
    s.rule_lookups += c.rule_lookups;
    s.tracked += c.tracked;
    s.opened += c.opened;
    s.conn_table_full += c.conn_table_full;
    s.expired += c.expired;
    s.nacl_drops += c.nacl_drops;
    s.sg_drops += c.sg_drops;
}
