//! `flowlogd replay` as a user meets it: bad input, a capture cut short,
//! the store's formats, determinism across workers and table sizes, NODATA
//! records, and traffic-type filters. Every run is the real binary.

use flowlog_tests::{
    canonical, check_store, config_for, eni_json, int, list_files, read_store, replay, replay_ok,
    senders, testdata, vpc_flow_log, write_config, Replayed, Senders, FLOW_LOG, LOG_STORE, VPC,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn zeek(case: &str, file: &str) -> PathBuf {
    testdata().join("zeek").join(case).join(file)
}

/// A small capture: five FTP connections, two ENIs talking to each other,
/// 95 frames over 38 s (two 60-s windows, one 600-s window).
fn ftp_ipv4() -> PathBuf {
    zeek("ftp-ipv4", "ipv4.pcap")
}

/// A busier one: 136 frames, ~50 connections (DNS, HTTP, mDNS, NetBIOS),
/// IPv4 and IPv6, many ENIs.
fn wikipedia() -> PathBuf {
    zeek("wikipedia", "wikipedia.pcap")
}

/// The ENI that never talks: its MAC and address appear in no capture.
const QUIET: &str = "eni-quiet";

/// The README configuration for `pcap`, plus [`QUIET`] (detached: no
/// `vm_id`), with the VPC flow log's interval set to `interval`.
fn config_with_quiet_eni(s: &Senders, interval: u64) -> Value {
    let mut c = config_for(s);
    let mut quiet = eni_json(
        QUIET,
        "02:ee:00:00:00:01",
        &["192.0.2.254".parse().unwrap()],
    );
    // Detached: no instance.
    quiet["vm_id"] = json!(null);
    c["enis"].as_array_mut().unwrap().push(quiet);
    c["flow_logs"][0]["aggregation_interval"] = json!(interval);
    c
}

// ---------------------------------------------------------------------------
// Bad input

/// One run that must be refused: exit status 2, a message on stderr that
/// names `names` (the offending file) and contains each of `also`, and not
/// one file in the out folder.
fn refused(what: &str, config: &Path, pcap: &Path, names: &Path, also: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let run = replay(config, pcap, &out, &[]);
    assert_eq!(run.code, Some(2), "{what}: want exit status 2; {run}");
    let shown = names.display().to_string();
    assert!(
        run.stderr.contains(&shown),
        "{what}: the message does not name {shown}; {run}"
    );
    for a in also {
        assert!(
            run.stderr.contains(a),
            "{what}: the message does not say {a:?}; {run}"
        );
    }
    assert_eq!(
        list_files(&out),
        Vec::<PathBuf>::new(),
        "{what}: files were written"
    );
}

#[test]
fn bad_input_exits_2_names_the_file_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let pcap = ftp_ipv4();
    let good = config_for(&senders(&pcap));
    let good_path = write_config(tmp.path(), &good);

    let missing = tmp.path().join("no-such-capture.pcap");
    refused("missing capture", &good_path, &missing, &missing, &[]);

    let text = tmp.path().join("notes.txt");
    std::fs::write(&text, "this is not a capture\nat all\n").unwrap();
    refused("a text file as capture", &good_path, &text, &text, &[]);

    let empty = tmp.path().join("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    refused("an empty capture", &good_path, &empty, &empty, &[]);

    let no_config = tmp.path().join("no-such-config.json");
    refused("missing configuration", &no_config, &pcap, &no_config, &[]);

    let write = |name: &str, v: &Value| {
        let d = tmp.path().join(name);
        std::fs::create_dir(&d).unwrap();
        write_config(&d, v)
    };

    let mut unknown_top = good.clone();
    unknown_top["colour"] = json!("blue");
    let p = write("unknown-top", &unknown_top);
    refused("unknown top-level key", &p, &pcap, &p, &["colour"]);

    let mut unknown_nested = good.clone();
    unknown_nested["flow_logs"][0]["trafic_type"] = json!("All");
    let p = write("unknown-nested", &unknown_nested);
    refused("unknown flow log key", &p, &pcap, &p, &["trafic_type"]);

    let mut dangling = good.clone();
    dangling["flow_logs"][0]["resource_id"] = json!("vpc-does-not-exist");
    let p = write("dangling", &dangling);
    refused(
        "flow log naming a VPC that does not exist",
        &p,
        &pcap,
        &p,
        &["flow_logs[0].resource_id"],
    );

    let p = tmp.path().join("not-json.json");
    std::fs::write(&p, "{ \"host\": ").unwrap();
    refused("configuration that is not JSON", &p, &pcap, &p, &[]);
}

// ---------------------------------------------------------------------------
// A capture cut short

/// Byte offsets of the records of a classic pcap.
fn record_offsets(b: &[u8]) -> Vec<usize> {
    let le = match b[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => panic!("not a classic pcap"),
    };
    let mut v = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        v.push(at);
        let w: [u8; 4] = b[at + 8..at + 12].try_into().unwrap();
        let caplen = if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        };
        at += 16 + caplen as usize;
    }
    assert_eq!(at, b.len(), "the capture is not whole to begin with");
    v
}

