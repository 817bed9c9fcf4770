//! The Parquet local log store against JSON Lines: one 1M-record window
//! (mostly IPv4 TCP/UDP, some IPv6, ICMP/ICMPv6, a few NODATA), written by
//! one thread through `LocalStore::write_window` into a temporary folder
//! (encoding, temporary file, fsync, rename), median of 5 runs each.
//!
//! `cargo bench -p exporter --bench sink_parquet` prints one `BENCH` line
//! per format: `jsonl`, `jsonl+zstd`, and `parquet` (which also carries
//! the JSON Lines rate of the same run and the ratio), each with the file's
//! size and bytes per record, and an `encode_records_per_s` (encoding
//! alone, in memory, no file).

use exporter::parquet::write_records;
use exporter::record::{Action, Direction, LogStatus, Record, VERSION};
use exporter::store::{Compress, LocalStore, StoreFormat};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

const RECORDS: usize = 1_000_000;
const RUNS: usize = 5;
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

/// Nanoseconds this thread has run on a CPU (Linux `schedstat`), so that a
/// rate can be told apart from the machine's other load; 0 elsewhere.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median records/s of wall-clock time and of this thread's CPU time.
struct Rates {
    wall: f64,
    cpu: f64,
}

/// Runs `f` [`RUNS`] times; the medians.
fn rates(mut f: impl FnMut()) -> Rates {
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let (t, c) = (Instant::now(), cpu_ns());
        f();
        wall.push(RECORDS as f64 / t.elapsed().as_secs_f64());
        cpu.push(RECORDS as f64 * 1e9 / (cpu_ns().saturating_sub(c)).max(1) as f64);
    }
    Rates {
        wall: median(wall),
        cpu: median(cpu),
    }
}

struct Figures {
    /// `write_window`: encoding, file, fsync, rename.
    store: Rates,
    /// Encoding alone, in memory.
    encode: Rates,
    bytes: u64,
}

/// `write_window` in this format, and encoding alone.
fn run(records: &[Record], format: StoreFormat, compress: Compress) -> Figures {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = LocalStore::new(dir.path(), format, compress, "hv-bench");
    let mut path = None;
    let store_rates = rates(|| {
        path = Some(
            store
                .write_window("proj", "store", "fl-2ze0example", WINDOW, records)
                .expect("write window"),
        );
    });
    let bytes = std::fs::metadata(path.expect("written"))
        .expect("file")
        .len();
    let encode = rates(|| {
        let n = match format {
            StoreFormat::Parquet => {
                let codec = match compress {
                    Compress::Zstd => exporter::parquet::Codec::Zstd,
                    Compress::None => exporter::parquet::Codec::Snappy,
                };
                exporter::parquet::write_records_as(records, codec)
                    .expect("encode")
                    .len()
            }
            _ => {
                let mut body = Vec::with_capacity(records.len() * 320);
                records.iter().for_each(|r| r.write_json(&mut body));
                if compress == Compress::Zstd {
                    body = zstd::stream::encode_all(&body[..], 3).expect("zstd");
                }
                body.len()
            }
        };
        black_box(n);
    });
    Figures {
        store: store_rates,
        encode,
        bytes,
    }
}

fn main() {
    let records = window();
    assert_eq!(records.len(), RECORDS);
    // `SINK_PARQUET_PROFILE=batch|encode`: loop on one step, for a profiler.
    if let Ok(step) = std::env::var("SINK_PARQUET_PROFILE") {
        for _ in 0..10 {
            let r = rates(|| {
                if step == "batch" {
                    black_box(exporter::parquet::to_record_batch(&records).expect("batch"));
                } else {
                    black_box(write_records(&records).expect("encode"));
                }
            });
            eprintln!(
                "{step}: {:.0} records/s, {:.0} records/s of CPU time",
                r.wall, r.cpu
            );
        }
        return;
    }
    let jsonl = run(&records, StoreFormat::Jsonl, Compress::None);
    let jsonl_zstd = run(&records, StoreFormat::Jsonl, Compress::Zstd);
    let parquet = run(&records, StoreFormat::Parquet, Compress::None);
    let parquet_zstd = run(&records, StoreFormat::Parquet, Compress::Zstd);
    let line = |sink: &str, f: &Figures, extra: String| {
        println!(
            "BENCH {{\"bench\":\"sink\",\"sink\":\"{sink}\",\"records\":{RECORDS},\
             \"records_per_s\":{:.0}{extra},\"cpu_records_per_s\":{:.0},\
             \"encode_records_per_s\":{:.0},\"encode_cpu_records_per_s\":{:.0},\
             \"file_bytes\":{},\"bytes_per_record\":{:.1}}}",
            f.store.wall,
            f.store.cpu,
            f.encode.wall,
            f.encode.cpu,
            f.bytes,
            f.bytes as f64 / RECORDS as f64,
        );
    };
    line("jsonl", &jsonl, String::new());
    line("jsonl+zstd", &jsonl_zstd, String::new());
    line(
        "parquet",
        &parquet,
        format!(
            ",\"jsonl_records_per_s\":{:.0},\"ratio\":{:.2}",
            jsonl.store.wall,
            parquet.store.wall / jsonl.store.wall
        ),
    );
    line(
        "parquet+zstd",
        &parquet_zstd,
        format!(
            ",\"jsonl_records_per_s\":{:.0},\"ratio\":{:.2}",
            jsonl.store.wall,
            parquet_zstd.store.wall / jsonl.store.wall
        ),
    );
}
