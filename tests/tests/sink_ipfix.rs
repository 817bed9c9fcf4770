//! The IPFIX sink against real collectors.
//!
//! - UDP: `nfcapd` (nfdump 1.7.1) on a free loopback port; what it stored is
//!   read back with `nfdump -o json` and compared field by field with the
//!   records sent (addresses, ports or ICMP type/code, protocol, packets,
//!   bytes, start, end, TCP flags, direction). nfdump 1.7.1 decodes neither
//!   forwardingStatus nor enterprise elements, so the action and the ids are
//!   checked through TCP below.
//! - TCP: nfcapd 1.7.1 has no TCP listener, so a small collector written
//!   here (its own IPFIX decoder, independent of the sink's code) accepts
//!   the connection, learns the templates from the stream and decodes every
//!   record, ids and action included, and checks sequence numbers.
//!
//! First the sink is driven directly with windows built here, then through
//! `flowlogd replay` with a flow log whose `sink_ids` are `["local",
//! "collector"]`, comparing with the OK (and status) records of the local
//! log store of the same replay.

use exporter::config::{IpfixSink as IpfixOpts, Transport};
use exporter::record::{Action, Direction, LogStatus, Record, VERSION};
use exporter::sink::ipfix::IpfixSink;
use exporter::sink::{Deliver, Window};
use flowlog_tests::{config_for, replay_ok, senders, testdata, FLOW_LOG};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// nfcapd

/// `nfcapd` on a free loopback UDP port, writing into a temp dir.
struct Nfcapd {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Nfcapd {
    fn start() -> Nfcapd {
        let dir = tempfile::tempdir().unwrap();
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("nfcapd")
            .args(["-b", "127.0.0.1", "-p", &port.to_string(), "-t", "3600"])
            .arg("-w")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run nfcapd ({e}): run scripts/setup.sh"));
        // Ready once it holds the port.
        let until = Instant::now() + Duration::from_secs(10);
        while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            assert!(Instant::now() < until, "nfcapd did not bind port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nfcapd { child, dir, port }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops it with SIGTERM (it flushes its file) and returns the flows
    /// `nfdump -o json` reads from that file, and nfcapd's log.
    fn stop(mut self) -> (Vec<Value>, String) {
        let st = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "kill -TERM nfcapd");
        self.child.wait().unwrap();
        let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap();
        let files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("nfcapd.")
            })
            .collect();
        assert_eq!(files.len(), 1, "nfcapd files: {files:?}; log: {log}");
        let out = Command::new("nfdump")
            .env("TZ", "UTC")
            .args(["-q", "-o", "json", "-r"])
            .arg(&files[0])
            .output()
            .unwrap_or_else(|e| panic!("cannot run nfdump ({e}): run scripts/setup.sh"));
        assert!(out.status.success(), "nfdump failed: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("No matching flows") {
            return (vec![], log);
        }
        // With -q, nfdump 1.7.1 leaves out the enclosing brackets.
        let text = format!(
            "[{}]",
            text.trim().trim_start_matches('[').trim_end_matches(']')
        );
        let flows = serde_json::from_str(&text).unwrap_or_else(|e| panic!("nfdump json: {e}"));
        (flows, log)
    }
}

/// `2023-11-14T22:13:20.000` for Unix seconds, as nfdump prints in UTC.
fn utc(s: u64) -> String {
    // Days to civil date (Howard Hinnant's algorithm).
    let z = (s / 86400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let r = s % 86400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000",
        r / 3600,
        r / 60 % 60,
        r % 60
    )
}

/// One flow as nfdump shows it, in the terms of a record.
fn nfdump_key(g: &Value) -> String {
    let addr = |k4: &str, k6: &str| {
        g.get(k4)
            .or_else(|| g.get(k6))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no {k4}/{k6} in {g}"))
            .to_owned()
    };
    let n = |k: &str| g[k].as_u64().unwrap_or_else(|| panic!("no {k} in {g}"));
    let proto = n("proto");
    let (sport, dport) = if proto == 1 || proto == 58 {
        (0, n("icmp_type") * 256 + n("icmp_code"))
    } else {
        (n("src_port"), n("dst_port"))
    };
    // "...AP.SF": CWR ECE URG ACK PSH RST SYN FIN, one character each.
    let flags = g.get("tcp_flags").and_then(Value::as_str).map_or(0, |f| {
        f.bytes().fold(0u8, |a, c| a << 1 | u8::from(c != b'.'))
    });
    format!(
        "{} {} {sport} {dport} {proto} packets={} bytes={} {} {} flags={flags} dir={}",
        addr("src4_addr", "src6_addr"),
        addr("dst4_addr", "dst6_addr"),
        n("in_packets"),
        n("in_bytes"),
        g["first"].as_str().unwrap(),
        g["last"].as_str().unwrap(),
        n("direction")
    )
}

