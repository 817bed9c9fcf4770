//! The flow-log datapath: zero-copy packet parsing, attribution to ENIs,
//! per-core flow tables, the replay runtime, and (with the `dpdk` feature)
//! the DPDK poll-mode host.

#![deny(unsafe_code)]

#[cfg(feature = "dpdk")]
pub mod abi;
pub mod attrib;
pub mod bench;
pub mod capture;
pub mod control;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod engine;
pub mod export;
pub mod flow;
pub mod gen;
#[cfg(feature = "dpdk")]
pub mod host;
pub mod live;
pub mod mem;
pub mod policy;
pub mod replay;
pub mod wire;
pub mod worker;
