//! The plugin ABI: flow logs as a shared library any DPDK vSwitch can
//! `dlopen` and call per RX burst. `include/flowlog.h` is generated from
//! this module by cbindgen (`vswitch-plugin/cbindgen.toml`) and checked for
//! drift by `vswitch-plugin/tests/abi_header.rs`; the doc comments here are
//! the header's.
//!
//! Every `extern "C"` body runs inside the panic boundary of `panic.rs`;
//! errors are the `#[repr(u32)]` [`flowlog_status`]; the handle is opaque
//! and freed only by [`flowlog_destroy`]. The state behind it is in
//! `plugin.rs`, in safe Rust; this file only turns pointers into slices.

#![allow(unsafe_code)]
#![allow(non_camel_case_types)]

mod panic;
mod plugin;

#[cfg(test)]
mod tests;

use dpdk_sys::rte_mbuf;
use panic::{boundary, boundary_value};
use plugin::{AbiError, Plugin, Settings};
use std::ffi::{c_char, CStr};
use std::path::PathBuf;

/// The ABI version this library implements. A host passes the version it
/// was built for (this constant, from its copy of the header) to
/// `flowlog_create`, which refuses any other; a host may also compare it
/// with `flowlog_abi_version()` right after `dlopen`.
pub const FLOWLOG_ABI_VERSION: u32 = 1;

/// The most packets one `flowlog_process_burst` call takes.
pub const FLOWLOG_MAX_BURST: u16 = 64;

/// `flowlog_pkt_info.eni`: attribute the packet by its Ethernet addresses,
/// as `flowlogd replay` does (the source MAC's ENI sent it, the destination
/// MAC's ENI receives it; `direction` is ignored).
pub const FLOWLOG_ENI_BY_MAC: u16 = 0xFFFF;

/// `flowlog_pkt_info.direction`: the packet enters the ENI (ingress).
pub const FLOWLOG_DIR_IN: u8 = 1;
/// `flowlog_pkt_info.direction`: the packet leaves the ENI (egress).
pub const FLOWLOG_DIR_OUT: u8 = 2;

/// No verdict: in `flowlog_pkt_info.host_verdict`, the host has none (the
/// plugin's policy judges); in the verdicts out, the packet was not judged
/// (not IP, malformed, or of no ENI): forward it as the host would anyway.
pub const FLOWLOG_VERDICT_NONE: u8 = 0;
/// ACCEPT: forward the packet.
pub const FLOWLOG_VERDICT_ACCEPT: u8 = 1;
/// REJECT: drop the packet.
pub const FLOWLOG_VERDICT_REJECT: u8 = 2;

/// What a call returns. The numbers are part of the ABI and never change.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum flowlog_status {
    /// Done.
    FLOWLOG_OK = 0,
    /// The host was built for another ABI version (`flowlog_create`).
    FLOWLOG_ERR_VERSION = 1,
    /// The configuration is not valid; the error text says where and why.
    FLOWLOG_ERR_CONFIG = 2,
    /// An argument is out of range: a NULL pointer, a worker index not below
    /// `options.workers`, more than FLOWLOG_MAX_BURST packets, an ENI index
    /// not in the configuration or an ENI without a direction, a verdict
    /// above 2, a packet without a time, a reply buffer too small.
    FLOWLOG_ERR_ARG = 3,
    /// The plugin panicked (a bug). The plugin is then broken: every later
    /// call but `flowlog_destroy` returns this too.
    FLOWLOG_ERR_PANIC = 4,
    /// The log store could not be created or written, or a thread not
    /// started.
    FLOWLOG_ERR_IO = 5,
}

use flowlog_status::{FLOWLOG_ERR_ARG, FLOWLOG_ERR_PANIC, FLOWLOG_OK};

/// Options of `flowlog_create`; a 0 (or NULL) field takes its default.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct flowlog_options {
    /// Root folder of the local log store (NUL-terminated, borrowed for the
    /// call only). NULL: the configuration's `log_store_root`.
    pub log_store_root: *const c_char,
    /// Workers: each host thread that calls `flowlog_process_burst` uses its
    /// own index, 0 to `workers - 1`. 0: 1. At most 64.
    pub workers: u32,
    /// Flow-table capacity per worker, flows (16 to 2^28). 0: 262144.
    pub flows_per_core: u32,
    /// Connection-table capacity per worker, for the stateful security
    /// groups (8 to 2^28). 0: 262144.
    pub conns_per_core: u32,
}

