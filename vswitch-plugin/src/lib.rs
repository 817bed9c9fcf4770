//! The flow-log datapath: zero-copy packet parsing, attribution to ENIs,
//! per-core flow tables, the replay runtime, and (with the `dpdk` feature)
//! the DPDK poll-mode host.

#![deny(unsafe_code)]

pub mod capture;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod gen;
pub mod wire;
