//! The ClickHouse sink against JSON Lines: one 1M-record window (mostly
//! IPv4 TCP/UDP, some IPv6, ICMP/ICMPv6, a few NODATA; the generator of
//! `sink_parquet`), delivered by one thread through `ClickhouseSink`
//! (`deliver`, then `close` until every batch is in) to a
//! `clickhouse-server` this bench starts on loopback (the tests' helper,
//! tests/tests/common_clickhouse), with the default options (100000
//! records per INSERT, fsynced spool files), for each `senders` setting of
//! `CH_BENCH_SENDERS` (default `2,1,3`; the first is `records_per_s`), runs
//! interleaved so that the machine's drifting load hits all alike;
//! `CH_BENCH_BATCH` sets `batch_records`. Median of 3 runs each; the table
//! is emptied between runs and its row count checked. Each run also prints
//! the CPU seconds of this process and of the server, and the load.
//!
//! `cargo bench -p exporter --bench sink_clickhouse` prints
//! `BENCH {"bench":"sink","sink":"clickhouse","records":1000000,"batch_records":100000,"records_per_s":…,"records_per_s_by_senders":{"2":…,…},"jsonl_records_per_s":…}`.
//! It needs Debian's clickhouse-server (scripts/setup.sh).

#[path = "../../tests/tests/common_clickhouse/mod.rs"]
mod common_clickhouse;

mod common;

use common::{median, window, INTERVAL, WINDOW};
use common_clickhouse::Server;
use exporter::sink::clickhouse::ClickhouseSink;
use exporter::sink::{Deliver, Window};
use std::hint::black_box;
use std::time::{Duration, Instant};

const RUNS: usize = 3;

/// CPU seconds (user + system) process `pid` has used so far (Linux; 100
/// ticks a second), 0 where /proc cannot tell.
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(") ").map_or("", |x| x.1);
    let f: Vec<f64> = after
        .split(' ')
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

/// The pid of the `clickhouse-server` whose command line names `dir`.
fn server_pid(dir: &std::path::Path) -> String {
    let want = dir.display().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&want))
        })
        .unwrap_or_default()
}

fn main() {
    let records = window();
    let n = records.len();
    let jsonl = median(
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                let mut out = Vec::with_capacity(n * 400);
                for r in &records {
                    r.write_json(&mut out);
                }
                black_box(&out);
                n as f64 / t.elapsed().as_secs_f64()
            })
            .collect(),
    );
    let tmp = tempfile::tempdir().expect("temp dir");
    let srv = Server::start(&tmp.path().join("ch"));
    let spid = server_pid(&srv.dir);
    srv.create_table("flowlogs", "records");
    let w = Window {
        flow_log_id: records[0].flow_log_id.clone(),
        start: WINDOW,
        interval: INTERVAL,
        records,
    };
    // Side by side in one process, runs interleaved (the machine's load
    // drifts): each `senders` setting, default first.
    let settings: Vec<u32> = std::env::var("CH_BENCH_SENDERS")
        .unwrap_or_else(|_| "2,1,3".into())
        .split(',')
        .map(|v| v.trim().parse().expect("CH_BENCH_SENDERS: numbers"))
        .collect();
    let batch: u32 = std::env::var("CH_BENCH_BATCH")
        .map(|v| v.parse().expect("CH_BENCH_BATCH: a number"))
        .unwrap_or(100_000);
    let mut rates = vec![Vec::new(); settings.len()];
    for run in 0..RUNS {
        for (k, &senders) in settings.iter().enumerate() {
            srv.query("DROP TABLE flowlogs.records");
            srv.create_table("flowlogs", "records");
            let spool = tmp.path().join(format!("spool-{run}-{senders}"));
            let opts = serde_json::from_value(serde_json::json!({
                "endpoints": [srv.url()],
                "database": "flowlogs",
                "table": "records",
                "spool_dir": spool,
                "senders": senders,
                "batch_records": batch,
            }))
            .expect("options");
            let cpu = (cpu_secs("self"), cpu_secs(&spid));
            let t = Instant::now();
            let mut sink = ClickhouseSink::open(&opts, "hv-bench").expect("open");
            sink.deliver(&w).expect("deliver");
            let delivered = t.elapsed().as_secs_f64();
            let closed = sink.close(Instant::now() + Duration::from_secs(300));
            let secs = t.elapsed().as_secs_f64();
            let cpu = (cpu_secs("self") - cpu.0, cpu_secs(&spid) - cpu.1);
            assert_eq!(closed, Ok(()), "close");
            let rows: u64 = srv
                .query("SELECT count() FROM flowlogs.records")
                .trim()
                .parse()
                .expect("count");
            assert_eq!(rows, n as u64, "rows in the table");
            eprintln!(
                "run {run}, senders {senders}: {:.0} records/s ({secs:.2} s; deliver returned after {delivered:.2} s; CPU s: sink {:.2}, server {:.2}; load {})",
                n as f64 / secs,
                cpu.0,
                cpu.1,
                std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
            );
            rates[k].push(n as f64 / secs);
        }
    }
    let rates: Vec<f64> = rates.into_iter().map(median).collect();
    let by: Vec<String> = settings
        .iter()
        .zip(&rates)
        .map(|(s, r)| format!("\"{s}\":{r:.0}"))
        .collect();
    println!(
        "BENCH {{\"bench\":\"sink\",\"sink\":\"clickhouse\",\"records\":{n},\"batch_records\":{batch},\"records_per_s\":{:.0},\"records_per_s_by_senders\":{{{}}},\"jsonl_records_per_s\":{jsonl:.0}}}",
        rates[0],
        by.join(",")
    );
}
