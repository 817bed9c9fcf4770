//! The plugin core without DPDK: frames as byte slices instead of mbufs.
//! (The C surface with real mbufs is tested by the reference C host in
//! `tests/tests/c_host.rs`.)

use super::panic::{boundary, boundary_value};
use super::plugin::{Plugin, Settings};
use super::*;
use crate::attrib::symmetric_hash;
use crate::capture::Capture;
use crate::gen::{example_enis, generate, GenSpec};
use crate::replay::{replay, ReplayOptions};
use crate::wire::{LinkType, PacketMeta};
use exporter::config::Config;
use exporter::store::{Compress, StoreFormat};
use std::path::{Path, PathBuf};

fn example() -> Config {
    exporter::config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/example.json"))
        .expect("config/example.json")
}

fn plugin(root: &Path, workers: u32) -> Plugin {
    let s = Settings::new(root.to_path_buf(), workers, 1 << 12, 1 << 12).expect("settings");
    Plugin::new(example(), &s).expect("plugin")
}

/// Every file under `root`: (relative path, bytes), sorted.
fn store(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).expect("under root").to_path_buf();
                out.push((rel, std::fs::read(&p).expect("read")));
            }
        }
    }
    let mut v = Vec::new();
    walk(root, root, &mut v);
    v.sort();
    v
}

/// Ethernet + IPv4 + TCP (SYN), checksums left 0 (nobody checks them).
fn tcp4(dst_mac: [u8; 6], src_mac: [u8; 6], src: [u8; 4], dst: [u8; 4], dport: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(54);
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&[0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    f
}

const A1: [u8; 6] = [2, 0, 0, 0, 0, 1];
const GW: [u8; 6] = [2, 0, 0, 0, 0xff, 0xff];
const OUTSIDE: [u8; 4] = [198, 51, 100, 7];
const A1_IP: [u8; 4] = [10, 0, 1, 5];
const T0: u64 = 1_704_067_200_000_000_000;

fn by_mac(time_ns: u64) -> flowlog_pkt_info {
    flowlog_pkt_info {
        eni: FLOWLOG_ENI_BY_MAC,
        time_ns,
        ..flowlog_pkt_info::default()
    }
}

#[test]
fn a_panic_becomes_an_error_code() {
    assert_eq!(
        boundary(|| panic!("a bug")),
        flowlog_status::FLOWLOG_ERR_PANIC
    );
    assert_eq!(boundary(|| flowlog_status::FLOWLOG_OK), FLOWLOG_OK);
    assert_eq!(boundary_value(0u32, || panic!("a bug")), 0);
    assert_eq!(flowlog_abi_version(), FLOWLOG_ABI_VERSION);
}

#[test]
fn error_text_is_cut_on_a_character_boundary_and_terminated() {
    let mut buf = [0x55 as c_char; 6];
    // SAFETY: `buf` has 6 writable bytes.
    unsafe { write_err(buf.as_mut_ptr(), buf.len(), "ab\u{e9}cdef") };
    // "ab" + 2-byte "é" + "c" = 5 bytes fit before the NUL.
    // SAFETY: write_err NUL-terminated it inside the buffer.
    let s = unsafe { CStr::from_ptr(buf.as_ptr()) };
    assert_eq!(s.to_str().unwrap(), "ab\u{e9}c");
    let mut buf = [0x55 as c_char; 4];
    // SAFETY: as above.
    unsafe { write_err(buf.as_mut_ptr(), buf.len(), "ab\u{e9}cdef") };
    // SAFETY: as above.
    let s = unsafe { CStr::from_ptr(buf.as_ptr()) };
    assert_eq!(s.to_str().unwrap(), "ab", "é does not fit whole");
    // SAFETY: a NULL buffer is never written.
    unsafe { write_err(std::ptr::null_mut(), 10, "x") };
}

#[test]
fn verdicts_by_mac_by_eni_and_from_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let p = plugin(dir.path(), 1);
    let frames = [
        // 0: to eni-a1 on 80: sg-web accepts.
        tcp4(A1, GW, OUTSIDE, A1_IP, 80),
        // 1: to eni-a1 on 22: sg-web has no rule, ingress default drop.
        tcp4(A1, GW, OUTSIDE, A1_IP, 22),
        // 2: the same, but the host already accepted it: used as is.
        tcp4(A1, GW, OUTSIDE, A1_IP, 22),
        // 3: ARP: not IP, not judged.
        {
            let mut f = tcp4(A1, GW, OUTSIDE, A1_IP, 80);
            f[12..14].copy_from_slice(&[0x08, 0x06]);
            f
        },
        // 4: between two unknown MACs: of no ENI.
        tcp4([2, 9, 9, 9, 9, 9], GW, OUTSIDE, A1_IP, 80),
        // 5: unknown MACs, but the host says it came in on eni-a1's port.
        tcp4([2, 9, 9, 9, 9, 9], GW, OUTSIDE, A1_IP, 22),
        // 6: and this one leaves eni-a1: egress accepts by default.
        tcp4([2, 9, 9, 9, 9, 9], GW, A1_IP, OUTSIDE, 22),
        // 7: an IPv4 header that lies about its length.
        {
            let mut f = tcp4(A1, GW, OUTSIDE, A1_IP, 80);
            f[14] = 0x4f;
            f
        },
    ];
    let mut info = [by_mac(0); 8];
    info[2].host_verdict = FLOWLOG_VERDICT_ACCEPT;
    info[5] = flowlog_pkt_info {
        eni: 0,
        direction: FLOWLOG_DIR_IN,
        host_verdict: FLOWLOG_VERDICT_NONE,
        time_ns: T0 + 5,
    };
    info[6] = flowlog_pkt_info {
        direction: FLOWLOG_DIR_OUT,
        ..info[5]
    };
    let info_of = |i: usize| info[i];
    assert_eq!(p.check(0, 8, info_of, T0), Ok(()));
    let mut v = [0xEE; 8];
    p.process(
        0,
        8,
        info_of,
        |i| (&frames[i][..], frames[i].len() as u32),
        T0,
        &mut v,
    );
    use super::{
        FLOWLOG_VERDICT_ACCEPT as A, FLOWLOG_VERDICT_NONE as N, FLOWLOG_VERDICT_REJECT as R,
    };
    assert_eq!(v, [A, R, A, N, N, R, A, N]);
    let s = p.stats();
    let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}"));
    assert_eq!(n("received"), 8);
    assert_eq!(n("logged"), 5);
    assert_eq!((n("accepted"), n("rejected")), (3, 2));
    assert_eq!((n("not_ip"), n("malformed"), n("unmatched")), (1, 1, 1));
    assert_eq!(n("host_verdicts"), 1);
    assert_eq!(n("bursts"), 1);
    p.finish().expect("flushed");
    let files = store(dir.path());
    assert!(!files.is_empty(), "the open window was flushed on finish");
    let text: String = files
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert!(text.contains("REJECT") && text.contains("ACCEPT"), "{text}");
}

