//! `flowlogd run`: a small DPDK vSwitch host. Ports come from EAL (virtual
//! devices such as `net_pcap`, `net_ring`, `net_null`, `net_tap`, or NICs);
//! an ENI whose configuration names a `port` is attached there, and one
//! uplink port carries everything else. Per burst the worker parses,
//! attributes, takes the verdict and records, then forwards by destination
//! MAC (an ENI's port, or the uplink) and drops what the policy rejected.
//!
//! `--workers N` runs N workers, each a `std` thread pinned with
//! `core_affinity` to the CPU of EAL's lcore `i % lcores` (the `-l` list,
//! main lcore included, in order), so one worker per lcore when `-l` names
//! N of them, and registered with EAL (`rte_thread_register`) so that it
//! has an lcore id and with it the mempool's per-lcore cache. Each worker
//! owns its `Worker<Policy>` (its flow tables, its connection table) and
//! its own [`Handoff`] to the exporter, as in `flowlogd replay`. The
//! exporter and the control thread run on the CPUs the process may use
//! that no worker is pinned to (all of them when the workers take every
//! CPU); `run`'s own thread only waits.
//!
//! Both directions of a connection must meet on one worker (its connection
//! table holds the state the stateful security groups need, and its flow
//! table the record). How each port gets there:
//!
//! * **RSS** — when every port supports RSS (`flow_type_rss_offloads != 0`)
//!   and has at least N RX and N TX queues, each port gets N RX queues with
//!   RSS over IPv4/IPv6/TCP/UDP and the symmetric key (`0x6d, 0x5a`
//!   repeated), so both directions land on the same queue number; worker i
//!   polls RX queue i of every port and owns whatever it receives. (This
//!   assumes the ports' default redirection tables agree, as they do for
//!   ports of one driver.)
//! * **Handoff** — otherwise (`net_pcap`, `net_ring` and the other virtual
//!   devices have no RSS, and one RX queue per stream), a connection belongs
//!   to worker `symmetric_hash % N` (as in replay). A port gets
//!   `min(N, max_rx_queues)` RX queues, each polled by one worker (queue q of
//!   port p by worker `(p + q) % N` when the port has fewer than N, else by
//!   worker q). The worker that receives a packet parses it; if it is
//!   attributed to an ENI and belongs to another worker, the mbuf goes to
//!   that worker over a bounded SPSC ring per (from, to) pair (with the
//!   receiver's packet time; `rtrb`, written and read a burst at a time:
//!   one release store per burst instead of an atomic per packet); a full
//!   ring drops the packet and counts it
//!   (`handoff_dropped`) — it never blocks. Each worker drains its incoming
//!   rings as well as its RX queues, in full bursts: the room that the
//!   packets it handed off left in an RX burst is filled from its rings
//!   before the burst goes through its worker, and the rest is gathered
//!   across the rings (a burst of 32 through the worker costs little more
//!   than one of 8). Non-IP, malformed and unattributed
//!   packets are forwarded by whoever received them.
//!
//! TX: worker i sends on TX queue `i % txq` of a port (`txq = min(N,
//! max_tx_queues)`); where workers share a TX queue (`net_pcap` has one)
//! they take its lock around `tx_burst`.
//!
//! The packets' clock is the RX timestamp where the driver gives one
//! (`net_pcap` gives each packet its capture time, so a capture fed through
//! `net_pcap` yields the same log store as `flowlogd replay`, with any
//! number of workers), else the wall clock. Each worker keeps its own
//! monotone clock; the exporter's `first` is the first packet time any
//! worker saw (the first worker to see a packet sets it, once, and every
//! worker's clock starts no earlier), and its `last` the latest over the
//! workers. A worker that has nothing to do moves its clock to the latest
//! time any worker has published — after checking its incoming rings are
//! empty, so no packet handed to it earlier is still on its way — and, on
//! the wall clock, to the wall time: idle workers rotate too, and windows
//! close. On the packets' own clock (a capture played through `net_pcap`),
//! a worker about to enter a new slice first waits until its rotation will
//! find a free table (as replay's dispatcher paces): its RX queues fill
//! meanwhile, so a capture replays without skipping. On the wall clock (a
//! live vSwitch) it never waits for the exporter: a rotation without a free
//! table counts its packets as skipped (SKIPDATA).
//!
//! SIGINT and SIGTERM stop it in order: the open window is flushed, so no
//! record is lost; so does `--stop-when-idle` (every worker idle that long).
//! On a stop every worker stops polling its RX queues, then drains its
//! incoming rings until every worker has stopped polling, then finishes
//! (`Worker::finish`); the exporter then delivers everything.

