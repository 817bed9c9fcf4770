//! `flowlogd`: the flow-log host daemon.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
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
        Cmd::Smoke { pcap, out } => smoke(&pcap, &out),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flowlogd: error: {e:#}");
            ExitCode::from(2)
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