#[test]
fn a_bad_burst_is_refused_before_anything_changes() {
    let dir = tempfile::tempdir().unwrap();
    let p = plugin(dir.path(), 2);
    let ok = by_mac(T0);
    let refused = |info: flowlog_pkt_info, worker: usize, n: usize, now: u64| {
        p.check(worker, n, |_| info, now) == Err(flowlog_status::FLOWLOG_ERR_ARG)
    };
    assert!(!refused(ok, 1, 64, 0));
    assert!(refused(ok, 2, 1, 0), "worker out of range");
    assert!(refused(ok, 0, 65, 0), "burst too long");
    assert!(refused(by_mac(0), 0, 1, 0), "no time at all");
    assert!(!refused(by_mac(0), 0, 1, T0), "the call's time");
    let eni = |eni: u16, direction: u8| flowlog_pkt_info {
        eni,
        direction,
        ..ok
    };
    assert!(!refused(eni(5, FLOWLOG_DIR_OUT), 0, 1, 0));
    assert!(refused(eni(6, FLOWLOG_DIR_OUT), 0, 1, 0), "6 ENIs: 0 to 5");
    assert!(refused(eni(0, 0), 0, 1, 0), "an ENI needs a direction");
    assert!(refused(eni(0, 3), 0, 1, 0), "direction 1 or 2");
    let bad_verdict = flowlog_pkt_info {
        host_verdict: 3,
        ..ok
    };
    assert!(refused(bad_verdict, 0, 1, 0));
    assert_eq!(
        p.tick(2, T0),
        Err(flowlog_status::FLOWLOG_ERR_ARG),
        "tick: worker out of range"
    );
    assert_eq!(
        p.tick(0, 0),
        Ok(()),
        "a tick at 0 before any packet: nothing"
    );
    assert_eq!(p.stats()["per_worker"][0]["clock_ns"], 0);
    p.finish().expect("finish");
    assert!(
        store(dir.path()).is_empty(),
        "nothing seen, nothing written"
    );
}

