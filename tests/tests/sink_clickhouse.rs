//! The ClickHouse sink against a real `clickhouse-server` (Debian's 18.16,
//! installed by scripts/setup.sh), started here on free loopback ports:
//! what goes in comes back field for field, a server killed mid-stream or a
//! lost answer costs neither a record nor a duplicate, a restarted sink sends
//! its spool first and in order, and two shards share the records.

mod common_clickhouse;

use common_clickhouse::{free_port, Server};
use exporter::config::ClickhouseSink as Opts;
use exporter::record::{Action, Direction, LogStatus, Record};
use exporter::sink::clickhouse::ClickhouseSink;
use exporter::sink::{Deliver, Window};
use serde_json::{json, Map, Value};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DB: &str = "flowlogs";
const TABLE: &str = "records";

/// A window start on 2023-11-14 (UTC), aligned to 60 s.
const T0: u64 = 1_699_920_000;

fn opts(endpoints: &[String], spool: &Path, batch_records: u32) -> Opts {
    serde_json::from_value(json!({
        "endpoints": endpoints,
        "database": DB,
        "table": TABLE,
        "spool_dir": spool,
        "batch_records": batch_records,
        "batch_ms": 200,
    }))
    .expect("clickhouse options")
}

/// A small deterministic generator.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 16
    }
}

/// `n` records of flow log `fl` in the window starting at `ws`: IPv4, IPv6
/// (also IPv4-mapped), ICMP, NODATA and SKIPDATA, detached ENIs, odd text,
/// counters near their limits.
fn records(seed: u64, fl: &str, ws: u64, n: usize) -> Vec<Record> {
    let mut g = Lcg(seed);
    (0..n)
        .map(|i| {
            let k = g.next();
            let eni = format!("eni-{:04}", k % 37);
            let status = match k % 50 {
                0 => LogStatus::NoData,
                1 => LogStatus::SkipData,
                _ => LogStatus::Ok,
            };
            let mut r = Record {
                version: 1,
                account_id: if k % 97 == 3 {
                    "acct \"tab\t\\ é\n".into()
                } else {
                    "1234567890".into()
                },
                vpc_id: "vpc-1".into(),
                vswitch_id: format!("vsw-{}", k % 3),
                vm_id: (!k.is_multiple_of(7)).then(|| format!("i-{:x}", k % 1000)),
                eni_id: eni,
                srcaddr: None,
                dstaddr: None,
                srcport: None,
                dstport: None,
                protocol: None,
                direction: None,
                packets: 0,
                bytes: 0,
                start: ws,
                end: ws + 59,
                tcp_flags: 0,
                log_status: status,
                action: None,
                flow_log_id: fl.into(),
                window_start: ws,
            };
            match status {
                LogStatus::NoData => {}
                LogStatus::SkipData => {
                    r.packets = g.next() % 1000 + 1;
                    r.bytes = r.packets * 1500;
                }
                LogStatus::Ok => {
                    let a = g.next();
                    let (src, dst): (IpAddr, IpAddr) = match a % 10 {
                        0 => (
                            Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, (a >> 8) as u16).into(),
                            "2001:db8::1".parse().unwrap(),
                        ),
                        1 => (
                            Ipv4Addr::from((a >> 4) as u32).to_ipv6_mapped().into(),
                            "192.0.2.1".parse().unwrap(),
                        ),
                        _ => (
                            Ipv4Addr::from((a >> 8) as u32).into(),
                            Ipv4Addr::new(10, 0, (a >> 40) as u8, (i % 256) as u8).into(),
                        ),
                    };
                    r.srcaddr = Some(src);
                    r.dstaddr = Some(dst);
                    let proto = [6u8, 17, 1, 58, 47, 132][(a % 6) as usize];
                    r.protocol = Some(proto);
                    let icmp = proto == 1 || proto == 58;
                    r.srcport = Some(if icmp || proto == 47 {
                        0
                    } else {
                        (a >> 20) as u16
                    });
                    r.dstport = Some(if proto == 47 { 0 } else { (a >> 36) as u16 });
                    r.direction = Some(if a.is_multiple_of(2) {
                        Direction::In
                    } else {
                        Direction::Out
                    });
                    r.action = Some(if a.is_multiple_of(5) {
                        Action::Reject
                    } else {
                        Action::Accept
                    });
                    r.packets = if a % 1000 == 7 {
                        u64::MAX
                    } else {
                        a % 100_000 + 1
                    };
                    r.bytes = if a % 1000 == 7 {
                        u64::MAX - 1
                    } else {
                        r.packets * 64
                    };
                    r.start = ws + a % 30;
                    r.end = r.start + (a >> 5) % 30;
                    r.tcp_flags = if proto == 6 { (a >> 12) as u8 } else { 0 };
                }
            }
            r
        })
        .collect()
}