/// The same for an OK record of the store (JSON).
fn store_key(r: &Value) -> String {
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("no {k} in {r}"));
    format!(
        "{} {} {} {} {} packets={} bytes={} {} {} flags={} dir={}",
        r["srcaddr"].as_str().unwrap(),
        r["dstaddr"].as_str().unwrap(),
        n("srcport"),
        n("dstport"),
        n("protocol"),
        n("packets"),
        n("bytes"),
        utc(n("start")),
        utc(n("end")),
        n("tcp-flags"),
        u8::from(r["direction"] == "out")
    )
}

// ---------------------------------------------------------------------------
// A TCP collector with its own decoder

/// One decoded record: template id and its fields by (enterprise, element).
#[derive(Debug, Clone)]
struct Decoded {
    tid: u16,
    fields: HashMap<(u32, u16), Vec<u8>>,
}

fn be(b: &[u8]) -> u64 {
    b.iter().fold(0, |a, &x| a << 8 | u64::from(x))
}

impl Decoded {
    fn num(&self, id: u16) -> u64 {
        be(self
            .fields
            .get(&(0, id))
            .unwrap_or_else(|| panic!("no element {id} in {self:?}")))
    }
    fn string(&self, id: u16) -> String {
        let b = self
            .fields
            .get(&(32473, id))
            .unwrap_or_else(|| panic!("no enterprise element {id} in {self:?}"));
        String::from_utf8(b.clone()).unwrap()
    }
    fn addr(&self, v4: u16, v6: u16) -> IpAddr {
        match (self.fields.get(&(0, v4)), self.fields.get(&(0, v6))) {
            (Some(b), _) => IpAddr::from(<[u8; 4]>::try_from(&b[..]).unwrap()),
            (_, Some(b)) => IpAddr::from(<[u8; 16]>::try_from(&b[..]).unwrap()),
            _ => panic!("no address in {self:?}"),
        }
    }

    /// The record as the store would hold it (the keys this sink carries).
    fn as_record(&self) -> Value {
        let ids = json!({
            "eni-id": self.string(1), "vpc-id": self.string(2),
            "vswitch-id": self.string(3),
            "vm-id": Some(self.string(4)).filter(|s| !s.is_empty()),
            "account-id": self.string(5), "flow-log-id": self.string(6),
        });
        let mut r = if self.fields.contains_key(&(32473, 7)) {
            json!({
                "log-status": match self.fields[&(32473, 7)][0] { 1 => "NODATA", 2 => "SKIPDATA", x => panic!("log status {x}") },
                "srcaddr": null, "dstaddr": null, "srcport": null, "dstport": null,
                "protocol": null, "direction": null, "action": null, "tcp-flags": 0,
            })
        } else {
            let icmp = self.fields.contains_key(&(0, 32)) || self.fields.contains_key(&(0, 139));
            let (sport, dport, flags) = if icmp {
                let tc = self.fields.get(&(0, 32)).or(self.fields.get(&(0, 139)));
                (0, be(tc.unwrap()), 0)
            } else {
                (self.num(7), self.num(11), self.num(6))
            };
            json!({
                "log-status": "OK",
                "srcaddr": self.addr(8, 27).to_string(), "dstaddr": self.addr(12, 28).to_string(),
                "srcport": sport, "dstport": dport, "protocol": self.num(4),
                "direction": match self.num(61) { 0 => "in", 1 => "out", x => panic!("flowDirection {x}") },
                "action": match self.num(89) { 64 => "ACCEPT", 129 => "REJECT", x => panic!("forwardingStatus {x}") },
                "tcp-flags": flags,
            })
        };
        let (start, end) = (self.num(150), self.num(151));
        if self.fields.contains_key(&(0, 152)) {
            assert_eq!(self.num(152), start * 1000, "flowStartMilliseconds");
            assert_eq!(self.num(153), end * 1000, "flowEndMilliseconds");
        }
        let m = r.as_object_mut().unwrap();
        m.insert("start".into(), json!(start));
        m.insert("end".into(), json!(end));
        m.insert("packets".into(), json!(self.num(2)));
        m.insert("bytes".into(), json!(self.num(1)));
        m.extend(ids.as_object().unwrap().clone());
        r
    }
}

