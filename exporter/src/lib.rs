//! The exporter side of flow logs: the record schema (RECORDS.md), the host
//! configuration (CONFIG.md), the per-window merge and fan-out to flow logs,
//! and the sinks. It knows nothing of DPDK.

#![forbid(unsafe_code)]

pub mod config;
pub mod key;
pub mod merge;
pub mod parquet;
pub mod record;
pub mod sink;
pub mod store;
