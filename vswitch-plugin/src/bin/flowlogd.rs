//! `flowlogd`: the flow-log host daemon.

use anyhow::Context as _;
use std::io::Write as _;

/// `println!` that ends the program quietly when stdout is gone (a closed
/// pipe, as with `flowlogd show | head`), instead of panicking.
macro_rules! outln {
    ($($t:tt)*) => {
        if writeln!(std::io::stdout(), $($t)*).is_err() {
            std::process::exit(0);
        }
    };
}
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "flowlogd",
    version,
    about = "Flow logs for a VPC host vSwitch (DPDK)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Replay a capture through the whole pipeline into the local log store.
    Replay(ReplayArgs),
    /// Run the DPDK vSwitch host: ports from EAL, ENIs on their `port`, the
    /// rest through an uplink; forward, drop what the policy rejects, log.
    Run(RunArgs),
    /// Write a deterministic sample capture (the project's traffic generator).
    Gen(GenArgs),
    /// Show what is in a local log store: records per flow log, top talkers.
    Show {
        /// Root of the local log store.
        #[arg(long)]
        out: PathBuf,
        /// How many top talkers (by bytes).
        #[arg(long, default_value_t = 5)]
        top: usize,
    },
    /// Benchmarks that print numbers (one JSON line per figure with --json).
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Forward a capture between two DPDK virtual devices (net_pcap) and
    /// print the port counters: a check that DPDK runs on this host.
    Smoke {
        /// Capture to read through the first port.
        #[arg(long)]
        pcap: std::path::PathBuf,
        /// Capture the second port writes.
        #[arg(long)]
        out: std::path::PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Host configuration (CONFIG.md).
    #[arg(long)]
    config: PathBuf,
    /// Root of the local log store (default: the configuration's
    /// `log_store_root`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The uplink port (default: the first port no ENI is attached to).
    #[arg(long)]
    uplink: Option<u16>,
    /// Stop, in order, once every port has been idle this many seconds.
    #[arg(long)]
    stop_when_idle: Option<f64>,
    /// Worker threads (1 to 64), each pinned to a core (worker i to core
    /// i % cores) with its own RX queues; both directions of a connection
    /// meet on one worker (symmetric RSS where every port has it, else a
    /// handoff between workers).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Flow-table capacity per worker.
    #[arg(long, default_value_t = 1 << 18)]
    flows_per_core: usize,
    /// Connection-table capacity per worker.
    #[arg(long, default_value_t = 1 << 18)]
    conns_per_core: usize,
    /// File format: `json`, `text` or `parquet` (default: the configuration's).
    #[arg(long, value_parser = ["json", "jsonl", "text", "parquet"])]
    format: Option<String>,
    /// Compression: `zstd` or `none` (default: the configuration's).
    #[arg(long, value_parser = ["zstd", "none"])]
    compress: Option<String>,
    /// Mbufs in the packet pool (`net_pcap,infinite_rx=1` needs one per
    /// packet of its capture).
    #[arg(long, default_value_t = 16383)]
    mbufs: u32,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    /// EAL arguments, after `--` (e.g. `--no-huge --no-pci --vdev=net_pcap0,rx_pcap=IN,tx_pcap=OUT`).
    /// The operator socket (docs/control-protocol.md); changes are saved to
    /// --config.
    #[arg(long, value_name = "PATH", default_value = flowlog::control::server::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Run without the operator socket.
    #[arg(long, conflicts_with = "socket_group")]
    no_socket: bool,
    /// A group whose members may use the socket besides root.
    #[arg(long, value_name = "GROUP")]
    socket_group: Option<String>,
    #[arg(last = true)]
    eal: Vec<String>,
}

/// The configuration, the log store root, format and compression, as
/// `replay` and `run` take them (bad input is a [`Usage`] error).
fn load_for_store(
    path: &std::path::Path,
    out: Option<&PathBuf>,
    format: Option<&str>,
    compress: Option<&str>,
) -> anyhow::Result<(
    exporter::config::Config,
    PathBuf,
    exporter::store::StoreFormat,
    exporter::store::Compress,
)> {
    let config = exporter::config::load(path).map_err(|e| Usage(e.to_string()))?;
    let root = store_root(out, &config, path)?;
    let (f, c) = store_format(format, compress, &config, path)?;
    Ok((config, root, f, c))
}