fn window(seed: u64, fl: &str, ws: u64, n: usize) -> Window {
    Window {
        flow_log_id: fl.into(),
        start: ws,
        interval: 60,
        records: records(seed, fl, ws, n),
    }
}

/// What SELECT returns, as records: (expression, RECORDS.md key).
const SELECT: [(&str, &str); 21] = [
    ("version", "version"),
    ("account_id", "account-id"),
    ("vpc_id", "vpc-id"),
    ("vswitch_id", "vswitch-id"),
    ("vm_id", "vm-id"),
    ("eni_id", "eni-id"),
    ("srcaddr", "srcaddr"),
    ("dstaddr", "dstaddr"),
    ("srcport", "srcport"),
    ("dstport", "dstport"),
    ("protocol", "protocol"),
    ("direction", "direction"),
    ("packets", "packets"),
    ("bytes", "bytes"),
    ("toUInt32(start)", "start"),
    ("toUInt32(end)", "end"),
    ("tcp_flags", "tcp-flags"),
    ("log_status", "log-status"),
    ("action", "action"),
    ("flow_log_id", "flow-log-id"),
    ("toUInt32(window_start)", "window-start"),
];

/// Every row of `db.table` at `srv`, as JSON objects with RECORDS.md's keys.
fn select_json(srv: &Server, table: &str) -> Vec<Value> {
    let cols: Vec<String> = SELECT
        .iter()
        .enumerate()
        .map(|(i, (e, _))| format!("{e} AS c{i}"))
        .collect();
    let text = srv.query(&format!(
        "SELECT {} FROM {DB}.{table} FORMAT JSONEachRow",
        cols.join(", ")
    ));
    text.lines()
        .map(|l| {
            let row: Map<String, Value> = serde_json::from_str(l).expect("a JSON row");
            let mut out = Map::new();
            for (i, (_, key)) in SELECT.iter().enumerate() {
                out.insert((*key).into(), row[&format!("c{i}")].clone());
            }
            Value::Object(out)
        })
        .collect()
}

fn select(srv: &Server) -> Vec<Record> {
    select_json(srv, TABLE)
        .into_iter()
        .map(|v| serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}")))
        .collect()
}

/// A multiset of records, comparable.
fn canon<'a>(rs: impl IntoIterator<Item = &'a Record>) -> Vec<String> {
    let mut v: Vec<String> = rs
        .into_iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect();
    v.sort();
    v
}

/// Asserts that `got` is exactly `want` as multisets, with a readable diff.
fn assert_same(what: &str, got: &[Record], want: &[Record]) {
    assert_eq!(got.len(), want.len(), "{what}: row count");
    let (g, w) = (canon(got), canon(want));
    if g != w {
        let missing: Vec<_> = w.iter().filter(|x| !g.contains(x)).take(3).collect();
        let extra: Vec<_> = g.iter().filter(|x| !w.contains(x)).take(3).collect();
        panic!("{what}: records differ\nmissing: {missing:#?}\nextra: {extra:#?}");
    }
}

fn count(srv: &Server, sql: &str) -> u64 {
    srv.query(sql).trim().parse().expect("a number")
}

