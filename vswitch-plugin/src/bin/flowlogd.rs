//! `flowlogd`: the flow-log host daemon.

use anyhow::Context as _;
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

#[derive(Subcommand, Debug)]
enum BenchCmd {
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
}

fn bench(cmd: BenchCmd) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Datapath {
            flows,
            packets,
            json,
        } => {
            let packets = packets.unwrap_or_else(|| (20_000_000u64).max(flows * 4));
            let f = flowlog::bench::datapath(flows, packets);
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&serde_json::json!({"bench": "datapath", "figures": f}))?
                );
            } else {
                println!(
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
    /// File format: `json` (JSON Lines) or `text` (default: the
    /// configuration's `log_store_format`).
    #[arg(long, value_parser = ["json", "jsonl", "text"])]
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
    use exporter::store::{Compress, StoreFormat};
    use flowlog::replay::{replay, ReplayError, ReplayOptions};
    let config = exporter::config::load(&a.config).map_err(|e| Usage(e.to_string()))?;
    let out = a
        .out
        .clone()
        .or_else(|| config.log_store_root.clone())
        .ok_or_else(|| {
            Usage(format!(
            "{}: no log store root; give --out DIR or set \"log_store_root\" in the configuration",
            a.config.display()
        ))
        })?;
    let format = match a.format.as_deref() {
        Some("json" | "jsonl") => StoreFormat::Jsonl,
        Some(_) => StoreFormat::Text,
        None => StoreFormat::try_from(config.log_store_format)
            .map_err(|e| Usage(format!("{}: {e}", a.config.display())))?,
    };
    let compress = match a.compress.as_deref() {
        Some("zstd") => Compress::Zstd,
        Some(_) => Compress::None,
        None => Compress::from(config.log_store_compress),
    };
    let opts = ReplayOptions {
        config,
        pcap: a.pcap.clone(),
        out: out.clone(),
        workers: a.workers,
        flows_per_core: a.flows_per_core,
        format,
        compress,
        progress: !a.quiet,
    };
    let s = match replay(&opts) {
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
        let fls: Vec<_> = s
            .flow_logs
            .iter()
            .map(|(id, st)| {
                serde_json::json!({
                    "flow-log-id": id, "records": st.records, "ok": st.ok, "nodata": st.nodata,
                    "skipdata": st.skipdata, "windows": st.windows, "error": st.error,
                })
            })
            .collect();
        let j = serde_json::json!({
            "pcap": a.pcap, "out": out, "workers": a.workers,
            "read": s.read, "logged": s.logged, "malformed": s.malformed,
            "unmatched": s.unmatched, "not_ip": s.not_ip,
            "observations": s.workers.observations, "rejected": s.workers.rejected,
            "evictions": s.workers.evictions, "skipped": s.workers.skipped,
            "truncated": s.truncated.map(|t| serde_json::json!({"offset": t.offset, "frame": t.frame})),
            "elapsed_s": s.elapsed.as_secs_f64(), "mpps": s.mpps(), "late": s.late,
            "flow_logs": fls, "errors": s.errors,
        });
        println!("{j}");
    } else {
        print_summary(&a, &s, &out);
    }
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
    println!(
        "replayed {}: {} packets in {:.3} s ({:.2} Mpps) on {} worker(s)",
        a.pcap.display(),
        s.read,
        s.elapsed.as_secs_f64(),
        s.mpps(),
        a.workers
    );
    println!(
        "  read {} = logged {} + malformed {} + unmatched {} + not IP {}",
        s.read, s.logged, s.malformed, s.unmatched, s.not_ip
    );
    println!(
        "  observations {} (rejected {}), evictions {}, skipped {}",
        s.workers.observations, s.workers.rejected, s.workers.evictions, s.workers.skipped
    );
    for (id, st) in &s.flow_logs {
        println!(
            "  flow log {id}: {} records ({} OK, {} NODATA, {} SKIPDATA) in {} windows",
            st.records, st.ok, st.nodata, st.skipdata, st.windows
        );
    }
    println!("  log store: {}", out.display());
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
        Cmd::Bench(b) => bench(b),
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
    println!(
        "port 0 (net_pcap0 <- {}): received {} packets",
        pcap.display(),
        s0.ipackets
    );
    println!(
        "port 1 (net_pcap1 -> {}): sent {} packets",
        out.display(),
        s1.opackets
    );
    println!("forwarded {tx} of {rx} packets");
    drop((p0, p1));
    drop(pool);
    drop(eal);
    Ok(())
}

#[cfg(not(feature = "dpdk"))]
fn smoke(_: &std::path::Path, _: &std::path::Path) -> anyhow::Result<()> {
    anyhow::bail!("this flowlogd was built without the `dpdk` feature")
}
