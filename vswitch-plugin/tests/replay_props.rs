//! Property test of the whole replay pipeline: for random traffic, the log
//! store holds exactly what an independent reference model computes —
//! every observed packet in exactly one OK record of each flow log that
//! covers its ENI (nothing skipped here), no key twice in a window, NODATA
//! for silent ENIs in every covered window — and the output is the same for
//! 1, 2 and 4 workers and for tiny and large flow tables.

use exporter::record::{LogStatus, Record};
use exporter::store::{read_dir_records, Compress, StoreFormat};
use flowlog::capture::{PcapWriter, WriterOptions};
use flowlog::replay::{replay, ReplayOptions};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

const ENIS: u8 = 4;

fn mac(i: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, i]
}

fn config() -> exporter::config::Config {
    let enis: Vec<String> = (1..=ENIS)
        .map(|i| {
            format!(
                r#"{{"eni_id":"eni-{i}","mac":"02:00:00:00:00:{i:02x}","ips":["10.0.0.{i}"],"vm_id":"i-{i}",
                "instance_type":"ecs.g7.large","vswitch_id":"vsw-1","vpc_id":"vpc-1","account_id":"1", "port": null}}"#
            )
        })
        .collect();
    let text = format!(
        r#"{{"host":"h","enis":[{}],"vswitches":[{{"vswitch_id":"vsw-1","vpc_id":"vpc-1"}}],
        "security_groups":[],"network_acls":[],"flow_logs":[
          {{"flow_log_id":"vpc60","account_id":"1","resource_type":"VPC","resource_id":"vpc-1",
            "aggregation_interval":60,"project_name":"p","log_store_name":"a"}},
          {{"flow_log_id":"eni300","account_id":"1","resource_type":"NetworkInterface","resource_id":"eni-2",
            "aggregation_interval":300,"project_name":"p","log_store_name":"a"}}]}}"#,
        enis.join(",")
    );
    exporter::config::from_json(&text, "props").expect("valid")
}

/// One generated packet: endpoints are ENI numbers 1..=ENIS or 0 (outside).
#[derive(Clone, Debug)]
struct Pkt {
    src: u8,
    dst: u8,
    proto: u8,
    sport: u16,
    dport: u16,
    flags: u8,
    payload: u16,
    dt_ms: u32,
}

fn pkt() -> impl Strategy<Value = Pkt> {
    (
        0..=ENIS,
        0..=ENIS,
        prop_oneof![Just(6u8), Just(17u8), Just(1u8)],
        1000u16..1004,
        prop_oneof![Just(80u16), Just(53u16)],
        any::<u8>(),
        0u16..300,
        prop_oneof![3 => 0u32..2000, 1 => 0u32..90_000],
    )
        .prop_map(
            |(src, dst, proto, sport, dport, flags, payload, dt_ms)| Pkt {
                src,
                dst,
                proto,
                sport,
                dport,
                flags,
                payload,
                dt_ms,
            },
        )
}

fn ip(i: u8) -> [u8; 4] {
    if i == 0 {
        [198, 51, 100, 7]
    } else {
        [10, 0, 0, i]
    }
}

fn frame(p: &Pkt) -> Vec<u8> {
    let src_mac = if p.src == 0 {
        [2, 0, 0, 0, 0xff, 0xff]
    } else {
        mac(p.src)
    };
    let dst_mac = if p.dst == 0 {
        [2, 0, 0, 0, 0xff, 0xff]
    } else {
        mac(p.dst)
    };
    let mut f = Vec::new();
    f.extend(dst_mac);
    f.extend(src_mac);
    f.extend([0x08, 0x00]);
    let l4: Vec<u8> = match p.proto {
        6 => {
            let mut t = vec![0u8; 20];
            t[0..2].copy_from_slice(&p.sport.to_be_bytes());
            t[2..4].copy_from_slice(&p.dport.to_be_bytes());
            t[12] = 0x50;
            t[13] = p.flags;
            t
        }
        17 => {
            let mut u = vec![0u8; 8];
            u[0..2].copy_from_slice(&p.sport.to_be_bytes());
            u[2..4].copy_from_slice(&p.dport.to_be_bytes());
            u
        }
        _ => vec![8, 0, 0, 0, 0, 1, 0, 1],
    };
    let total = 20 + l4.len() + usize::from(p.payload);
    f.extend([
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0,
        0,
        64,
        p.proto,
        0,
        0,
    ]);
    f.extend(ip(p.src));
    f.extend(ip(p.dst));
    f.extend(l4);
    f.extend(std::iter::repeat_n(0xab, usize::from(p.payload)));
    f
}

type RecKey = (String, u64, String, String, String, String, u8, u16, u16);

