//! `flowlogd run`: a small DPDK vSwitch host. Ports come from EAL (virtual
//! devices such as `net_pcap`, `net_ring`, `net_null`, `net_tap`, or NICs);
//! an ENI whose configuration names a `port` is attached there, and one
//! uplink port carries everything else. Per burst the worker parses,
//! attributes, takes the verdict and records, then forwards by destination
//! MAC (an ENI's port, or the uplink) and drops what the policy rejected.
//!
//! This first host runs one worker, on the main lcore, polling queue 0 of
//! every port; the exporter runs on its own thread. The packets' clock is
//! the RX timestamp where the driver gives one (`net_pcap` gives each packet
//! its capture time, so a capture fed through `net_pcap` yields the same log
//! store as `flowlogd replay`), else the wall clock.
//!
//! SIGINT and SIGTERM stop it in order: the open window is flushed, so no
//! record is lost; so does `--stop-when-idle`.

use crate::attrib::Attribution;
use crate::dpdk::{
    Burst, DpdkError, Eal, Mempool, Port, PortConfig, PortId, QueueId, RxTimestamp, BURST_SIZE,
};
use crate::export::{run_store_exporter, Clock, Delivered};
use crate::flow::FlowTable;
use crate::policy::{CompiledPolicy, Policy, PolicyCounters};
use crate::replay::TABLES_PER_WORKER;
use crate::wire::{self, LinkType, PacketMeta, ParseError};
use crate::worker::{Handoff, Seen, Worker, WorkerCounters, NO_ENI};
use exporter::config::Config;
use exporter::merge::{FlowLogStats, Plan};
use exporter::record::Action;
use exporter::store::{Compress, LocalStore, StoreFormat};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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
    /// Flow-table capacity.
    pub flows_per_core: usize,
    /// Connection-table capacity.
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
    /// Per port: (name, received, forwarded out of it).
    pub ports: Vec<(String, u64, u64)>,
    /// Per active flow log: its id and what was delivered.
    pub flow_logs: Vec<(String, FlowLogStats)>,
    /// The worker's counters.
    pub worker: WorkerCounters,
    /// The policy's counters.
    pub policy: PolicyCounters,
    /// Delivery errors.
    pub errors: Vec<String>,
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

