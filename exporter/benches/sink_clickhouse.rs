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

use common_clickhouse::Server;
use exporter::record::{Action, Direction, LogStatus, Record, VERSION};
use exporter::sink::clickhouse::ClickhouseSink;
use exporter::sink::{Deliver, Window};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

const RECORDS: usize = 1_000_000;
const RUNS: usize = 3;
const WINDOW: u64 = 1_764_248_400;
const INTERVAL: u64 = 600;
const ENIS: u32 = 200;

/// splitmix64: a fixed, dependency-free sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One window of one flow log over `ENIS` ENIs in one VPC.
fn window() -> Vec<Record> {
    let mut rng = Rng(42);
    let services = [443u16, 80, 53, 22, 3306, 6379, 8080, 123, 5432, 9092];
    let flags = [0x1bu8, 0x1b, 0x1b, 0x13, 0x12, 0x02, 0x18, 0x19, 0x04, 0x14];
    let mut out = Vec::with_capacity(RECORDS);
    let base = |eni: u32| Record {
        version: VERSION,
        account_id: "1234567890".into(),
        vpc_id: "vpc-2ze0example".into(),
        vswitch_id: format!("vsw-2ze{:04}", eni % 8),
        vm_id: Some(format!("i-2ze{eni:06}")),
        eni_id: format!("eni-2ze{eni:06}"),
        srcaddr: None,
        dstaddr: None,
        srcport: None,
        dstport: None,
        protocol: None,
        direction: None,
        packets: 0,
        bytes: 0,
        start: WINDOW,
        end: WINDOW + INTERVAL - 1,
        tcp_flags: 0,
        log_status: LogStatus::NoData,
        action: None,
        flow_log_id: "fl-2ze0example".into(),
        window_start: WINDOW,
    };
    while out.len() < RECORDS {
        let eni = rng.below(u64::from(ENIS)) as u32;
        let kind = rng.below(1000);
        if kind < 5 {
            out.push(base(eni)); // NODATA (0.5 %)
            continue;
        }
        let v6 = (5..85).contains(&kind); // 8 % IPv6
        let (own, peer): (IpAddr, IpAddr) = if v6 {
            (
                IpAddr::V6(Ipv6Addr::new(0x2408, 0x4000, 0x1f, eni as u16, 0, 0, 0, 5)),
                IpAddr::V6(Ipv6Addr::new(
                    0x2001,
                    0xdb8,
                    rng.below(65536) as u16,
                    0,
                    0,
                    0,
                    0,
                    rng.below(65536) as u16,
                )),
            )
        } else {
            let peer = if rng.below(3) == 0 {
                Ipv4Addr::from(0x0a00_0000 | rng.below(1 << 16) as u32) // east-west
            } else {
                Ipv4Addr::from(rng.next() as u32 | 0x0100_0000) // Internet
            };
            (
                IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (eni << 8) | 5)),
                IpAddr::V4(peer),
            )
        };
        let r = rng.below(100);
        // 75 % TCP, 20 % UDP, 5 % ICMP(v6).
        let (protocol, sport, dport, tcp_flags) = if r < 75 {
            let f = flags[rng.below(flags.len() as u64) as usize];
            (
                6u8,
                32_768 + rng.below(28_000) as u16,
                services[rng.below(services.len() as u64) as usize],
                f,
            )
        } else if r < 95 {
            (
                17,
                32_768 + rng.below(28_000) as u16,
                services[rng.below(3) as usize + 1],
                0,
            )
        } else {
            let icmp = if rng.below(4) == 0 {
                3 * 256 + 3
            } else {
                8 * 256
            };
            (if v6 { 58 } else { 1 }, 0, icmp, 0)
        };
        let outbound = rng.below(2) == 0;
        let packets = 1 + rng.below(64) * rng.below(64);
        let start = WINDOW + rng.below(INTERVAL);
        let (srcaddr, dstaddr, srcport, dstport) = if outbound {
            (own, peer, sport, dport)
        } else {
            (peer, own, dport, sport)
        };
        out.push(Record {
            srcaddr: Some(srcaddr),
            dstaddr: Some(dstaddr),
            srcport: Some(srcport),
            dstport: Some(dstport),
            protocol: Some(protocol),
            direction: Some(if outbound {
                Direction::Out
            } else {
                Direction::In
            }),
            packets,
            bytes: packets * (40 + rng.below(1460)),
            start,
            end: start + rng.below(WINDOW + INTERVAL - start),
            tcp_flags,
            log_status: LogStatus::Ok,
            action: Some(if rng.below(50) == 0 {
                Action::Reject
            } else {
                Action::Accept
            }),
            ..base(eni)
        });
    }
    out
}

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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
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