/// The keys of a store record that [`Decoded::as_record`] fills.
fn comparable(r: &Value) -> String {
    let keys = [
        "log-status",
        "srcaddr",
        "dstaddr",
        "srcport",
        "dstport",
        "protocol",
        "direction",
        "action",
        "tcp-flags",
        "start",
        "end",
        "packets",
        "bytes",
        "eni-id",
        "vpc-id",
        "vswitch-id",
        "vm-id",
        "account-id",
        "flow-log-id",
    ];
    let m: serde_json::Map<String, Value> = keys
        .iter()
        .map(|k| (k.to_string(), r[*k].clone()))
        .collect();
    Value::Object(m).to_string()
}

/// What the collector got on one connection.
#[derive(Debug, Default)]
struct Stream {
    records: Vec<Decoded>,
    template_messages: usize,
    domains: Vec<u32>,
}

/// Accepts one connection on `l` and decodes it until the sink closes it;
/// checks lengths and sequence numbers on the way.
fn collect_tcp(l: TcpListener) -> JoinHandle<Stream> {
    std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        decode_stream(&mut c)
    })
}

fn decode_stream(c: &mut TcpStream) -> Stream {
    let mut templates: HashMap<u16, Vec<(u32, u16, u16)>> = HashMap::new();
    let mut out = Stream::default();
    let mut seq = 0u32;
    loop {
        let mut h = [0u8; 16];
        if c.read_exact(&mut h).is_err() {
            return out;
        }
        assert_eq!(be(&h[0..2]), 10, "IPFIX version");
        let len = be(&h[2..4]) as usize;
        assert_eq!(be(&h[8..12]) as u32, seq, "sequence number");
        out.domains.push(be(&h[12..16]) as u32);
        let mut m = vec![0u8; len - 16];
        c.read_exact(&mut m).unwrap();
        let mut at = 0;
        let mut had_templates = false;
        while at < m.len() {
            let sid = be(&m[at..at + 2]) as u16;
            let slen = be(&m[at + 2..at + 4]) as usize;
            let set = &m[at + 4..at + slen];
            at += slen;
            if sid == 2 || sid == 3 {
                had_templates = true;
                let mut i = 0;
                while i + 4 <= set.len() {
                    let tid = be(&set[i..i + 2]) as u16;
                    let n = be(&set[i + 2..i + 4]) as usize;
                    i += if sid == 3 { 6 } else { 4 };
                    let mut fields = vec![];
                    for _ in 0..n {
                        let id = be(&set[i..i + 2]) as u16;
                        let flen = be(&set[i + 2..i + 4]) as u16;
                        i += 4;
                        let pen = if id & 0x8000 != 0 {
                            i += 4;
                            be(&set[i - 4..i]) as u32
                        } else {
                            0
                        };
                        fields.push((pen, id & 0x7fff, flen));
                    }
                    templates.insert(tid, fields);
                }
            } else {
                let t = &templates[&sid];
                let mut i = 0;
                while i < set.len() {
                    let mut fields = HashMap::new();
                    for &(pen, id, flen) in t {
                        let n = if flen == 0xffff {
                            i += 1;
                            match set[i - 1] {
                                255 => {
                                    i += 2;
                                    be(&set[i - 2..i]) as usize
                                }
                                n => n as usize,
                            }
                        } else {
                            flen as usize
                        };
                        fields.insert((pen, id), set[i..i + n].to_vec());
                        i += n;
                    }
                    out.records.push(Decoded { tid: sid, fields });
                    seq = seq.wrapping_add(1);
                }
            }
        }
        out.template_messages += usize::from(had_templates);
    }
}

// ---------------------------------------------------------------------------
// Driving the sink directly

