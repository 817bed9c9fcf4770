//! `flowlogctl` as a tenant meets it, on log stores that the real
//! `flowlogd replay` wrote: every figure is checked against totals this
//! test computes itself from the JSON Lines (parsed with serde_json, not
//! with flowlogctl's reader); `--explain` against a crafted configuration;
//! the report opened in headless Chromium.

use flowlog_tests::{
    config_for, read_store, replay_ok, run_flowlogd, senders, testdata, workspace_root, Replayed,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../../tests/tests/common_clickhouse/mod.rs"]
mod common_clickhouse;

// ---------------------------------------------------------------------------
// Running flowlogctl

#[derive(Debug)]
struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn ctl<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_flowlogctl"))
        .args(args)
        .output()
        .expect("run flowlogctl");
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs flowlogctl with `--output json` added; asserts exit 0.
fn ctl_json(args: &[&str]) -> Value {
    let mut a: Vec<&str> = args.to_vec();
    a.extend(["--output", "json"]);
    let o = ctl(&a);
    assert_eq!(o.code, Some(0), "flowlogctl {a:?}: {o:?}");
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{a:?}: not JSON ({e}): {o:?}"))
}

// ---------------------------------------------------------------------------
// Log stores

/// A replayed store and what is in it.
struct Store {
    _pcap_dir: tempfile::TempDir,
    replayed: Replayed,
    /// Every record, parsed with serde_json.
    records: Vec<Value>,
}

impl Store {
    fn root(&self) -> &Path {
        &self.replayed.out
    }
    fn root_str(&self) -> String {
        self.root().display().to_string()
    }
}

/// The project's generated traffic (ENIs east-west and to the Internet,
/// IPv4 and IPv6, TCP/UDP/ICMP, a telnet attempt the ACL drops and a port
/// scan the security groups reject) replayed with config/example.json plus
/// one ENI that never talks (NODATA in every window): flow logs with 60 s
/// and 300 s windows over 25 minutes, zstd JSON Lines unless `edit`
/// changes the configuration's format.
fn generated(edit: impl Fn(&mut Value)) -> Store {
    let pcap_dir = tempfile::tempdir().unwrap();
    let pcap = pcap_dir.path().join("gen.pcap");
    let run = run_flowlogd([
        "gen",
        "--out",
        pcap.to_str().unwrap(),
        "--packets",
        "20000",
        "--duration",
        "1500",
        "--seed",
        "3",
    ]);
    assert_eq!(run.code, Some(0), "flowlogd gen: {run}");
    let mut config: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("config/example.json")).unwrap(),
    )
    .unwrap();
    config["enis"].as_array_mut().unwrap().push(json!({
        "eni_id": "eni-quiet", "mac": "02:ee:00:00:00:01", "ips": ["10.0.1.200"],
        "instance_type": "ecs.g7.large", "vswitch_id": "vsw-1", "vpc_id": "vpc-1",
        "account_id": "1234567890", "vm_id": null, "port": null
    }));
    config["log_store_compress"] = json!("zstd");
    edit(&mut config);
    let parquet = config["log_store_format"] == json!("parquet");
    let replayed = if parquet {
        // The helpers read JSON Lines and text only: run the replay here.
        let dir = tempfile::tempdir().unwrap();
        let cfg = flowlog_tests::write_config(dir.path(), &config);
        let out = dir.path().join("out");
        let run = flowlog_tests::replay(&cfg, &pcap, &out, &[]);
        assert_eq!(run.code, Some(0), "replay: {run}");
        let summary = run.summary();
        Replayed {
            dir,
            out,
            run,
            summary,
            records: Vec::new(),
        }
    } else {
        replay_ok(&config, &pcap, &[])
    };
    let records = if parquet {
        Vec::new()
    } else {
        read_store(&replayed.out)
            .into_iter()
            .flat_map(|f| f.records)
            .collect::<Vec<_>>()
    };
    Store {
        _pcap_dir: pcap_dir,
        replayed,
        records,
    }
}

// ---------------------------------------------------------------------------
// The independent side: sums over the parsed records

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Sums {
    records: u64,
    packets: u64,
    bytes: u64,
}

fn u(r: &Value, k: &str) -> u64 {
    r[k].as_u64().unwrap_or_else(|| panic!("{k} of {r}"))
}

fn sums<'a>(rs: impl IntoIterator<Item = &'a Value>) -> Sums {
    let mut s = Sums::default();
    for r in rs {
        s.records += 1;
        s.packets += u(r, "packets");
        s.bytes += u(r, "bytes");
    }
    s
}

/// A value as a key part: strings as they are, numbers in decimal, null `-`.
fn part(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn peer(r: &Value) -> &Value {
    match r["direction"].as_str() {
        Some("in") => &r["srcaddr"],
        Some("out") => &r["dstaddr"],
        _ => &Value::Null,
    }
}

fn field<'a>(r: &'a Value, f: &str) -> &'a Value {
    if f == "peer" {
        peer(r)
    } else {
        &r[f]
    }
}

fn group<'a>(rs: impl IntoIterator<Item = &'a Value>, by: &[&str]) -> BTreeMap<Vec<String>, Sums> {
    let mut m: BTreeMap<Vec<String>, Vec<&Value>> = BTreeMap::new();
    for r in rs {
        m.entry(by.iter().map(|f| part(field(r, f))).collect())
            .or_default()
            .push(r);
    }
    m.into_iter().map(|(k, v)| (k, sums(v))).collect()
}

