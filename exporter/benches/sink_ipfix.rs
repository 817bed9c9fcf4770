//! IPFIX sink throughput: one 1M-record window, encoded and sent over UDP
//! to a receiver on loopback (a thread that drains the socket), beside JSON
//! Lines encoding of the same window into a Vec. Median of 5 runs each.
//!
//! `cargo bench -p exporter --bench sink_ipfix`; prints one `BENCH {json}`
//! line.

use exporter::config::{IpfixSink as IpfixOpts, Transport};
use exporter::record::{Action, Direction, LogStatus, Record, VERSION};
use exporter::sink::ipfix::IpfixSink;
use exporter::sink::{Deliver, Window};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RECORDS: usize = 1_000_000;
const RUNS: usize = 5;
const WINDOW: u64 = 1_700_000_400;

/// A realistic mix: 70% IPv4 TCP, 18% IPv4 UDP, 7% IPv6 TCP/UDP, 3% ICMP,
/// 1% ICMPv6, 1% NODATA; 64 ENIs with cloud-like ids.
fn window() -> Window {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let enis: Vec<(String, String)> = (0..64)
        .map(|i| {
            (
                format!("eni-bp1{:017x}", 0x5a5a_0000_0000u64 + i * 7919),
                format!("i-bp1{:017x}", 0x3c3c_0000_0000u64 + i * 104_729),
            )
        })
        .collect();
    let records = (0..RECORDS)
        .map(|_| {
            let r = rnd();
            let (eni, vm) = &enis[(r % 64) as usize];
            let class = (r >> 8) % 100;
            let v4 = |a: u64| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (a as u32 & 0xffff)));
            let v6 = |a: u64| IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, a as u16));
            let (src, dst, proto, sport, dport) = match class {
                0..70 => (v4(r >> 16), v4(r >> 32), 6, (r >> 20) as u16 | 1024, 443),
                70..88 => (v4(r >> 16), v4(r >> 32), 17, (r >> 20) as u16, 53),
                88..95 => (
                    v6(r >> 16),
                    v6(r >> 32),
                    if r & 1 == 0 { 6 } else { 17 },
                    (r >> 20) as u16,
                    80,
                ),
                95..98 => (v4(r >> 16), v4(r >> 32), 1, 0, 8 * 256),
                98 => (v6(r >> 16), v6(r >> 32), 58, 0, 128 * 256),
                _ => {
                    return Record {
                        version: VERSION,
                        account_id: "1582376543210987".into(),
                        vpc_id: "vpc-bp1qpo0kug3a20qqe0abc".into(),
                        vswitch_id: "vsw-bp1s5fnvk4gn2tws0xyz".into(),
                        vm_id: Some(vm.clone()),
                        eni_id: eni.clone(),
                        srcaddr: None,
                        dstaddr: None,
                        srcport: None,
                        dstport: None,
                        protocol: None,
                        direction: None,
                        packets: 0,
                        bytes: 0,
                        start: WINDOW,
                        end: WINDOW + 599,
                        tcp_flags: 0,
                        log_status: LogStatus::NoData,
                        action: None,
                        flow_log_id: "fl-bp1a8k3n2m5v7c9x0z".into(),
                        window_start: WINDOW,
                    }
                }
            };
            let packets = 1 + (r >> 40) % 2000;
            Record {
                version: VERSION,
                account_id: "1582376543210987".into(),
                vpc_id: "vpc-bp1qpo0kug3a20qqe0abc".into(),
                vswitch_id: "vsw-bp1s5fnvk4gn2tws0xyz".into(),
                vm_id: Some(vm.clone()),
                eni_id: eni.clone(),
                srcaddr: Some(src),
                dstaddr: Some(dst),
                srcport: Some(sport),
                dstport: Some(dport),
                protocol: Some(proto),
                direction: Some(if r & 2 == 0 {
                    Direction::In
                } else {
                    Direction::Out
                }),
                packets,
                bytes: packets * (40 + (r >> 50) % 1400),
                start: WINDOW + (r >> 24) % 600,
                end: WINDOW + 599,
                tcp_flags: if proto == 6 { 0x1b } else { 0 },
                log_status: LogStatus::Ok,
                action: Some(if r % 50 == 0 {
                    Action::Reject
                } else {
                    Action::Accept
                }),
                flow_log_id: "fl-bp1a8k3n2m5v7c9x0z".into(),
                window_start: WINDOW,
            }
        })
        .collect();
    Window {
        flow_log_id: "fl-bp1a8k3n2m5v7c9x0z".into(),
        start: WINDOW,
        interval: 600,
        records,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let w = window();

    // (a) JSON Lines into a Vec (the baseline).
    let mut buf = Vec::with_capacity(400 * RECORDS);
    let mut jsonl = Vec::new();
    for _ in 0..RUNS {
        buf.clear();
        let t = Instant::now();
        for r in &w.records {
            r.write_json(&mut buf);
        }
        jsonl.push(t.elapsed().as_secs_f64());
        std::hint::black_box(&buf);
    }
    let jsonl_bytes = buf.len();

    // (b) IPFIX over UDP to a draining receiver on loopback.
    let rx = UdpSocket::bind("127.0.0.1:0").expect("bind the receiver");
    rx.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("receiver timeout");
    let addr = rx.local_addr().expect("receiver address");
    let stop = Arc::new(AtomicBool::new(false));
    let got = Arc::new(AtomicU64::new(0));
    let got_bytes = Arc::new(AtomicU64::new(0));
    let drain = {
        let (stop, got, got_bytes) = (stop.clone(), got.clone(), got_bytes.clone());
        std::thread::spawn(move || {
            let mut b = vec![0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                if let Ok(n) = rx.recv(&mut b) {
                    got.fetch_add(1, Ordering::Relaxed);
                    got_bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        })
    };
    let opts = IpfixOpts {
        address: addr.to_string(),
        transport: Transport::Udp,
    };
    let mut sink = IpfixSink::open(&opts, "hv-bench").expect("open the ipfix sink");
    let mut ipfix = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        sink.deliver(&w).expect("deliver");
        ipfix.push(t.elapsed().as_secs_f64());
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    drain.join().expect("receiver thread");
    let sent = sink.sent();
    let messages = sent.messages + sent.template_messages;
    let received = got.load(Ordering::Relaxed);

    let rps = RECORDS as f64 / median(ipfix.clone());
    let jrps = RECORDS as f64 / median(jsonl.clone());
    let per_run = sent.messages as f64 / RUNS as f64;
    println!(
        "BENCH {}",
        serde_json::json!({
            "bench": "sink",
            "sink": "ipfix-udp",
            "records": RECORDS,
            "runs": RUNS,
            "records_per_s": rps.round(),
            "jsonl_records_per_s": jrps.round(),
            "ratio": (rps / jrps * 100.0).round() / 100.0,
            "ipfix_s": ipfix,
            "jsonl_s": jsonl,
            "messages_per_window": per_run.round(),
            "ipfix_bytes_per_record": (got_bytes.load(Ordering::Relaxed) as f64
                / (RECORDS * RUNS) as f64 * 10.0).round() / 10.0,
            "jsonl_bytes_per_record": (jsonl_bytes as f64 / RECORDS as f64 * 10.0).round() / 10.0,
            "messages_sent": messages,
            "messages_received": received,
        })
    );
}