/// A capture killed while writing (cut inside the last record's data, or
/// inside its header) replays with exit 0, a warning that names the file
/// and the cut, `truncated` = the cut record's offset and number, and
/// exactly the records of the whole frames before the cut.
#[test]
fn capture_cut_short_replays_up_to_the_cut() {
    let pcap = ftp_ipv4();
    let bytes = std::fs::read(&pcap).unwrap();
    let offsets = record_offsets(&bytes);
    let last = *offsets.last().unwrap();
    let frames = offsets.len() as u64;
    let config = config_for(&senders(&pcap));

    let tmp = tempfile::tempdir().unwrap();
    // The reference: the whole records before the last one.
    let whole = tmp.path().join("whole-records.pcap");
    std::fs::write(&whole, &bytes[..last]).unwrap();
    let reference = replay_ok(&config, &whole, &[]);
    assert!(
        reference.summary["truncated"].is_null(),
        "{}",
        reference.summary
    );
    assert_eq!(int(&reference.summary, "read"), frames - 1);

    for (name, cut) in [("in-data", bytes.len() - 5), ("in-header", last + 7)] {
        let short = tmp.path().join(format!("cut-{name}.pcap"));
        std::fs::write(&short, &bytes[..cut]).unwrap();
        let r = replay_ok(&config, &short, &[]);
        let stderr = &r.run.stderr;
        assert!(
            stderr.contains("warning") && stderr.contains("cut short"),
            "{name}: no warning about the cut; {}",
            r.run
        );
        assert!(
            stderr.contains(&short.display().to_string()),
            "{name}: the warning does not name the file; {}",
            r.run
        );
        assert_eq!(
            r.summary["truncated"],
            json!({ "offset": last, "frame": frames }),
            "{name}: {}",
            r.summary
        );
        assert_eq!(int(&r.summary, "read"), frames - 1, "{name}");
        assert_eq!(
            canonical(&r.records),
            canonical(&reference.records),
            "{name}: the records differ from those of the whole frames before the cut"
        );
    }
}

// ---------------------------------------------------------------------------
// Formats

/// Files of a store by relative path.
fn by_path(out: &Path) -> BTreeMap<String, flowlog_tests::StoreFile> {
    read_store(out)
        .into_iter()
        .map(|f| (f.rel.to_string_lossy().into_owned(), f))
        .collect()
}

#[test]
fn zstd_files_decode_to_the_same_records() {
    let pcap = wikipedia();
    let config = config_with_quiet_eni(&senders(&pcap), 600);
    let plain = replay_ok(&config, &pcap, &["--compress", "none"]);
    let zst = replay_ok(&config, &pcap, &["--compress", "zstd"]);
    let (p, z) = (by_path(&plain.out), by_path(&zst.out));
    assert!(!p.is_empty());
    let want: Vec<String> = p.keys().map(|k| format!("{k}.zst")).collect();
    assert_eq!(z.keys().cloned().collect::<Vec<_>>(), want, "file names");
    for (name, f) in &p {
        let zf = &z[&format!("{name}.zst")];
        let raw = std::fs::read(zst.out.join(&zf.rel)).unwrap();
        assert_eq!(
            raw[..4],
            [0x28, 0xb5, 0x2f, 0xfd],
            "{name}.zst is not a zstd frame"
        );
        assert_eq!(zf.text, f.text, "{name}: decoded content differs");
    }
    assert_eq!(canonical(&plain.records), canonical(&zst.records));
}

/// The text form of a JSON record: the values of RECORDS.md's table in its
/// order, `-` for null.
fn text_form(r: &Value) -> Vec<String> {
    flowlog_tests::RECORD_KEYS[..19]
        .iter()
        .map(|k| match &r[*k] {
            Value::Null => "-".to_owned(),
            Value::String(s) => s.clone(),
            v => v.to_string(),
        })
        .collect()
}

