//! `flowlogd run` on real DPDK, without hugepages (`--no-huge --no-pci`,
//! virtual devices): a capture fed through a `net_pcap` device is forwarded,
//! what the policy rejects is dropped, and the log store equals the one
//! `flowlogd replay` writes for the same capture and configuration. Each run
//! is its own process (EAL initialises once per process) with its own
//! `--file-prefix`.

use flowlog_tests::{
    config_with_ports, config_without_ports, eal_args, empty_capture, flowlogd, read_store,
    run_flowlogd, store_texts,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The example configuration with the ENIs' `port` keys removed (every ENI
/// is then reached through the uplink).
fn gen(dir: &Path, packets: u64) -> PathBuf {
    let p = dir.join("in.pcap");
    let r = run_flowlogd([
        "gen",
        "--out",
        p.to_str().unwrap(),
        "--packets",
        &packets.to_string(),
        "--seed",
        "3",
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    p
}

fn eal(prefix: &str, vdevs: &[String]) -> Vec<String> {
    eal_args(prefix, "0", vdevs)
}

fn eal_on(prefix: &str, lcores: &str, vdevs: &[String]) -> Vec<String> {
    eal_args(prefix, lcores, vdevs)
}

fn frames(p: &Path) -> Vec<Vec<u8>> {
    let c = flowlog::capture::Capture::open(p).expect("capture");
    c.frames()
        .map(|f| f.expect("frame").data.to_vec())
        .collect()
}

#[test]
fn run_fed_by_net_pcap_forwards_accepted_drops_rejected_and_logs_like_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config_without_ports(dir.path());
    let cap = gen(dir.path(), 20_000);
    let fwd = dir.path().join("fwd.pcap");
    let (run_out, replay_out) = (dir.path().join("run"), dir.path().join("replay"));
    let mut args: Vec<String> = ["run", "--json", "--stop-when-idle", "0.5", "--config"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(cfg.display().to_string());
    args.push("--out".into());
    args.push(run_out.display().to_string());
    args.push("--socket".into());
    args.push(dir.path().join("op.sock").display().to_string());
    args.push("--".into());
    args.extend(eal(
        "flrun1",
        &[format!(
            "net_pcap0,rx_pcap={},tx_pcap={}",
            cap.display(),
            fwd.display()
        )],
    ));
    let r = run_flowlogd(&args);
    assert_eq!(
        r.code,
        Some(0),
        "flowlogd run failed: {}\n{}",
        r.stdout,
        r.stderr
    );
    let s = r.summary();
    let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}"));
    assert_eq!(n("received"), 20_000);
    assert!(
        s["packet_clock"].as_bool().unwrap(),
        "net_pcap gives RX timestamps"
    );
    assert!(
        n("rejected") > 0,
        "the example policy rejects the scan: {s}"
    );
    assert_eq!(
        n("dropped"),
        n("rejected"),
        "packets dropped = packets rejected"
    );
    assert_eq!(n("tx_failed"), 0);
    assert_eq!(
        (n("skipped"), n("no_free_table")),
        (0, 0),
        "nothing skipped: {s}"
    );
    assert_eq!(n("forwarded") + n("dropped"), n("received"));
    assert_eq!(
        n("forwarded"),
        n("accepted") + n("malformed") + n("not_ip") + n("unmatched"),
        "packets forwarded = packets accepted (and those no policy judges)"
    );
    let sent = frames(&fwd);
    assert_eq!(
        sent.len() as u64,
        n("forwarded"),
        "the TX capture holds every forwarded frame"
    );
    let input = frames(&cap);
    let mut pos = 0;
    for f in &sent {
        // Forwarded frames keep their order and their bytes.
        pos += input[pos..]
            .iter()
            .position(|x| x == f)
            .expect("a forwarded frame is an input frame")
            + 1;
    }

    let r = run_flowlogd([
        "replay",
        "--quiet",
        "--json",
        "--config",
        cfg.to_str().unwrap(),
        "--pcap",
        cap.to_str().unwrap(),
        "--out",
        replay_out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let (a, b) = (store_texts(&run_out), store_texts(&replay_out));
    assert!(!a.is_empty());
    assert_eq!(a.len(), b.len(), "same files");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.0, y.0);
        assert!(
            x.1 == y.1,
            "{} differs between run and replay",
            x.0.display()
        );
    }
}

#[test]
fn run_forwards_to_the_eni_port_and_sigterm_flushes_the_open_window() {
    sigterm_case(1, "0", "flrun2");
}

#[test]
fn run_with_two_workers_stops_in_order_on_sigterm() {
    sigterm_case(2, "0,1", "flrun2w");
}

/// `flowlogd run --workers N` with eni-a1 on its own port, stopped by
/// SIGTERM once every packet went through: exit 0, the open window flushed,
/// eni-a1's frames on its port and no other's.
fn sigterm_case(workers: u32, lcores: &str, prefix: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = gen(dir.path(), 5_000);
    // eni-a1 on port 1, everything else via the uplink, port 0; port 1
    // reads an empty capture.
    let cfg = config_with_ports(dir.path(), &[("eni-a1", 1)]);
    let empty = empty_capture(dir.path());
    let (up, a1) = (dir.path().join("up.pcap"), dir.path().join("a1.pcap"));
    let out = dir.path().join("store");
    let mut args: Vec<String> = vec![
        "run".into(),
        "--json".into(),
        "--config".into(),
        cfg.display().to_string(),
    ];
    args.extend([
        "--out".to_string(),
        out.display().to_string(),
        "--uplink".into(),
        "0".into(),
        "--workers".into(),
        workers.to_string(),
        "--socket".into(),
        dir.path().join("op.sock").display().to_string(),
        "--".into(),
    ]);
    args.extend(eal_on(
        prefix,
        lcores,
        &[
            format!(
                "net_pcap0,rx_pcap={},tx_pcap={}",
                cap.display(),
                up.display()
            ),
            format!(
                "net_pcap1,rx_pcap={},tx_pcap={}",
                empty.display(),
                a1.display()
            ),
        ],
    ));
    // No --stop-when-idle: it runs until SIGTERM.
    let child = Command::new(flowlogd())
        .args(&args)
        .env("FLOWLOGD_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn flowlogd run");
    // Wait until every packet went through (the TX capture stops growing).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut last = 0;
    loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let now = std::fs::metadata(&up).map(|m| m.len()).unwrap_or(0)
            + std::fs::metadata(&a1).map(|m| m.len()).unwrap_or(0);
        if now > 0 && now == last {
            break;
        }
        last = now;
        assert!(
            std::time::Instant::now() < deadline,
            "flowlogd run made no progress"
        );
    }
    // SAFETY-free: kill(1) sends SIGTERM.
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let o = child.wait_with_output().expect("wait");
    assert_eq!(
        o.status.code(),
        Some(0),
        "orderly stop: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s: Value = serde_json::from_str(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .last()
            .expect("summary"),
    )
    .expect("json");
    let to_a1 = frames(&a1);
    assert!(!to_a1.is_empty(), "frames for eni-a1 leave on its port");
    assert!(
        to_a1.iter().all(|f| f[..6] == [2, 0, 0, 0, 0, 1]),
        "only eni-a1's frames go to its port"
    );
    assert!(
        frames(&up).iter().all(|f| f[..6] != [2, 0, 0, 0, 0, 1]),
        "none of them to the uplink"
    );
    assert_eq!(
        s["forwarded"].as_u64().unwrap(),
        (to_a1.len() + frames(&up).len()) as u64
    );
    // The open window was flushed on SIGTERM: the store holds the last one.
    let files = read_store(&out);
    assert!(
        !files.is_empty(),
        "records were written on the orderly stop"
    );
    let records: u64 = s["flow_logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["records"].as_u64().unwrap())
        .sum();
    let stored: usize = files.iter().map(|f| f.records.len()).sum();
    assert_eq!(stored as u64, records);
}

/// `flowlogd replay` (one worker) of `cap` under `cfg` into `out`.
fn replay_into(cfg: &Path, cap: &Path, out: &Path) {
    let r = run_flowlogd([
        "replay",
        "--quiet",
        "--json",
        "--config",
        cfg.to_str().unwrap(),
        "--pcap",
        cap.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
}

fn assert_same_store(run_out: &Path, replay_out: &Path) {
    let (a, b) = (store_texts(run_out), store_texts(replay_out));
    assert!(!a.is_empty());
    assert_eq!(a.len(), b.len(), "same files");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.0, y.0);
        assert!(
            x.1 == y.1,
            "{} differs between run and replay",
            x.0.display()
        );
    }
}

/// Every frame of `sent` is a frame of `input`, each used at most once
/// (several workers may interleave their frames on one port).
fn assert_subset(sent: &[Vec<u8>], input: &[Vec<u8>]) {
    let mut pool: std::collections::HashMap<&[u8], usize> = std::collections::HashMap::new();
    for f in input {
        *pool.entry(f.as_slice()).or_default() += 1;
    }
    for f in sent {
        let c = pool
            .get_mut(f.as_slice())
            .expect("a forwarded frame is an input frame");
        assert!(*c > 0, "a frame forwarded more often than it came in");
        *c -= 1;
    }
}

fn check_counts(s: &Value, received: u64, workers: u64) {
    let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}"));
    assert_eq!(n("workers"), workers);
    assert_eq!(n("received"), received);
    assert!(s["packet_clock"].as_bool().unwrap());
    assert!(!s["rss"].as_bool().unwrap(), "net_pcap has no RSS: handoff");
    assert!(
        n("handed_off") > 0,
        "some connections are the other worker's: {s}"
    );
    assert_eq!(n("handoff_dropped"), 0, "no handoff ring overflowed: {s}");
    assert!(
        n("rejected") > 0,
        "the example policy rejects the scan: {s}"
    );
    assert_eq!(
        n("dropped"),
        n("rejected"),
        "packets dropped = packets rejected"
    );
    assert_eq!(n("tx_failed"), 0);
    assert_eq!(
        (n("skipped"), n("no_free_table")),
        (0, 0),
        "nothing skipped: {s}"
    );
    assert_eq!(n("forwarded") + n("dropped"), n("received"));
    assert_eq!(
        n("forwarded"),
        n("accepted") + n("malformed") + n("not_ip") + n("unmatched")
    );
}

#[test]
fn run_with_two_workers_hands_off_by_connection_and_logs_like_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config_without_ports(dir.path());
    let cap = gen(dir.path(), 20_000);
    let fwd = dir.path().join("fwd.pcap");
    let (run_out, replay_out) = (dir.path().join("run"), dir.path().join("replay"));
    let mut args: Vec<String> = [
        "run",
        "--json",
        "--workers",
        "2",
        "--stop-when-idle",
        "0.5",
        "--config",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(cfg.display().to_string());
    args.push("--out".into());
    args.push(run_out.display().to_string());
    args.push("--socket".into());
    args.push(dir.path().join("op.sock").display().to_string());
    args.push("--".into());
    args.extend(eal_on(
        "flrun3",
        "0,1",
        &[format!(
            "net_pcap0,rx_pcap={},tx_pcap={}",
            cap.display(),
            fwd.display()
        )],
    ));
    let r = run_flowlogd(&args);
    assert_eq!(
        r.code,
        Some(0),
        "flowlogd run failed: {}\n{}",
        r.stdout,
        r.stderr
    );
    let s = r.summary();
    check_counts(&s, 20_000, 2);
    let sent = frames(&fwd);
    assert_eq!(sent.len() as u64, s["forwarded"].as_u64().unwrap());
    assert_subset(&sent, &frames(&cap));
    replay_into(&cfg, &cap, &replay_out);
    assert_same_store(&run_out, &replay_out);
}

#[test]
fn run_with_two_workers_on_two_ports_forwards_to_the_eni_port_and_logs_like_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cap = gen(dir.path(), 8_000);
    // eni-a1 on port 1 (polled by worker 1), everything else via the
    // uplink, port 0 (polled by worker 0).
    let cfg = config_with_ports(dir.path(), &[("eni-a1", 1)]);
    let empty = empty_capture(dir.path());
    let (up, a1) = (dir.path().join("up.pcap"), dir.path().join("a1.pcap"));
    let (run_out, replay_out) = (dir.path().join("run"), dir.path().join("replay"));
    let mut args: Vec<String> = vec![
        "run".into(),
        "--json".into(),
        "--workers".into(),
        "2".into(),
        "--stop-when-idle".into(),
        "0.5".into(),
        "--config".into(),
        cfg.display().to_string(),
        "--out".into(),
        run_out.display().to_string(),
        "--uplink".into(),
        "0".into(),
        "--socket".into(),
        dir.path().join("op.sock").display().to_string(),
        "--".into(),
    ];
    args.extend(eal_on(
        "flrun4",
        "0,1",
        &[
            format!(
                "net_pcap0,rx_pcap={},tx_pcap={}",
                cap.display(),
                up.display()
            ),
            format!(
                "net_pcap1,rx_pcap={},tx_pcap={}",
                empty.display(),
                a1.display()
            ),
        ],
    ));
    let r = run_flowlogd(&args);
    assert_eq!(
        r.code,
        Some(0),
        "flowlogd run failed: {}\n{}",
        r.stdout,
        r.stderr
    );
    let s = r.summary();
    check_counts(&s, 8_000, 2);
    let (to_up, to_a1) = (frames(&up), frames(&a1));
    assert!(!to_a1.is_empty(), "frames for eni-a1 leave on its port");
    assert!(to_a1.iter().all(|f| f[..6] == [2, 0, 0, 0, 0, 1]));
    assert!(to_up.iter().all(|f| f[..6] != [2, 0, 0, 0, 0, 1]));
    assert_eq!(
        s["forwarded"].as_u64().unwrap(),
        (to_a1.len() + to_up.len()) as u64
    );
    let input = frames(&cap);
    assert_subset(&to_up, &input);
    assert_subset(&to_a1, &input);
    replay_into(&cfg, &cap, &replay_out);
    assert_same_store(&run_out, &replay_out);
}

