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

mod common;

use common::{median, window, RECORDS, WINDOW};
use exporter::parquet::write_records;
use exporter::record::Record;
use exporter::store::{Compress, LocalStore, StoreFormat};
use std::hint::black_box;
use std::time::Instant;

const RUNS: usize = 5;

/// Nanoseconds this thread has run on a CPU (Linux `schedstat`), so that a
/// rate can be told apart from the machine's other load; 0 elsewhere.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
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