/// The per-flow-log part of a summary, as JSON.
fn flow_logs_json(fls: &[(String, exporter::merge::FlowLogStats)]) -> Vec<serde_json::Value> {
    fls.iter()
        .map(|(id, st)| {
            serde_json::json!({
                "flow-log-id": id, "records": st.records, "ok": st.ok, "nodata": st.nodata,
                "skipdata": st.skipdata, "windows": st.windows, "error": st.error,
            })
        })
        .collect()
}

/// The per-flow-log part of a summary, as text.
fn print_flow_logs(fls: &[(String, exporter::merge::FlowLogStats)]) {
    for (id, st) in fls {
        outln!(
            "  flow log {id}: {} records ({} OK, {} NODATA, {} SKIPDATA) in {} windows",
            st.records,
            st.ok,
            st.nodata,
            st.skipdata,
            st.windows
        );
    }
}

/// The delivery status of each flow log at each sink besides the local log
/// store, as text (after the summary).
fn print_sinks(sinks: &[exporter::sink::DeliveryStatus]) {
    for st in sinks {
        let last = st
            .last_window
            .map_or_else(|| "none".to_owned(), |w| w.to_string());
        outln!(
            "  flow log {} -> sink {}: {} ({} records in {} windows, last window {last}, {} lost){}",
            st.flow_log_id,
            st.sink_id,
            st.status,
            st.records,
            st.windows,
            st.lost_records,
            st.reason
                .as_deref()
                .map_or_else(String::new, |r| format!(": {r}"))
        );
    }
}

/// Fails when a sink lost records (never silently); warns when a sink is
/// failing but holds its records (a spool keeps them for the next start).
fn check_sinks(sinks: &[exporter::sink::DeliveryStatus]) -> anyhow::Result<()> {
    let mut lost = 0;
    for st in sinks.iter().filter(|s| s.status != "SUCCESS") {
        let why = st.reason.as_deref().unwrap_or("");
        if st.lost_records > 0 {
            lost += st.lost_records;
            eprintln!(
                "flowlogd: error: flow log {} lost {} records at sink {}: {why}",
                st.flow_log_id, st.lost_records, st.sink_id
            );
        } else {
            eprintln!(
                "flowlogd: warning: flow log {} at sink {}: {why}",
                st.flow_log_id, st.sink_id
            );
        }
    }
    if lost > 0 {
        anyhow::bail!("{lost} record(s) could not be delivered to their sinks");
    }
    Ok(())
}

/// Format and compression from the flags, else from the configuration.
fn store_format(
    format: Option<&str>,
    compress: Option<&str>,
    config: &exporter::config::Config,
    path: &std::path::Path,
) -> anyhow::Result<(exporter::store::StoreFormat, exporter::store::Compress)> {
    use exporter::store::{Compress, StoreFormat};
    let f = match format {
        Some("json" | "jsonl") => StoreFormat::Jsonl,
        Some("text") => StoreFormat::Text,
        Some("parquet") => StoreFormat::Parquet,
        Some(other) => {
            return Err(Usage(format!(
                "--format {other:?}: the formats are json (or jsonl), text and parquet"
            ))
            .into())
        }
        None => StoreFormat::try_from(config.log_store_format)
            .map_err(|e| Usage(format!("{}: {e}", path.display())))?,
    };
    let c = match compress {
        Some("zstd") => Compress::Zstd,
        Some("none") => Compress::None,
        Some(other) => {
            return Err(Usage(format!(
                "--compress {other:?}: the choices are zstd and none"
            ))
            .into())
        }
        None => Compress::from(config.log_store_compress),
    };
    Ok((f, c))
}

/// The log store root: `--out`, else the configuration's `log_store_root`.
fn store_root(
    out: Option<&PathBuf>,
    config: &exporter::config::Config,
    path: &std::path::Path,
) -> anyhow::Result<PathBuf> {
    Ok(out
        .cloned()
        .or_else(|| config.log_store_root.clone())
        .ok_or_else(|| {
            Usage(format!(
            "{}: no log store root; give --out DIR or set \"log_store_root\" in the configuration",
            path.display()
        ))
        })?)
}

