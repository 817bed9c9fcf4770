//! The local log store as Parquet (`--format parquet`, or the
//! configuration's `log_store_format: "parquet"`): the same replay written
//! as JSON Lines and as Parquet gives the same files (apart from the
//! extension) in the same Hive-style folders, and every Parquet file, read
//! here with the `parquet` crate's own row reader (not the product's),
//! holds exactly the records of its JSON Lines twin, in the same order.

use flowlog_tests::{
    check_flow_log_counts, check_store, config_for, eni_json, list_files, replay, replay_ok,
    run_flowlogd, senders, testdata, write_config, StoreFile, RECORD_KEYS,
};
use parquet::basic::{Compression, IntType, LogicalType, Type as PhysicalType};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Captures that between them have IPv4 and IPv6, TCP, UDP and ICMP.
fn captures() -> Vec<PathBuf> {
    let td = testdata();
    vec![
        // DNS, HTTP, mDNS, NetBIOS; IPv4 and IPv6; many ENIs.
        td.join("zeek/wikipedia/wikipedia.pcap"),
        // FTP over IPv6.
        td.join("zeek/ftp-ipv6/ipv6.pcap"),
        // ICMP echo with an odd code.
        td.join("suricata-verify/firewall__ruletype-firewall-50-ruleset-vs-ping/icmp-ping-plus-weird-code.pcap"),
    ]
}

/// The README configuration for `pcap` with a 60-s interval (more windows,
/// more files) and one ENI that never talks and is detached (NODATA
/// records, `vm-id` null).
fn config(pcap: &Path) -> Value {
    let mut c = config_for(&senders(pcap));
    let mut quiet = eni_json(
        "eni-quiet",
        "02:ee:00:00:00:01",
        &["192.0.2.254".parse().unwrap()],
    );
    // Detached: no instance.
    quiet["vm_id"] = json!(null);
    c["enis"].as_array_mut().unwrap().push(quiet);
    c["flow_logs"][0]["aggregation_interval"] = json!(60);
    c
}

/// A Parquet value as the JSON Lines form would have it.
fn json_of(f: &Field) -> Value {
    match f {
        Field::Null => Value::Null,
        Field::Str(s) => json!(s),
        Field::UByte(n) => json!(n),
        Field::UShort(n) => json!(n),
        Field::UInt(n) => json!(n),
        Field::ULong(n) => json!(n),
        Field::Byte(n) => json!(n),
        Field::Short(n) => json!(n),
        Field::Int(n) => json!(n),
        Field::Long(n) => json!(n),
        other => panic!("unexpected Parquet value {other:?}"),
    }
}

/// The columns, in order: RECORDS.md's keys, then `window-start`.
fn columns() -> Vec<&'static str> {
    RECORD_KEYS
        .iter()
        .copied()
        .chain(["window-start"])
        .collect()
}

/// Reads one Parquet file with the `parquet` crate's row reader, checking
/// its schema (names, types, nullability) and that every column chunk is
/// zstd-compressed (`zstd`, from `log_store_compress`) or Snappy-compressed,
/// and returns its rows as JSON objects.
fn read_parquet(path: &Path, zstd: bool) -> Vec<Value> {
    let reader = SerializedFileReader::new(File::open(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: not a Parquet file: {e}", path.display()));
    let md = reader.metadata();
    let schema = md.file_metadata().schema_descr();
    let names: Vec<&str> = schema.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, columns(), "{}: columns", path.display());
    let nullable = [
        "vm-id",
        "srcaddr",
        "dstaddr",
        "srcport",
        "dstport",
        "protocol",
        "direction",
        "action",
    ];
    for c in schema.columns() {
        let name = c.name();
        assert_eq!(
            c.max_def_level() == 1,
            nullable.contains(&name),
            "{}: nullability of {name}",
            path.display()
        );
        let want: (PhysicalType, Option<LogicalType>) = match name {
            "srcport" | "dstport" => (
                PhysicalType::INT32,
                Some(LogicalType::Integer(IntType {
                    bit_width: 16,
                    is_signed: false,
                })),
            ),
            "protocol" | "tcp-flags" => (
                PhysicalType::INT32,
                Some(LogicalType::Integer(IntType {
                    bit_width: 8,
                    is_signed: false,
                })),
            ),
            "version" => (
                PhysicalType::INT32,
                Some(LogicalType::Integer(IntType {
                    bit_width: 32,
                    is_signed: false,
                })),
            ),
            "packets" | "bytes" | "start" | "end" | "window-start" => (
                PhysicalType::INT64,
                Some(LogicalType::Integer(IntType {
                    bit_width: 64,
                    is_signed: false,
                })),
            ),
            _ => (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)),
        };
        assert_eq!(
            (c.physical_type(), c.logical_type_ref().cloned()),
            want,
            "{}: type of {name}",
            path.display()
        );
    }
    for rg in md.row_groups() {
        for c in rg.columns() {
            let ok = if zstd {
                matches!(c.compression(), Compression::ZSTD(_))
            } else {
                c.compression() == Compression::SNAPPY
            };
            assert!(
                ok,
                "{}: column {} is {:?}",
                path.display(),
                c.column_path(),
                c.compression()
            );
        }
    }
    reader
        .get_row_iter(None)
        .unwrap()
        .map(|row| {
            let row = row.unwrap();
            let obj: Map<String, Value> = row
                .get_column_iter()
                .map(|(k, v)| (k.clone(), json_of(v)))
                .collect();
            Value::Object(obj)
        })
        .collect()
}

