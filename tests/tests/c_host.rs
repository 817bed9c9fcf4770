//! The plugin ABI from C: the reference host (`tests/c-host/host.c`), built
//! here with the system C compiler, dlopens `libflowlog.so`, runs EAL with a
//! `net_pcap` device and calls the plugin for every burst. Its log store
//! must equal `flowlogd replay`'s for the same capture and configuration.
//! And the calls that need no EAL, from Rust through the library: version,
//! configuration and argument errors, control, tick, destroy.

use flowlog::abi::{
    flowlog_control, flowlog_create, flowlog_destroy, flowlog_options, flowlog_pkt_info,
    flowlog_plugin, flowlog_process_burst, flowlog_status, flowlog_tick, FLOWLOG_ABI_VERSION,
    FLOWLOG_ENI_BY_MAC,
};
use flowlog_tests::{
    config_without_ports, eal_args, plugin_lib, run_flowlogd, store_texts, workspace_root,
};
use serde_json::Value;
use std::ffi::{c_char, CStr, CString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::ptr::{null, null_mut};

fn pkg_config(what: &str) -> Vec<String> {
    let o = Command::new("pkg-config")
        .args([what, "libdpdk"])
        .output()
        .expect("pkg-config runs");
    assert!(
        o.status.success(),
        "pkg-config {what} libdpdk: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// `cc -O2 tests/c-host/host.c -I include $(pkg-config --cflags libdpdk)
/// $(pkg-config --libs libdpdk) -ldl -o DIR/NAME`, plus `defines`.
fn build_host(dir: &Path, name: &str, defines: &[&str]) -> PathBuf {
    let root = workspace_root();
    let out = dir.join(name);
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let o = Command::new(&cc)
        .args(["-O2", "-Wall", "-Wextra", "-Werror"])
        .args(defines)
        .arg(root.join("tests/c-host/host.c"))
        .arg("-I")
        .arg(root.join("include"))
        .args(pkg_config("--cflags"))
        .args(pkg_config("--libs"))
        .arg("-ldl")
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("running the C compiler {cc:?}: {e}"));
    assert!(
        o.status.success(),
        "building the C host failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn eal(prefix: &str, vdevs: &[String]) -> Vec<String> {
    eal_args(prefix, "0", vdevs)
}

#[test]
fn c_host_forwards_drops_rejected_and_logs_like_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config_without_ports(dir.path());
    let cap = dir.path().join("in.pcap");
    // 150 s of traffic: two slice boundaries (the example's slice is 60 s).
    // net_pcap replays it in about a second, far faster than real time; a
    // worker starts with two spare tables, so up to two rotations never
    // wait for the exporter to give one back, however busy the machine.
    // (More would race it: the worker never waits, it skips and counts.)
    let r = run_flowlogd([
        "gen",
        "--out",
        cap.to_str().unwrap(),
        "--packets",
        "20000",
        "--duration",
        "150",
        "--seed",
        "3",
    ]);
    assert_eq!(r.code, Some(0), "{r}");
    let host = build_host(dir.path(), "host", &[]);
    let fwd = dir.path().join("fwd.pcap");
    let (host_out, replay_out) = (dir.path().join("host-store"), dir.path().join("replay"));
    let o = Command::new(&host)
        .args(["--flows", "65536"])
        .arg(plugin_lib())
        .arg(&cfg)
        .arg(&host_out)
        .args(eal(
            "flchost",
            &[format!(
                "net_pcap0,rx_pcap={},tx_pcap={}",
                cap.display(),
                fwd.display()
            )],
        ))
        .output()
        .expect("run the C host");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "the C host failed:\n{stdout}\n{stderr}"
    );
    let s: Value = serde_json::from_str(stdout.lines().last().expect("a summary line"))
        .unwrap_or_else(|e| panic!("the summary is not JSON ({e}): {stdout}"));
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}"));
    let plugin = &s["plugin"]["result"];
    assert_eq!(s["plugin"]["ok"], true, "{s}");
    assert_eq!(n(&s, "received"), 20_000);
    assert_eq!(s["packet_clock"], true, "net_pcap gives RX timestamps");
    assert_eq!(n(&s, "failed_calls"), 0);
    assert_eq!(n(&s, "tx_failed"), 0);
    assert_eq!(
        n(plugin, "received"),
        20_000,
        "every packet reached the plugin"
    );
    assert!(
        n(&s, "dropped") > 0,
        "the example policy rejects the scan: {s}"
    );
    assert_eq!(
        n(&s, "dropped"),
        n(plugin, "rejected"),
        "packets dropped = packets the plugin rejected"
    );
    assert_eq!(n(&s, "forwarded") + n(&s, "dropped"), n(&s, "received"));
    assert_eq!(
        (n(plugin, "no_free_table"), n(plugin, "skipped")),
        (0, 0),
        "the exporter kept up (else SKIPDATA would differ from replay): {plugin}"
    );
    let sent = flowlog::capture::Capture::open(&fwd)
        .expect("TX capture")
        .frames()
        .count() as u64;
    assert_eq!(
        sent,
        n(&s, "forwarded"),
        "the TX capture holds every forwarded frame"
    );

    let r = run_flowlogd([
        "replay",
        "--quiet",
        "--json",
        "--flows-per-core",
        "65536",
        "--config",
        cfg.to_str().unwrap(),
        "--pcap",
        cap.to_str().unwrap(),
        "--out",
        replay_out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(0), "{r}");
    let (a, b) = (store_texts(&host_out), store_texts(&replay_out));
    assert!(a.len() > 1, "several windows, not {} file(s)", a.len());
    assert_eq!(
        a.iter().map(|f| &f.0).collect::<Vec<_>>(),
        b.iter().map(|f| &f.0).collect::<Vec<_>>(),
        "the same files"
    );
    for (x, y) in a.iter().zip(&b) {
        assert!(
            x.1 == y.1,
            "{} differs between the C host and replay",
            x.0.display()
        );
    }
}

#[test]
fn c_host_refuses_a_plugin_of_another_abi_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = build_host(dir.path(), "host-v2", &["-DHOST_ABI_VERSION=2"]);
    // The check comes before EAL: no EAL arguments needed.
    let o = Command::new(&host)
        .arg(plugin_lib())
        .arg(dir.path().join("unused.json"))
        .arg(dir.path().join("unused-store"))
        .output()
        .expect("run the C host");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("ABI version 1") && stderr.contains("version 2"),
        "{stderr}"
    );
}