use crate::attrib::{symmetric_hash, Attribution};
use crate::dpdk::{
    Burst, DpdkError, Eal, Mempool, Packet, Port, PortConfig, PortId, PortInfo, QueueId,
    RxTimestamp, BURST_SIZE,
};
use crate::export::{run_store_exporter, Clock, Delivered};
use crate::flow::FlowTable;
use crate::live::{Live, WorkerView};
use crate::policy::{CompiledPolicy, Policy, PolicyCounters};
use crate::replay::TABLES_PER_WORKER;
use crate::wire::{self, LinkType, PacketMeta, ParseError};
use crate::worker::{Handoff, Seen, Tripwire, Worker, WorkerCounters, NO_ENI};
use crossbeam::utils::CachePadded;
use exporter::config::Config;
use exporter::merge::{FlowLogStats, Plan};
use exporter::record::Action;
use exporter::sink::{DeliveryStatus, SinkSet};
use exporter::store::{Compress, LocalStore, StoreFormat};
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What `flowlogd run` was asked to do.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The host configuration (validated).
    pub config: Config,
    /// Root of the local log store.
    pub out: PathBuf,
    /// EAL arguments (without the program name).
    pub eal_args: Vec<String>,
    /// The uplink port; default: the first port no ENI is attached to.
    pub uplink: Option<u16>,
    /// Stop once every port has been idle this long.
    pub stop_when_idle: Option<Duration>,
    /// Worker threads (1 to 64).
    pub workers: usize,
    /// Flow-table capacity per worker.
    pub flows_per_core: usize,
    /// Connection-table capacity per worker.
    pub conns_per_core: usize,
    /// Mbufs in the packet pool (`net_pcap` with `infinite_rx=1` needs one
    /// per packet of its capture).
    pub mbufs: u32,
    /// File format.
    pub format: StoreFormat,
    /// Compression.
    pub compress: Compress,
    /// Set to stop in order (SIGINT/SIGTERM set it).
    pub stop: Arc<AtomicBool>,
    /// The operator socket's view: configuration changes are put in force
    /// between bursts and the figures published for `stats`.
    pub live: Option<Arc<Live>>,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct RunSummary {
    /// Packets received on all ports.
    pub received: u64,
    /// Packets sent on (handed to) a port.
    pub forwarded: u64,
    /// Packets dropped because the policy rejected them.
    pub dropped: u64,
    /// Packets a port refused to send (TX full), freed.
    pub tx_failed: u64,
    /// Logged packets the policy accepted.
    pub accepted: u64,
    /// Logged packets the policy rejected.
    pub rejected: u64,
    /// Frames with a malformed IP header.
    pub malformed: u64,
    /// IP frames of no ENI.
    pub unmatched: u64,
    /// Frames that are not IPv4/IPv6.
    pub not_ip: u64,
    /// Packets a worker could not hand to the worker owning their
    /// connection (its ring was full), freed.
    pub handoff_dropped: u64,
    /// Packets handed from the worker that received them to the one owning
    /// their connection.
    pub handed_off: u64,
    /// Worker threads.
    pub workers: usize,
    /// Whether the ports spread connections over the workers by symmetric
    /// RSS (else by handoff; always false with one worker).
    pub rss: bool,
    /// Per port: (name, received, forwarded out of it).
    pub ports: Vec<(String, u64, u64)>,
    /// Per active flow log: its id and what was delivered.
    pub flow_logs: Vec<(String, FlowLogStats)>,
    /// The workers' counters, summed.
    pub worker: WorkerCounters,
    /// The policies' counters, summed.
    pub policy: PolicyCounters,
    /// Local log store errors.
    pub errors: Vec<String>,
    /// Per flow log and sink besides the local log store: the delivery status.
    pub sinks: Vec<DeliveryStatus>,
    /// Wall time.
    pub elapsed: Duration,
    /// Whether the packets' clock came from RX timestamps.
    pub packet_clock: bool,
    /// Seconds from the first to the last received burst.
    pub rx_secs: f64,
}

impl RunSummary {
    /// Received packets per second while packets flowed, millions.
    pub fn mpps(&self) -> f64 {
        if self.rx_secs > 0.0 {
            self.received as f64 / self.rx_secs / 1e6
        } else {
            0.0
        }
    }
}

/// Why a run failed to start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// DPDK refused.
    #[error(transparent)]
    Dpdk(#[from] DpdkError),
    /// The configuration does not fit the ports.
    #[error("{0}")]
    Setup(String),
}

fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Most entries of one handoff ring (it is sized to the mbuf pool, so with
/// one pool it cannot fill before the pool empties; this caps its memory).
const HANDOFF_RING_MAX: usize = 1 << 16;

/// The packets' clock, as the first packet any worker saw decided it.
const CLOCK_UNKNOWN: u8 = 0;
const CLOCK_PACKETS: u8 = 1;
const CLOCK_WALL: u8 = 2;

/// What the workers share (read-only but for the atomics, the rings and the
/// TX locks).
struct Shared<'a, 'p> {
    opts: &'a RunOptions,
    ports: &'a [Port<'p>],
    /// Workers.
    n: usize,
    /// Per worker: the (port, RX queue) pairs it polls.
    polls: Vec<Vec<(usize, QueueId)>>,
    /// Per port: its TX queues.
    txq: Vec<u16>,
    /// Per port, per TX queue: taken around `tx_burst` when workers share
    /// the queue.
    tx_locks: Vec<Vec<Mutex<()>>>,
    /// Connections belong to `symmetric_hash % n` (the handoff path), not to
    /// whoever received them (the RSS path).
    by_hash: bool,
    /// Per worker: what it shares with the exporter.
    handoffs: &'a [Arc<Handoff>],
    /// Slice length, seconds.
    slice: u64,
    attribution: &'a Arc<Attribution>,
    eni_port: &'a Arc<[u16]>,
    nports: u16,
    live: Option<&'a Live>,
    /// The configuration generation every worker is to put in force.
    gen_now: AtomicU32,
    /// Per worker: the generation it has in force.
    gen_seen: Vec<AtomicU32>,
    /// Per worker: packets it received on all ports so far (each stores
    /// its own total on its own cache line; readers sum them).
    received: Vec<CachePadded<AtomicU64>>,
    /// Workers that finished.
    finished: AtomicUsize,
    uplink: u16,
    ts: Option<RxTimestamp>,
    clock: &'a Clock,
    /// The first packet time (ns) any worker saw; `u64::MAX` until then.
    first_ns: AtomicU64,
    /// Per worker: its clock (ns), stored after the packets it handed off
    /// up to that time were pushed.
    pub_ns: Vec<CachePadded<AtomicU64>>,
    /// CLOCK_UNKNOWN, CLOCK_PACKETS or CLOCK_WALL.
    mode: AtomicU8,
    started: Instant,
    /// Per worker: nanoseconds after `started` of its last RX burst (each
    /// stores its own, on its own cache line; `--stop-when-idle` reads the
    /// latest).
    last_rx: Vec<CachePadded<AtomicU64>>,
    /// Set once a stop was asked (signal or idle); every worker then stops
    /// polling its RX queues.
    halt: AtomicBool,
    /// Workers that stopped polling their RX queues.
    rx_stopped: AtomicUsize,
}

impl Shared<'_, '_> {
    /// Sends `ob` on port `d` from worker `w`; returns the packets sent (the
    /// rest stay in `ob`).
    fn send(&self, w: usize, d: usize, ob: &mut Burst) -> usize {
        let q = w % usize::from(self.txq[d]);
        if usize::from(self.txq[d]) < self.n {
            let _g = self.tx_locks[d][q]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            self.ports[d].tx_burst(QueueId(q as u16), ob)
        } else {
            self.ports[d].tx_burst(QueueId(q as u16), ob)
        }
    }