#[cfg(feature = "dpdk")]
fn run(a: RunArgs) -> anyhow::Result<()> {
    use flowlog::host::{run, RunError, RunOptions};
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let (config, out, format, compress) = load_for_store(
        &a.config,
        a.out.as_ref(),
        a.format.as_deref(),
        a.compress.as_deref(),
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing the signal handlers")?;
    }
    let opts = RunOptions {
        config,
        out: out.clone(),
        eal_args: a.eal.clone(),
        uplink: a.uplink,
        stop_when_idle: a.stop_when_idle.map(std::time::Duration::from_secs_f64),
        workers: a.workers,
        flows_per_core: a.flows_per_core,
        conns_per_core: a.conns_per_core,
        mbufs: a.mbufs,
        format,
        compress,
        stop,
        live: None,
    };
    let mut opts = opts;
    let server = if a.no_socket {
        None
    } else {
        let live = flowlog::live::Live::new(a.workers.max(1));
        opts.live = Some(live.clone());
        let engine =
            flowlog::engine::Engine::new(opts.config.clone(), Some(a.config.clone()), live);
        let so = flowlog::control::server::ServerOptions {
            path: a.socket.clone(),
            group: a.socket_group.clone(),
            ..Default::default()
        };
        Some(
            flowlog::control::server::serve(so, Arc::new(engine)).map_err(|e| {
                Usage(format!(
                    "--socket {}: {e} (give another --socket PATH, or --no-socket)",
                    a.socket.display()
                ))
            })?,
        )
    };
    let result = run(&opts);
    if let Some(server) = server {
        server.stop();
    }
    let s = match result {
        Ok(s) => s,
        Err(e @ RunError::Setup(_)) => return Err(Usage(e.to_string()).into()),
        Err(e) => return Err(e.into()),
    };
    if a.json {
        let fls = flow_logs_json(&s.flow_logs);
        let ports: Vec<_> = s
            .ports
            .iter()
            .map(|(n, r, f)| serde_json::json!({"name": n, "received": r, "forwarded": f}))
            .collect();
        outln!(
            "{}",
            serde_json::json!({
                "received": s.received, "forwarded": s.forwarded, "dropped": s.dropped,
                "tx_failed": s.tx_failed, "accepted": s.accepted, "rejected": s.rejected,
                "malformed": s.malformed, "unmatched": s.unmatched, "not_ip": s.not_ip,
                "packet_clock": s.packet_clock, "ports": ports, "flow_logs": fls,
                "conn_table_full": s.policy.conn_table_full, "errors": s.errors, "sinks": s.sinks,
                "skipped": s.worker.skipped, "no_free_table": s.worker.no_free_table,
                "evictions": s.worker.evictions, "late_writebacks": s.worker.late_writebacks,
                "workers": s.workers, "rss": s.rss, "handed_off": s.handed_off,
                "handoff_dropped": s.handoff_dropped,
                "elapsed_s": s.elapsed.as_secs_f64(), "rx_s": s.rx_secs, "mpps": s.mpps(),
            })
        );
    } else {
        outln!(
            "flowlogd run: received {} packets ({:.2} Mpps while they flowed), forwarded {}, dropped {} (rejected by policy), TX failures {}; {:.3} s",
            s.received,
            s.mpps(),
            s.forwarded,
            s.dropped,
            s.tx_failed,
            s.elapsed.as_secs_f64()
        );
        outln!(
            "  logged: {} accepted + {} rejected; malformed {}, unmatched {}, not IP {}; clock: {}",
            s.accepted,
            s.rejected,
            s.malformed,
            s.unmatched,
            s.not_ip,
            if s.packet_clock {
                "RX timestamps"
            } else {
                "wall clock"
            }
        );
        if s.workers > 1 {
            if s.rss {
                outln!("  workers: {} (symmetric RSS)", s.workers);
            } else {
                outln!(
                    "  workers: {} (handoff: {} packets handed off, {} dropped on a full ring)",
                    s.workers,
                    s.handed_off,
                    s.handoff_dropped
                );
            }
        }
        for (n, r, f) in &s.ports {
            outln!("  port {n}: received {r}, sent {f}");
        }
        print_flow_logs(&s.flow_logs);
        print_sinks(&s.sinks);
        outln!("  log store: {}", out.display());
    }
    check_sinks(&s.sinks)?;
    if !s.errors.is_empty() {
        for e in &s.errors {
            eprintln!("flowlogd: error: {e}");
        }
        anyhow::bail!(
            "{} window(s) could not be written to the log store",
            s.errors.len()
        );
    }
    Ok(())
}