/// What the host knows about one packet of a burst.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct flowlog_pkt_info {
    /// FLOWLOG_ENI_BY_MAC, or the index in the configuration's `enis` of the
    /// ENI whose port the packet was seen on (a host that knows the port).
    pub eni: u16,
    /// With an ENI index: FLOWLOG_DIR_IN or FLOWLOG_DIR_OUT. Ignored with
    /// FLOWLOG_ENI_BY_MAC.
    pub direction: u8,
    /// The host's own verdict, used as is: FLOWLOG_VERDICT_NONE (the
    /// plugin's policy judges), FLOWLOG_VERDICT_ACCEPT or
    /// FLOWLOG_VERDICT_REJECT.
    pub host_verdict: u8,
    /// The packet's time, Unix nanoseconds (an RX timestamp). 0: the
    /// call's `now_ns`.
    pub time_ns: u64,
}

const _: () = assert!(std::mem::size_of::<flowlog_pkt_info>() == 16);

/// A flow-log plugin: its configuration, its workers' flow tables, its
/// exporter thread and log store. Opaque; made by `flowlog_create`, freed
/// by `flowlog_destroy` and by nothing else.
pub struct flowlog_plugin {
    inner: Plugin,
}

impl std::fmt::Debug for flowlog_plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

/// Copies `msg` into the caller's buffer, NUL-terminated, cut (on a UTF-8
/// boundary) to fit; nothing when the buffer is NULL or empty.
///
/// # Safety
/// `err` is NULL or points to `err_len` writable bytes.
unsafe fn write_err(err: *mut c_char, err_len: usize, msg: &str) {
    if err.is_null() || err_len == 0 {
        return;
    }
    let mut n = msg.len().min(err_len - 1);
    while !msg.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: `err` points to `err_len` writable bytes (the caller's
    // contract) and `n + 1 <= err_len`; `msg` cannot overlap a buffer the
    // caller lent us.
    unsafe {
        std::ptr::copy_nonoverlapping(msg.as_ptr(), err.cast::<u8>(), n);
        *err.add(n) = 0;
    }
}

/// The plugin behind a handle, if the handle is not NULL and the plugin
/// not broken.
///
/// # Safety
/// `p` is NULL or a handle from `flowlog_create` not yet destroyed.
unsafe fn live<'a>(p: *const flowlog_plugin) -> Result<&'a Plugin, flowlog_status> {
    // SAFETY: the caller's contract: NULL or a live handle, which we only
    // read through a shared reference (every method takes &self).
    let p = unsafe { p.as_ref() }.ok_or(FLOWLOG_ERR_ARG)?;
    if p.inner.is_broken() {
        return Err(FLOWLOG_ERR_PANIC);
    }
    Ok(&p.inner)
}

/// The ABI version of this library: FLOWLOG_ABI_VERSION as it was built.
#[no_mangle]
pub extern "C" fn flowlog_abi_version() -> u32 {
    boundary_value(0, || FLOWLOG_ABI_VERSION)
}

/// Creates a plugin from a configuration (the JSON text of CONFIG.md) and
/// options, and starts its exporter thread.
///
/// `abi_version`: FLOWLOG_ABI_VERSION as the host was built; any other is
/// refused with FLOWLOG_ERR_VERSION. `config_json`: `config_len` bytes of
/// UTF-8 (no NUL needed), borrowed for the call only. `opts`: NULL for every
/// default, borrowed for the call only. `out`: where the new handle is
/// written (NULL is written on failure); the caller owns the handle and
/// frees it with `flowlog_destroy`. `err`: NULL, or `err_len` bytes the
/// plugin fills with a NUL-terminated message on failure (cut to fit).
///
/// Returns FLOWLOG_OK, FLOWLOG_ERR_VERSION, FLOWLOG_ERR_CONFIG (the message
/// names the key and the problem), FLOWLOG_ERR_ARG (a NULL pointer or an
/// option out of range), FLOWLOG_ERR_IO (the log store root cannot be
/// created) or FLOWLOG_ERR_PANIC.
///
/// # Safety
/// `config_json` points to `config_len` readable bytes; `opts` is NULL or
/// points to a `flowlog_options` whose `log_store_root` is NULL or a
/// NUL-terminated string; `out` is NULL or writable; `err` is NULL or
/// points to `err_len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn flowlog_create(
    abi_version: u32,
    config_json: *const c_char,
    config_len: usize,
    opts: *const flowlog_options,
    out: *mut *mut flowlog_plugin,
    err: *mut c_char,
    err_len: usize,
) -> flowlog_status {
    boundary(|| {
        if out.is_null() {
            // SAFETY: `err` per the caller's contract.
            unsafe { write_err(err, err_len, "out is NULL: nowhere to put the handle") };
            return FLOWLOG_ERR_ARG;
        }
        // SAFETY: `out` is not NULL and writable (the caller's contract).
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: the pointers as the caller's contract states.
        match unsafe { create(abi_version, config_json, config_len, opts) } {
            Ok(p) => {
                let h = Box::into_raw(Box::new(flowlog_plugin { inner: p }));
                // SAFETY: as above; the caller now owns `h`.
                unsafe { out.write(h) };
                FLOWLOG_OK
            }
            Err(e) => {
                // SAFETY: `err` per the caller's contract.
                unsafe { write_err(err, err_len, &e.to_string()) };
                e.status()
            }
        }
    })
}