    /// Before worker `w` moves from `cur` (its slice, if started) into the
    /// slice of `secs`: waits until its rotation will find a free table, as
    /// replay's dispatcher does (the RX queues then fill, as a NIC's ring
    /// does when a core is busy), so a slow exporter never makes it skip.
    ///
    /// Only on the packets' own clock (a capture played through `net_pcap`,
    /// where a minute of traffic passes in milliseconds). On the wall clock
    /// (a live vSwitch) a worker never waits for the exporter: a rotation
    /// that finds no free table counts its packets as skipped (SKIPDATA).
    fn pace(&self, w: usize, cur: &mut Option<u64>, secs: u64) {
        let slice = secs - secs % self.slice.max(1);
        match *cur {
            Some(c) if slice > c => {
                while self.mode.load(Ordering::Acquire) == CLOCK_PACKETS
                    && self.handoffs[w].free.is_empty()
                    && !self.opts.stop.load(Ordering::Relaxed)
                    && !self.handoffs[w].failed.load(Ordering::Acquire)
                {
                    std::thread::yield_now();
                }
                *cur = Some(slice);
            }
            Some(_) => {}
            None => *cur = Some(slice),
        }
    }

    /// Packets received on all ports so far, over the workers.
    fn received_so_far(&self) -> u64 {
        self.received
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .sum()
    }

    fn since_start_ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }
}

/// One worker's share of the summary.
struct WorkerRun {
    sum: RunSummary,
    per_port: Vec<(u64, u64)>,
    now_ns: u64,
    /// The slice the worker is in (as far as pacing knows).
    slice: Option<u64>,
    first_rx: Option<Instant>,
    last_rx: Option<Instant>,
}

/// How many packets ahead of the one it parses a worker prefetches.
const PARSE_AHEAD: usize = 4;

/// In `Scratch::to_eni`: a packet that was not parsed, whose destination
/// MAC forwarding looks up itself.
const LOOK_UP: u16 = NO_ENI - 1;

/// The worker's scratch space for one burst.
struct Scratch {
    /// This worker's ends of the handoff rings.
    rings: Rings,
    /// The ENI lookups and ports of the configuration generation in force
    /// on this worker.
    attr: Arc<Attribution>,
    eni_port: Arc<[u16]>,
    gen: u32,
    rx: Burst,
    out: Vec<Burst>,
    seen: [Seen; BURST_SIZE],
    seen_of: [usize; BURST_SIZE],
    /// Per packet: the ENI its destination MAC names (from the
    /// attribution), [`NO_ENI`], or [`LOOK_UP`] where it was not parsed.
    to_eni: [u16; BURST_SIZE],
    verdicts: [Action; BURST_SIZE],
    /// Per packet of `rx`: its time (ns) on this worker's clock.
    ns: [u64; BURST_SIZE],
    owner: [usize; BURST_SIZE],
    meta: PacketMeta,
}

/// A handed-off packet and its time (ns) on the worker that received it.
type Handed = (Packet, u64);

/// One worker's ends of the handoff rings: one single-producer,
/// single-consumer ring per (from, to) pair of workers, written and read a
/// burst at a time (one release store per burst, not an atomic per packet).
struct Rings {
    /// `out[to]`: packets for worker `to` (none to itself, none without the
    /// handoff).
    out: Vec<Option<rtrb::Producer<Handed>>>,
    /// `inc[from]`: packets from worker `from`.
    inc: Vec<Option<rtrb::Consumer<Handed>>>,
    /// `staged[to]`: this RX burst's packets for worker `to`, pushed as one
    /// chunk (capacity [`BURST_SIZE`], reserved up front).
    staged: Vec<Vec<Handed>>,
}

impl Rings {
    /// The rings of `n` workers, each `cap` packets (none when `cap` is 0:
    /// no handoff).
    fn for_workers(n: usize, cap: usize) -> Vec<Rings> {
        let mut all: Vec<Rings> = (0..n)
            .map(|_| Rings {
                out: (0..n).map(|_| None).collect(),
                inc: (0..n).map(|_| None).collect(),
                staged: (0..n).map(|_| Vec::with_capacity(BURST_SIZE)).collect(),
            })
            .collect();
        if cap > 0 {
            for from in 0..n {
                for to in (0..n).filter(|&t| t != from) {
                    let (p, c) = rtrb::RingBuffer::new(cap);
                    all[from].out[to] = Some(p);
                    all[to].inc[from] = Some(c);
                }
            }
        }
        all
    }

    /// Packets waiting in this worker's incoming rings.
    fn waiting(&self) -> usize {
        self.inc.iter().flatten().map(|c| c.slots()).sum()
    }

    /// Packets this worker's incoming rings hold at most.
    fn capacity(&self) -> usize {
        self.inc
            .iter()
            .flatten()
            .map(|c| c.buffer().capacity())
            .sum()
    }
}

/// One zeroed counter per worker, each on its own cache line (a worker
/// stores only its own; readers take the sum or the latest).
fn per_worker(n: usize) -> Vec<CachePadded<AtomicU64>> {
    (0..n)
        .map(|_| CachePadded::new(AtomicU64::new(0)))
        .collect()
}

