//! Commands registered with DPDK's telemetry (`dpdk-telemetry.py`, or the
//! `dpdk_telemetry.v2` socket of the EAL's runtime folder): each answers with
//! a dictionary of counters taken from a source the host sets.
//!
//! DPDK calls the callbacks on its telemetry thread; a source is a plain
//! Rust closure kept in a process-wide table, and the callbacks only copy
//! numbers out of it.

use parking_lot::Mutex;
use std::ffi::{c_char, c_int, CString};
use std::sync::Arc;

/// What a command answers: `(name, value)` pairs. Names are made of letters,
/// digits, `_` and `/` (others become `_`); at most 256 pairs are sent.
pub type Source = Arc<dyn Fn() -> Vec<(String, u64)> + Send + Sync>;

/// Most pairs one dictionary holds (DPDK's `RTE_TEL_MAX_DICT_ENTRIES`).
const MAX_ENTRIES: usize = 256;

/// The sources of the commands, in registration order.
static SOURCES: Mutex<Vec<(CString, Option<Source>)>> = Mutex::new(Vec::new());

fn clean(name: &str) -> CString {
    let s: String = name
        .chars()
        .take(63)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '/' {
                c
            } else {
                '_'
            }
        })
        .collect();
    CString::new(s).unwrap_or_default()
}

unsafe extern "C" fn answer(
    cmd: *const c_char,
    _params: *const c_char,
    d: *mut dpdk_sys::rte_tel_data,
) -> c_int {
    if cmd.is_null() || d.is_null() {
        return -libc::EINVAL;
    }
    // SAFETY: DPDK passes the NUL-terminated command it matched, valid for
    // the call.
    let cmd = unsafe { std::ffi::CStr::from_ptr(cmd) };
    let source = SOURCES
        .lock()
        .iter()
        .find(|(c, _)| c.as_c_str() == cmd)
        .and_then(|(_, s)| s.clone());
    // SAFETY: `d` is the data object DPDK gave this call, not yet started.
    unsafe { dpdk_sys::rte_tel_data_start_dict(d) };
    let Some(source) = source else {
        return 0;
    };
    // A panic must not cross into C.
    let pairs =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| source())).unwrap_or_default();
    for (name, v) in pairs.into_iter().take(MAX_ENTRIES) {
        let name = clean(&name);
        // SAFETY: `d` was started as a dict above; `name` is NUL-terminated
        // and lives through the call (DPDK copies it).
        unsafe { dpdk_sys::rte_tel_data_add_dict_u64(d, name.as_ptr(), v) };
    }
    0
}

/// Registers telemetry command `cmd` (e.g. `/flowlogd/stats`) answered by
/// `source`. A command registered again gets the new source (DPDK keeps the
/// first registration, which reads the table). [`clear`] removes every
/// source (the command then answers an empty dictionary).
pub fn register(cmd: &str, help: &str, source: Source) -> Result<(), super::DpdkError> {
    let c = CString::new(cmd).map_err(|_| super::DpdkError {
        op: "rte_telemetry_register_cmd".into(),
        code: libc::EINVAL,
        text: format!("{cmd:?} holds a NUL byte"),
    })?;
    let mut sources = SOURCES.lock();
    if let Some(slot) = sources.iter_mut().find(|(x, _)| *x == c) {
        slot.1 = Some(source);
        return Ok(());
    }
    let h = CString::new(help).unwrap_or_default();
    // SAFETY: both strings are NUL-terminated; DPDK copies them; `answer`
    // has the `telemetry_cb` signature.
    let rc = unsafe { dpdk_sys::rte_telemetry_register_cmd(c.as_ptr(), Some(answer), h.as_ptr()) };
    if rc < 0 {
        return Err(super::DpdkError::from_errno(
            format!("rte_telemetry_register_cmd({cmd})"),
            rc,
        ));
    }
    sources.push((c, Some(source)));
    Ok(())
}

/// Drops every source (at the end of a run).
pub fn clear() {
    for (_, s) in SOURCES.lock().iter_mut() {
        *s = None;
    }
}