/// # Safety
/// As [`flowlog_create`].
unsafe fn create(
    abi_version: u32,
    config_json: *const c_char,
    config_len: usize,
    opts: *const flowlog_options,
) -> Result<Plugin, AbiError> {
    if abi_version != FLOWLOG_ABI_VERSION {
        return Err(AbiError::Version(format!(
            "the host was built for flowlog ABI version {abi_version}, this plugin implements \
             version {FLOWLOG_ABI_VERSION}; rebuild the host with this plugin's flowlog.h"
        )));
    }
    if config_json.is_null() {
        return Err(AbiError::Arg("config_json is NULL".into()));
    }
    // SAFETY: `config_json` is not NULL and points to `config_len` readable
    // bytes (the caller's contract), which we only read during the call.
    let bytes = unsafe { std::slice::from_raw_parts(config_json.cast::<u8>(), config_len) };
    let text = std::str::from_utf8(bytes).map_err(|e| {
        AbiError::Config(format!(
            "<flowlog_create>: the configuration is not UTF-8: {e}"
        ))
    })?;
    let config = exporter::config::from_json(text, "<flowlog_create>")
        .map_err(|e| AbiError::Config(e.to_string()))?;
    // SAFETY: NULL or a valid `flowlog_options` (the caller's contract).
    let o = unsafe { opts.as_ref() }
        .copied()
        .unwrap_or(flowlog_options {
            log_store_root: std::ptr::null(),
            workers: 0,
            flows_per_core: 0,
            conns_per_core: 0,
        });
    let root = if o.log_store_root.is_null() {
        config.log_store_root.clone().ok_or_else(|| {
            AbiError::Config(
                "<flowlog_create>: no log store root; set options.log_store_root or \
                 \"log_store_root\" in the configuration"
                    .into(),
            )
        })?
    } else {
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: not NULL, NUL-terminated (the caller's contract).
        let c = unsafe { CStr::from_ptr(o.log_store_root) };
        PathBuf::from(std::ffi::OsStr::from_bytes(c.to_bytes()))
    };
    let settings = Settings::new(root, o.workers, o.flows_per_core, o.conns_per_core)?;
    Plugin::new(config, &settings)
}

/// Reads packet `i`'s first segment and whole length.
///
/// The host lends the mbufs for the call; `flowlog::dpdk::Burst` owns the
/// mbufs it holds, so it cannot stand for them, hence the raw accessors.
///
/// # Safety
/// `m` is a valid mbuf that stays alive, unchanged, for `'a`.
#[allow(clippy::disallowed_methods)]
#[inline]
unsafe fn frame<'a>(m: *mut rte_mbuf) -> (&'a [u8], u32) {
    debug_assert!(!m.is_null());
    // SAFETY: `m` is a valid mbuf (the caller's contract): its first
    // segment holds `data_len` initialised bytes at `mtod`, and its
    // `pkt_len` is the whole packet's length.
    unsafe {
        let p = dpdk_sys::rte_pktmbuf_mtod(m).cast::<u8>().cast_const();
        let len = usize::from(dpdk_sys::rte_pktmbuf_data_len(m));
        (
            std::slice::from_raw_parts(p, len),
            dpdk_sys::rte_pktmbuf_pkt_len(m),
        )
    }
}