/// Runs the host until stopped.
pub fn run(opts: &RunOptions) -> Result<RunSummary, RunError> {
    let cfg = &opts.config;
    let n = opts.workers;
    if n == 0 || n > 64 {
        return Err(RunError::Setup(format!("--workers {n}: must be 1 to 64")));
    }
    let mut args = vec!["flowlogd".to_string()];
    args.extend(opts.eal_args.iter().cloned());
    // The CPUs the process may use, before EAL pins this thread to the
    // main lcore.
    let allowed: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let eal = Eal::init(&args)?;
    let placement = Placement::new(&allowed, &crate::dpdk::lcore_cpus(), n);
    if let Some(l) = &opts.live {
        register_telemetry(l);
    }
    let nports = eal.port_count();
    if nports == 0 {
        return Err(RunError::Setup(
            "EAL found no port; give devices, e.g. -- --no-huge --no-pci --vdev=net_pcap0,rx_pcap=IN.pcap,tx_pcap=OUT.pcap"
                .into(),
        ));
    }
    // ENI index -> port.
    let mut eni_port = vec![u16::MAX; cfg.enis.len()];
    let live = opts.live.as_deref();
    for (i, e) in cfg.enis.iter().enumerate() {
        if let Some(p) = e.port {
            if p >= nports {
                return Err(RunError::Setup(format!(
                    "enis[{i}].port: {p} but EAL found {nports} port(s) (0..{}); fix the port or the EAL devices",
                    nports - 1
                )));
            }
            eni_port[i] = p;
        }
    }
    let uplink = match opts.uplink {
        Some(u) if u < nports => u,
        Some(u) => {
            return Err(RunError::Setup(format!(
                "--uplink {u}: EAL found {nports} port(s)"
            )))
        }
        None => (0..nports).find(|p| !eni_port.contains(p)).ok_or_else(|| {
            RunError::Setup("every port is an ENI's; give --uplink PORT or one more device".into())
        })?,
    };

    // Queues per port, and which path keeps a connection on one worker (see
    // the module documentation).
    let infos: Vec<PortInfo> = (0..nports)
        .map(|p| Port::info(PortId(p)))
        .collect::<Result<_, _>>()?;
    let rss = n > 1
        && infos.iter().all(|i| {
            i.has_rss() && usize::from(i.max_rx_queues) >= n && usize::from(i.max_tx_queues) >= n
        });
    let by_hash = n > 1 && !rss;
    let n16 = n as u16;
    let rxq: Vec<u16> = infos
        .iter()
        .map(|i| i.max_rx_queues.clamp(1, n16))
        .collect();
    let txq: Vec<u16> = infos
        .iter()
        .map(|i| i.max_tx_queues.clamp(1, n16))
        .collect();
    let base = PortConfig {
        rx_timestamp: true,
        ..PortConfig::default()
    };
    let rx_descs: u32 = rxq
        .iter()
        .map(|&q| u32::from(q) * u32::from(base.rx_desc))
        .sum();
    let pool_size = opts.mbufs.max(4095).max(rx_descs + 4095);
    let pool = Mempool::new("flowlogd_pool", pool_size, 256, -1)?;
    let mut ports = Vec::new();
    for p in 0..nports {
        let pi = usize::from(p);
        let pcfg = PortConfig {
            rx_queues: rxq[pi],
            tx_queues: txq[pi],
            rss: rxq[pi] > 1 && infos[pi].has_rss(),
            ..base
        };
        ports.push(Port::start(PortId(p), &pcfg, &pool)?);
    }
    for (p, i) in infos.iter().enumerate() {
        tracing::info!(
            "port {p} ({}): {} RX / {} TX queue(s), {}",
            i.driver,
            rxq[p],
            txq[p],
            if rss {
                "symmetric RSS"
            } else if by_hash {
                "handoff by symmetric hash"
            } else {
                "one worker"
            }
        );
    }
    let names: Vec<String> = (0..nports)
        .map(|p| Port::name(PortId(p)).unwrap_or_else(|_| format!("port{p}")))
        .collect();
    let ts = RxTimestamp::register().ok();

    // Who polls what: queue q of port p by worker q when the port has a
    // queue per worker, else by worker (p + q) % n.
    let mut polls: Vec<Vec<(usize, QueueId)>> = vec![Vec::new(); n];
    for (p, &nq) in rxq.iter().enumerate() {
        for q in 0..usize::from(nq) {
            let w = if usize::from(nq) == n { q } else { (p + q) % n };
            polls[w].push((p, QueueId(q as u16)));
        }
    }
    let ring_cap = (pool_size as usize).min(HANDOFF_RING_MAX);
    let mut rings = Rings::for_workers(n, if by_hash { ring_cap } else { 0 }).into_iter();
    let tx_locks = txq
        .iter()
        .map(|&q| (0..q).map(|_| Mutex::new(())).collect())
        .collect();

    let plan = Plan::from_config(cfg);
    // With the operator socket a flow log of any interval may come.
    let (slice, enis) = crate::live::sizing(live.is_some(), &plan, cfg.enis.len());
    let attribution = Arc::new(Attribution::from_config(cfg));
    let eni_port: Arc<[u16]> = eni_port.into();
    let compiled = Arc::new(CompiledPolicy::from_config(cfg));
    let store = LocalStore::new(opts.out.clone(), opts.format, opts.compress, &cfg.host);
    let sinks =
        SinkSet::open(cfg).map_err(|e| RunError::Setup(format!("opening the sinks: {e}")))?;
    let mut handoffs: Vec<Arc<Handoff>> = Vec::new();
    let mut actives = Vec::new();
    for _ in 0..n {
        let pool_tables = (0..TABLES_PER_WORKER)
            .map(|_| Box::new(FlowTable::new(opts.flows_per_core, enis)))
            .collect();
        let (h, active) = Handoff::new(pool_tables, 1 << 16);
        handoffs.push(h);
        actives.push(active);
    }
    let clock = Clock::default();
    let started = Instant::now();
    let shared = Shared {
        opts,
        ports: &ports,
        n,
        polls,
        txq,
        tx_locks,
        by_hash,
        handoffs: &handoffs,
        slice,
        attribution: &attribution,
        eni_port: &eni_port,
        nports,
        live,
        gen_now: AtomicU32::new(0),
        gen_seen: (0..n).map(|_| AtomicU32::new(0)).collect(),
        received: per_worker(n),
        finished: AtomicUsize::new(0),
        uplink,
        ts,
        clock: &clock,
        first_ns: AtomicU64::new(u64::MAX),
        pub_ns: per_worker(n),
        mode: AtomicU8::new(CLOCK_UNKNOWN),
        started,
        last_rx: per_worker(n),
        halt: AtomicBool::new(false),
        rx_stopped: AtomicUsize::new(0),
    };

    let (runs, delivered): (Vec<WorkerRun>, Delivered) = std::thread::scope(|s| {
        // Not pinned (see the module documentation).
        let exporter = {
            let (handoffs, clock, store) = (&handoffs, &clock, &store);
            let others = &placement.others;
            let halt = &shared.halt;
            std::thread::Builder::new()
                .name("flowlog-exporter".into())
                .spawn_scoped(s, move || {
                    let _trip = Tripwire {
                        handoffs,
                        stop: halt,
                    };
                    if !crate::dpdk::run_current_thread_on(others) {
                        tracing::warn!("the exporter could not leave the main lcore's core");
                    }
                    run_store_exporter(plan, handoffs, clock, store, sinks, live)
                })
                .expect("spawn exporter")
        };
        if let Some(l) = live {
            let (shared, others) = (&shared, &placement.others);
            std::thread::Builder::new()
                .name("flowlog-control".into())
                .spawn_scoped(s, move || {
                    if !crate::dpdk::run_current_thread_on(others) {
                        tracing::warn!("the control thread could not leave the main lcore's core");
                    }
                    coordinate(shared, l)
                })
                .expect("spawn the control thread");
        }
        let mut threads = Vec::new();
        for (w, active) in actives.into_iter().enumerate() {
            let worker = Worker::new(
                active,
                handoffs[w].clone(),
                slice,
                enis,
                Policy::new(compiled.clone(), opts.conns_per_core),
            );
            let core = placement
                .workers
                .get(w)
                .map(|&id| core_affinity::CoreId { id });
            let (shared, handoffs) = (&shared, &handoffs);
            let rings = rings.next().expect("one set of rings per worker");
            threads.push(
                std::thread::Builder::new()
                    .name(format!("flowlog-worker-{w}"))
                    .spawn_scoped(s, move || {
                        let _trip = Tripwire {
                            handoffs,
                            stop: &shared.halt,
                        };
                        if let Some(c) = core {
                            if !core_affinity::set_for_current(c) {
                                tracing::warn!("worker {w}: could not pin to core {}", c.id);
                            }
                        }
                        // An lcore id of its own, for the mempool's cache.
                        let _lcore = crate::dpdk::register_thread()
                            .map_err(|e| {
                                tracing::warn!("worker {w}: {e}; mbufs go through the pool's ring")
                            })
                            .ok();
                        let r = work(shared, w, worker, rings);
                        shared.finished.fetch_add(1, Ordering::AcqRel);
                        r
                    })
                    .expect("spawn worker"),
            );
        }
        let runs: Vec<WorkerRun> = threads
            .into_iter()
            .map(|t| t.join().expect("worker thread"))
            .collect();
        (runs, exporter.join().expect("exporter thread"))
    });
    drop(shared);
    crate::dpdk::telemetry::clear();
    drop(ports);
    drop(pool);
    drop(eal);

    let mut sum = RunSummary {
        workers: n,
        rss,
        ..RunSummary::default()
    };
    let mut per_port = vec![(0u64, 0u64); usize::from(nports)];
    let (mut first_rx, mut last_rx): (Option<Instant>, Option<Instant>) = (None, None);
    for r in &runs {
        let w = &r.sum;
        sum.received += w.received;
        sum.forwarded += w.forwarded;
        sum.dropped += w.dropped;
        sum.tx_failed += w.tx_failed;
        sum.accepted += w.accepted;
        sum.rejected += w.rejected;
        sum.malformed += w.malformed;
        sum.unmatched += w.unmatched;
        sum.not_ip += w.not_ip;
        sum.handoff_dropped += w.handoff_dropped;
        sum.handed_off += w.handed_off;
        sum.packet_clock |= w.packet_clock;
        sum.worker.add(&w.worker);
        sum.policy.add(&w.policy);
        for (t, x) in per_port.iter_mut().zip(&r.per_port) {
            t.0 += x.0;
            t.1 += x.1;
        }
        first_rx = match (first_rx, r.first_rx) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        last_rx = last_rx.max(r.last_rx);
    }
    sum.rx_secs = match (first_rx, last_rx) {
        (Some(f), Some(l)) => l.duration_since(f).as_secs_f64(),
        _ => 0.0,
    };
    for (pi, (r, f)) in per_port.iter().enumerate() {
        sum.ports.push((names[pi].clone(), *r, *f));
    }
    sum.flow_logs = delivered.stats;
    sum.errors = delivered.errors;
    sum.sinks = delivered.sinks;
    sum.elapsed = started.elapsed();
    Ok(sum)
}