#[test]
fn text_format_is_one_line_per_record_with_dashes_for_null() {
    let pcap = wikipedia();
    let config = config_with_quiet_eni(&senders(&pcap), 600);
    let json_run = replay_ok(&config, &pcap, &[]);

    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), &config);
    let out = tmp.path().join("out");
    let run = replay(&cfg, &pcap, &out, &["--format", "text"]);
    assert_eq!(run.code, Some(0), "{run}");
    let text_files = read_store(&out);
    check_store(&text_files, &config);

    let json_files = by_path(&json_run.out);
    assert_eq!(
        text_files.len(),
        json_files.len(),
        "one text file per JSON file"
    );
    let mut saw_dash = false;
    for tf in &text_files {
        let rel = tf.rel.to_string_lossy();
        let stem = rel
            .strip_suffix(".txt")
            .unwrap_or_else(|| panic!("text file {rel} does not end in .txt"));
        let jf = &json_files[&format!("{stem}.jsonl")];
        let mut want: Vec<Vec<String>> = jf.records.iter().map(text_form).collect();
        let mut got: Vec<Vec<String>> = Vec::new();
        for line in tf.text.lines() {
            let cols: Vec<String> = line.split(' ').map(str::to_owned).collect();
            assert_eq!(
                cols.len(),
                19,
                "{rel}: a line is not the 19 values of RECORDS.md's table: {line:?}"
            );
            saw_dash |= cols.iter().any(|c| c == "-");
            got.push(cols[..19].to_vec());
        }
        assert!(tf.text.ends_with('\n'), "{rel}: last line not terminated");
        want.sort();
        got.sort();
        assert_eq!(got, want, "{rel}: text lines differ from the JSON records");
    }
    assert!(
        saw_dash,
        "no null was written (the quiet ENI's NODATA has several)"
    );
}

// ---------------------------------------------------------------------------
// Determinism

#[test]
fn same_records_with_any_number_of_workers() {
    for pcap in [wikipedia(), ftp_ipv4()] {
        let config = config_with_quiet_eni(&senders(&pcap), 60);
        let runs: Vec<(String, Replayed)> = ["1", "2", "4", "4"]
            .iter()
            .map(|w| {
                (
                    format!("--workers {w}"),
                    replay_ok(&config, &pcap, &["--workers", w]),
                )
            })
            .collect();
        let first = canonical(&runs[0].1.records);
        assert!(!first.is_empty());
        for (what, r) in &runs {
            assert_eq!(int(&r.summary, "skipped"), 0, "{what}: {}", r.summary);
            assert_eq!(
                canonical(&r.records),
                first,
                "{}: {what} gives other records than --workers 1",
                pcap.display()
            );
        }
    }
}