fn rec(i: u16) -> Record {
    let (src, dst, proto, sport, dport): (&str, &str, u8, u16, u16) = match i % 8 {
        0 => ("fd00::1", "2001:db8::2", 6, 1000 + i, 443),
        1 => ("10.0.0.1", "10.0.0.9", 1, 0, 3 * 256 + i % 16),
        2 => ("fd00::1", "fd00::2", 58, 0, 128 * 256),
        3 => ("10.0.0.3", "10.0.0.1", 17, 53, 5000 + i),
        4 => ("::ffff:192.0.2.1", "fd00::5", 17, 123, 123),
        _ => ("10.0.0.1", "192.0.2.7", 6, 30000 + i, 80),
    };
    let start = 1_700_000_000 + u64::from(i % 60);
    Record {
        version: VERSION,
        account_id: "1234567890".into(),
        vpc_id: "vpc-1".into(),
        vswitch_id: "vsw-1".into(),
        vm_id: (!i.is_multiple_of(5)).then(|| format!("i-{}", i % 3)),
        eni_id: format!("eni-{}", i % 3),
        srcaddr: Some(src.parse().unwrap()),
        dstaddr: Some(dst.parse().unwrap()),
        srcport: Some(sport),
        dstport: Some(dport),
        protocol: Some(proto),
        direction: Some(if i.is_multiple_of(2) {
            Direction::In
        } else {
            Direction::Out
        }),
        packets: u64::from(i) + 1,
        bytes: 40 * (u64::from(i) + 1),
        start,
        end: start + u64::from(i % 7),
        tcp_flags: if proto == 6 { (i % 64) as u8 } else { 0 },
        log_status: LogStatus::Ok,
        action: Some(if i.is_multiple_of(3) {
            Action::Reject
        } else {
            Action::Accept
        }),
        flow_log_id: "fl-1".into(),
        window_start: 1_699_999_800,
    }
}

fn status(eni: &str, s: LogStatus, packets: u64) -> Record {
    Record {
        srcaddr: None,
        dstaddr: None,
        srcport: None,
        dstport: None,
        protocol: None,
        direction: None,
        action: None,
        tcp_flags: 0,
        log_status: s,
        packets,
        bytes: packets * 60,
        start: 1_699_999_800,
        end: 1_700_000_399,
        eni_id: eni.into(),
        ..rec(5)
    }
}

/// 300 OK records (IPv4, IPv6, IPv4-mapped, ICMP, ICMPv6, TCP flags, both
/// directions, both actions) and a NODATA and a SKIPDATA record, as two
/// windows.
fn windows() -> (Vec<Window>, Vec<Record>) {
    let mut all: Vec<Record> = (0..300).map(rec).collect();
    all.push(status("eni-7", LogStatus::NoData, 0));
    all.push(status("eni-8", LogStatus::SkipData, 9));
    let w = |r: &[Record]| Window {
        flow_log_id: "fl-1".into(),
        start: 1_699_999_800,
        interval: 600,
        records: r.to_vec(),
    };
    (vec![w(&all[..150]), w(&all[150..])], all)
}

fn record_json(r: &Record) -> Value {
    serde_json::to_value(r).unwrap()
}

#[test]
fn udp_to_nfcapd_every_flow_reads_back_as_sent() {
    let n = Nfcapd::start();
    let opts = IpfixOpts {
        address: n.address(),
        transport: Transport::Udp,
    };
    let mut s = IpfixSink::open(&opts, "hv-test").expect("open");
    let (ws, all) = windows();
    for w in &ws {
        s.deliver(w).expect("deliver");
        assert_eq!(s.tick(), Ok(()));
    }
    std::thread::sleep(Duration::from_millis(300));
    s.close(Instant::now() + Duration::from_secs(1)).unwrap();
    let (got, log) = n.stop();
    assert!(log.contains("Sequence Errors: 0"), "nfcapd log: {log}");
    let mut want: Vec<String> = all
        .iter()
        .filter(|r| r.log_status == LogStatus::Ok)
        .map(|r| store_key(&record_json(r)))
        .collect();
    let mut have: Vec<String> = got.iter().map(nfdump_key).collect();
    want.sort();
    have.sort();
    assert_eq!(have, want, "nfdump's flows vs the records sent");
}

#[test]
fn tcp_to_a_collector_every_record_reads_back_as_sent() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let opts = IpfixOpts {
        address: l.local_addr().unwrap().to_string(),
        transport: Transport::Tcp,
    };
    let got = collect_tcp(l);
    let mut s = IpfixSink::open(&opts, "hv-test").expect("open");
    let (ws, all) = windows();
    for w in &ws {
        s.deliver(w).expect("deliver");
    }
    s.close(Instant::now() + Duration::from_secs(1)).unwrap();
    drop(s);
    let got = got.join().unwrap();
    assert_eq!(got.template_messages, 1, "templates once per connection");
    assert!(got.domains.iter().all(|&d| d == got.domains[0]));
    let mut want: Vec<String> = all.iter().map(|r| comparable(&record_json(r))).collect();
    let mut have: Vec<String> = got
        .records
        .iter()
        .map(|d| comparable(&d.as_record()))
        .collect();
    want.sort();
    have.sort();
    assert_eq!(have, want);
    // The status records are options records of their own template.
    assert_eq!(got.records.iter().filter(|d| d.tid == 260).count(), 2);
}