/// Every file of a Parquet store, by path relative to `root`, read with
/// [`read_parquet`]. A file that is not `.parquet`, or a leftover
/// temporary file, fails.
fn parquet_store(root: &Path, zstd: bool) -> BTreeMap<String, Vec<Value>> {
    list_files(root)
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let name = rel.file_name().and_then(OsStr::to_str).unwrap();
            assert!(!name.starts_with('.'), "temporary file left: {rel:?}");
            assert!(
                name.ends_with(".parquet"),
                "not a Parquet file name: {rel:?}"
            );
            (
                rel.to_string_lossy().into_owned(),
                read_parquet(&path, zstd),
            )
        })
        .collect()
}

/// Replays into a fresh folder, asserting success, and returns the folder
/// (kept alive), the store root and the `--json` summary.
fn replay_into(config: &Value, pcap: &Path, extra: &[&str]) -> (tempfile::TempDir, PathBuf, Value) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), config);
    let out = dir.path().join("out");
    let run = replay(&cfg, pcap, &out, extra);
    assert_eq!(run.code, Some(0), "replay of {}: {run}", pcap.display());
    let summary = run.summary();
    assert_eq!(summary["errors"], json!([]), "{run}");
    (dir, out, summary)
}

/// JSON Lines store of `pcap`: files by relative path with `.jsonl`
/// replaced by `.parquet`, and all records.
fn jsonl_twin(config: &Value, pcap: &Path) -> BTreeMap<String, Vec<Value>> {
    let j = replay_ok(config, pcap, &["--format", "json", "--compress", "none"]);
    let files = flowlog_tests::read_store(&j.out);
    assert!(!files.is_empty(), "{}: nothing written", pcap.display());
    files
        .into_iter()
        .map(|f| {
            let rel = f.rel.to_string_lossy().into_owned();
            let stem = rel
                .strip_suffix(".jsonl")
                .unwrap_or_else(|| panic!("not a .jsonl file: {rel}"));
            (format!("{stem}.parquet"), f.records)
        })
        .collect()
}

/// Checks a Parquet store against its JSON Lines twin and the store
/// contract (`check_store`: Hive-style `dt=`/`hour=` folders of the
/// window start, file names, keys and values).
fn assert_same_store(
    what: &str,
    config: &Value,
    parquet: &BTreeMap<String, Vec<Value>>,
    jsonl: &BTreeMap<String, Vec<Value>>,
) {
    assert_eq!(
        parquet.keys().collect::<Vec<_>>(),
        jsonl.keys().collect::<Vec<_>>(),
        "{what}: file names (apart from the extension)"
    );
    for (name, want) in jsonl {
        let got = &parquet[name];
        assert_eq!(got.len(), want.len(), "{what}: {name}: record count");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(g, w, "{what}: {name}: record {i}");
        }
    }
    let files: Vec<StoreFile> = parquet
        .iter()
        .map(|(rel, records)| StoreFile {
            rel: PathBuf::from(rel),
            text: String::new(),
            records: records.clone(),
        })
        .collect();
    check_store(&files, config);
    for rel in parquet.keys() {
        let parts: Vec<&str> = rel.split('/').collect();
        assert_eq!(parts.len(), 5, "{what}: {rel}");
        assert!(parts[2].starts_with("dt=") && parts[3].starts_with("hour="));
    }
}