/// Parses, attributes, judges (unless the host did) and records a burst of
/// `n` packets for worker `worker`, and writes each packet's verdict.
///
/// `p`: a live handle (borrowed). `worker`: the calling thread's worker
/// index, below `options.workers`; two threads must not use one index at
/// once (they would wait on each other's lock). `pkts`: `n` mbufs, borrowed
/// for the call only: the plugin reads their first segment and never frees,
/// keeps or changes them. `info`: `n` entries, borrowed for the call; NULL
/// means FLOWLOG_ENI_BY_MAC, no host verdict and time `now_ns` for every
/// packet. `n`: at most FLOWLOG_MAX_BURST; 0 does nothing. `now_ns`: the
/// host's clock, Unix nanoseconds, for packets whose `time_ns` is 0.
/// `verdicts`: `n` bytes the plugin writes: FLOWLOG_VERDICT_ACCEPT,
/// FLOWLOG_VERDICT_REJECT (the host drops it) or FLOWLOG_VERDICT_NONE (not
/// judged: not IP, malformed, or of no ENI).
///
/// No allocation; the worker's clock is the latest packet time it has seen.
/// Returns FLOWLOG_OK, FLOWLOG_ERR_ARG (nothing was recorded, verdicts not
/// written) or FLOWLOG_ERR_PANIC.
///
/// # Safety
/// `p` is NULL or a live handle; unless `n` is 0, `pkts` points to `n`
/// valid mbuf pointers, `info` is NULL or points to `n` entries, and
/// `verdicts` to `n` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn flowlog_process_burst(
    p: *mut flowlog_plugin,
    worker: u32,
    pkts: *const *mut rte_mbuf,
    info: *const flowlog_pkt_info,
    n: u16,
    now_ns: u64,
    verdicts: *mut u8,
) -> flowlog_status {
    boundary(|| {
        // SAFETY: `p` per the caller's contract.
        let plugin = match unsafe { live(p) } {
            Ok(pl) => pl,
            Err(s) => return s,
        };
        let (w, n) = (worker as usize, usize::from(n));
        if n > usize::from(FLOWLOG_MAX_BURST) || w >= plugin.workers() {
            return FLOWLOG_ERR_ARG;
        }
        if n == 0 {
            return FLOWLOG_OK;
        }
        if pkts.is_null() || verdicts.is_null() {
            return FLOWLOG_ERR_ARG;
        }
        // SAFETY: not NULL, `n` entries (the caller's contract), read only
        // during the call.
        let pkts = unsafe { std::slice::from_raw_parts(pkts, n) };
        let info: &[flowlog_pkt_info] = if info.is_null() {
            &[]
        } else {
            // SAFETY: not NULL, `n` entries (the caller's contract).
            unsafe { std::slice::from_raw_parts(info, n) }
        };
        // SAFETY: not NULL, `n` writable bytes (the caller's contract), no
        // other reference to them during the call.
        let verdicts = unsafe { std::slice::from_raw_parts_mut(verdicts, n) };
        if pkts.iter().any(|m| m.is_null()) {
            return FLOWLOG_ERR_ARG;
        }
        let info_of = |i: usize| {
            info.get(i).copied().unwrap_or(flowlog_pkt_info {
                eni: FLOWLOG_ENI_BY_MAC,
                ..flowlog_pkt_info::default()
            })
        };
        if let Err(s) = plugin.check(w, n, info_of, now_ns) {
            return s;
        }
        plugin.process(
            w,
            n,
            info_of,
            // SAFETY: `i < n` (process only asks for those) and every
            // pointer is a valid mbuf, not NULL (checked above), lent for
            // the call, which the slices do not outlive.
            |i| unsafe { frame(pkts[i]) },
            now_ns,
            verdicts,
        );
        FLOWLOG_OK
    })
}