/// Registers `/flowlogd/stats` and `/flowlogd/flow_logs` with DPDK's
/// telemetry; a refusal is only warned about (the operator socket has the
/// same figures).
fn register_telemetry(l: &Arc<Live>) {
    use crate::dpdk::telemetry::register;
    let a = l.clone();
    let stats = move || {
        let ws = a.workers.lock().clone();
        let d = *a.dispatch.lock();
        let (wm, late) = {
            let e = a.exporter.lock();
            (e.watermark, e.late)
        };
        let sum = |f: fn(&WorkerView) -> u64| ws.iter().map(f).sum::<u64>();
        vec![
            ("workers".to_string(), ws.len() as u64),
            ("received".into(), d.read),
            ("logged".into(), d.logged),
            ("malformed".into(), d.malformed),
            ("unmatched".into(), d.unmatched),
            ("not_ip".into(), d.not_ip),
            ("observations".into(), sum(|w| w.counters.observations)),
            ("rejected".into(), sum(|w| w.counters.rejected)),
            ("evictions".into(), sum(|w| w.counters.evictions)),
            (
                "late_writebacks".into(),
                sum(|w| w.counters.late_writebacks),
            ),
            ("skipped".into(), sum(|w| w.counters.skipped)),
            ("table_flows".into(), sum(|w| w.table_len)),
            ("conns".into(), sum(|w| w.conns)),
            ("conn_table_full".into(), sum(|w| w.policy.conn_table_full)),
            ("exporter_watermark".into(), wm),
            (
                "exporter_lag_s".into(),
                if wm == 0 { 0 } else { d.now.saturating_sub(wm) },
            ),
            ("late".into(), late),
        ]
    };
    let b = l.clone();
    let flow_logs = move || {
        b.exporter
            .lock()
            .flow_logs
            .iter()
            .map(|(id, s)| (id.clone(), s.records))
            .collect()
    };
    for (cmd, help, f) in [
        (
            "/flowlogd/stats",
            "flowlogd: packets, flows and exporter figures. Takes no parameters",
            Arc::new(stats) as crate::dpdk::telemetry::Source,
        ),
        (
            "/flowlogd/flow_logs",
            "flowlogd: records delivered per flow log (ids with - as _). Takes no parameters",
            Arc::new(flow_logs),
        ),
    ] {
        if let Err(e) = register(cmd, help, f) {
            tracing::warn!("telemetry command {cmd} not registered: {e}");
        }
    }
}

/// What a worker publishes for `stats`.
fn publish_worker(l: &Live, w: usize, worker: &Worker<Policy>, rings: &Rings, sum: &RunSummary) {
    let v = WorkerView {
        ring_depth: rings.waiting() as u64,
        ring_capacity: rings.capacity() as u64,
        packets_out: sum.forwarded,
        malformed: sum.malformed,
        unmatched: sum.unmatched,
        not_ip: sum.not_ip,
        ..WorkerView::of(worker)
    };
    if let Some(slot) = l.workers.lock().get_mut(w) {
        *slot = v;
    }
}