#[test]
fn parquet_files_hold_the_jsonl_records() {
    for pcap in captures() {
        let what = pcap.display().to_string();
        let config = config(&pcap);
        let jsonl = jsonl_twin(&config, &pcap);
        // No `.zst` even with zstd asked: it compresses the columns inside.
        for compress in ["none", "zstd"] {
            let (_dir, out, _) = replay_into(
                &config,
                &pcap,
                &["--format", "parquet", "--compress", compress],
            );
            let store = parquet_store(&out, compress == "zstd");
            assert_same_store(
                &format!("{what} --compress {compress}"),
                &config,
                &store,
                &jsonl,
            );
        }
        // Every kind of record came through somewhere.
        let all: Vec<&Value> = jsonl.values().flatten().collect();
        assert!(all
            .iter()
            .any(|r| r["log-status"] == "NODATA" && r["vm-id"].is_null()));
        assert!(all.iter().any(|r| r["log-status"] == "OK"));
    }
}

#[test]
fn parquet_store_covers_ipv4_ipv6_and_icmp() {
    // The captures above between them have every address family and ICMP.
    let mut v4 = false;
    let mut v6 = false;
    let mut icmp = false;
    for pcap in captures() {
        for r in jsonl_twin(&config(&pcap), &pcap).values().flatten() {
            let a = r["srcaddr"].as_str().unwrap_or("");
            v4 |= a.contains('.') && !a.contains(':');
            v6 |= a.contains(':');
            icmp |= r["protocol"] == 1 || r["protocol"] == 58;
        }
    }
    assert!(v4 && v6 && icmp, "v4 {v4} v6 {v6} icmp {icmp}");
}

#[test]
fn config_log_store_format_parquet_writes_the_same_files() {
    let pcap = &captures()[0];
    let mut config = config(pcap);
    let jsonl = jsonl_twin(&config, pcap);
    config["log_store_format"] = json!("parquet");
    config["log_store_compress"] = json!("zstd");
    let (_dir, out, summary) = replay_into(&config, pcap, &[]);
    let store = parquet_store(&out, true);
    assert_same_store("log_store_format parquet", &config, &store, &jsonl);
    let records: Vec<Value> = store.values().flatten().cloned().collect();
    check_flow_log_counts(&summary, &records);

    // The flag wins over the configuration.
    let (_dir, out, _) = replay_into(&config, pcap, &["--format", "json"]);
    let names: Vec<String> = list_files(&out)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(!names.is_empty());
    assert!(names.iter().all(|n| n.ends_with(".jsonl.zst")), "{names:?}");
}

#[test]
fn show_reads_a_parquet_store_like_a_jsonl_one() {
    let pcap = &captures()[0];
    let config = config(pcap);
    let (_a, jsonl_out, _) = replay_into(&config, pcap, &["--format", "json"]);
    let (_b, parquet_out, _) = replay_into(&config, pcap, &["--format", "parquet"]);
    let show = |out: &Path| {
        let run = run_flowlogd([OsStr::new("show"), OsStr::new("--out"), out.as_os_str()]);
        assert_eq!(run.code, Some(0), "{run}");
        run.stdout.replace(&out.display().to_string(), "OUT")
    };
    let (j, p) = (show(&jsonl_out), show(&parquet_out));
    assert!(j.contains("fl-"), "{j}");
    assert_eq!(p, j);
}

#[test]
fn an_unknown_format_is_refused_with_the_accepted_ones() {
    let pcap = &captures()[0];
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &config(pcap));
    let out = dir.path().join("out");
    let run = replay(&cfg, pcap, &out, &["--format", "xml"]);
    assert_eq!(run.code, Some(2), "{run}");
    for f in ["json", "text", "parquet"] {
        assert!(
            run.stderr.contains(f),
            "the message does not name {f}: {run}"
        );
    }
    assert!(list_files(&out).is_empty(), "files were written");
}