/// Moves worker `worker`'s clock to `now_ns` (Unix nanoseconds; it never
/// goes back), so an idle worker's windows close and reach the log store on
/// time. Call it for every worker that had no packet for a while (say every
/// 100 ms), with the same clock as the packets' times. `p` is borrowed.
///
/// Returns FLOWLOG_OK, FLOWLOG_ERR_ARG or FLOWLOG_ERR_PANIC.
///
/// # Safety
/// `p` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn flowlog_tick(
    p: *mut flowlog_plugin,
    worker: u32,
    now_ns: u64,
) -> flowlog_status {
    boundary(|| {
        // SAFETY: `p` per the caller's contract.
        match unsafe { live(p) } {
            Ok(pl) => match pl.tick(worker as usize, now_ns) {
                Ok(()) => FLOWLOG_OK,
                Err(s) => s,
            },
            Err(s) => s,
        }
    })
}

/// Answers one request of the operator protocol: `request_json` is
/// `request_len` bytes of JSON such as `{"id": 7, "version": 1, "cmd":
/// "stats"}`, borrowed for the call. The reply, `{"id": 7, "ok": true,
/// "result": {...}}` or `{"id": 7, "ok": false, "error": "..."}` (for any
/// problem with the request: not JSON, another protocol version, an unknown
/// command), is written to `reply`, NUL-terminated, and its length without
/// the NUL to `*reply_len`. Commands: `stats` (the counters, summed and per
/// worker). May be called from any thread; it takes each worker's lock
/// briefly.
///
/// If `reply_cap` is less than the reply's length + 1, nothing is written to
/// `reply`, `*reply_len` is the length needed (without the NUL), and the
/// call returns FLOWLOG_ERR_ARG. Returns FLOWLOG_OK (the reply says whether
/// the command succeeded), FLOWLOG_ERR_ARG or FLOWLOG_ERR_PANIC.
///
/// # Safety
/// `p` is NULL or a live handle; `request_json` points to `request_len`
/// readable bytes; `reply` points to `reply_cap` writable bytes;
/// `reply_len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn flowlog_control(
    p: *mut flowlog_plugin,
    request_json: *const c_char,
    request_len: usize,
    reply: *mut c_char,
    reply_cap: usize,
    reply_len: *mut usize,
) -> flowlog_status {
    boundary(|| {
        // SAFETY: `p` per the caller's contract.
        let plugin = match unsafe { live(p) } {
            Ok(pl) => pl,
            Err(s) => return s,
        };
        if request_json.is_null() || reply.is_null() {
            return FLOWLOG_ERR_ARG;
        }
        // SAFETY: not NULL, `request_len` readable bytes (the caller's
        // contract), read only during the call.
        let req = unsafe { std::slice::from_raw_parts(request_json.cast::<u8>(), request_len) };
        let text = plugin.control(req);
        if !reply_len.is_null() {
            // SAFETY: not NULL and writable (the caller's contract).
            unsafe { reply_len.write(text.len()) };
        }
        if text.len() >= reply_cap {
            return FLOWLOG_ERR_ARG;
        }
        // SAFETY: `reply` has `reply_cap` writable bytes (the caller's
        // contract) and `text.len() + 1 <= reply_cap` (checked above).
        unsafe { write_err(reply, reply_cap, &text) };
        FLOWLOG_OK
    })
}

/// Stops every worker, flushes every open window through the exporter to
/// the log store, joins the exporter thread and frees the plugin. `p` is
/// taken: whatever this returns, the handle is freed and must not be used
/// again (NULL: FLOWLOG_ERR_ARG, nothing done). No other call on `p` may
/// run at the same time.
///
/// Returns FLOWLOG_OK, FLOWLOG_ERR_IO (a window could not be written; the
/// reason is printed on stderr), FLOWLOG_ERR_ARG or FLOWLOG_ERR_PANIC.
///
/// # Safety
/// `p` is NULL or a live handle from `flowlog_create`, not used after.
#[no_mangle]
pub unsafe extern "C" fn flowlog_destroy(p: *mut flowlog_plugin) -> flowlog_status {
    boundary(|| {
        if p.is_null() {
            return FLOWLOG_ERR_ARG;
        }
        // SAFETY: `p` came from Box::into_raw in flowlog_create and is not
        // used again (the caller's contract): we take it back to free it.
        let b = unsafe { Box::from_raw(p) };
        match b.inner.finish() {
            Ok(()) => FLOWLOG_OK,
            Err(e) => {
                eprintln!("flowlog: {e}");
                e.status()
            }
        }
    })
}