/// What `flowlog_create` answered: the status, the handle, the error text.
struct Created {
    status: flowlog_status,
    handle: *mut flowlog_plugin,
    err: String,
}

fn create(version: u32, json: Option<&str>, opts: Option<&flowlog_options>) -> Created {
    let mut handle: *mut flowlog_plugin = std::ptr::dangling_mut();
    let mut err = [0 as c_char; 512];
    let (ptr, len) = json.map_or((null(), 0), |j| (j.as_ptr().cast::<c_char>(), j.len()));
    // SAFETY: `ptr` is NULL or `len` readable bytes; `opts` is NULL or a
    // valid options struct whose root, if any, is a C string alive for the
    // call; `handle` and `err` are writable.
    let status = unsafe {
        flowlog_create(
            version,
            ptr,
            len,
            opts.map_or(null(), |o| o as *const _),
            &mut handle,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    // SAFETY: the plugin NUL-terminates what it writes; the buffer starts
    // zeroed, so it is a C string either way.
    let err = unsafe { CStr::from_ptr(err.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    Created {
        status,
        handle,
        err,
    }
}

fn options(root: &CStr) -> flowlog_options {
    flowlog_options {
        log_store_root: root.as_ptr(),
        workers: 2,
        flows_per_core: 1024,
        conns_per_core: 1024,
    }
}

#[test]
fn create_refuses_another_version_bad_configurations_and_null_pointers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = CString::new(dir.path().join("store").to_str().unwrap()).unwrap();
    let example =
        std::fs::read_to_string(workspace_root().join("config/example.json")).expect("example");
    let opts = options(&root);

    let c = create(2, Some(&example), Some(&opts));
    assert_eq!(c.status, flowlog_status::FLOWLOG_ERR_VERSION);
    assert!(c.handle.is_null(), "no handle on failure");
    assert!(
        c.err.contains("version 2") && c.err.contains("version 1"),
        "{}",
        c.err
    );

    let c = create(FLOWLOG_ABI_VERSION, Some("{\"enis\": ["), Some(&opts));
    assert_eq!(c.status, flowlog_status::FLOWLOG_ERR_CONFIG);
    assert!(c.handle.is_null());
    assert!(c.err.contains("not valid JSON"), "{}", c.err);

    let bad = example.replacen("\"host\"", "\"hots\"", 1);
    let c = create(FLOWLOG_ABI_VERSION, Some(&bad), Some(&opts));
    assert_eq!(c.status, flowlog_status::FLOWLOG_ERR_CONFIG);
    assert!(c.err.contains("hots"), "the error names the key: {}", c.err);

    let c = create(FLOWLOG_ABI_VERSION, None, Some(&opts));
    assert_eq!(c.status, flowlog_status::FLOWLOG_ERR_ARG);
    assert!(c.err.contains("config_json is NULL"), "{}", c.err);

    let c = create(FLOWLOG_ABI_VERSION, Some(&example), None);
    assert_eq!(
        c.status,
        flowlog_status::FLOWLOG_ERR_CONFIG,
        "no root in the options nor the configuration"
    );
    assert!(c.err.contains("log_store_root"), "{}", c.err);

    let c = create(
        FLOWLOG_ABI_VERSION,
        Some(&example),
        Some(&flowlog_options {
            workers: 65,
            ..opts
        }),
    );
    assert_eq!(c.status, flowlog_status::FLOWLOG_ERR_ARG);
    assert!(c.err.contains("options.workers 65"), "{}", c.err);

    let mut err = [0 as c_char; 64];
    // SAFETY: `example` is readable for its length; `out` NULL is the case
    // under test; `err` is writable.
    let st = unsafe {
        flowlog_create(
            FLOWLOG_ABI_VERSION,
            example.as_ptr().cast(),
            example.len(),
            &opts,
            null_mut(),
            err.as_mut_ptr(),
            err.len(),
        )
    };
    assert_eq!(st, flowlog_status::FLOWLOG_ERR_ARG);
    // SAFETY: NUL-terminated inside the buffer.
    let text = unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy();
    assert!(text.starts_with("out is NULL"), "{text}");
}

#[test]
fn a_handle_answers_control_and_tick_refuses_bad_bursts_and_is_destroyed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = CString::new(dir.path().join("store").to_str().unwrap()).unwrap();
    let example =
        std::fs::read_to_string(workspace_root().join("config/example.json")).expect("example");
    let c = create(FLOWLOG_ABI_VERSION, Some(&example), Some(&options(&root)));
    assert_eq!(c.status, flowlog_status::FLOWLOG_OK, "{}", c.err);
    let p = c.handle;
    assert!(!p.is_null());

    let control = |req: &str, cap: usize| -> (flowlog_status, usize, String) {
        let mut reply = vec![0x55 as c_char; cap.max(1)];
        let mut len = 0usize;
        // SAFETY: `p` is live; `req` readable; `reply` has `cap` writable
        // bytes; `len` writable.
        let st = unsafe {
            flowlog_control(
                p,
                req.as_ptr().cast(),
                req.len(),
                reply.as_mut_ptr(),
                cap,
                &mut len,
            )
        };
        let text = if st == flowlog_status::FLOWLOG_OK {
            // SAFETY: NUL-terminated by the plugin on success.
            unsafe { CStr::from_ptr(reply.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        } else {
            String::new()
        };
        (st, len, text)
    };
    let req = r#"{"id": 42, "version": 1, "cmd": "stats"}"#;
    let (st, len, text) = control(req, 8192);
    assert_eq!(st, flowlog_status::FLOWLOG_OK);
    assert_eq!(len, text.len());
    let r: Value = serde_json::from_str(&text).expect("JSON reply");
    assert_eq!(
        (r["id"].as_u64(), r["ok"].as_bool()),
        (Some(42), Some(true))
    );
    assert_eq!(r["result"]["workers"], 2);
    let (st, needed, _) = control(req, 16);
    assert_eq!(
        st,
        flowlog_status::FLOWLOG_ERR_ARG,
        "the reply does not fit"
    );
    assert_eq!(needed, len, "the size it needs");
    let (st, _, text) = control(r#"{"id": 1, "version": 1, "cmd": "attach"}"#, 8192);
    assert_eq!(
        st,
        flowlog_status::FLOWLOG_OK,
        "an error reply is still a reply"
    );
    let r: Value = serde_json::from_str(&text).expect("JSON reply");
    assert_eq!(r["ok"], false);
    assert!(r["error"].as_str().unwrap().contains("unknown command"));

    let burst = |p: *mut flowlog_plugin, worker: u32, n: u16, pkts_null: bool| {
        // Never read: every case here is refused (or empty) before any
        // mbuf is looked at.
        let pkts = [null_mut(); 65];
        let info = [flowlog_pkt_info {
            eni: FLOWLOG_ENI_BY_MAC,
            ..Default::default()
        }; 65];
        let mut v = [0u8; 65];
        let pp = if pkts_null { null() } else { pkts.as_ptr() };
        // SAFETY: `p` is NULL or live; the arrays hold 65 entries >= n.
        unsafe { flowlog_process_burst(p, worker, pp, info.as_ptr(), n, 1, v.as_mut_ptr()) }
    };
    assert_eq!(burst(p, 0, 0, true), flowlog_status::FLOWLOG_OK, "n = 0");
    assert_eq!(
        burst(p, 0, 65, false),
        flowlog_status::FLOWLOG_ERR_ARG,
        "n > 64"
    );
    assert_eq!(
        burst(p, 2, 1, false),
        flowlog_status::FLOWLOG_ERR_ARG,
        "worker 2 of 2"
    );
    assert_eq!(
        burst(p, 0, 1, true),
        flowlog_status::FLOWLOG_ERR_ARG,
        "pkts NULL"
    );
    assert_eq!(
        burst(p, 0, 1, false),
        flowlog_status::FLOWLOG_ERR_ARG,
        "a NULL mbuf"
    );
    assert_eq!(
        burst(null_mut(), 0, 0, true),
        flowlog_status::FLOWLOG_ERR_ARG,
        "no handle"
    );

    // SAFETY: `p` is live.
    unsafe {
        assert_eq!(
            flowlog_tick(p, 1, 1_704_067_200_000_000_000),
            flowlog_status::FLOWLOG_OK
        );
        assert_eq!(flowlog_tick(p, 2, 1), flowlog_status::FLOWLOG_ERR_ARG);
        assert_eq!(
            flowlog_tick(null_mut(), 0, 1),
            flowlog_status::FLOWLOG_ERR_ARG
        );
        assert_eq!(flowlog_destroy(p), flowlog_status::FLOWLOG_OK);
        assert_eq!(flowlog_destroy(null_mut()), flowlog_status::FLOWLOG_ERR_ARG);
    }
}