/// The control thread of a run with the operator socket: puts each change
/// in force on every worker (each takes it between two bursts), says where
/// it took effect, and publishes the host's figures.
fn coordinate(sh: &Shared<'_, '_>, l: &Live) {
    loop {
        if sh.finished.load(Ordering::Acquire) == sh.n || sh.halt.load(Ordering::Acquire) {
            l.close();
            return;
        }
        let now_ns = sh
            .pub_ns
            .iter()
            .map(|p| p.load(Ordering::Acquire))
            .max()
            .unwrap_or(0)
            .max(if sh.mode.load(Ordering::Acquire) == CLOCK_PACKETS {
                0
            } else {
                wall_ns()
            });
        let received = sh.received_so_far();
        if l.has_pending() {
            if let Some((g, gen)) = l.take_pending(now_ns / 1_000_000_000) {
                sh.gen_now.store(g, Ordering::Release);
                // Every worker takes it at its next turn; one that has
                // stopped never will.
                let until = Instant::now() + Duration::from_secs(5);
                while Instant::now() < until
                    && !sh.halt.load(Ordering::Acquire)
                    && sh.gen_seen.iter().any(|s| s.load(Ordering::Acquire) != g)
                {
                    std::thread::sleep(Duration::from_micros(100));
                }
                l.applied(g, gen.from, sh.received_so_far());
            }
        }
        let ws = l.workers.lock().clone();
        *l.dispatch.lock() = crate::live::DispatchView {
            read: received,
            logged: ws.iter().map(|v| v.counters.packets).sum(),
            malformed: ws.iter().map(|v| v.malformed).sum(),
            unmatched: ws.iter().map(|v| v.unmatched).sum(),
            not_ip: ws.iter().map(|v| v.not_ip).sum(),
            now: now_ns / 1_000_000_000,
        };
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// One worker: polls its RX queues and its incoming rings until stopped,
/// then finishes its worker (the exporter gets its last table).
/// Where the threads of a run go.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Placement {
    /// Worker `w`'s CPU: the CPUs of EAL's lcores, round robin (those the
    /// process may use when EAL enabled none).
    workers: Vec<usize>,
    /// The exporter's and the control thread's CPUs: those the process may
    /// use but no worker does, or all of them when the workers take every
    /// one.
    others: Vec<usize>,
}

impl Placement {
    fn new(allowed: &[usize], lcores: &[usize], n: usize) -> Placement {
        let pool = if lcores.is_empty() { allowed } else { lcores };
        let workers: Vec<usize> = if pool.is_empty() {
            Vec::new()
        } else {
            (0..n).map(|w| pool[w % pool.len()]).collect()
        };
        let free: Vec<usize> = allowed
            .iter()
            .copied()
            .filter(|c| !workers.contains(c))
            .collect();
        let others = if free.is_empty() {
            allowed.to_vec()
        } else {
            free
        };
        Placement { workers, others }
    }
}

fn work(sh: &Shared<'_, '_>, w: usize, mut worker: Worker<Policy>, rings: Rings) -> WorkerRun {
    let nports = sh.ports.len();
    let mut r = WorkerRun {
        sum: RunSummary::default(),
        per_port: vec![(0, 0); nports],
        now_ns: 0,
        slice: None,
        first_rx: None,
        last_rx: None,
    };
    let mut x = Scratch {
        rings,
        attr: sh.attribution.clone(),
        eni_port: sh.eni_port.clone(),
        gen: 0,
        rx: Burst::new(),
        out: (0..nports).map(|_| Burst::new()).collect(),
        seen: [Seen::default(); BURST_SIZE],
        seen_of: [usize::MAX; BURST_SIZE],
        to_eni: [LOOK_UP; BURST_SIZE],
        verdicts: [Action::Accept; BURST_SIZE],
        ns: [0; BURST_SIZE],
        owner: [w; BURST_SIZE],
        meta: PacketMeta::default(),
    };
    let mut started_clock = false;
    // The ring `take_handed` starts from (round robin, so none waits).
    let mut rr = 0;
    let mut halted = false;
    let mut turns: u64 = 0;
    loop {
        if let Some(l) = sh.live {
            // One load per turn: a new configuration is put in force
            // between bursts.
            let g = sh.gen_now.load(Ordering::Acquire);
            if g != x.gen {
                if let Some(gen) = l.generation(g) {
                    let c = gen.snapshot.compiled.clone();
                    worker.reconfigure(g, |p| p.set_compiled(c));
                    x.attr = gen.snapshot.attribution.clone();
                    x.eni_port = gen
                        .snapshot
                        .ports
                        .iter()
                        .map(|p| p.filter(|&p| p < sh.nports).unwrap_or(u16::MAX))
                        .collect();
                }
                x.gen = g;
                sh.gen_seen[w].store(g, Ordering::Release);
            }
            turns += 1;
            if turns & 0x3FF == 0 {
                publish_worker(l, w, &worker, &x.rings, &r.sum);
            }
        }
        if !halted && (sh.opts.stop.load(Ordering::Relaxed) || sh.halt.load(Ordering::Acquire)) {
            halted = true;
            sh.halt.store(true, Ordering::Release);
            // After every handoff push of this worker.
            sh.rx_stopped.fetch_add(1, Ordering::AcqRel);
        }
        // A worker that ended by a panic never counts itself stopped.
        let all_stopped = halted
            && (sh.rx_stopped.load(Ordering::Acquire) == sh.n
                || sh.handoffs[w].failed.load(Ordering::Acquire));
        let mut got = 0;
        if !halted {
            for &(pi, q) in &sh.polls[w] {
                let n = sh.ports[pi].rx_burst(q, &mut x.rx);
                if n == 0 {
                    continue;
                }
                got += n;
                r.sum.received += n as u64;
                sh.received[w].store(r.sum.received, Ordering::Relaxed);
                r.per_port[pi].0 += n as u64;
                // The packets' times, on this worker's monotone clock (the
                // wall clock read once, and only for packets without an RX
                // timestamp).
                let mut wall = None;
                for i in 0..n {
                    let t = match sh.ts.as_ref().and_then(|t| x.rx.rx_timestamp(i, t)) {
                        Some(us) => {
                            r.sum.packet_clock = true;
                            us * 1000
                        }
                        None => *wall.get_or_insert_with(wall_ns),
                    };
                    if !started_clock {
                        started_clock = true;
                        start_clock(sh, &mut r.now_ns, t, r.sum.packet_clock);
                    }
                    r.now_ns = r.now_ns.max(t);
                    x.ns[i] = r.now_ns;
                }
                if sh.by_hash {
                    hand_off(sh, w, &mut x, &mut r.sum);
                    // The burst's room left by the packets handed off is
                    // filled with packets handed to this worker: one full
                    // burst through the worker, not two partial ones.
                    take_handed(sh, &mut x, &mut r.now_ns, &mut started_clock, &mut rr);
                }
                handle(sh, w, &mut worker, &mut x, &mut r);
                // Everything handed off up to now_ns is pushed.
                sh.pub_ns[w].store(r.now_ns, Ordering::Release);
            }
            if got > 0 {
                let now = Instant::now();
                r.first_rx.get_or_insert(now);
                r.last_rx = Some(now);
                let since = now.saturating_duration_since(sh.started).as_nanos() as u64;
                sh.last_rx[w].store(since, Ordering::Relaxed);
            }
        }
        // Packets other workers handed to this one, gathered across the
        // rings into full bursts (at most N bursts a turn, so that RX is
        // polled again soon).
        let mut handed = 0;
        if sh.by_hash {
            for _ in 0..sh.n {
                let k = take_handed(sh, &mut x, &mut r.now_ns, &mut started_clock, &mut rr);
                if k == 0 {
                    break;
                }
                handed += k;
                handle(sh, w, &mut worker, &mut x, &mut r);
            }
        }
        if all_stopped && handed == 0 {
            break;
        }
        if got == 0 && handed == 0 {
            // Idle: move the clock on (see the module documentation). The
            // published times are read before the rings are checked empty.
            let mode = sh.mode.load(Ordering::Acquire);
            if mode != CLOCK_UNKNOWN {
                let mut t = sh
                    .pub_ns
                    .iter()
                    .map(|p| p.load(Ordering::Acquire))
                    .max()
                    .unwrap_or(0);
                if mode == CLOCK_WALL {
                    t = t.max(wall_ns());
                }
                let empty = x.rings.inc.iter().flatten().all(|c| c.is_empty());
                if empty && t > r.now_ns {
                    r.now_ns = t;
                    sh.pace(w, &mut r.slice, t / 1_000_000_000);
                    worker.advance(t / 1_000_000_000);
                }
            }
            if !halted {
                if let Some(d) = sh.opts.stop_when_idle {
                    let last = sh
                        .last_rx
                        .iter()
                        .map(|l| l.load(Ordering::Relaxed))
                        .max()
                        .unwrap_or(0);
                    if sh.since_start_ns().saturating_sub(last) >= d.as_nanos() as u64 {
                        sh.halt.store(true, Ordering::Release);
                    }
                }
            }
            std::hint::spin_loop();
        }
    }
    sh.clock
        .last
        .fetch_max(r.now_ns / 1_000_000_000, Ordering::AcqRel);
    if let Some(l) = sh.live {
        publish_worker(l, w, &worker, &x.rings, &r.sum);
    }
    let (wc, p) = worker.finish();
    r.sum.worker = wc;
    r.sum.policy = p.counters;
    r
}

/// The first packet this worker sees: the first worker to see one sets the
/// exporter's `first` (and the clock's kind); the others start their clock
/// no earlier.
fn start_clock(sh: &Shared<'_, '_>, now_ns: &mut u64, t: u64, packet_clock: bool) {
    let first = match sh
        .first_ns
        .compare_exchange(u64::MAX, t, Ordering::AcqRel, Ordering::Acquire)
    {
        Ok(_) => t,
        Err(f) => f,
    };
    // Every worker stores the same value: it is set before any of them
    // retires a table.
    sh.clock
        .first
        .fetch_min(first / 1_000_000_000, Ordering::AcqRel);
    let mode = if packet_clock {
        CLOCK_PACKETS
    } else {
        CLOCK_WALL
    };
    let _ = sh
        .mode
        .compare_exchange(CLOCK_UNKNOWN, mode, Ordering::AcqRel, Ordering::Acquire);
    *now_ns = (*now_ns).max(first);
}

/// Takes the packets of `x.rx` another worker owns out of it, onto that
/// worker's ring; the rest close up at the front, with their times in
/// `x.ns`.
fn hand_off(sh: &Shared<'_, '_>, w: usize, x: &mut Scratch, sum: &mut RunSummary) {
    let n = x.rx.len();
    for i in 0..n {
        x.rx.prefetch(i + PARSE_AHEAD);
        x.owner[i] = w;
        if let Ok(()) = wire::parse(
            LinkType::Ethernet,
            x.rx.data(i),
            x.rx.pkt_len(i),
            &mut x.meta,
        ) {
            let (o, e) = x.attr.attribute(true, &x.meta);
            if o != NO_ENI || e != NO_ENI {
                x.owner[i] = (symmetric_hash(&x.meta) % sh.n as u64) as usize;
            }
        }
    }
    let (owner, ns) = (&x.owner, &mut x.ns);
    let cur = Cell::new((0usize, 0u64));
    let mut kept = 0;
    let staged = &mut x.rings.staged;
    x.rx.extract(
        |i| {
            if owner[i] == w {
                // kept <= i: closing up in place reads each time first.
                ns[kept] = ns[i];
                kept += 1;
                false
            } else {
                cur.set((owner[i], ns[i]));
                true
            }
        },
        |p| {
            let (to, t) = cur.get();
            // At most BURST_SIZE per burst: within the reserved capacity.
            staged[to].push((p, t));
        },
    );
    // One chunk per ring; what a full ring has no room for is freed
    // (dropped).
    let (mut handed, mut dropped) = (0u64, 0u64);
    for (st, out) in x.rings.staged.iter_mut().zip(&mut x.rings.out) {
        if st.is_empty() {
            continue;
        }
        if let Some(p) = out {
            let k = st.len().min(p.slots());
            if let Ok(chunk) = p.write_chunk_uninit(k) {
                handed += chunk.fill_from_iter(st.drain(..k)) as u64;
            }
        }
        dropped += st.len() as u64;
        st.clear();
    }
    sum.handed_off += handed;
    sum.handoff_dropped += dropped;
}

/// Fills `x.rx` up to [`BURST_SIZE`] with packets other workers handed to
/// this worker (their times, on its monotone clock, in `x.ns` after
/// those of the packets already there), taking from the rings in turn from
/// `*rr`. Returns how many it took.
fn take_handed(
    sh: &Shared<'_, '_>,
    x: &mut Scratch,
    now_ns: &mut u64,
    started_clock: &mut bool,
    rr: &mut usize,
) -> usize {
    let mut took = 0;
    for j in 0..sh.n {
        let from = (*rr + j) % sh.n;
        let Some(ring) = x.rings.inc[from].as_mut() else {
            continue;
        };
        let k = (BURST_SIZE - x.rx.len()).min(ring.slots());
        let Ok(chunk) = ring.read_chunk(k) else {
            continue;
        };
        for (p, ns) in chunk {
            if !*started_clock {
                *started_clock = true;
                start_clock(sh, now_ns, ns, false);
            }
            *now_ns = (*now_ns).max(ns);
            x.ns[x.rx.len()] = *now_ns;
            if x.rx.push(p).is_err() {
                unreachable!("below BURST_SIZE packets");
            }
            // The sender's core wrote this mbuf last: its header is fetched
            // now, so that the data prefetch in `handle` does not wait on it.
            x.rx.prefetch_header(x.rx.len() - 1);
            took += 1;
        }
        if x.rx.len() == BURST_SIZE {
            break;
        }
    }
    *rr = (*rr + 1) % sh.n;
    took
}

/// Parses, attributes, records and forwards the packets of `x.rx` (their
/// times in `x.ns`); leaves `x.rx` empty.
fn handle(
    sh: &Shared<'_, '_>,
    w: usize,
    worker: &mut Worker<Policy>,
    x: &mut Scratch,
    r: &mut WorkerRun,
) {
    let sum = &mut r.sum;
    let n = x.rx.len();
    let mut k = 0;
    for i in 0..n {
        // The driver wrote the burst's packets before the first is parsed:
        // the early ones have left L1 by now.
        x.rx.prefetch(i + PARSE_AHEAD);
        let ns = x.ns[i];
        x.seen_of[i] = usize::MAX;
        x.to_eni[i] = LOOK_UP;
        // Parsed in place, into the next free `Seen` (no copy of the
        // metadata): it becomes the burst's k-th observation if attributed.
        let s = &mut x.seen[k];
        match wire::parse(
            LinkType::Ethernet,
            x.rx.data(i),
            x.rx.pkt_len(i),
            &mut s.meta,
        ) {
            Err(ParseError::NotIp) => sum.not_ip += 1,
            Err(ParseError::Malformed(_)) => sum.malformed += 1,
            Ok(()) => {
                let (out_eni, in_eni) = x.attr.attribute(true, &s.meta);
                // The ENI of the destination MAC, as forwarding needs it.
                x.to_eni[i] = in_eni;
                if out_eni == NO_ENI && in_eni == NO_ENI {
                    sum.unmatched += 1;
                } else {
                    s.secs = ns / 1_000_000_000;
                    s.ns = ns;
                    s.out_eni = out_eni;
                    s.in_eni = in_eni;
                    s.host_verdict = None;
                    x.seen_of[i] = k;
                    k += 1;
                }
            }
        }
    }
    // The worker moves its clock packet by packet; it is given the packets
    // one slice at a time, paced (see `Shared::pace`).
    let mut from = 0;
    let slice = sh.slice.max(1);
    while from < k {
        let first = x.seen[from].secs - x.seen[from].secs % slice;
        // In the slice [first, first + slice): compares, not a division per
        // packet.
        let to = from
            + x.seen[from..k]
                .iter()
                .position(|s| s.secs < first || s.secs - first >= slice)
                .unwrap_or(k - from);
        sh.pace(w, &mut r.slice, x.seen[to - 1].secs);
        // On the packets' clock the exporter's write-back is waited for,
        // as a free table is (see `Worker::wait_for_writeback`).
        worker.wait_for_writeback(sh.mode.load(Ordering::Acquire) == CLOCK_PACKETS);
        worker.process(&x.seen[from..to]);
        x.verdicts[from..to].copy_from_slice(worker.verdicts());
        from = to;
    }
    let verdicts = &x.verdicts;
    // Forward by destination MAC, in order; drop what the policy rejected.
    let (mut acc, mut rej, mut fwd, mut failed) = (0u64, 0u64, 0u64, 0u64);
    let (seen_of, to_eni) = (&x.seen_of, &x.to_eni);
    let (attr, eni_port) = (&x.attr, &x.eni_port);
    let per_port = &mut r.per_port;
    x.rx.route(
        &mut x.out,
        |i, d| {
            if seen_of[i] != usize::MAX {
                if verdicts[seen_of[i]] == Action::Reject {
                    rej += 1;
                    return None;
                }
                acc += 1;
            }
            // A parsed packet's destination ENI is known from its
            // attribution (the same lookup); others are looked up here.
            let e = match to_eni[i] {
                LOOK_UP if d.len() >= 6 && d[0] & 1 == 0 => {
                    let mac: [u8; 6] = d[..6].try_into().expect("6 bytes");
                    attr.eni_of_mac(&mac).unwrap_or(NO_ENI)
                }
                LOOK_UP => NO_ENI,
                e => e,
            };
            let dst = eni_port.get(usize::from(e)).copied().unwrap_or(u16::MAX);
            Some(usize::from(if dst == u16::MAX { sh.uplink } else { dst }))
        },
        |d, ob| {
            let sent = sh.send(w, d, ob);
            fwd += sent as u64;
            per_port[d].1 += sent as u64;
            failed += ob.len() as u64;
            ob.clear();
        },
    );
    sum.accepted += acc;
    sum.rejected += rej;
    sum.dropped += rej;
    sum.forwarded += fwd;
    sum.tx_failed += failed;
    for (d, ob) in x.out.iter_mut().enumerate() {
        if !ob.is_empty() {
            let sent = sh.send(w, d, ob);
            sum.forwarded += sent as u64;
            per_port[d].1 += sent as u64;
            sum.tx_failed += ob.len() as u64;
            ob.clear();
        }
    }
}

#[cfg(test)]
mod placement_tests {
    use super::Placement;

    #[test]
    fn workers_on_the_lcores_the_others_elsewhere() {
        // -l 0, one worker, 2 CPUs: the exporter gets the other CPU.
        assert_eq!(
            Placement::new(&[0, 1], &[0], 1),
            Placement {
                workers: vec![0],
                others: vec![1]
            }
        );
        // -l 2,3, three workers: round robin over the lcores' CPUs.
        assert_eq!(
            Placement::new(&[0, 1, 2, 3], &[2, 3], 3),
            Placement {
                workers: vec![2, 3, 2],
                others: vec![0, 1]
            }
        );
        // Every CPU has a worker: the exporter shares all of them.
        assert_eq!(
            Placement::new(&[0, 1], &[0, 1], 2),
            Placement {
                workers: vec![0, 1],
                others: vec![0, 1]
            }
        );
        // No lcore CPU known: the allowed CPUs are used.
        assert_eq!(
            Placement::new(&[4, 5], &[], 1),
            Placement {
                workers: vec![4],
                others: vec![5]
            }
        );
    }
}