#[test]
fn control_answers_stats_and_an_error_for_anything_else() {
    let dir = tempfile::tempdir().unwrap();
    let p = plugin(dir.path(), 3);
    let ask = |req: &str| -> serde_json::Value {
        serde_json::from_str(&p.control(req.as_bytes())).expect("the reply is JSON")
    };
    let r = ask(r#"{"id": 7, "version": 1, "cmd": "stats"}"#);
    assert_eq!(r["id"], 7);
    assert_eq!(r["ok"], true);
    assert_eq!(r["result"]["workers"], 3);
    assert_eq!(r["result"]["per_worker"].as_array().unwrap().len(), 3);
    assert_eq!(r["result"]["received"], 0);
    for (req, id, words) in [
        (
            r#"{"id": "x", "version": 1, "cmd": "reload"}"#,
            "x",
            "unknown command",
        ),
        (
            r#"{"id": 1, "version": 2, "cmd": "stats"}"#,
            "1",
            "version 2",
        ),
        (r#"{"id": 1, "cmd": "stats"}"#, "1", "missing \"version\""),
        (r#"{"id": 1, "version": 1}"#, "1", "missing \"cmd\""),
        ("[1]", "null", "not a JSON object"),
        ("{nope", "null", "not JSON"),
    ] {
        let r = ask(req);
        assert_eq!(r["ok"], false, "{req}: {r}");
        assert_eq!(
            r["id"].to_string().trim_matches('"'),
            id,
            "{req}: the id is echoed"
        );
        let e = r["error"].as_str().unwrap();
        assert!(e.contains(words), "{req}: {e}");
    }
    p.finish().expect("finish");
}

/// Feeds a capture through the plugin as a host would: bursts of up to
/// 32 frames, each worker's share by the symmetric hash (as replay spreads
/// them), every idle worker ticked after each burst.
fn feed(p: &Plugin, cap: &Path, workers: usize) {
    let c = Capture::open(cap).expect("capture");
    // One RX clock for every worker, as replay's dispatcher has: the latest
    // capture time so far.
    let mut clock = 0;
    let frames: Vec<(u64, Vec<u8>, u32)> = c
        .frames()
        .map(|f| {
            let f = f.expect("frame");
            clock = f.ts_nanos.max(clock);
            (clock, f.data.to_vec(), f.orig_len)
        })
        .collect();
    let mut meta = PacketMeta::default();
    for burst in frames.chunks(32) {
        let mut per: Vec<Vec<usize>> = vec![Vec::new(); workers];
        for (i, (_, d, len)) in burst.iter().enumerate() {
            let w = match crate::wire::parse(LinkType::Ethernet, d, *len, &mut meta) {
                Ok(()) => (symmetric_hash(&meta) % workers as u64) as usize,
                Err(_) => 0,
            };
            per[w].push(i);
        }
        let now = burst.iter().map(|f| f.0).max().unwrap();
        for (w, idx) in per.iter().enumerate() {
            if idx.is_empty() {
                p.tick(w, now).expect("tick");
                continue;
            }
            let info = |i: usize| by_mac(burst[idx[i]].0);
            p.check(w, idx.len(), info, now).expect("a good burst");
            let mut v = [0u8; 32];
            p.process(
                w,
                idx.len(),
                info,
                |i| (&burst[idx[i]].1[..], burst[idx[i]].2),
                now,
                &mut v,
            );
        }
        p.settle();
    }
}

fn replay_store(cap: &Path, out: &Path) {
    let cfg = example();
    let opts = ReplayOptions {
        format: StoreFormat::try_from(cfg.log_store_format).unwrap(),
        compress: Compress::from(cfg.log_store_compress),
        config: cfg,
        pcap: cap.to_path_buf(),
        out: out.to_path_buf(),
        workers: 1,
        flows_per_core: 1 << 12,
        conns_per_core: 1 << 12,
        progress: false,
        pace: None,
        live: None,
    };
    let s = replay(&opts).expect("replay");
    assert!(s.errors.is_empty(), "{:?}", s.errors);
}

#[test]
fn the_log_store_equals_replays_with_one_and_with_three_workers() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("in.pcap");
    let spec = GenSpec {
        packets: 6_000,
        seed: 5,
        duration_s: 900,
        flows: 300,
        ..GenSpec::default()
    };
    generate(
        &spec,
        &example_enis(),
        std::fs::File::create(&cap).expect("create"),
    )
    .expect("gen");
    let want = dir.path().join("replay");
    replay_store(&cap, &want);
    let want = store(&want);
    assert!(want.len() > 1, "several windows");
    for workers in [1, 3] {
        let out = dir.path().join(format!("plugin{workers}"));
        let p = plugin(&out, workers as u32);
        feed(&p, &cap, workers);
        let s = p.stats();
        assert_eq!(s["received"], 6_000);
        assert_eq!(s["no_free_table"], 0);
        assert_eq!(s["skipped"], 0);
        p.finish().expect("finish");
        let got = store(&out);
        assert_eq!(
            got.iter().map(|f| &f.0).collect::<Vec<_>>(),
            want.iter().map(|f| &f.0).collect::<Vec<_>>(),
            "{workers} worker(s): the same files"
        );
        for (g, w) in got.iter().zip(&want) {
            assert!(
                g.1 == w.1,
                "{workers} worker(s): {} differs from replay's",
                g.0.display()
            );
        }
    }
}

/// Counts the allocations of the calling thread (the exporter's are its
/// own), to show a burst allocates nothing.
struct CountingAlloc;

thread_local! {
    static ALLOCS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn count() {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: std::alloc::Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { std::alloc::System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, n: usize) -> *mut u8 {
        count();
        // SAFETY: the caller's contract, passed on.
        unsafe { std::alloc::System.realloc(p, l, n) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { std::alloc::System.dealloc(p, l) }
    }
}

#[global_allocator]
static COUNTING: CountingAlloc = CountingAlloc;

/// Mbufs without a mempool or EAL: the plugin reads only `buf_addr +
/// data_off`, `data_len` and `pkt_len`.
fn fake_mbufs(frames: &mut [Vec<u8>]) -> Vec<rte_mbuf> {
    frames
        .iter_mut()
        .map(|f| rte_mbuf {
            buf_addr: f.as_mut_ptr().cast(),
            data_off: 0,
            data_len: f.len() as u16,
            pkt_len: f.len() as u32,
            ..rte_mbuf::default()
        })
        .collect()
}

#[test]
fn a_burst_through_the_c_entry_point_allocates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::ffi::CString::new(dir.path().to_str().unwrap()).unwrap();
    let config = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/example.json"),
    )
    .unwrap();
    let opts = flowlog_options {
        log_store_root: root.as_ptr(),
        workers: 1,
        flows_per_core: 1 << 12,
        conns_per_core: 1 << 12,
    };
    let mut p = std::ptr::null_mut();
    // SAFETY: the configuration text, the options and `p` are valid for the
    // call; no error buffer.
    let st = unsafe {
        flowlog_create(
            FLOWLOG_ABI_VERSION,
            config.as_ptr().cast(),
            config.len(),
            &opts,
            &mut p,
            std::ptr::null_mut(),
            0,
        )
    };
    assert_eq!(st, FLOWLOG_OK);
    let mut frames: Vec<Vec<u8>> = (0..FLOWLOG_MAX_BURST)
        .map(|i| match i % 3 {
            0 => tcp4(A1, GW, OUTSIDE, A1_IP, 443),
            1 => tcp4(A1, GW, OUTSIDE, A1_IP, 23),
            _ => vec![0; 20],
        })
        .collect();
    let mut mbufs = fake_mbufs(&mut frames);
    let pkts: Vec<*mut rte_mbuf> = mbufs.iter_mut().map(|m| m as *mut rte_mbuf).collect();
    let mut info = [by_mac(0); FLOWLOG_MAX_BURST as usize];
    let mut verdicts = [0xEEu8; FLOWLOG_MAX_BURST as usize];
    let mut burst = |t: u64, info: &mut [flowlog_pkt_info]| {
        for (i, x) in info.iter_mut().enumerate() {
            // Every other packet takes the call's time.
            x.time_ns = if i % 2 == 0 { t } else { 0 };
        }
        // SAFETY: `p` is live; `pkts` holds FLOWLOG_MAX_BURST mbufs whose
        // data outlive the call; `info` and `verdicts` as many entries.
        unsafe {
            flowlog_process_burst(
                p,
                0,
                pkts.as_ptr(),
                info.as_ptr(),
                FLOWLOG_MAX_BURST,
                t,
                verdicts.as_mut_ptr(),
            )
        }
    };
    assert_eq!(burst(T0, &mut info), FLOWLOG_OK);
    let b0 = allocs();
    drop(std::hint::black_box(vec![0u8; 16]));
    assert!(allocs() > b0, "the counter counts");
    let before = allocs();
    // 100 seconds: a slice boundary (60 s) on the way.
    for s in 1..=100u64 {
        assert_eq!(burst(T0 + s * 1_000_000_000, &mut info), FLOWLOG_OK);
        // SAFETY: `p` is live.
        let st = unsafe { flowlog_tick(p, 0, T0 + s * 1_000_000_000) };
        assert_eq!(st, FLOWLOG_OK);
    }
    assert_eq!(allocs() - before, 0, "bursts and ticks allocate nothing");
    use super::{
        FLOWLOG_VERDICT_ACCEPT as A, FLOWLOG_VERDICT_NONE as N, FLOWLOG_VERDICT_REJECT as R,
    };
    assert_eq!(verdicts[..6], [A, R, N, A, R, N]);
    // SAFETY: `p` is live and not used after.
    assert_eq!(unsafe { flowlog_destroy(p) }, FLOWLOG_OK);
    assert!(!store(dir.path()).is_empty());
}