/// Runs the host until stopped.
pub fn run(opts: &RunOptions) -> Result<RunSummary, RunError> {
    let cfg = &opts.config;
    let mut args = vec!["flowlogd".to_string()];
    args.extend(opts.eal_args.iter().cloned());
    let eal = Eal::init(&args)?;
    let nports = eal.port_count();
    if nports == 0 {
        return Err(RunError::Setup(
            "EAL found no port; give devices, e.g. -- --no-huge --no-pci --vdev=net_pcap0,rx_pcap=IN.pcap,tx_pcap=OUT.pcap"
                .into(),
        ));
    }
    // ENI index -> port.
    let mut eni_port = vec![u16::MAX; cfg.enis.len()];
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
    let pool = Mempool::new("flowlogd_pool", opts.mbufs.max(4095), 256, -1)?;
    let pcfg = PortConfig {
        rx_timestamp: true,
        ..PortConfig::default()
    };
    let mut ports = Vec::new();
    for p in 0..nports {
        ports.push(Port::start(PortId(p), &pcfg, &pool)?);
    }
    let names: Vec<String> = (0..nports)
        .map(|p| Port::name(PortId(p)).unwrap_or_else(|_| format!("port{p}")))
        .collect();
    let ts = RxTimestamp::register().ok();

    let plan = Plan::from_config(cfg);
    let slice = plan.slice_secs();
    let attribution = Attribution::from_config(cfg);
    let compiled = Arc::new(CompiledPolicy::from_config(cfg));
    let store = LocalStore::new(opts.out.clone(), opts.format, opts.compress, &cfg.host);
    let enis = cfg.enis.len();
    let pool_tables = (0..TABLES_PER_WORKER)
        .map(|_| Box::new(FlowTable::new(opts.flows_per_core, enis)))
        .collect();
    let (handoff, active) = Handoff::new(pool_tables, 1 << 16);
    let handoffs = [handoff.clone()];
    let clock = Clock::default();
    let started = Instant::now();
    let mut sum = RunSummary::default();

    let delivered: Delivered = std::thread::scope(|s| {
        let exporter = {
            let (handoffs, clock, store) = (&handoffs, &clock, &store);
            std::thread::Builder::new()
                .name("flowlog-exporter".into())
                .spawn_scoped(s, move || run_store_exporter(plan, handoffs, clock, store))
                .expect("spawn exporter")
        };
        let mut worker = Worker::new(
            active,
            handoff.clone(),
            slice,
            enis,
            Policy::new(compiled, opts.conns_per_core),
        );
        let mut rx = Burst::new();
        let mut out: Vec<Burst> = (0..nports).map(|_| Burst::new()).collect();
        let mut seen = [Seen::default(); BURST_SIZE];
        let mut seen_of = [usize::MAX; BURST_SIZE];
        let mut meta = PacketMeta::default();
        let mut per_port = vec![(0u64, 0u64); usize::from(nports)];
        let mut now_ns = 0u64;
        let mut started_clock = false;
        let mut last_rx = Instant::now();
        let mut first_rx: Option<Instant> = None;
        let mut packet_clock = false;
        loop {
            if opts.stop.load(Ordering::Relaxed) {
                break;
            }
            let mut got = 0;
            for (pi, port) in ports.iter().enumerate() {
                let n = port.rx_burst(QueueId(0), &mut rx);
                if n == 0 {
                    continue;
                }
                got += n;
                sum.received += n as u64;
                per_port[pi].0 += n as u64;
                let wall = wall_ns();
                let mut k = 0;
                for (i, slot) in seen_of.iter_mut().enumerate().take(n) {
                    let t = match ts.as_ref().and_then(|t| rx.rx_timestamp(i, t)) {
                        Some(us) => {
                            packet_clock = true;
                            us * 1000
                        }
                        None => wall,
                    };
                    now_ns = now_ns.max(t);
                    let secs = now_ns / 1_000_000_000;
                    if !started_clock {
                        clock.first.store(secs, Ordering::Release);
                        started_clock = true;
                    }
                    *slot = usize::MAX;
                    match wire::parse(LinkType::Ethernet, rx.data(i), rx.pkt_len(i), &mut meta) {
                        Err(ParseError::NotIp) => sum.not_ip += 1,
                        Err(ParseError::Malformed(_)) => sum.malformed += 1,
                        Ok(()) => {
                            let (out_eni, in_eni) = attribution.attribute(true, &meta);
                            if out_eni == NO_ENI && in_eni == NO_ENI {
                                sum.unmatched += 1;
                            } else {
                                seen[k] = Seen {
                                    meta,
                                    secs,
                                    ns: now_ns,
                                    out_eni,
                                    in_eni,
                                    host_verdict: None,
                                };
                                *slot = k;
                                k += 1;
                            }
                        }
                    }
                }
                // (The worker moves its clock packet by packet.)
                worker.process(&seen[..k]);
                let verdicts = worker.verdicts();
                // Forward by destination MAC, in order; drop what the policy
                // rejected.
                let (mut acc, mut rej, mut fwd, mut failed) = (0u64, 0u64, 0u64, 0u64);
                rx.route(
                    &mut out,
                    |i, d| {
                        if seen_of[i] != usize::MAX {
                            if verdicts[seen_of[i]] == Action::Reject {
                                rej += 1;
                                return None;
                            }
                            acc += 1;
                        }
                        let dst = if d.len() >= 6 && d[0] & 1 == 0 {
                            let mac: [u8; 6] = d[..6].try_into().expect("6 bytes");
                            attribution
                                .eni_of_mac(&mac)
                                .map_or(u16::MAX, |e| eni_port[usize::from(e)])
                        } else {
                            u16::MAX
                        };
                        Some(usize::from(if dst == u16::MAX { uplink } else { dst }))
                    },
                    |d, ob| {
                        let sent = ports[d].tx_burst(QueueId(0), ob);
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
                for (d, ob) in out.iter_mut().enumerate() {
                    if !ob.is_empty() {
                        let sent = ports[d].tx_burst(QueueId(0), ob);
                        sum.forwarded += sent as u64;
                        per_port[d].1 += sent as u64;
                        sum.tx_failed += ob.len() as u64;
                        ob.clear();
                    }
                }
            }
            if got > 0 {
                last_rx = Instant::now();
                first_rx.get_or_insert(last_rx);
            } else {
                if !packet_clock {
                    // Idle workers rotate too: the wall clock moves on.
                    now_ns = now_ns.max(wall_ns());
                    if started_clock {
                        worker.advance(now_ns / 1_000_000_000);
                    }
                }
                if opts.stop_when_idle.is_some_and(|d| last_rx.elapsed() >= d) {
                    break;
                }
                std::hint::spin_loop();
            }
        }
        clock.last.store(now_ns / 1_000_000_000, Ordering::Release);
        let (wc, p) = worker.finish();
        sum.worker = wc;
        sum.policy = p.counters;
        sum.packet_clock = packet_clock;
        sum.rx_secs = first_rx.map_or(0.0, |f| last_rx.duration_since(f).as_secs_f64());
        for (pi, (r, f)) in per_port.iter().enumerate() {
            sum.ports.push((names[pi].clone(), *r, *f));
        }
        exporter.join().expect("exporter thread")
    });
    drop(ports);
    drop(pool);
    drop(eal);
    sum.flow_logs = cfg
        .flow_logs
        .iter()
        .filter(|f| f.is_active())
        .map(|f| f.flow_log_id.clone())
        .zip(delivered.stats)
        .collect();
    sum.errors = delivered.errors;
    sum.elapsed = started.elapsed();
    Ok(sum)
}