/// The reference: a plain model of RECORDS.md over the generated packets.
fn reference(pkts: &[Pkt], start_ns: u64) -> BTreeMap<RecKey, (u64, u64, u64, u64, u8)> {
    let mut out = BTreeMap::new();
    let mut t = start_ns;
    for p in pkts {
        t += u64::from(p.dt_ms) * 1_000_000;
        let secs = t / 1_000_000_000;
        let (sport, dport) = if p.proto == 1 {
            (0, 8 << 8)
        } else {
            (p.sport, p.dport)
        };
        let flags = if p.proto == 6 { p.flags } else { 0 };
        let bytes = 20 + if p.proto == 6 { 20 } else { 8 } + u64::from(p.payload);
        let mut obs = Vec::new();
        if p.src != 0 {
            obs.push((p.src, "out"));
        }
        if p.dst != 0 {
            obs.push((p.dst, "in"));
        }
        for (eni, dir) in obs {
            let mut fls = vec![("vpc60", 60u64)];
            if eni == 2 {
                fls.push(("eni300", 300));
            }
            for (fl, iv) in fls {
                let k = (
                    fl.to_string(),
                    secs / iv * iv,
                    format!("eni-{eni}"),
                    dir.to_string(),
                    Ipv4Addr::from(ip(p.src)).to_string(),
                    Ipv4Addr::from(ip(p.dst)).to_string(),
                    p.proto,
                    sport,
                    dport,
                );
                let e = out.entry(k).or_insert((0, 0, u64::MAX, 0, 0));
                e.0 += 1;
                e.1 += bytes;
                e.2 = e.2.min(secs);
                e.3 = e.3.max(secs);
                e.4 |= flags;
            }
        }
    }
    out
}

fn run(path: &std::path::Path, workers: usize, flows: usize) -> Vec<Record> {
    run_with(path, workers, flows, false)
}

/// `live`: with the operator socket's state (60 s slices, room for more
/// ENIs, configuration generations), and no change made.
fn run_with(path: &std::path::Path, workers: usize, flows: usize, live: bool) -> Vec<Record> {
    let out = tempfile::tempdir().expect("tempdir");
    let opts = ReplayOptions {
        config: config(),
        pcap: path.to_path_buf(),
        out: out.path().to_path_buf(),
        workers,
        flows_per_core: flows,
        conns_per_core: 1 << 12,
        format: StoreFormat::Jsonl,
        compress: Compress::None,
        progress: false,
        pace: None,
        live: live.then(|| flowlog::live::Live::new(workers)),
    };
    let s = replay(&opts).expect("replay");
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.workers.skipped, 0);
    let mut recs = read_dir_records(&out.path().join("p").join("a")).expect("read back");
    recs.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    recs
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn replay_matches_the_reference_for_any_worker_count_and_table_size(
        pkts in proptest::collection::vec(pkt(), 1..250),
        start in 1_700_000_000u64..1_700_100_000,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.pcap");
        let start_ns = start * 1_000_000_000;
        {
            let f = std::fs::File::create(&path).expect("create");
            let mut w = PcapWriter::new(f, WriterOptions::default()).expect("writer");
            let mut t = start_ns;
            for p in &pkts {
                t += u64::from(p.dt_ms) * 1_000_000;
                let fr = frame(p);
                w.write_frame(t, &fr, fr.len() as u32).expect("write");
            }
            w.finish().expect("finish");
        }
        let base = run(&path, 1, 65536);
        for (workers, flows) in [(2, 65536), (4, 65536), (1, 16), (4, 16)] {
            let other = run(&path, workers, flows);
            prop_assert!(base == other, "output differs with {} workers, {} flows", workers, flows);
        }
        for workers in [1, 2] {
            let live = run_with(&path, workers, 65536, true);
            prop_assert!(base == live, "output differs with the operator socket's state, {} workers", workers);
        }

        // OK records equal the reference exactly, no key twice in a window.
        let want = reference(&pkts, start_ns);
        let mut got = BTreeMap::new();
        let mut windows: BTreeMap<(String, u64), BTreeSet<String>> = BTreeMap::new();
        for r in &base {
            let slot = windows.entry((r.flow_log_id.clone(), r.window_start)).or_default();
            if r.log_status != LogStatus::Ok {
                prop_assert_eq!(r.log_status, LogStatus::NoData, "nothing is skipped here");
                prop_assert!(slot.insert(format!("NODATA {}", r.eni_id)), "one NODATA per ENI and window");
                continue;
            }
            let ipstr = |a: Option<IpAddr>| a.map(|a| a.to_string()).unwrap_or_default();
            let k: RecKey = (
                r.flow_log_id.clone(), r.window_start, r.eni_id.clone(),
                r.direction.map(|d| d.as_str().to_string()).unwrap_or_default(),
                ipstr(r.srcaddr), ipstr(r.dstaddr), r.protocol.unwrap_or(0),
                r.srcport.unwrap_or(0), r.dstport.unwrap_or(0),
            );
            prop_assert!(slot.insert(format!("{k:?}")), "key repeated in a window: {:?}", k);
            prop_assert!(got.insert(k, (r.packets, r.bytes, r.start, r.end, r.tcp_flags)).is_none());
        }
        prop_assert_eq!(&got, &want);

        // NODATA: every covered window of each flow log, for each covered
        // ENI without a logged packet in it.
        let first = (start_ns + u64::from(pkts[0].dt_ms) * 1_000_000) / 1_000_000_000;
        let last = (start_ns + pkts.iter().map(|p| u64::from(p.dt_ms)).sum::<u64>() * 1_000_000) / 1_000_000_000;
        for (fl, iv, enis) in [("vpc60", 60u64, vec![1u8, 2, 3, 4]), ("eni300", 300, vec![2])] {
            let mut w = first / iv * iv;
            while w <= last / iv * iv {
                for &e in &enis {
                    let had = want.keys().any(|k| k.0 == fl && k.1 == w && k.2 == format!("eni-{e}"));
                    let nodata = base.iter().any(|r| r.flow_log_id == fl && r.window_start == w
                        && r.eni_id == format!("eni-{e}") && r.log_status == LogStatus::NoData);
                    prop_assert_eq!(nodata, !had, "NODATA for {} eni-{} window {}", fl, e, w);
                }
                w += iv;
            }
        }
    }
}