/// Flow tables of 65536, 64 and 16 entries per core give the same records.
/// Small tables evict flows to the exporter, which merges them back (RECORDS.md
/// "The key"); none may be skipped at these sizes (`skipped` 0, no
/// SKIPDATA). On `wikipedia` 16 and 64 entries do evict; on `ftp-ipv4` 64
/// entries hold every flow.
#[test]
fn same_records_with_small_and_large_flow_tables() {
    for pcap in [ftp_ipv4(), wikipedia()] {
        let config = config_with_quiet_eni(&senders(&pcap), 60);
        let mut results = Vec::new();
        for (fpc, workers) in [
            ("65536", "1"),
            ("64", "1"),
            ("16", "1"),
            ("64", "2"),
            ("16", "4"),
        ] {
            let r = replay_ok(
                &config,
                &pcap,
                &["--flows-per-core", fpc, "--workers", workers],
            );
            let what = format!(
                "{}: --flows-per-core {fpc} --workers {workers}",
                pcap.display()
            );
            assert_eq!(int(&r.summary, "skipped"), 0, "{what}: {}", r.summary);
            results.push((what, r));
        }
        let first = canonical(&results[0].1.records);
        assert!(!first.is_empty());
        for (what, r) in &results {
            assert_eq!(canonical(&r.records), first, "{what} gives other records");
        }
        if pcap == ftp_ipv4() {
            assert_eq!(
                int(&results[1].1.summary, "evictions"),
                0,
                "64 entries hold ftp-ipv4"
            );
        } else {
            let evicted: u64 = results
                .iter()
                .map(|(_, r)| int(&r.summary, "evictions"))
                .sum();
            assert!(
                evicted > 0,
                "small tables did not evict: the test lost its point"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// NODATA

/// The quiet ENI gets one NODATA record per window the replay covers (from
/// the first frame's window to the last's), and nothing else; more
/// generally, every ENI has, in every covered window, either OK records or
/// one NODATA record, and no record lies outside the covered windows.
#[test]
fn an_eni_that_never_talks_gets_one_nodata_per_window() {
    let pcap = ftp_ipv4();
    let s = senders(&pcap);
    for (interval, n_windows) in [(60, 2), (600, 1)] {
        let config = config_with_quiet_eni(&s, interval);
        let r = replay_ok(&config, &pcap, &[]);
        let windows = s.windows(interval);
        assert_eq!(
            windows.len(),
            n_windows,
            "the capture spans {n_windows} window(s)"
        );
        let fl = &r.summary["flow_logs"][0];
        assert_eq!(int(fl, "windows"), n_windows as u64, "{fl}");

        let quiet: Vec<&Value> = r.records.iter().filter(|x| x["eni-id"] == QUIET).collect();
        assert_eq!(quiet.len(), n_windows, "interval {interval}: {quiet:#?}");
        for (rec, w) in quiet.iter().zip(&windows) {
            assert_eq!(
                **rec,
                json!({
                    "version": 1, "account-id": config["enis"][0]["account_id"],
                    "vpc-id": VPC, "vswitch-id": config["enis"][0]["vswitch_id"],
                    "vm-id": null, "eni-id": QUIET,
                    "srcaddr": null, "dstaddr": null, "srcport": null, "dstport": null,
                    "protocol": null, "direction": null,
                    "packets": 0, "bytes": 0, "start": w, "end": w + interval - 1,
                    "tcp-flags": 0, "log-status": "NODATA", "action": null,
                    "flow-log-id": FLOW_LOG, "window-start": w,
                }),
                "interval {interval}"
            );
        }

        let covered: BTreeSet<u64> = windows.iter().copied().collect();
        let mut ok: BTreeSet<(String, u64)> = BTreeSet::new();
        let mut nodata: BTreeMap<(String, u64), usize> = BTreeMap::new();
        for rec in &r.records {
            let key = (
                rec["eni-id"].as_str().unwrap().to_owned(),
                int(rec, "window-start"),
            );
            assert!(
                covered.contains(&key.1),
                "record outside the covered windows: {rec}"
            );
            match rec["log-status"].as_str() {
                Some("OK") => {
                    ok.insert(key);
                }
                Some("NODATA") => *nodata.entry(key).or_default() += 1,
                _ => {}
            }
        }
        for eni in config["enis"].as_array().unwrap() {
            let id = eni["eni_id"].as_str().unwrap();
            for w in &covered {
                let key = (id.to_owned(), *w);
                let n = nodata.get(&key).copied().unwrap_or(0);
                if ok.contains(&key) {
                    assert_eq!(n, 0, "{id} talked in window {w} and got NODATA too");
                } else {
                    assert_eq!(n, 1, "{id} was silent in window {w}: want one NODATA");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Traffic types

/// Three VPC flow logs share one log store: `All`, `Allow` and `Drop`. With
/// no security group every packet is ACCEPT, so `Allow` gets every OK record
/// `All` gets, `Drop` none; all three get the same status records.
#[test]
fn allow_gets_accepted_records_drop_gets_only_status_records() {
    let pcap = ftp_ipv4();
    let mut config = config_with_quiet_eni(&senders(&pcap), 60);
    config["flow_logs"] = json!([
        vpc_flow_log("fl-all", "All", 60, LOG_STORE),
        vpc_flow_log("fl-allow", "Allow", 60, LOG_STORE),
        vpc_flow_log("fl-drop", "Drop", 60, LOG_STORE),
    ]);
    let r = replay_ok(&config, &pcap, &[]);
    assert_eq!(int(&r.summary, "rejected"), 0, "{}", r.summary);

    // The records of one flow log and status class, without their flow log id.
    let of = |fl: &str, ok: bool| -> Vec<String> {
        let v: Vec<Value> = r
            .records
            .iter()
            .filter(|x| x["flow-log-id"] == fl && (x["log-status"] == "OK") == ok)
            .map(|x| {
                let mut x = x.clone();
                x.as_object_mut().unwrap().remove("flow-log-id");
                x
            })
            .collect();
        canonical(&v)
    };
    let all_ok = of("fl-all", true);
    assert!(!all_ok.is_empty());
    assert!(
        r.records
            .iter()
            .filter(|x| x["log-status"] == "OK")
            .all(|x| x["action"] == "ACCEPT"),
        "a REJECT without any security group"
    );
    assert_eq!(
        of("fl-allow", true),
        all_ok,
        "Allow must get every ACCEPT record"
    );
    assert_eq!(
        of("fl-drop", true),
        Vec::<String>::new(),
        "Drop got OK records"
    );

    let all_status = of("fl-all", false);
    assert!(!all_status.is_empty(), "the quiet ENI has NODATA records");
    assert_eq!(of("fl-allow", false), all_status, "status records of Allow");
    assert_eq!(of("fl-drop", false), all_status, "status records of Drop");

    // The three share the folder; each has its own files.
    let names: BTreeSet<String> = list_files(&r.out)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for fl in ["fl-all", "fl-allow", "fl-drop"] {
        assert!(
            names.iter().any(|n| n.contains(&format!("_{fl}_"))),
            "no file of {fl}: {names:?}"
        );
    }
}
