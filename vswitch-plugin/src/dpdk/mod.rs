//! Safe wrappers over DPDK: the only place in the plugin that calls `rte_*`
//! (through `dpdk-sys`). Owning handles are `NonNull` + `Drop` and never
//! `Clone`; DPDK's return codes become [`DpdkError`], which carries DPDK's own
//! error text (`rte_strerror`).
//!
//! EAL initialises once per process: [`Eal::init`] refuses a second call.

#![allow(unsafe_code)]
#![allow(clippy::disallowed_methods)]

mod eal;
mod mbuf;
mod mempool;
mod port;
pub mod telemetry;

pub use eal::{
    lcore_cpus, lcore_id, register_thread, run_current_thread_on, tsc, tsc_hz,
    unpin_current_thread, Eal, LcoreId, ThreadRegistration,
};
pub use mbuf::{Burst, Packet, RxTimestamp, BURST_SIZE};
pub use mempool::Mempool;
pub use port::{Port, PortConfig, PortId, PortInfo, PortStats, QueueId};

use std::ffi::CStr;

/// A DPDK call failed. `op` names the call, `code` is DPDK's (positive) errno
/// value and `text` is DPDK's own description of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{op} failed: {text} (errno {code})")]
pub struct DpdkError {
    /// The DPDK function or step that failed.
    pub op: String,
    /// DPDK's errno value (positive).
    pub code: i32,
    /// `rte_strerror(code)`, or our own words where DPDK gives none.
    pub text: String,
}

impl DpdkError {
    /// Builds an error from a DPDK errno value (sign ignored).
    pub fn from_errno(op: impl Into<String>, code: i32) -> DpdkError {
        let code = code.abs();
        // SAFETY: rte_strerror returns a pointer to a static or thread-local
        // NUL-terminated string for any errno value; we copy it at once.
        let text = unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(code)) }
            .to_string_lossy()
            .into_owned();
        DpdkError {
            op: op.into(),
            code,
            text,
        }
    }

    /// Builds an error from `rte_errno` after a call that returned NULL or -1.
    pub fn last(op: impl Into<String>) -> DpdkError {
        // SAFETY: reading the calling thread's rte_errno has no preconditions.
        let code = unsafe { dpdk_sys::rte_errno() };
        DpdkError::from_errno(op, code)
    }

    /// An error of ours about a DPDK object (no errno).
    pub fn msg(op: impl Into<String>, text: impl Into<String>) -> DpdkError {
        DpdkError {
            op: op.into(),
            code: 0,
            text: text.into(),
        }
    }
}

/// Turns a DPDK return code (negative errno on failure) into a `Result`.
fn check(op: &str, rc: i32) -> Result<i32, DpdkError> {
    if rc < 0 {
        Err(DpdkError::from_errno(op, rc))
    } else {
        Ok(rc)
    }
}