#[test]
fn run_serves_the_operator_socket_with_stats_and_a_live_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config_without_ports(dir.path());
    let cap = gen(dir.path(), 5_000);
    let sock = dir.path().join("op.sock");
    let mut args: Vec<String> = vec![
        "run".into(),
        "--json".into(),
        "--stop-when-idle".into(),
        "4".into(),
        "--config".into(),
        cfg.display().to_string(),
        "--out".into(),
        dir.path().join("store").display().to_string(),
        "--socket".into(),
        sock.display().to_string(),
        "--".into(),
    ];
    // With DPDK's telemetry on: the run registers its commands there too.
    args.extend(
        eal(
            "flrun5",
            &[format!(
                "net_pcap0,rx_pcap={},tx_pcap={}",
                cap.display(),
                dir.path().join("fwd.pcap").display()
            )],
        )
        .into_iter()
        .filter(|a| a != "--no-telemetry"),
    );
    let child = Command::new(flowlogd())
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start flowlogd run");
    let mut c = flowlog_tests::OpClient::connect(&sock);
    // Every packet read, then the figures.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let stats = loop {
        let s = c.call("stats", serde_json::json!({}));
        assert_eq!(s["ok"], true, "{s}");
        let d = &s["result"]["dispatch"];
        let sorted = ["logged", "malformed", "unmatched", "not_ip"]
            .iter()
            .map(|k| d[k].as_u64().unwrap())
            .sum::<u64>();
        if d["read"] == 5_000 && sorted == 5_000 {
            break s["result"].clone();
        }
        assert!(
            std::time::Instant::now() < until,
            "never read 5000 packets: {s}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let w = &stats["workers"][0];
    assert_eq!(w["packets"], stats["dispatch"]["logged"], "{stats}");
    assert!(w["packets"].as_u64().unwrap() > 4_900, "{stats}");
    // Forwarded to the uplink (what the policy accepted).
    assert!(w["packets_out"].as_u64().unwrap() > 4_000, "{stats}");
    assert!(w["table_capacity"].as_u64().unwrap() > 0);
    let fls = stats["flow_logs"].as_array().unwrap();
    assert!(fls
        .iter()
        .any(|f| f["flow_log_id"] == "fl-vpc1" && f["delivery_status"] == "SUCCESS"));
    let prom = c.call("stats.prometheus", serde_json::json!({}));
    let text = prom["result"]["text"].as_str().unwrap();
    assert!(
        text.contains(&format!(
            "flowlogd_worker_packets_total{{worker=\"0\"}} {}",
            w["packets"]
        )),
        "{text}"
    );
    // The same figures from DPDK's telemetry socket.
    let tsock = format!(
        "/var/run/dpdk/flrun5-{}/dpdk_telemetry.v2",
        std::process::id()
    );
    let py = "import socket, sys\n\
              s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n\
              s.connect(sys.argv[1])\n\
              s.recv(4096)\n\
              s.send(b'/flowlogd/stats')\n\
              print(s.recv(65536).decode())\n";
    let o = Command::new("python3")
        .args(["-c", py, &tsock])
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t: Value = serde_json::from_slice(&o.stdout).expect("telemetry JSON");
    let t = &t["/flowlogd/stats"];
    assert_eq!(t["received"], 5_000, "{t}");
    assert_eq!(t["logged"], w["packets"], "{t}");
    // A change while the ports are polled: in force at once, and saved.
    let v = c.call(
        "flow-logs.stop",
        serde_json::json!({"flow_log_id": "fl-vpc1"}),
    );
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["result"]["generation"], 1, "{v}");
    let saved: Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    let fl = saved["flow_logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["flow_log_id"] == "fl-vpc1")
        .unwrap()
        .clone();
    assert_eq!(fl["status"], "Inactive");
    drop(c);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!sock.exists(), "the socket file is removed at the end");
}