/// flowlogctl's JSON rows as key -> sums.
fn rows(v: &Value, by: &[&str]) -> Vec<(Vec<String>, Sums)> {
    v["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows: {v}"))
        .iter()
        .map(|row| {
            (
                by.iter().map(|f| part(&row[*f])).collect(),
                Sums {
                    records: u(row, "records"),
                    packets: u(row, "packets"),
                    bytes: u(row, "bytes"),
                },
            )
        })
        .collect()
}

fn total(v: &Value) -> Sums {
    Sums {
        records: u(&v["total"], "records"),
        packets: u(&v["total"], "packets"),
        bytes: u(&v["total"], "bytes"),
    }
}

fn in_cidr(v: &Value, cidr: &str) -> bool {
    let Some(a) = v.as_str().and_then(|s| s.parse::<IpAddr>().ok()) else {
        return false;
    };
    let (net, len) = cidr.split_once('/').unwrap_or((cidr, ""));
    let net: IpAddr = net.parse().unwrap();
    match (a, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let len: u32 = len.parse().unwrap_or(32);
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let len: u32 = len.parse().unwrap_or(128);
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Checks a ranked answer: every row's sums are the group's, rows are in
/// order, and no group left out ranks above the last row shown.
fn check_ranked(
    what: &str,
    got: &[(Vec<String>, Sums)],
    want: &BTreeMap<Vec<String>, Sums>,
    top: usize,
    metric: fn(&Sums) -> u64,
) {
    assert_eq!(got.len(), top.min(want.len()), "{what}: row count");
    for (k, s) in got {
        assert_eq!(want.get(k), Some(s), "{what}: group {k:?}");
    }
    for w in got.windows(2) {
        assert!(metric(&w[0].1) >= metric(&w[1].1), "{what}: order {w:?}");
    }
    if let Some(last) = got.last() {
        let shown: BTreeSet<&Vec<String>> = got.iter().map(|(k, _)| k).collect();
        for (k, s) in want {
            if !shown.contains(k) {
                assert!(metric(s) <= metric(&last.1), "{what}: {k:?} {s:?} left out");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Queries

#[test]
fn query_answers_equal_totals_computed_from_the_json_lines() {
    let st = generated(|_| {});
    let root = st.root_str();
    let all = &st.records;
    assert!(all.len() > 1000, "a store worth querying: {}", all.len());
    let q = |extra: &[&str]| {
        let mut a = vec!["query", "--store", root.as_str()];
        a.extend(extra);
        ctl_json(&a)
    };

    // Everything.
    let v = q(&[]);
    assert_eq!(total(&v), sums(all));
    assert_eq!(v["scan"]["records_read"], json!(all.len()));

    // Group-bys, complete.
    for by in [
        vec!["eni-id", "direction", "action"],
        vec!["flow-log-id", "window-start"],
        vec!["protocol", "log-status"],
        vec!["peer"],
        vec!["vm-id", "srcport"],
    ] {
        let v = q(&["--group-by", &by.join(","), "--by", "records"]);
        let got: BTreeMap<_, _> = rows(&v, &by).into_iter().collect();
        assert_eq!(got, group(all, &by), "group by {by:?}");
        assert_eq!(v["groups_total"], json!(got.len()));
    }

    // Top N, by each metric.
    let pairs = group(all, &["srcaddr", "dstaddr"]);
    for (by, metric) in [
        ("bytes", (|s: &Sums| s.bytes) as fn(&Sums) -> u64),
        ("packets", |s: &Sums| s.packets),
        ("records", |s: &Sums| s.records),
    ] {
        let v = q(&["--group-by", "srcaddr,dstaddr", "--top", "7", "--by", by]);
        check_ranked(by, &rows(&v, &["srcaddr", "dstaddr"]), &pairs, 7, metric);
        assert_eq!(v["groups_total"], json!(pairs.len()));
    }

    // Filters, each against its own predicate.
    let vm = all
        .iter()
        .find_map(|r| r["vm-id"].as_str())
        .unwrap()
        .to_owned();
    type Pred = Box<dyn Fn(&Value) -> bool>;
    let cases: Vec<(Vec<&str>, Pred)> = vec![
        (
            vec!["--src", "10.0.0.0/8"],
            Box::new(|r| in_cidr(&r["srcaddr"], "10.0.0.0/8")),
        ),
        (
            vec!["--dst", "fd00::/16,10.1.1.0/24"],
            Box::new(|r| {
                in_cidr(&r["dstaddr"], "fd00::/16") || in_cidr(&r["dstaddr"], "10.1.1.0/24")
            }),
        ),
        (
            vec!["--addr", "10.0.1.5"],
            Box::new(|r| {
                in_cidr(&r["srcaddr"], "10.0.1.5/32") || in_cidr(&r["dstaddr"], "10.0.1.5/32")
            }),
        ),
        (
            vec!["--peer", "0.0.0.0/1"],
            Box::new(|r| in_cidr(peer(r), "0.0.0.0/1")),
        ),
        (
            vec!["--protocol", "tcp"],
            Box::new(|r| r["protocol"] == json!(6)),
        ),
        (
            vec!["--protocol", "udp,58"],
            Box::new(|r| r["protocol"] == json!(17) || r["protocol"] == json!(58)),
        ),
        (
            vec!["--dstport", "1-1023"],
            Box::new(|r| {
                r["dstport"]
                    .as_u64()
                    .is_some_and(|p| (1..=1023).contains(&p))
            }),
        ),
        (
            vec!["--port", "53"],
            Box::new(|r| r["srcport"] == json!(53) || r["dstport"] == json!(53)),
        ),
        (
            vec!["--srcport", "443"],
            Box::new(|r| r["srcport"] == json!(443)),
        ),
        (
            vec!["--direction", "in"],
            Box::new(|r| r["direction"] == json!("in")),
        ),
        (
            vec!["--action", "reject"],
            Box::new(|r| r["action"] == json!("REJECT")),
        ),
        (
            vec!["--log-status", "NODATA"],
            Box::new(|r| r["log-status"] == json!("NODATA")),
        ),
        (
            vec!["--eni-id", "eni-a1,eni-b2"],
            Box::new(|r| r["eni-id"] == json!("eni-a1") || r["eni-id"] == json!("eni-b2")),
        ),
        (
            vec!["--flow-log-id", "fl-vpc1"],
            Box::new(|r| r["flow-log-id"] == json!("fl-vpc1")),
        ),
        (
            vec!["--vpc-id", "vpc-2"],
            Box::new(|r| r["vpc-id"] == json!("vpc-2")),
        ),
        (
            vec!["--vswitch-id", "vsw-3"],
            Box::new(|r| r["vswitch-id"] == json!("vsw-3")),
        ),
        (
            vec!["--account-id", "1234567890"],
            Box::new(|r| r["account-id"] == json!("1234567890")),
        ),
        (vec!["--vm-id", vm.as_str()], {
            let vm = vm.clone();
            Box::new(move |r| r["vm-id"] == json!(vm))
        }),
        (
            vec!["--tcp-flags", "SYN"],
            Box::new(|r| r["tcp-flags"].as_u64().is_some_and(|f| f & 2 == 2)),
        ),
        (
            vec!["--min-bytes", "10000"],
            Box::new(|r| u(r, "bytes") >= 10_000),
        ),
        (
            vec![
                "--src",
                "10.0.0.0/8",
                "--protocol",
                "tcp",
                "--direction",
                "out",
            ],
            Box::new(|r| {
                in_cidr(&r["srcaddr"], "10.0.0.0/8")
                    && r["protocol"] == json!(6)
                    && r["direction"] == json!("out")
            }),
        ),
    ];
    for (args, pred) in &cases {
        let want: Vec<&Value> = all.iter().filter(|r| pred(r)).collect();
        assert!(
            !want.is_empty() || args[0] == "--min-bytes",
            "{args:?} selects something"
        );
        let v = q(args);
        assert_eq!(total(&v), sums(want.iter().copied()), "filter {args:?}");
        // The same filter with a group-by.
        let mut a = args.clone();
        a.extend(["--group-by", "eni-id,protocol"]);
        let got: BTreeMap<_, _> = rows(&q(&a), &["eni-id", "protocol"]).into_iter().collect();
        assert_eq!(
            got,
            group(want, &["eni-id", "protocol"]),
            "filter {args:?} by eni,protocol"
        );
    }

    // Time ranges: [from, to) on `start`, files outside skipped unread.
    let starts: BTreeSet<u64> = all.iter().map(|r| u(r, "start")).collect();
    let (lo, hi) = (*starts.first().unwrap(), *starts.last().unwrap());
    for (from, to) in [
        (lo + 300, lo + 420),
        (lo + 61, hi - 200),
        (lo, lo + 60),
        (hi, hi + 1),
    ] {
        let want: Vec<&Value> = all
            .iter()
            .filter(|r| (from..to).contains(&u(r, "start")))
            .collect();
        let v = q(&["--from", &from.to_string(), "--to", &to.to_string()]);
        assert_eq!(
            total(&v),
            sums(want.iter().copied()),
            "range [{from}, {to})"
        );
        assert!(
            v["scan"]["files_skipped"].as_u64().unwrap() > 0,
            "range [{from}, {to}) skips files: {}",
            v["scan"]
        );
        let by = ["eni-id", "window-start"];
        let got: BTreeMap<_, _> = rows(
            &q(&[
                "--from",
                &from.to_string(),
                "--to",
                &to.to_string(),
                "--group-by",
                &by.join(","),
            ]),
            &by,
        )
        .into_iter()
        .collect();
        assert_eq!(got, group(want, &by), "range [{from}, {to}) by eni,window");
    }
    // RFC 3339 (with an offset) means the same second.
    let from = lo + 300;
    let v1 = q(&[
        "--from",
        &from.to_string(),
        "--to",
        &(from + 600).to_string(),
    ]);
    let rfc = |s: u64| {
        let out = Command::new("date")
            .args([
                "-u",
                "-d",
                &format!("@{}", s + 8 * 3600),
                "+%Y-%m-%dT%H:%M:%S+08:00",
            ])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let v2 = q(&["--from", &rfc(from), "--to", &rfc(from + 600)]);
    assert_eq!(v1["total"], v2["total"]);
    assert_eq!(v1["scan"], v2["scan"]);

    // CSV: the same rows, exact values, a header.
    let by = ["srcaddr", "dstaddr", "protocol"];
    let j = q(&["--group-by", &by.join(","), "--top", "15"]);
    let o = ctl(&[
        "query",
        "--store",
        &root,
        "--group-by",
        &by.join(","),
        "--top",
        "15",
        "--output",
        "csv",
    ]);
    assert_eq!(o.code, Some(0), "{o:?}");
    let mut lines = o.stdout.lines();
    assert_eq!(
        lines.next(),
        Some("srcaddr,dstaddr,protocol,records,packets,bytes")
    );
    let csv_rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    let json_rows: Vec<Vec<String>> = j["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            [
                "srcaddr", "dstaddr", "protocol", "records", "packets", "bytes",
            ]
            .iter()
            .map(|k| match &r[*k] {
                Value::Null => String::new(),
                v => part(v),
            })
            .collect()
        })
        .collect();
    assert_eq!(csv_rows, json_rows);

    // The table: aligned, bytes humanised, packets with separators.
    let o = ctl(&[
        "query",
        "--store",
        &root,
        "--group-by",
        "eni-id",
        "--top",
        "3",
    ]);
    assert_eq!(o.code, Some(0), "{o:?}");
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(
        lines[0].starts_with("eni-id") && lines[0].ends_with("bytes"),
        "{}",
        o.stdout
    );
    assert!(lines[1].starts_with("------"), "{}", o.stdout);
    assert!(
        lines[2..5]
            .iter()
            .all(|l| l.ends_with("iB") && l.len() == lines[0].len()),
        "{}",
        o.stdout
    );
    assert!(lines[5].contains("top 3 of"), "{}", o.stdout);
}

#[test]
fn presets_answer_like_their_queries() {
    let st = generated(|_| {});
    let root = st.root_str();
    let all = &st.records;

    let v = ctl_json(&["top-talkers", "--store", &root]);
    let ok: Vec<&Value> = all
        .iter()
        .filter(|r| r["log-status"] == json!("OK"))
        .collect();
    check_ranked(
        "top-talkers",
        &rows(&v, &["srcaddr", "dstaddr"]),
        &group(ok.iter().copied(), &["srcaddr", "dstaddr"]),
        10,
        |s| s.bytes,
    );

    let by = ["eni-id", "direction", "peer", "protocol", "dstport"];
    let v = ctl_json(&["rejected", "--store", &root, "--top", "1000"]);
    let rej: Vec<&Value> = all
        .iter()
        .filter(|r| r["action"] == json!("REJECT"))
        .collect();
    assert!(!rej.is_empty(), "the generated traffic has rejected flows");
    let got: BTreeMap<_, _> = rows(&v, &by).into_iter().collect();
    assert_eq!(got, group(rej, &by));

    // Egress: out, ACCEPT, OK, outside the VPC's vSwitch CIDRs.
    let config: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("config/example.json")).unwrap(),
    )
    .unwrap();
    let mut nets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for v in config["vswitches"].as_array().unwrap() {
        let e = nets
            .entry(v["vpc_id"].as_str().unwrap().to_owned())
            .or_default();
        for k in ["cidr", "ipv6_cidr"] {
            if let Some(c) = v[k].as_str() {
                e.push(c.to_owned());
            }
        }
    }
    let leaving: Vec<&Value> = all
        .iter()
        .filter(|r| {
            r["direction"] == json!("out")
                && r["action"] == json!("ACCEPT")
                && r["log-status"] == json!("OK")
                && !nets[r["vpc-id"].as_str().unwrap()]
                    .iter()
                    .any(|c| in_cidr(&r["dstaddr"], c))
        })
        .collect();
    assert!(!leaving.is_empty(), "the generated traffic leaves the VPC");
    let cfg = workspace_root().join("config/example.json");
    let v = ctl_json(&[
        "egress",
        "--store",
        &root,
        "--config",
        cfg.to_str().unwrap(),
        "--top",
        "5",
    ]);
    check_ranked(
        "egress",
        &rows(&v, &["eni-id", "dstaddr"]),
        &group(leaving.iter().copied(), &["eni-id", "dstaddr"]),
        5,
        |s| s.bytes,
    );
    assert_eq!(total(&v), sums(leaving.iter().copied()));

    let by = ["eni-id", "window-start", "log-status"];
    let v = ctl_json(&["health", "--store", &root]);
    let missing: Vec<&Value> = all
        .iter()
        .filter(|r| r["log-status"] != json!("OK"))
        .collect();
    assert!(!missing.is_empty(), "an ENI without traffic gives NODATA");
    let got = rows(&v, &by);
    assert_eq!(
        got.iter().cloned().collect::<BTreeMap<_, _>>(),
        group(missing, &by)
    );
    let order: Vec<(String, u64)> = got
        .iter()
        .map(|(k, _)| (k[0].clone(), k[1].parse().unwrap()))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "health is in ENI, then time order");
}

#[test]
fn parquet_and_text_stores_answer_like_json_lines() {
    let jsonl = generated(|_| {});
    let parquet = generated(|c| c["log_store_format"] = json!("parquet"));
    let text = generated(|c| c["log_store_format"] = json!("text"));
    let files = |s: &Store, ext: &str| {
        flowlog_tests::list_files(s.root())
            .iter()
            .filter(|p| p.to_str().unwrap().ends_with(ext))
            .count()
    };
    assert!(files(&parquet, ".parquet") > 0, "parquet files written");
    assert!(files(&text, ".txt.zst") > 0, "text files written");
    let by =
        "eni-id,direction,action,srcaddr,dstaddr,srcport,dstport,protocol,window-start,flow-log-id";
    let ask = |s: &Store| {
        let mut v = ctl_json(&[
            "query",
            "--store",
            &s.root_str(),
            "--group-by",
            by,
            "--by",
            "key",
        ]);
        v.as_object_mut().unwrap().remove("scan");
        v
    };
    let want = ask(&jsonl);
    assert_eq!(ask(&parquet), want, "parquet");
    assert_eq!(ask(&text), want, "text");
    let from = jsonl.records.iter().map(|r| u(r, "start")).min().unwrap() + 200;
    let ranged = |s: &Store| {
        ctl_json(&[
            "query",
            "--store",
            &s.root_str(),
            "--from",
            &from.to_string(),
            "--to",
            &(from + 300).to_string(),
            "--src",
            "10.0.0.0/8",
            "--group-by",
            "eni-id",
        ])["rows"]
            .clone()
    };
    assert_eq!(ranged(&parquet), ranged(&jsonl));
}

#[test]
fn listing_and_exit_codes() {
    let st = generated(|_| {});
    let root = st.root_str();
    let v = ctl_json(&[
        "query", "--store", &root, "--list", "--limit", "5", "--action", "REJECT",
    ]);
    let rs = v["rows"].as_array().unwrap();
    assert_eq!(rs.len(), 5);
    let rej: Vec<&Value> = st
        .records
        .iter()
        .filter(|r| r["action"] == json!("REJECT"))
        .collect();
    assert_eq!(v["matched"], json!(rej.len()));
    for r in rs {
        assert!(
            rej.iter().any(|x| {
                x.as_object()
                    .unwrap()
                    .iter()
                    .all(|(k, val)| r.get(k).is_none_or(|got| got == val))
            }),
            "{r} is one of the records"
        );
    }
    // Usage errors: 2, with a message that says what to do.
    for (args, says) in [
        (vec!["query"], "--store DIR"),
        (
            vec!["query", "--store", "/nonexistent/store"],
            "flowlogd --out",
        ),
        (
            vec!["query", "--store", &root, "--src", "10.0.0.0/33"],
            "10.0.0.0/8",
        ),
        (
            vec!["query", "--store", &root, "--from", "noon"],
            "RFC 3339",
        ),
        (
            vec!["query", "--store", &root, "--from", "200", "--to", "100"],
            "not before",
        ),
        (
            vec!["query", "--store", &root, "--group-by", "bogus"],
            "srcaddr",
        ),
        (vec!["query", "--store", &root, "--protocol", "tpc"], "tcp"),
        (
            vec!["query", "--store", &root, "--by", "size"],
            "bytes, packets",
        ),
        (
            vec!["query", "--store", &root, "--output", "xml"],
            "table, json or csv",
        ),
        (vec!["query", "--no-such-flag"], "--no-such-flag"),
        (vec!["rejected", "--store", &root, "--explain"], "--config"),
        (
            vec!["egress", "--store", &root, "--config", "/nonexistent.json"],
            "nonexistent.json",
        ),
    ] {
        let o = ctl(&args);
        assert_eq!(o.code, Some(2), "{args:?}: {o:?}");
        assert!(
            o.stderr.contains(says),
            "{args:?} should say {says:?}: {}",
            o.stderr
        );
    }
    // A runtime failure: 1.
    let bad = tempfile::tempdir().unwrap();
    std::fs::write(
        bad.path().join("h_fl_60.jsonl"),
        "{\"bytes\":1}\nnot json\n",
    )
    .unwrap();
    let o = ctl(&["query", "--store", bad.path().to_str().unwrap()]);
    assert_eq!(o.code, Some(1), "{o:?}");
    assert!(o.stderr.contains("h_fl_60.jsonl:2"), "{}", o.stderr);
    let o = ctl(&["--help"]);
    assert_eq!(o.code, Some(0));
    assert!(
        o.stdout.contains("top-talkers") && o.stdout.contains("report"),
        "{}",
        o.stdout
    );
}

// ---------------------------------------------------------------------------
// Explain

/// The wikipedia capture with every ENI behind one security group and its
/// vSwitch behind one network ACL: the group accepts all ingress (IPv4 and
/// IPv6, priority 10) but drops DNS queries (udp 53, priority 1, rule 3);
/// the ACL drops inbound HTTP (tcp 80, rule 2, after an accept for a
/// network nobody uses).
#[test]
fn explain_names_the_rule_that_rejects() {
    let pcap = testdata().join("zeek/wikipedia/wikipedia.pcap");
    let mut config = config_for(&senders(&pcap));
    for e in config["enis"].as_array_mut().unwrap() {
        e["security_group_ids"] = json!(["sg-t"]);
    }
    config["vswitches"][0]["network_acl_id"] = json!("nacl-t");
    config["security_groups"] = json!([{ "security_group_id": "sg-t", "rules": [
        { "direction": "ingress", "policy": "accept", "priority": 10, "ip_protocol": "all", "cidr": "0.0.0.0/0" },
        { "direction": "ingress", "policy": "accept", "priority": 10, "ip_protocol": "all", "cidr": "::/0" },
        { "direction": "ingress", "policy": "drop", "priority": 1, "ip_protocol": "udp", "port_range": "53/53", "cidr": "0.0.0.0/0" }
    ]}]);
    config["network_acls"] = json!([{ "network_acl_id": "nacl-t", "egress": [], "ingress": [
        { "policy": "accept", "ip_protocol": "tcp", "port_range": "80/80", "cidr": "192.0.2.0/24" },
        { "policy": "drop", "ip_protocol": "tcp", "port_range": "80/80", "cidr": "0.0.0.0/0" }
    ]}]);
    let r = replay_ok(&config, &pcap, &[]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.json");
    std::fs::write(&cfg, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let records: Vec<Value> = read_store(&r.out)
        .into_iter()
        .flat_map(|f| f.records)
        .collect();
    let v = ctl_json(&[
        "rejected",
        "--store",
        r.out.to_str().unwrap(),
        "--explain",
        "--config",
        cfg.to_str().unwrap(),
        "--top",
        "1000",
    ]);
    let rows = v["rows"].as_array().unwrap();
    let rejected = records
        .iter()
        .filter(|r| r["action"] == json!("REJECT"))
        .count() as u64;
    assert_eq!(v["total"]["records"], json!(rejected));
    let mut seen = BTreeSet::new();
    for row in rows {
        let (proto, port, dir) = (&row["protocol"], &row["dstport"], &row["direction"]);
        let want = if *dir == json!("in") && *proto == json!(6) && *port == json!(80) {
            "nacl-t ingress rule 2 (drop tcp 80/80 from 0.0.0.0/0)"
        } else if *dir == json!("in") && *proto == json!(17) && *port == json!(53) {
            "sg-t rule 3 (ingress drop udp 53/53 from 0.0.0.0/0, priority 1)"
        } else {
            panic!("only DNS queries and inbound HTTP are rejected: {row}")
        };
        assert_eq!(row["explanation"], json!(want), "{row}");
        seen.insert(want);
    }
    assert_eq!(seen.len(), 2, "both rules reject something: {rows:?}");

    // The table form shows the same explanation column.
    let o = ctl(&[
        "rejected",
        "--store",
        r.out.to_str().unwrap(),
        "--explain",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(o.code, Some(0), "{o:?}");
    assert!(
        o.stdout.lines().next().unwrap().ends_with("explanation"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("sg-t rule 3 (ingress drop udp 53/53"),
        "{}",
        o.stdout
    );
}

// ---------------------------------------------------------------------------
// The report in a browser

/// The `data-key` / `data-value` pairs of a page.
fn figures(html: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    let mut rest = html;
    while let Some(i) = rest.find("data-key=\"") {
        rest = &rest[i + 10..];
        let end = rest.find('"').unwrap();
        let key = rest[..end]
            .replace("&gt;", ">")
            .replace("&lt;", "<")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&");
        let j = rest.find("data-value=\"").unwrap();
        let after = &rest[j + 12..];
        let v: u64 = after[..after.find('"').unwrap()].parse().unwrap();
        // The cell's text is the same exact number.
        let text_at = after.find('>').unwrap() + 1;
        let text = &after[text_at..text_at + after[text_at..].find('<').unwrap()];
        assert_eq!(text, v.to_string(), "{key}: cell text");
        m.insert(key, v);
    }
    m
}

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(o) = Command::new("which").arg(name).output() {
            if o.status.success() {
                return PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            }
        }
    }
    panic!("chromium is not installed: run scripts/setup.sh (it installs Debian's chromium)");
}

fn headless(args: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let mut a: Vec<String> = vec![
        "120".into(),
        chromium().display().to_string(),
        "--headless".into(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-dev-shm-usage".into(),
        format!("--user-data-dir={}", profile.path().display()),
    ];
    a.extend(args.iter().map(|s| s.to_string()));
    Command::new("timeout")
        .args(&a)
        .output()
        .expect("run chromium")
}

#[test]
fn report_in_headless_chromium_shows_the_query_figures() {
    let st = generated(|_| {});
    let root = st.root_str();
    let cfg = workspace_root().join("config/example.json");
    let cfg = cfg.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let html_path = dir.path().join("report.html");
    let o = ctl(&[
        "report",
        "--store",
        &root,
        "--config",
        cfg,
        "--out",
        html_path.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.code, Some(0), "{o:?}");
    let summary: Value = serde_json::from_str(&o.stdout).unwrap();
    let html = std::fs::read_to_string(&html_path).unwrap();

    // Self-contained: no script, no stylesheet or font fetched, nothing linked.
    for bad in [
        "<script",
        "<link",
        "@import",
        "@font-face",
        "src=\"http",
        "href=\"http",
        "url(",
    ] {
        assert!(!html.contains(bad), "the page contains {bad:?}");
    }
    for t in [
        "Bytes over time per ENI",
        "Top 10 talkers by bytes",
        "Rejected flows by packets",
        "Traffic leaving the VPC by bytes",
        "bytes per window (",
        "window start (UTC",
    ] {
        assert!(html.contains(t), "the page shows {t:?}");
    }
    assert!(html.matches("<svg").count() >= 4, "four charts");

    // A screenshot without errors.
    let shot = dir.path().join("shot.png");
    let out = headless(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1400,3000",
        &format!("file://{}", html_path.display()),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "chromium --screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 20_000,
        "a screenshot with something on it: {size} bytes"
    );
    let mut png = [0u8; 8];
    std::fs::File::open(&shot)
        .unwrap()
        .read_exact(&mut png)
        .unwrap();
    assert_eq!(&png, b"\x89PNG\r\n\x1a\n");

    // The DOM as the browser built it carries the figures of the queries.
    let out = headless(&["--dump-dom", &format!("file://{}", html_path.display())]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "chromium --dump-dom: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    let shown = figures(&dom);
    assert!(shown.len() > 50, "{} figures", shown.len());
    assert_eq!(
        serde_json::to_value(&shown).unwrap(),
        summary["figures"],
        "the DOM shows what the report wrote"
    );

    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    let mut put = |prefix: String, row: &Value, metrics: &[&str]| {
        for m in metrics {
            want.insert(format!("{prefix}/{m}"), u(row, m));
        }
    };
    let run = |cmd: &str, extra: &[&str]| {
        let mut a = vec![cmd, "--store", root.as_str()];
        a.extend(extra);
        ctl_json(&a)
    };
    let t = run("query", &[]);
    put(
        "summary".into(),
        &t["total"],
        &["records", "packets", "bytes"],
    );
    for r in run("top-talkers", &[])["rows"].as_array().unwrap() {
        put(
            format!(
                "top-talkers/{}->{}",
                part(&r["srcaddr"]),
                part(&r["dstaddr"])
            ),
            r,
            &["bytes", "packets", "records"],
        );
    }
    for r in run("rejected", &["--top", "10"])["rows"]
        .as_array()
        .unwrap()
    {
        let k: Vec<String> = ["eni-id", "direction", "peer", "protocol", "dstport"]
            .iter()
            .map(|f| part(&r[*f]))
            .collect();
        put(
            format!("rejected/{}", k.join("/")),
            r,
            &["packets", "bytes", "records"],
        );
    }
    for r in run("egress", &["--config", cfg, "--top", "10"])["rows"]
        .as_array()
        .unwrap()
    {
        put(
            format!("egress/{}->{}", part(&r["eni-id"]), part(&r["dstaddr"])),
            r,
            &["bytes", "packets", "records"],
        );
    }
    for r in run("health", &[])["rows"].as_array().unwrap() {
        put(
            format!(
                "health/{}/{}/{}",
                part(&r["eni-id"]),
                part(&r["window-start"]),
                part(&r["log-status"])
            ),
            r,
            &["records", "packets", "bytes"],
        );
    }
    for r in run(
        "query",
        &["--log-status", "OK", "--group-by", "eni-id,window-start"],
    )["rows"]
        .as_array()
        .unwrap()
    {
        put(
            format!(
                "bytes-over-time/{}/{}",
                part(&r["eni-id"]),
                part(&r["window-start"])
            ),
            r,
            &["bytes", "packets", "records"],
        );
    }
    assert_eq!(shown, want, "the page's figures are the queries' answers");
    // And the summary equals the records themselves.
    assert_eq!(shown["summary/bytes"], sums(&st.records).bytes);
}

// ---------------------------------------------------------------------------
// ClickHouse

#[test]
fn clickhouse_sql_is_printed_and_sent_over_http() {
    let o = ctl(&[
        "rejected",
        "--print-sql",
        "--database",
        "fl",
        "--table",
        "recs",
        "--src",
        "10.0.0.0/8",
        "--from",
        "2024-01-01T00:00:00Z",
        "--to",
        "1704070800",
    ]);
    assert_eq!(o.code, Some(0), "{o:?}");
    for s in [
        "SELECT `eni_id` AS g0, `direction` AS g1,",
        "FROM `fl`.`recs`",
        "`action` IN ('REJECT')",
        "IPv4StringToNum(`srcaddr`) BETWEEN 167772160 AND 184549375",
        "`start` >= toDateTime(1704067200)",
        "`start` < toDateTime(1704070800)",
        "GROUP BY g0, g1, g2, g3, g4 WITH TOTALS",
        "ORDER BY packets DESC",
        "LIMIT 20",
    ] {
        assert!(o.stdout.contains(s), "SQL lacks {s:?}:\n{}", o.stdout);
    }
    assert!(
        o.stdout.contains("multiIf(direction = 'in', srcaddr"),
        "{}",
        o.stdout
    );

    // A stand-in for ClickHouse's HTTP interface: it checks the request and
    // answers as `FORMAT JSON` does (64-bit integers unquoted or quoted).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).unwrap();
            req.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&req);
            if let Some(h) = text.find("\r\n\r\n") {
                let len: usize = text[..h]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if req.len() >= h + 4 + len {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        let body = r#"{"meta":[],"data":[
            {"g0":"10.0.0.1","g1":"8.8.8.8","records":"3","packets":"30","bytes":"3000"},
            {"g0":"10.0.0.2","g1":"1.1.1.1","records":1,"packets":10,"bytes":4000}],
            "totals":{"g0":"","g1":"","records":"9","packets":"99","bytes":"9999"},
            "rows":2,"rows_before_limit_at_least":5}"#;
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(resp.as_bytes()).unwrap();
        String::from_utf8_lossy(&req).into_owned()
    });
    let v = ctl_json(&[
        "top-talkers",
        "--clickhouse",
        &format!("http://127.0.0.1:{port}"),
        "--top",
        "2",
    ]);
    let req = server.join().unwrap();
    assert!(req.starts_with("POST /?"), "{req}");
    assert!(req.contains("database=flowlogs"), "{req}");
    assert!(req.contains("FROM `flowlogs`.`records`"), "{req}");
    assert!(req.contains("FORMAT JSON"), "{req}");
    assert!(req.contains("`log_status` IN ('OK')"), "{req}");
    assert_eq!(
        rows(&v, &["srcaddr", "dstaddr"]),
        vec![
            (
                vec!["10.0.0.2".into(), "1.1.1.1".into()],
                Sums {
                    records: 1,
                    packets: 10,
                    bytes: 4000
                }
            ),
            (
                vec!["10.0.0.1".into(), "8.8.8.8".into()],
                Sums {
                    records: 3,
                    packets: 30,
                    bytes: 3000
                }
            ),
        ]
    );
    assert_eq!(
        total(&v),
        Sums {
            records: 9,
            packets: 99,
            bytes: 9999
        }
    );
    assert_eq!(v["groups_total"], json!(5));

    // Nobody listening: a runtime error that names the URL.
    let o = ctl(&[
        "top-talkers",
        "--clickhouse",
        &format!("http://127.0.0.1:{port}"),
    ]);
    assert_eq!(o.code, Some(1), "{o:?}");
    assert!(o.stderr.contains("cannot reach ClickHouse"), "{}", o.stderr);
    let o = ctl(&["top-talkers", "--clickhouse", "https://example.invalid"]);
    assert_eq!(o.code, Some(2), "{o:?}");
}

/// The same questions against a real `clickhouse-server` (Debian's, from
/// scripts/setup.sh) holding the same records as a local store: the
/// answers agree, so the SQL (CIDR ranges, the peer, enums, DateTime
/// times, WITH TOTALS) means what the local reader means.
#[test]
fn clickhouse_answers_like_the_local_store() {
    let st = generated(|_| {});
    let root = st.root_str();
    let dir = tempfile::tempdir().unwrap();
    let server = common_clickhouse::Server::start(&dir.path().join("ch"));
    server.create_table("fl", "recs");
    // The records as the sink's columns: `-` written `_`, batch_id 0.
    let mut body = String::new();
    for r in &st.records {
        let mut o = serde_json::Map::new();
        for (k, v) in r.as_object().unwrap() {
            o.insert(k.replace('-', "_"), v.clone());
        }
        o.insert("batch_id".into(), json!(0));
        body.push_str(&serde_json::to_string(&o).unwrap());
        body.push('\n');
    }
    server.query(&format!("INSERT INTO fl.recs FORMAT JSONEachRow\n{body}"));
    let url = server.url();
    let starts: BTreeSet<u64> = st.records.iter().map(|r| u(r, "start")).collect();
    let from = (starts.first().unwrap() + 200).to_string();
    let to = (starts.first().unwrap() + 700).to_string();
    for args in [
        vec!["query"],
        vec![
            "query",
            "--group-by",
            "eni-id,direction,action",
            "--by",
            "packets",
        ],
        vec![
            "query",
            "--group-by",
            "window-start,flow-log-id",
            "--by",
            "key",
        ],
        vec![
            "query",
            "--src",
            "10.0.1.0/24,fd00::/16",
            "--group-by",
            "srcaddr",
        ],
        vec![
            "query",
            "--peer",
            "0.0.0.0/1",
            "--protocol",
            "tcp,udp",
            "--group-by",
            "peer",
        ],
        vec![
            "query",
            "--from",
            &from,
            "--to",
            &to,
            "--dstport",
            "1-1024",
            "--group-by",
            "dstport",
        ],
        vec!["query", "--vm-id", "-", "--group-by", "eni-id,log-status"],
        vec!["top-talkers", "--top", "1000"],
        vec!["rejected", "--top", "1000"],
        vec!["health"],
    ] {
        let local = ctl_json(&[&args[..], &["--store", root.as_str()]].concat());
        let remote = ctl_json(
            &[
                &args[..],
                &[
                    "--clickhouse",
                    url.as_str(),
                    "--database",
                    "fl",
                    "--table",
                    "recs",
                ],
            ]
            .concat(),
        );
        let cols: Vec<String> = serde_json::from_value(local["columns"].clone()).unwrap();
        let by: Vec<&str> = cols
            .iter()
            .map(String::as_str)
            .filter(|c| !["records", "packets", "bytes"].contains(c))
            .collect();
        let l: BTreeMap<_, _> = rows(&local, &by).into_iter().collect();
        let r: BTreeMap<_, _> = rows(&remote, &by).into_iter().collect();
        assert!(!l.is_empty(), "{args:?} answers something");
        assert_eq!(r, l, "{args:?}: ClickHouse and the local store");
        assert_eq!(total(&remote), total(&local), "{args:?}: totals");
    }
}