/// Asserts that no batch id appears in two inserts: each batch id's rows
/// are at most one batch.
fn assert_no_duplicate_batches(srv: &Server, batch_records: u64) {
    let over = srv.query(&format!(
        "SELECT batch_id, count() AS n FROM {DB}.{TABLE} GROUP BY batch_id HAVING n > {batch_records}"
    ));
    assert!(over.trim().is_empty(), "duplicated batches: {over}");
}

fn close_ok(sink: &mut ClickhouseSink, secs: u64) {
    let r = sink.close(Instant::now() + Duration::from_secs(secs));
    assert_eq!(r, Ok(()), "close");
    assert_eq!(sink.spooled(), (0, 0));
}

// ---------------------------------------------------------------------------

#[test]
fn what_goes_in_comes_back_field_for_field() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("ch"));
    srv.create_table(DB, TABLE);
    let spool = tmp.path().join("spool");
    let mut sink =
        ClickhouseSink::open(&opts(&[srv.url()], &spool, 1000), "hv-test").expect("open");
    let mut all = Vec::new();
    // Windows of several sizes, two flow logs, across a UTC midnight.
    let day_end = (T0 / 86_400 + 1) * 86_400;
    let plan: [(&str, u64, usize); 6] = [
        ("fl-a", T0, 1),
        ("fl-a", T0 + 60, 2500),
        ("fl-b", T0 + 60, 999),
        ("fl-a", day_end - 60, 700),
        ("fl-a", day_end, 300),
        ("fl-b", day_end + 600, 0),
    ];
    for (i, (fl, ws, n)) in plan.into_iter().enumerate() {
        let w = window(i as u64 + 1, fl, ws, n);
        sink.deliver(&w).expect("deliver");
        assert_eq!(sink.tick(), Ok(()));
        all.extend(w.records);
    }
    close_ok(&mut sink, 30);
    let got = select(&srv);
    assert_same("select", &got, &all);
    // Status records keep their nulls; odd text survives.
    assert!(got
        .iter()
        .any(|r| r.log_status == LogStatus::NoData && r.srcaddr.is_none()));
    assert!(got.iter().any(|r| r.account_id.contains('\t')));
    assert!(got.iter().any(|r| r.packets == u64::MAX));
    // The spool is empty: nothing but the folder is left.
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
    // One batch per INSERT, none across midnight (the partition).
    assert_eq!(
        count(
            &srv,
            &format!("SELECT count() FROM (SELECT batch_id FROM {DB}.{TABLE} GROUP BY batch_id HAVING uniqExact(toYYYYMMDD(window_start)) > 1)")
        ),
        0
    );
}

#[test]
fn a_missing_table_is_named_with_the_fix_and_the_batch_waits() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("ch"));
    let spool = tmp.path().join("spool");
    let mut sink = ClickhouseSink::open(&opts(&[srv.url()], &spool, 1000), "hv").unwrap();
    sink.deliver(&window(1, "fl", T0, 10)).unwrap();
    let err = sink
        .close(Instant::now() + Duration::from_millis(500))
        .unwrap_err();
    assert!(err.contains(&srv.url()), "{err}");
    assert!(err.contains("scripts/clickhouse/records.sql"), "{err}");
    assert!(
        err.contains("1 batches (10 records) stay in the spool"),
        "{err}"
    );
    drop(sink);
    // Created now, the next start delivers.
    srv.create_table(DB, TABLE);
    let mut sink = ClickhouseSink::open(&opts(&[srv.url()], &spool, 1000), "hv").unwrap();
    close_ok(&mut sink, 30);
    assert_eq!(select(&srv).len(), 10);
}

