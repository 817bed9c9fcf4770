//! The top-talkers query (group by srcaddr,dstaddr, top 10 by bytes, OK
//! records) over a 10M-record local log store, on one thread, for zstd
//! JSON Lines and for Parquet.
//!
//! The store: 100 one-minute windows of 100k records each (one file per
//! window), 300 ENIs in 3 VPCs, each talking to ~200 peers of its own
//! (IPv4 mostly, some IPv6, a fifth of them inside the VPC), TCP/UDP/ICMP,
//! ~3% REJECT, a NODATA record now and then. It is written once through
//! `exporter::store::LocalStore` under `target/bench-data/` and reused by
//! later runs (delete the folder to rebuild it).
//!
//! `cargo bench -p flowlogctl --bench query` prints one `BENCH` line per
//! format: the best of three runs after a warm-up, by wall clock
//! (`records_per_s`) and by the thread's CPU time (`cpu_records_per_s`,
//! which other load on a shared machine does not inflate). `FLOWLOGCTL_BENCH_RECORDS=N` changes the size (a multiple of
//! 100k); `FLOWLOGCTL_BENCH_FORMAT=parquet` (or `jsonl.zst`) runs one.

use exporter::record::{Action, Direction, LogStatus, Record, VERSION};
use exporter::store::{Compress, LocalStore, StoreFormat};
use flowlogctl::filter::Filter;
use flowlogctl::presets::top_talkers;
use flowlogctl::query::run_query;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Instant;

const PER_WINDOW: u64 = 100_000;
const START: u64 = 1_764_201_600;
const INTERVAL: u64 = 60;
const ENIS: u64 = 300;
const PEERS_PER_ENI: u64 = 200;

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

fn eni_addr(eni: u64) -> IpAddr {
    let vpc = eni % 3;
    IpAddr::V4(Ipv4Addr::new(
        10,
        vpc as u8,
        (eni / 250) as u8 + 1,
        (eni % 250) as u8 + 2,
    ))
}

/// Peer `p` of ENI `eni`: a fifth inside the VPC, a tenth IPv6, the rest
/// public IPv4.
fn peer_addr(eni: u64, p: u64) -> IpAddr {
    let h = eni
        .wrapping_mul(0x9e37_79b9)
        .wrapping_add(p.wrapping_mul(0x85eb_ca6b));
    match p % 10 {
        0 | 1 => IpAddr::V4(Ipv4Addr::new(10, (eni % 3) as u8, (h >> 8) as u8, h as u8)),
        2 => IpAddr::V6(Ipv6Addr::new(
            0x2400,
            0x3200,
            (h >> 16) as u16,
            0,
            0,
            0,
            0,
            h as u16,
        )),
        _ => IpAddr::V4(Ipv4Addr::new(
            (h >> 24) as u8 % 200 + 20,
            (h >> 16) as u8,
            (h >> 8) as u8,
            h as u8,
        )),
    }
}

fn window(rng: &mut Rng, w: u64) -> Vec<Record> {
    let ws = START + w * INTERVAL;
    let services = [443u16, 80, 53, 22, 3306, 6379, 8080, 123, 5432, 9092];
    let mut out = Vec::with_capacity(PER_WINDOW as usize);
    for i in 0..PER_WINDOW {
        // Some ENIs are much busier than others.
        let eni = (rng.below(ENIS) * rng.below(ENIS)) / ENIS;
        let vm = format!("i-2ze{eni:06}");
        let base = Record {
            version: VERSION,
            account_id: format!("12345678{:02}", eni % 3),
            vpc_id: format!("vpc-{}", eni % 3),
            vswitch_id: format!("vsw-{}-{}", eni % 3, eni % 8),
            vm_id: Some(vm),
            eni_id: format!("eni-2ze{eni:06}"),
            srcaddr: None,
            dstaddr: None,
            srcport: None,
            dstport: None,
            protocol: None,
            direction: None,
            packets: 0,
            bytes: 0,
            start: ws,
            end: ws + INTERVAL - 1,
            tcp_flags: 0,
            log_status: LogStatus::NoData,
            action: None,
            flow_log_id: "fl-bench".into(),
            window_start: ws,
        };
        if i % 5_000 == 4_999 {
            out.push(base);
            continue;
        }
        let me = eni_addr(eni);
        let mut peer = peer_addr(eni, rng.below(PEERS_PER_ENI));
        if me.is_ipv4() != peer.is_ipv4() {
            peer = IpAddr::V4(Ipv4Addr::new(100, 64, (eni % 256) as u8, 1));
        }
        let out_dir = rng.below(2) == 0;
        let (proto, sport, dport) = match rng.below(20) {
            0 => (1u8, 0u16, 8 * 256),
            1..=6 => (
                17,
                30_000 + rng.below(30_000) as u16,
                services[rng.below(10) as usize],
            ),
            _ => (
                6,
                30_000 + rng.below(30_000) as u16,
                services[rng.below(10) as usize],
            ),
        };
        let packets = 1 + rng.below(200) * rng.below(20);
        let bytes = packets * (40 + rng.below(1460));
        let s = ws + rng.below(INTERVAL);
        let (src, dst, sp, dp) = if out_dir {
            (me, peer, sport, dport)
        } else {
            (peer, me, sport, dport)
        };
        out.push(Record {
            srcaddr: Some(src),
            dstaddr: Some(dst),
            srcport: Some(sp),
            dstport: Some(dp),
            protocol: Some(proto),
            direction: Some(if out_dir {
                Direction::Out
            } else {
                Direction::In
            }),
            packets,
            bytes,
            start: s,
            end: (s + rng.below(30)).min(ws + INTERVAL - 1),
            tcp_flags: if proto == 6 { 0x1b } else { 0 },
            log_status: LogStatus::Ok,
            action: Some(if rng.below(33) == 0 {
                Action::Reject
            } else {
                Action::Accept
            }),
            ..base
        });
    }
    out
}

