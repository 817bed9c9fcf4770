//! Live changes over the operator socket during a paced replay: each change
//! takes effect at the frame the reply names, as the log store shows.
//!
//! The replay runs at 20 times the capture's speed with `--socket` (12 s
//! for the 240 s capture, so a machine busy for seconds with other tests'
//! services still sees every change land before the end); the test creates
//! a VPC flow log, attaches a new ENI, replaces a network ACL's ingress
//! rules and stops a flow log, 1.6 s apart (32 s of the capture). Each reply says
//! the first frame recorded under the change; replays of the capture cut at
//! those frames (without any socket) give what each flow log must hold.

use flowlog_tests::{flowlogd, read_store, workspace_root, OpClient as Client, ACCOUNT};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Copies frames `[from, to)` of a classic pcap to `dst`.
fn cut(src: &Path, dst: &Path, from: u64, to: u64) {
    let b = std::fs::read(src).expect("read capture");
    let le = b[0] == 0xd4 || b[0] == 0x4d;
    let rd = |at: usize| {
        let w: [u8; 4] = b[at..at + 4].try_into().expect("4 bytes");
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let mut out = b[..24].to_vec();
    let (mut at, mut i) = (24usize, 0u64);
    while at + 16 <= b.len() {
        let len = 16 + rd(at + 8) as usize;
        if i >= from && i < to {
            out.extend_from_slice(&b[at..at + len]);
        }
        at += len;
        i += 1;
    }
    std::fs::write(dst, out).expect("write cut");
}

/// Packets per ENI in the OK records of `flow_log` under `root`.
fn packets_by_eni(root: &Path, flow_log: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for f in read_store(root) {
        for r in f.records {
            if r["flow-log-id"] == flow_log && r["log-status"] == "OK" {
                *m.entry(r["eni-id"].as_str().unwrap().to_owned())
                    .or_default() += r["packets"].as_u64().unwrap();
            }
        }
    }
    m
}

fn replay_to(dir: &Path, name: &str, config: &Value, pcap: &Path) -> PathBuf {
    let cfg = dir.join(format!("{name}.json"));
    std::fs::write(&cfg, serde_json::to_vec_pretty(config).unwrap()).unwrap();
    let out = dir.join(name);
    let o = Command::new(flowlogd())
        .args(["replay", "--quiet", "--config"])
        .arg(&cfg)
        .arg("--pcap")
        .arg(pcap)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run flowlogd");
    assert!(
        o.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn vpc_flow_log(id: &str, vpc: &str, store: &str) -> Value {
    json!({
        "flow_log_id": id, "account_id": ACCOUNT, "resource_type": "VPC",
        "resource_id": vpc, "traffic_type": "All", "aggregation_interval": 60,
        "project_name": "live", "log_store_name": store, "status": "Active"
    })
}

fn in_cidr(a: &IpAddr, v4: [u8; 3], v6_prefix: &str) -> bool {
    match a {
        IpAddr::V4(v) => v.octets()[..3] == v4,
        IpAddr::V6(v) => v.to_string().starts_with(v6_prefix),
    }
}

fn live_changes(workers: &str) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let full: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("config/example.json")).unwrap(),
    )
    .unwrap();
    let full_path = d.join("full.json");
    std::fs::write(&full_path, full.to_string()).unwrap();
    let pcap = d.join("c.pcap");
    let g = Command::new(flowlogd())
        .args([
            "gen",
            "--packets",
            "12000",
            "--duration",
            "240",
            "--seed",
            "5",
            "--config",
        ])
        .arg(&full_path)
        .arg("--out")
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(g.status.success(), "{}", String::from_utf8_lossy(&g.stderr));

    // At start: no eni-b2, one flow log (VPC vpc-1).
    let b2 = full["enis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["eni_id"] == "eni-b2")
        .unwrap()
        .clone();
    let mut start = full.clone();
    start["enis"]
        .as_array_mut()
        .unwrap()
        .retain(|e| e["eni_id"] != "eni-b2");
    start["flow_logs"] = json!([vpc_flow_log("fl-vpc1", "vpc-1", "vpc1")]);
    let start_path = d.join("start.json");
    std::fs::write(&start_path, serde_json::to_vec_pretty(&start).unwrap()).unwrap();
    let sock = d.join("op.sock");
    let out = d.join("out");
    let child = Command::new(flowlogd())
        .args([
            "replay",
            "--quiet",
            "--json",
            "--pace",
            "20x",
            "--workers",
            workers,
        ])
        .arg("--config")
        .arg(&start_path)
        .arg("--pcap")
        .arg(&pcap)
        .arg("--out")
        .arg(&out)
        .arg("--socket")
        .arg(&sock)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut c = Client::connect(&sock);
    let t0 = Instant::now();
    let at = |s: f64| {
        let due = t0 + Duration::from_secs_f64(s);
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
    };
    at(1.6);
    let (f1, _) = c.change(
        "flow-logs.create",
        json!({"flow_log": vpc_flow_log("fl-vpc2", "vpc-2", "vpc2")}),
    );
    at(3.2);
    let (f2, _) = c.change("enis.attach", json!({ "eni": b2 }));
    at(4.8);
    let drop_all = json!([
        {"policy": "drop", "ip_protocol": "all", "port_range": "-1/-1", "cidr": "0.0.0.0/0"},
        {"policy": "drop", "ip_protocol": "all", "port_range": "-1/-1", "cidr": "::/0"}
    ]);
    let (f3, t3) = c.change(
        "network-acls.replace",
        json!({"network_acl_id": "nacl-1", "ingress": drop_all}),
    );
    at(6.4);
    let (f4, _) = c.change("flow-logs.stop", json!({"flow_log_id": "fl-vpc1"}));
    // Refused changes change nothing and say why.
    let v = c.call("flow-logs.stop", json!({"flow_log_id": "fl-nope"}));
    assert_eq!(v["error"]["code"], "not-found", "{v}");
    let stats = c.call("stats", json!({}));
    assert_eq!(stats["ok"], json!(true), "{stats}");
    assert!(stats["result"]["dispatch"]["read"].as_u64().unwrap() >= f4);
    drop(c);
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let frames = 12000;
    assert!(
        0 < f1 && f1 < f2 && f2 < f3 && f3 < f4 && f4 < frames,
        "the changes must land in order inside the capture: {f1} {f2} {f3} {f4}"
    );

    // The saved configuration has every change (a restart keeps them).
    let saved: Value = serde_json::from_slice(&std::fs::read(&start_path).unwrap()).unwrap();
    let fl = |id: &str| {
        saved["flow_logs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["flow_log_id"] == id)
            .cloned()
    };
    assert_eq!(fl("fl-vpc1").unwrap()["status"], "Inactive");
    assert_eq!(fl("fl-vpc2").unwrap()["status"], "Active");
    assert!(saved["enis"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["eni_id"] == "eni-b2"));
    assert_eq!(
        saved["network_acls"][0]["ingress"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // fl-vpc2 holds eni-b1 from f1 on and eni-b2 from f2 on.
    let mut with_vpc2 = full.clone();
    with_vpc2["flow_logs"] = json!([vpc_flow_log("fl-vpc2", "vpc-2", "vpc2")]);
    let from_f1 = d.join("from_f1.pcap");
    cut(&pcap, &from_f1, f1, u64::MAX);
    let from_f2 = d.join("from_f2.pcap");
    cut(&pcap, &from_f2, f2, u64::MAX);
    let a = packets_by_eni(&replay_to(d, "ref_a", &with_vpc2, &from_f1), "fl-vpc2");
    let b = packets_by_eni(&replay_to(d, "ref_b", &with_vpc2, &from_f2), "fl-vpc2");
    let live2 = packets_by_eni(&out, "fl-vpc2");
    assert!(a["eni-b1"] > 0 && b["eni-b2"] > 0, "{a:?} {b:?}");
    assert_eq!(
        live2.get("eni-b1"),
        a.get("eni-b1"),
        "eni-b1 from frame {f1}"
    );
    assert_eq!(
        live2.get("eni-b2"),
        b.get("eni-b2"),
        "eni-b2 from frame {f2}"
    );

    // fl-vpc1 holds every frame before f4 and none after.
    let before_f4 = d.join("before_f4.pcap");
    cut(&pcap, &before_f4, 0, f4);
    let r = packets_by_eni(&replay_to(d, "ref_c", &start, &before_f4), "fl-vpc1");
    let live1 = packets_by_eni(&out, "fl-vpc1");
    assert!(!r.is_empty());
    assert_eq!(live1, r, "fl-vpc1 up to frame {f4}");

    // The network ACL: ingress from outside vsw-1 to its ENIs is rejected
    // from t3 on, and was not before.
    let (mut before_ok, mut after, mut after_rejected) = (0, 0, 0);
    for f in read_store(&out) {
        for r in f.records {
            if r["flow-log-id"] != "fl-vpc1"
                || r["log-status"] != "OK"
                || r["direction"] != "in"
                || !(r["eni-id"] == "eni-a1" || r["eni-id"] == "eni-a2")
            {
                continue;
            }
            let src: IpAddr = r["srcaddr"].as_str().unwrap().parse().unwrap();
            if in_cidr(&src, [10, 0, 1], "fd00::1:") {
                continue;
            }
            let (s, e) = (r["start"].as_u64().unwrap(), r["end"].as_u64().unwrap());
            if e < t3 && r["action"] == "ACCEPT" {
                before_ok += 1;
            }
            if s > t3 {
                after += 1;
                if r["action"] == "REJECT" {
                    after_rejected += 1;
                }
            }
        }
    }
    assert!(before_ok > 0, "no accepted ingress before the ACL change");
    assert!(after > 0, "no ingress after the ACL change");
    assert_eq!(
        after_rejected, after,
        "ingress after the ACL change must all be REJECT"
    );
}

#[test]
fn live_changes_during_a_paced_replay_land_at_the_frame_they_were_applied() {
    live_changes("1");
}

#[test]
fn live_changes_with_two_workers_land_at_the_frame_they_were_applied() {
    live_changes("2");
}