#[test]
fn a_server_killed_mid_stream_costs_no_record_and_no_duplicate() {
    let tmp = tempfile::tempdir().unwrap();
    let mut srv = Server::start(&tmp.path().join("ch"));
    srv.create_table(DB, TABLE);
    let spool = tmp.path().join("spool");
    let batch = 2000;
    let mut sink = ClickhouseSink::open(&opts(&[srv.url()], &spool, batch), "hv").unwrap();
    let windows: Vec<Window> = (0..60)
        .map(|i| window(100 + i, "fl", T0 + 60 * i, 3000))
        .collect();
    let want: Vec<Record> = windows.iter().flat_map(|w| w.records.clone()).collect();
    let feeder = std::thread::spawn(move || {
        let mut errors = 0;
        for w in &windows {
            sink.deliver(w)
                .expect("deliver never loses while the spool has room");
            if sink.tick().is_err() {
                errors += 1;
            }
            std::thread::sleep(Duration::from_millis(15));
        }
        let closed = sink.close(Instant::now() + Duration::from_secs(120));
        (closed, errors, sink.spooled())
    });
    // Kill it while batches flow, twice; keep it down a while each time.
    for pause in [700, 400] {
        std::thread::sleep(Duration::from_millis(pause));
        srv.kill();
        std::thread::sleep(Duration::from_millis(1500));
        srv.restart();
    }
    let (closed, errors, left) = feeder.join().unwrap();
    assert_eq!(closed, Ok(()), "close");
    assert_eq!(left, (0, 0));
    assert!(errors > 0, "tick never reported the outage");
    let got = select(&srv);
    assert_same("after two SIGKILLs", &got, &want);
    assert_no_duplicate_batches(&srv, u64::from(batch));
}

/// A TCP proxy to 127.0.0.1:`upstream`. While `eat` is above zero, it
/// swallows the first answer of a connection (and closes it), counting
/// `eat` down: the request was carried out, the client never hears so. Its
/// first connection waits `first_delay` before it carries anything: the
/// request sent on it is slow.
fn proxy(upstream: u16, eat: Arc<AtomicUsize>, first_delay: Duration) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut delay = first_delay;
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let eat = Arc::clone(&eat);
            let wait = std::mem::take(&mut delay);
            std::thread::spawn(move || {
                std::thread::sleep(wait);
                let Ok(mut u) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    return;
                };
                let (mut c2, mut u2) = (c.try_clone().unwrap(), u.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut u2);
                    let _ = u2.shutdown(Shutdown::Write);
                });
                let mut buf = vec![0u8; 65536];
                loop {
                    let n = match u.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let swallow = eat
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |e| e.checked_sub(1))
                        .is_ok();
                    if swallow || c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = c.shutdown(Shutdown::Both);
                let _ = u.shutdown(Shutdown::Both);
            });
        }
    });
    port
}

#[test]
fn a_lost_answer_is_checked_not_resent() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("ch"));
    srv.create_table(DB, TABLE);
    let eat = Arc::new(AtomicUsize::new(0));
    let port = proxy(srv.http, Arc::clone(&eat), Duration::ZERO);
    let url = format!("http://127.0.0.1:{port}");
    let spool = tmp.path().join("spool");
    let mut sink =
        ClickhouseSink::open(&opts(std::slice::from_ref(&url), &spool, 1000), "hv").unwrap();
    // The first INSERT lands, its answer is lost. (`deliver` hands the
    // batch to a sender; `tick` waits for its answer.)
    eat.store(1, Ordering::Release);
    let w = window(7, "fl", T0, 1000);
    sink.deliver(&w).unwrap();
    let health = sink.tick().unwrap_err();
    assert_eq!(
        eat.load(Ordering::Acquire),
        0,
        "the proxy swallowed an answer"
    );
    assert!(
        health.contains(&url) && health.contains("may have reached it"),
        "{health}"
    );
    assert_eq!(
        count(&srv, &format!("SELECT count() FROM {DB}.{TABLE}")),
        1000
    );
    // A new sink on the spool (as after a crash) must not send it again either.
    drop(sink);
    let mut sink =
        ClickhouseSink::open(&opts(std::slice::from_ref(&url), &spool, 1000), "hv").unwrap();
    let w2 = window(8, "fl", T0 + 60, 500);
    sink.deliver(&w2).unwrap();
    close_ok(&mut sink, 30);
    let want: Vec<Record> = w.records.iter().chain(&w2.records).cloned().collect();
    assert_same("after a lost answer", &select(&srv), &want);
    assert_no_duplicate_batches(&srv, 1000);
}