#[test]
fn tcp_collector_down_then_up_loses_only_the_windows_in_between() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let opts = IpfixOpts {
        address: addr.to_string(),
        transport: Transport::Tcp,
    };
    let mut s =
        IpfixSink::open(&opts, "hv-test").expect("a collector that is down is no open error");
    let (ws, _) = windows();
    let e = s.deliver(&ws[0]).unwrap_err();
    assert!(
        e.contains(&addr.to_string()) && e.contains("tcp"),
        "the reason names the collector: {e}"
    );
    let l = TcpListener::bind(addr).unwrap();
    let got = collect_tcp(l);
    let until = Instant::now() + Duration::from_secs(15);
    while s.tick().is_err() {
        assert!(Instant::now() < until, "the sink did not reconnect");
        std::thread::sleep(Duration::from_millis(100));
    }
    s.deliver(&ws[1]).expect("deliver after the reconnect");
    s.close(Instant::now() + Duration::from_secs(1)).unwrap();
    drop(s);
    let got = got.join().unwrap();
    assert_eq!(got.template_messages, 1);
    assert_eq!(got.records.len(), ws[1].records.len());
}

// ---------------------------------------------------------------------------
// End to end: flowlogd replay with the sink configured

fn capture(case: &str, file: &str) -> PathBuf {
    testdata().join("zeek").join(case).join(file)
}

/// The README configuration of `pcap` with the flow log also sending to an
/// IPFIX sink `collector` at `address`.
fn config_with_collector(pcap: &Path, address: &str, transport: &str) -> Value {
    let mut c = config_for(&senders(pcap));
    c["sinks"] = json!([
        { "sink_id": "collector", "type": "ipfix", "address": address, "transport": transport }
    ]);
    c["flow_logs"][0]["sink_ids"] = json!(["local", "collector"]);
    c
}

fn sink_status_ok(summary: &Value, records: usize) {
    let sinks = summary["sinks"].as_array().expect("sinks in the summary");
    assert_eq!(sinks.len(), 1, "{summary}");
    let st = &sinks[0];
    assert_eq!(st["status"], "SUCCESS", "{st}");
    assert_eq!(st["flow_log_id"], FLOW_LOG);
    assert_eq!(st["sink_id"], "collector");
    assert_eq!(st["records"].as_u64(), Some(records as u64), "{st}");
    assert_eq!(st["lost_records"].as_u64(), Some(0), "{st}");
}

#[test]
fn replay_to_nfcapd_over_udp_matches_the_log_store() {
    for pcap in [
        capture("wikipedia", "wikipedia.pcap"),
        capture("ftp-ipv4", "ipv4.pcap"),
    ] {
        let n = Nfcapd::start();
        let cfg = config_with_collector(&pcap, &n.address(), "udp");
        let rep = replay_ok(&cfg, &pcap, &[]);
        sink_status_ok(&rep.summary, rep.records.len());
        std::thread::sleep(Duration::from_millis(300));
        let (got, log) = n.stop();
        assert!(log.contains("Sequence Errors: 0"), "nfcapd log: {log}");
        let ok: Vec<&Value> = rep
            .records
            .iter()
            .filter(|r| r["log-status"] == "OK")
            .collect();
        assert!(!ok.is_empty(), "{}: no OK records", pcap.display());
        let mut want: Vec<String> = ok.iter().map(|r| store_key(r)).collect();
        let mut have: Vec<String> = got.iter().map(nfdump_key).collect();
        want.sort();
        have.sort();
        assert_eq!(
            have,
            want,
            "{}: nfdump's flows vs the store's OK records",
            pcap.display()
        );
    }
}

#[test]
fn replay_to_a_tcp_collector_matches_the_log_store_record_for_record() {
    let pcap = capture("wikipedia", "wikipedia.pcap");
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = config_with_collector(&pcap, &l.local_addr().unwrap().to_string(), "tcp");
    let got = collect_tcp(l);
    let rep = replay_ok(&cfg, &pcap, &[]);
    sink_status_ok(&rep.summary, rep.records.len());
    let got = got.join().unwrap();
    // Every record of the store, OK and status, with ids and action.
    let mut want: Vec<String> = rep.records.iter().map(comparable).collect();
    let mut have: Vec<String> = got
        .records
        .iter()
        .map(|d| comparable(&d.as_record()))
        .collect();
    want.sort();
    have.sort();
    assert_eq!(have, want);
}