#[cfg(not(feature = "dpdk"))]
fn run(_: RunArgs) -> anyhow::Result<()> {
    anyhow::bail!("this flowlogd was built without the `dpdk` feature")
}

#[derive(clap::Args, Debug)]
struct GenArgs {
    /// Capture to write.
    #[arg(long)]
    out: PathBuf,
    /// Host configuration whose ENIs (MAC, first IPv4 and IPv6 address) the
    /// traffic uses (default: the ENIs of config/example.json).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Frames to write.
    #[arg(long, default_value_t = 1_000_000)]
    packets: u64,
    /// PRNG seed: the same seed writes the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Time of the first frame, Unix seconds.
    #[arg(long, default_value_t = 1_704_067_200)]
    start: u64,
    /// Seconds the frames are spread over.
    #[arg(long, default_value_t = 300)]
    duration: u64,
    /// Nanosecond timestamps.
    #[arg(long)]
    nanos: bool,
}

fn gen(a: GenArgs) -> anyhow::Result<()> {
    use flowlog::gen::{example_enis, generate, GenEni, GenSpec};
    use std::net::IpAddr;
    let enis = match &a.config {
        None => example_enis(),
        Some(p) => {
            let c = exporter::config::load(p).map_err(|e| Usage(e.to_string()))?;
            c.enis
                .iter()
                .map(|e| GenEni {
                    mac: e.mac.0,
                    ipv4: e
                        .ips
                        .iter()
                        .find_map(|i| match i {
                            IpAddr::V4(v) => Some(*v),
                            IpAddr::V6(_) => None,
                        })
                        .unwrap_or(std::net::Ipv4Addr::new(192, 0, 2, 1)),
                    ipv6: e
                        .ips
                        .iter()
                        .find_map(|i| match i {
                            IpAddr::V6(v) => Some(*v),
                            IpAddr::V4(_) => None,
                        })
                        .unwrap_or(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
                })
                .collect()
        }
    };
    let spec = GenSpec {
        packets: a.packets,
        seed: a.seed,
        start_unix: a.start,
        duration_s: a.duration,
        nanos: a.nanos,
        ..GenSpec::default()
    };
    let file = std::fs::File::create(&a.out)
        .map_err(|e| Usage(format!("{}: cannot create: {e}", a.out.display())))?;
    let t = std::time::Instant::now();
    let st =
        generate(&spec, &enis, file).with_context(|| format!("writing {}", a.out.display()))?;
    let secs = t.elapsed().as_secs_f64();
    outln!(
        "wrote {}: {} packets ({} IPv4, {} IPv6; {} TCP, {} UDP, {} ICMP, {} ICMPv6; {} east-west, {} north-south; \
         {} VLAN-tagged, {} ARP, {} malformed) in {:.2} s ({:.2} M packets/s)",
        a.out.display(),
        st.packets,
        st.ipv4,
        st.ipv6,
        st.tcp,
        st.udp,
        st.icmp,
        st.icmpv6,
        st.east_west,
        st.north_south,
        st.vlan_single + st.vlan_double,
        st.arp,
        st.malformed,
        secs,
        st.packets as f64 / secs.max(1e-9) / 1e6
    );
    Ok(())
}

fn show(out: &std::path::Path, top: usize) -> anyhow::Result<()> {
    use std::collections::BTreeMap;
    if !out.is_dir() {
        return Err(Usage(format!("{}: no such log store folder", out.display())).into());
    }
    let recs = exporter::store::read_dir_records(out)
        .with_context(|| format!("reading {}", out.display()))?;
    let mut per_fl: BTreeMap<&str, [u64; 4]> = BTreeMap::new();
    // flow log -> (source, destination) -> (bytes, packets)
    type Talkers = BTreeMap<(String, String), (u64, u64)>;
    let mut talkers: BTreeMap<&str, Talkers> = BTreeMap::new();
    for r in &recs {
        let e = per_fl.entry(r.flow_log_id.as_str()).or_default();
        e[0] += 1;
        match r.log_status {
            exporter::record::LogStatus::Ok => {
                e[1] += 1;
                if r.action == Some(exporter::record::Action::Reject) {
                    e[3] += 1;
                }
            }
            _ => e[2] += 1,
        }
        // Talkers: what ENIs sent (`out`), so a packet between two ENIs is
        // counted once, per flow log.
        if r.log_status == exporter::record::LogStatus::Ok
            && r.direction == Some(exporter::record::Direction::Out)
        {
            if let (Some(s), Some(d)) = (r.srcaddr, r.dstaddr) {
                let t = talkers
                    .entry(r.flow_log_id.as_str())
                    .or_default()
                    .entry((s.to_string(), d.to_string()))
                    .or_default();
                t.0 += r.bytes;
                t.1 += r.packets;
            }
        }
    }
    outln!("log store {}: {} records", out.display(), recs.len());
    outln!(
        "{:<20} {:>10} {:>10} {:>14} {:>10}",
        "flow log",
        "records",
        "OK",
        "NODATA/SKIP",
        "REJECT"
    );
    for (fl, c) in &per_fl {
        outln!(
            "{fl:<20} {:>10} {:>10} {:>14} {:>10}",
            c[0],
            c[1],
            c[2],
            c[3]
        );
    }
    for (fl, t) in talkers {
        let mut v: Vec<_> = t.into_iter().collect();
        v.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(&b.0)));
        outln!("\n{fl}: top {top} talkers by bytes sent (all windows)");
        outln!(
            "  {:<28} {:<28} {:>14} {:>10}",
            "source",
            "destination",
            "bytes",
            "packets"
        );
        for ((s, d), (b, p)) in v.into_iter().take(top) {
            outln!("  {s:<28} {d:<28} {b:>14} {p:>10}");
        }
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
enum BenchCmd {
    /// Per-core rate with security groups: established traffic and a scan,
    /// beside the no-policy rate of the same run.
    Policy {
        /// Security-group rules per ENI.
        #[arg(long, default_value_t = 100)]
        rules: usize,
        /// Concurrent flows of the established traffic.
        #[arg(long, default_value_t = 100_000)]
        flows: u64,
        /// Packets to measure per run.
        #[arg(long, default_value_t = 10_000_000)]
        packets: u64,
        /// Rounds of the four runs (no policy, established, scan, the scan
        /// with no policy), one after the other; the figures are medians.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// One JSON line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Per-core rate of parse, attribution and flow-table update, beside the
    /// memory limit for the same table size.
    Datapath {
        /// Concurrent flows.
        #[arg(long, default_value_t = 100_000)]
        flows: u64,
        /// Packets to measure (default: 20M, at least 4 per flow).
        #[arg(long)]
        packets: Option<u64>,
        /// One JSON line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// What reading a capture costs before any packet is processed
    /// (mapping, finding every frame, unmapping), beside a `read(2)` copy
    /// of it: the floor under `flowlogd replay` of that file.
    Read {
        /// The capture.
        #[arg(long)]
        pcap: PathBuf,
        /// One JSON line instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// One benchmark's figures as one JSON line: `{"bench": NAME, "figures": ...}`.
fn json_line(bench: &str, figures: &impl serde::Serialize) -> anyhow::Result<()> {
    outln!(
        "{}",
        serde_json::to_string(&serde_json::json!({"bench": bench, "figures": figures}))?
    );
    Ok(())
}

fn bench(cmd: BenchCmd) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Policy {
            rules,
            flows,
            packets,
            rounds,
            json,
        } => {
            let f = flowlog::bench::policy(rules, flows, packets, rounds);
            if json {
                json_line("policy", &f)?;
            } else {
                outln!(
                    "policy: {} rules/ENI, medians of {} rounds: no policy {:.2} Mpps; established {:.2} Mpps ({:.1}%); scan {:.2} Mpps ({:.0}%; the scan's traffic with no policy {:.2} Mpps, {:.0}%), {} rejected",
                    f.rules,
                    f.rounds,
                    f.no_policy_mpps,
                    f.established_mpps,
                    f.established_ratio * 100.0,
                    f.scan_mpps,
                    f.scan_ratio * 100.0,
                    f.no_policy_scan_mpps,
                    f.scan_ratio_same_traffic * 100.0,
                    f.scan_rejected
                );
            }
            Ok(())
        }
        BenchCmd::Datapath {
            flows,
            packets,
            json,
        } => {
            let packets = packets.unwrap_or_else(|| (20_000_000u64).max(flows * 4));
            let f = flowlog::bench::datapath(flows, packets);
            if json {
                json_line("datapath", &f)?;
            } else {
                outln!(
                    "datapath: {} flows: {:.2} Mpps/core ({:.1} ns/packet, of which {:.1} writing frames); \
                     table {} slots x {} B = {:.0} B/flow; memory limit {:.1} M RMW/s ({:.0}% reached); evictions {}",
                    f.flows,
                    f.mpps,
                    f.ns_per_packet,
                    f.ns_per_packet_frame_writing,
                    f.table_slots,
                    f.entry_bytes,
                    f.table_bytes_per_flow,
                    f.memory_limit_mops,
                    f.fraction_of_memory_limit * 100.0,
                    f.evictions
                );
            }
            Ok(())
        }
        BenchCmd::Read { pcap, json } => {
            let f = flowlog::bench::read(&pcap)?;
            if json {
                json_line("read", &f)?;
            } else {
                outln!(
                    "read: {} frames, {} bytes: map {:.0} ms + find every frame {:.0} ms + unmap {:.0} ms = {:.0} ms \
                     ({:.2} Mpps, the reader alone); one byte per 4 KiB page {:.0} ms; read(2) copy {:.0} ms",
                    f.packets,
                    f.bytes,
                    f.map_ms,
                    f.walk_ms,
                    f.unmap_ms,
                    f.reader_total_ms,
                    f.reader_mpps,
                    f.touch_pages_ms,
                    f.copy_ms
                );
            }
            Ok(())
        }
    }
}

#[derive(clap::Args, Debug)]
struct ReplayArgs {
    /// Host configuration (CONFIG.md).
    #[arg(long)]
    config: PathBuf,
    /// Capture to replay: classic pcap (micro- or nanosecond, either byte
    /// order) or pcapng.
    #[arg(long)]
    pcap: PathBuf,
    /// Root of the local log store (default: the configuration's
    /// `log_store_root`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker threads; packets are spread over them by a symmetric hash.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Flow-table capacity per worker (rounded up to a power of two).
    #[arg(long, default_value_t = 1 << 18)]
    flows_per_core: usize,
    /// Connection-table capacity per worker, for the stateful security
    /// groups (rounded up to a power of two).
    #[arg(long, default_value_t = 1 << 18)]
    conns_per_core: usize,
    /// File format: `json` (JSON Lines), `text` or `parquet` (zstd inside,
    /// so `--compress` does not apply) (default: the configuration's
    /// `log_store_format`).
    #[arg(long, value_parser = ["json", "jsonl", "text", "parquet"])]
    format: Option<String>,
    /// Compression: `zstd` or `none` (default: the configuration's
    /// `log_store_compress`).
    #[arg(long, value_parser = ["zstd", "none"])]
    compress: Option<String>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Print the summary as one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Replay at the capture's own speed (`realtime`) or N times faster
    /// (`10x`) instead of as fast as possible: for demos and live changes.
    #[arg(long, value_name = "realtime|Nx")]
    pace: Option<String>,
    /// Open the operator socket at this path while replaying
    /// (docs/control-protocol.md); changes are saved to --config.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// A group whose members may use the socket besides root.
    #[arg(long, value_name = "GROUP", requires = "socket")]
    socket_group: Option<String>,
}

/// `--pace`: `realtime` is 1, `Nx` (or `N`) is N.
fn parse_pace(p: &str) -> Result<f64, Usage> {
    let v = if p == "realtime" {
        1.0
    } else {
        p.strip_suffix('x')
            .unwrap_or(p)
            .parse::<f64>()
            .map_err(|_| {
                Usage(format!(
                    "--pace {p:?}: write realtime, or a factor such as 10x"
                ))
            })?
    };
    if !(v.is_finite() && v > 0.0) {
        return Err(Usage(format!("--pace {p:?}: the factor must be above 0")));
    }
    Ok(v)
}

/// Bad input: exit status 2 with a message that names the file and the fix.
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

fn replay(a: ReplayArgs) -> anyhow::Result<()> {
    use flowlog::replay::{replay, ReplayError, ReplayOptions};
    let (config, out, format, compress) = load_for_store(
        &a.config,
        a.out.as_ref(),
        a.format.as_deref(),
        a.compress.as_deref(),
    )?;
    let pace = a.pace.as_deref().map(parse_pace).transpose()?;
    let live = a
        .socket
        .as_ref()
        .map(|_| flowlog::live::Live::new(a.workers.max(1)));
    let server = match (&a.socket, &live) {
        (Some(path), Some(live)) => {
            let engine =
                flowlog::engine::Engine::new(config.clone(), Some(a.config.clone()), live.clone());
            let opts = flowlog::control::server::ServerOptions {
                path: path.clone(),
                group: a.socket_group.clone(),
                ..Default::default()
            };
            Some(
                flowlog::control::server::serve(opts, std::sync::Arc::new(engine))
                    .map_err(|e| Usage(format!("--socket {}: {e}", path.display())))?,
            )
        }
        _ => None,
    };
    let opts = ReplayOptions {
        config,
        pcap: a.pcap.clone(),
        out: out.clone(),
        workers: a.workers,
        flows_per_core: a.flows_per_core,
        conns_per_core: a.conns_per_core,
        format,
        compress,
        progress: !a.quiet,
        pace,
        live,
    };
    let result = replay(&opts);
    if let Some(server) = server {
        server.stop();
    }
    let s = match result {
        Ok(s) => s,
        Err(e @ (ReplayError::Capture(_) | ReplayError::Options(_))) => {
            return Err(Usage(e.to_string()).into())
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(t) = s.truncated {
        eprintln!(
            "flowlogd: warning: {}: capture cut short at byte {} (frame {}); replayed up to the cut",
            a.pcap.display(),
            t.offset,
            t.frame
        );
    }
    if a.json {
        let fls = flow_logs_json(&s.flow_logs);
        let j = serde_json::json!({
            "pcap": a.pcap, "out": out, "workers": a.workers,
            "read": s.read, "logged": s.logged, "malformed": s.malformed,
            "unmatched": s.unmatched, "not_ip": s.not_ip,
            "observations": s.workers.observations, "rejected": s.workers.rejected,
            "evictions": s.workers.evictions, "skipped": s.workers.skipped,
            "late_writebacks": s.workers.late_writebacks,
            "policy": {
                "rule_lookups": s.policy.rule_lookups, "tracked": s.policy.tracked,
                "opened": s.policy.opened, "conn_table_full": s.policy.conn_table_full,
                "expired": s.policy.expired, "nacl_drops": s.policy.nacl_drops,
                "sg_drops": s.policy.sg_drops,
            },
            "truncated": s.truncated.map(|t| serde_json::json!({"offset": t.offset, "frame": t.frame})),
            "elapsed_s": s.elapsed.as_secs_f64(), "mpps": s.mpps(), "late": s.late,
            "flow_logs": fls, "errors": s.errors, "sinks": s.sinks,
            "unsupported_enis": s.unsupported.iter().map(|(f, e, t)| serde_json::json!({
                "flow-log-id": f, "eni-id": e, "instance_type": t})).collect::<Vec<_>>(),
        });
        outln!("{j}");
    } else {
        print_summary(&a, &s, &out);
        print_sinks(&s.sinks);
    }
    check_sinks(&s.sinks)?;
    if !s.errors.is_empty() {
        for e in &s.errors {
            eprintln!("flowlogd: error: {e}");
        }
        anyhow::bail!(
            "{} window(s) could not be written to the log store",
            s.errors.len()
        );
    }
    Ok(())
}

fn print_summary(a: &ReplayArgs, s: &flowlog::replay::ReplaySummary, out: &std::path::Path) {
    outln!(
        "replayed {}: {} packets in {:.3} s ({:.2} Mpps) on {} worker(s)",
        a.pcap.display(),
        s.read,
        s.elapsed.as_secs_f64(),
        s.mpps(),
        a.workers
    );
    outln!(
        "  read {} = logged {} + malformed {} + unmatched {} + not IP {}",
        s.read,
        s.logged,
        s.malformed,
        s.unmatched,
        s.not_ip
    );
    outln!(
        "  observations {} (rejected {}: {} by network ACLs, {} by security groups), evictions {}, skipped {}",
        s.workers.observations,
        s.workers.rejected,
        s.policy.nacl_drops,
        s.policy.sg_drops,
        s.workers.evictions,
        s.workers.skipped
    );
    outln!(
        "  connections: {} opened, {} packets passed as tracked, {} judged by rules, {} not tracked (table full), {} expired",
        s.policy.opened,
        s.policy.tracked,
        s.policy.rule_lookups,
        s.policy.conn_table_full,
        s.policy.expired
    );
    print_flow_logs(&s.flow_logs);
    for (f, e, t) in &s.unsupported {
        outln!("  flow log {f} skips {e}: instance type {t} does not support flow logs");
    }
    outln!("  log store: {}", out.display());
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FLOWLOGD_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Replay(a) => replay(a),
        Cmd::Run(a) => run(a),
        Cmd::Bench(b) => bench(b),
        Cmd::Gen(a) => gen(a),
        Cmd::Show { out, top } => show(&out, top),
        Cmd::Smoke { pcap, out } => smoke(&pcap, &out),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowlogd: error: {e:#}");
            if e.downcast_ref::<Usage>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

#[cfg(feature = "dpdk")]
fn smoke(pcap: &std::path::Path, out: &std::path::Path) -> anyhow::Result<()> {
    use flowlog::dpdk::{Burst, Eal, Mempool, Port, PortConfig, QueueId};
    if !pcap.is_file() {
        anyhow::bail!("{}: no such capture file", pcap.display());
    }
    let prefix = format!("flowlogd-smoke-{}", std::process::id());
    let vdev_in = format!(
        "--vdev=net_pcap0,rx_pcap={},tx_pcap=/dev/null",
        pcap.display()
    );
    let vdev_out = format!("--vdev=net_pcap1,tx_pcap={}", out.display());
    let args = [
        "flowlogd",
        "--no-huge",
        "--no-pci",
        "-m",
        "256",
        "-l",
        "0",
        "--file-prefix",
        &prefix,
        &vdev_in,
        &vdev_out,
        "--no-telemetry",
        "--log-level",
        "lib.eal:error",
    ];
    let eal = Eal::init(&args).context("starting DPDK's EAL")?;
    let pool = Mempool::new("smoke_pool", 4095, 64, -1)?;
    let cfg = PortConfig::default();
    let p0 = Port::start(Port::id_by_name("net_pcap0")?, &cfg, &pool)?;
    let p1 = Port::start(Port::id_by_name("net_pcap1")?, &cfg, &pool)?;
    let mut burst = Burst::new();
    let (mut rx, mut tx, mut idle) = (0u64, 0u64, 0u32);
    while idle < 1000 {
        let n = p0.rx_burst(QueueId(0), &mut burst);
        if n == 0 {
            idle += 1;
            std::thread::sleep(std::time::Duration::from_micros(100));
            continue;
        }
        idle = 0;
        rx += n as u64;
        while !burst.is_empty() {
            let sent = p1.tx_burst(QueueId(0), &mut burst);
            tx += sent as u64;
            if sent == 0 {
                burst.clear();
            }
        }
    }
    let (s0, s1) = (p0.stats()?, p1.stats()?);
    outln!(
        "port 0 (net_pcap0 <- {}): received {} packets",
        pcap.display(),
        s0.ipackets
    );
    outln!(
        "port 1 (net_pcap1 -> {}): sent {} packets",
        out.display(),
        s1.opackets
    );
    outln!("forwarded {tx} of {rx} packets");
    drop((p0, p1));
    drop(pool);
    drop(eal);
    Ok(())
}

#[cfg(not(feature = "dpdk"))]
fn smoke(_: &std::path::Path, _: &std::path::Path) -> anyhow::Result<()> {
    anyhow::bail!("this flowlogd was built without the `dpdk` feature")
}