/// The batch ids of `TABLE` in arrival order (the block number of their
/// part; merges must be off).
fn arrival_order(srv: &Server) -> Vec<u64> {
    let parts = srv.query(&format!(
        "SELECT batch_id, min(_part) FROM {DB}.{TABLE} GROUP BY batch_id FORMAT TabSeparated"
    ));
    let mut by_block: Vec<(u64, u64)> = parts
        .lines()
        .map(|l| {
            let (id, part) = l.split_once('\t').unwrap();
            let block: u64 = part.split('_').nth(1).unwrap().parse().unwrap();
            (block, id.parse().unwrap())
        })
        .collect();
    by_block.sort();
    by_block.into_iter().map(|x| x.1).collect()
}

#[test]
fn a_slow_batch_is_overtaken_by_fewer_batches_than_senders() {
    // Two senders (the default). The batch on the first connection takes
    // 1.5 s more than the others. The next batch may land before it, but
    // the one after that starts only once the slow one is in: no batch
    // arrives more than one place from its place in the spool.
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("ch"));
    srv.create_table(DB, TABLE);
    srv.query("SYSTEM STOP MERGES");
    let port = proxy(
        srv.http,
        Arc::new(AtomicUsize::new(0)),
        Duration::from_millis(1500),
    );
    let url = format!("http://127.0.0.1:{port}");
    let spool = tmp.path().join("spool");
    let mut sink =
        ClickhouseSink::open(&opts(std::slice::from_ref(&url), &spool, 1000), "hv").unwrap();
    let mut want = Vec::new();
    for i in 0..6 {
        let w = window(400 + i, "fl", T0 + 60 * i, 1000);
        sink.deliver(&w).unwrap();
        want.extend(w.records);
    }
    close_ok(&mut sink, 30);
    assert_same("with a slow batch", &select(&srv), &want);
    assert_no_duplicate_batches(&srv, 1000);
    // One process, one salt: the ids increase with the spool's sequence.
    let arrived = arrival_order(&srv);
    let mut spool_order = arrived.clone();
    spool_order.sort();
    assert_eq!(arrived.len(), 6);
    assert_ne!(arrived, spool_order, "the slow batch was overtaken");
    for (i, id) in arrived.iter().enumerate() {
        let placed = spool_order.iter().position(|x| x == id).unwrap();
        assert!(
            i.abs_diff(placed) < 2,
            "batch {id} arrived {i}th, is {placed}th in the spool: {arrived:?}"
        );
    }
}

#[test]
fn a_restarted_sink_sends_its_spool_first_once_and_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let mut srv = Server::start(&tmp.path().join("ch"));
    srv.create_table(DB, TABLE);
    srv.kill();
    let spool = tmp.path().join("spool");
    let o = opts(&[srv.url()], &spool, 1500);
    let mut sink = ClickhouseSink::open(&o, "hv").unwrap();
    let mut want = Vec::new();
    for i in 0..8 {
        let w = window(200 + i, "fl", T0 + 60 * i, 1000);
        sink.deliver(&w).unwrap();
        want.extend(w.records);
    }
    let err = sink
        .close(Instant::now() + Duration::from_millis(500))
        .unwrap_err();
    assert!(err.contains("connection refused"), "{err}");
    assert!(
        err.contains("6 batches (8000 records) stay in the spool"),
        "{err}"
    );
    drop(sink);
    srv.restart();
    // Merges off: each INSERT stays its own part, numbered in arrival order.
    srv.query("SYSTEM STOP MERGES");
    let mut sink = ClickhouseSink::open(&o, "hv").unwrap();
    assert_eq!(sink.spooled(), (6, 8000));
    let w = window(300, "fl", T0 + 600, 10);
    sink.deliver(&w).unwrap();
    want.extend(w.records);
    close_ok(&mut sink, 30);
    assert_same("after a sink restart", &select(&srv), &want);
    assert_no_duplicate_batches(&srv, 1500);
    // Arrival order (the part's block number) follows the spool's order up
    // to the senders in flight: with the default 2, batch n + 2 starts only
    // once batch n is in, so no batch arrives more than one place away from
    // its place in the spool. The old batches share one salt, so their ids
    // increase with their sequence numbers; the new batch comes last.
    let senders = 2;
    let mut old = arrival_order(&srv);
    assert_eq!(old.len(), 7, "{old:?}");
    let arrived = old.clone();
    // The one id far from all others (another process's salt).
    let new = *old
        .iter()
        .find(|&&id| old.iter().all(|&o| o == id || o.abs_diff(id) > 1000))
        .expect("the new sink's batch");
    old.retain(|&id| id != new);
    let mut spool_order = old.clone();
    spool_order.sort();
    spool_order.push(new);
    for (i, id) in arrived.iter().enumerate() {
        let placed = spool_order.iter().position(|x| x == id).unwrap();
        assert!(
            i.abs_diff(placed) < senders,
            "batch {id} arrived {i}th, is {placed}th in the spool: {arrived:?}"
        );
    }
}