fn data_dir(records: u64) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target
        .join("bench-data")
        .join(format!("flowlogctl-query-{records}"))
}

/// Writes the store in both formats unless a previous run did.
fn ensure_store(dir: &Path, records: u64) -> (PathBuf, PathBuf) {
    let jsonl = dir.join("jsonl-zst");
    let parquet = dir.join("parquet");
    let done = dir.join("complete");
    if done.exists() {
        return (jsonl, parquet);
    }
    let _ = std::fs::remove_dir_all(dir);
    let t = Instant::now();
    let js = LocalStore::new(&jsonl, StoreFormat::Jsonl, Compress::Zstd, "hv-bench");
    let pq = LocalStore::new(&parquet, StoreFormat::Parquet, Compress::None, "hv-bench");
    let mut rng = Rng(7);
    for w in 0..records / PER_WINDOW {
        let recs = window(&mut rng, w);
        let ws = START + w * INTERVAL;
        js.write_window("bench", "flows", "fl-bench", ws, &recs)
            .expect("write JSON Lines");
        pq.write_window("bench", "flows", "fl-bench", ws, &recs)
            .expect("write Parquet");
    }
    std::fs::write(&done, b"").expect("marker");
    eprintln!(
        "wrote {records} records in both formats under {} in {:.1} s",
        dir.display(),
        t.elapsed().as_secs_f64()
    );
    (jsonl, parquet)
}

fn du(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        du(&p)
                    } else {
                        e.metadata().map(|m| m.len()).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

/// This thread's CPU time (user + system), seconds, from
/// `/proc/thread-self/stat` (clock ticks): what the query cost the CPU on
/// a machine shared with other work, beside the wall-clock time.
fn thread_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks as f64 / 100.0
}

fn main() {
    let records: u64 = std::env::var("FLOWLOGCTL_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let records = (records / PER_WINDOW).max(1) * PER_WINDOW;
    let dir = data_dir(records);
    let (jsonl, parquet) = ensure_store(&dir, records);
    let only = std::env::var("FLOWLOGCTL_BENCH_FORMAT").ok();
    let q = top_talkers(Filter::default());
    let mut answers = Vec::new();
    for (format, store, target) in [
        ("jsonl.zst", &jsonl, 1_000_000u64),
        ("parquet", &parquet, 5_000_000),
    ] {
        if only.as_deref().is_some_and(|o| o != format) {
            continue;
        }
        // One warm-up run (page cache), then the best of three.
        let _ = run_query(store, &q).expect("query");
        let mut best = f64::MAX;
        let mut best_cpu = f64::MAX;
        let mut answer = None;
        for _ in 0..3 {
            let (t, c) = (Instant::now(), thread_cpu_s());
            let a = run_query(store, &q).expect("query");
            best = best.min(t.elapsed().as_secs_f64());
            best_cpu = best_cpu.min(thread_cpu_s() - c);
            answer = Some(a);
        }
        let a = answer.expect("ran");
        assert_eq!(a.scan.records_read, records, "{format}: every record read");
        let rate = records as f64 / best;
        println!(
            "BENCH {{\"bench\":\"query\",\"query\":\"top-talkers\",\"format\":\"{format}\",\"records\":{records},\"seconds\":{best:.3},\"records_per_s\":{rate:.0},\"cpu_seconds\":{best_cpu:.2},\"cpu_records_per_s\":{:.0},\"target\":{target},\"store_bytes\":{},\"groups\":{},\"threads\":1}}",
            records as f64 / best_cpu.max(0.01),
            du(store),
            a.groups_total
        );
        answers.push(a.groups);
    }
    if answers.len() == 2 {
        assert_eq!(answers[0], answers[1], "both formats give the same answer");
    }
}