#[test]
fn two_shards_hold_every_record_once_and_a_dead_one_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let a = Server::start(&tmp.path().join("a"));
    let b = Server::start(&tmp.path().join("b"));
    for s in [&a, &b] {
        s.create_table(DB, TABLE);
    }
    let spool = tmp.path().join("spool");
    let mut sink = ClickhouseSink::open(&opts(&[a.url(), b.url()], &spool, 1000), "hv").unwrap();
    let mut want = Vec::new();
    for i in 0..10 {
        let w = window(400 + i, "fl", T0 + 60 * i, 1100);
        sink.deliver(&w).unwrap();
        want.extend(w.records);
    }
    close_ok(&mut sink, 30);
    let (ra, rb) = (select(&a), select(&b));
    assert!(
        ra.len() > 3000 && rb.len() > 3000,
        "{} / {}",
        ra.len(),
        rb.len()
    );
    let both: Vec<Record> = ra.into_iter().chain(rb).collect();
    assert_same("two shards", &both, &want);

    // A shard that refuses connections: its turns go to the other.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let spool2 = tmp.path().join("spool2");
    let mut sink =
        ClickhouseSink::open(&opts(&[dead.clone(), a.url()], &spool2, 1000), "hv").unwrap();
    let w = window(500, "fl", T0 + 3600, 4000);
    sink.deliver(&w).unwrap();
    close_ok(&mut sink, 30);
    want.extend(w.records);
    let both: Vec<Record> = select(&a).into_iter().chain(select(&b)).collect();
    assert_same("one shard down", &both, &want);
}

// ---------------------------------------------------------------------------
// Through `flowlogd replay`

/// The README configuration for `pcap`, its flow log sending to `local` and
/// to a ClickHouse sink `analytics` at `url`.
fn replay_config(pcap: &Path, url: &str, spool: &Path) -> Value {
    let mut c = flowlog_tests::config_for(&flowlog_tests::senders(pcap));
    c["sinks"] = json!([{
        "sink_id": "analytics", "type": "clickhouse",
        "endpoints": [url], "database": DB, "table": TABLE,
        "spool_dir": spool, "batch_ms": 100,
    }]);
    c["flow_logs"][0]["sink_ids"] = json!(["local", "analytics"]);
    c["flow_logs"][0]["aggregation_interval"] = json!(60);
    c
}

fn store_records(records: &[Value]) -> Vec<Record> {
    records
        .iter()
        .map(|v| serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}")))
        .collect()
}

#[test]
fn replay_sends_the_log_stores_records_to_clickhouse() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = Server::start(&tmp.path().join("ch"));
    srv.create_table(DB, TABLE);
    let pcap = flowlog_tests::testdata()
        .join("zeek")
        .join("wikipedia")
        .join("wikipedia.pcap");
    let config = replay_config(&pcap, &srv.url(), &tmp.path().join("spool"));
    let r = flowlog_tests::replay_ok(&config, &pcap, &[]);
    let want = store_records(&r.records);
    assert!(want.len() > 20, "{} records", want.len());
    assert_same("replay → clickhouse", &select(&srv), &want);
    assert_eq!(
        std::fs::read_dir(tmp.path().join("spool")).unwrap().count(),
        0,
        "the spool is empty after a successful replay"
    );
}

#[test]
fn a_replay_while_clickhouse_is_down_spools_and_the_next_run_delivers() {
    let tmp = tempfile::tempdir().unwrap();
    let mut srv = Server::start(&tmp.path().join("ch"));
    srv.create_table(DB, TABLE);
    srv.kill();
    let pcap = flowlog_tests::testdata()
        .join("zeek")
        .join("ftp-ipv4")
        .join("ipv4.pcap");
    let spool = tmp.path().join("spool");
    let config = replay_config(&pcap, &srv.url(), &spool);
    let dir = tmp.path().join("run1");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = flowlog_tests::write_config(&dir, &config);
    let out = dir.join("out");
    let run = flowlog_tests::replay(&cfg, &pcap, &out, &[]);
    // The records wait in the spool; the run says where (its exit status is
    // the lead's to define: records are not lost).
    let text = format!("{}{}", run.stdout, run.stderr);
    assert!(text.contains("spool"), "{run}");
    let want: Vec<Record> = store_records(
        &flowlog_tests::read_store(&out)
            .iter()
            .flat_map(|f| f.records.clone())
            .collect::<Vec<_>>(),
    );
    assert!(!want.is_empty());
    assert_eq!(
        count(
            srv_up(&mut srv),
            &format!("SELECT count() FROM {DB}.{TABLE}")
        ),
        0
    );
    // The next start of the sink (here: a second replay of the same
    // capture) sends the spooled batches first, then its own.
    let r = flowlog_tests::replay_ok(&config, &pcap, &[]);
    let twice: Vec<Record> = want
        .iter()
        .chain(&store_records(&r.records))
        .cloned()
        .collect();
    assert_same("spooled run + second run", &select(&srv), &twice);
    assert_no_duplicate_batches(&srv, 100_000);
}

/// Restarts `srv` and hands it back.
fn srv_up(srv: &mut Server) -> &Server {
    srv.restart();
    srv
}

#[test]
fn clickhouse_killed_mid_replay_then_restarted_holds_every_record_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mut srv = Server::start(&tmp.path().join("ch"));
    srv.create_table(DB, TABLE);
    // Five minutes of traffic replayed at 30 times its speed (10 s): 60 s
    // windows close, and their batches go out, while the replay runs.
    let pcap = tmp.path().join("paced.pcap");
    let g = flowlog_tests::run_flowlogd([
        "gen",
        "--out",
        pcap.to_str().unwrap(),
        "--packets",
        "30000",
        "--duration",
        "300",
        "--seed",
        "9",
    ]);
    assert_eq!(g.code, Some(0), "{}", g.stderr);
    let config = replay_config(&pcap, &srv.url(), &tmp.path().join("spool"));
    let cfg = flowlog_tests::write_config(tmp.path(), &config);
    let out = tmp.path().join("out");
    let mut child = std::process::Command::new(flowlog_tests::flowlogd())
        .args(["replay", "--quiet", "--json", "--pace", "30x", "--config"])
        .arg(&cfg)
        .arg("--pcap")
        .arg(&pcap)
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    // Some windows in before the kill.
    let until = t0 + Duration::from_secs(8);
    while count(&srv, &format!("SELECT count() FROM {DB}.{TABLE}")) == 0 {
        assert!(
            Instant::now() < until,
            "nothing reached ClickHouse before the kill"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the replay must still run when the server is killed"
    );
    srv.kill();
    std::thread::sleep(Duration::from_secs(3));
    srv.restart();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "replay: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let summary: Value = serde_json::from_slice(o.stdout.trim_ascii_end()).unwrap();
    assert_eq!(summary["sinks"][0]["lost_records"], 0, "{summary}");
    let want = store_records(
        &flowlog_tests::read_store(&out)
            .iter()
            .flat_map(|f| f.records.clone())
            .collect::<Vec<_>>(),
    );
    assert!(want.len() > 100, "{} records", want.len());
    assert_same("killed mid-replay", &select(&srv), &want);
    assert_no_duplicate_batches(&srv, 100_000);
}
