//! Raw FFI bindings to the system DPDK, generated at build time by bindgen
//! from `wrapper.h`, and the `fl_` shim for DPDK's static-inline fast-path
//! functions (see `shim.c`). Nothing here is safe to call; the safe wrappers
//! live in `vswitch-plugin/src/dpdk/`.

#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code
)]
#![allow(clippy::all, clippy::undocumented_unsafe_blocks)]
#![allow(
    unsafe_op_in_unsafe_fn,
    missing_debug_implementations,
    rust_2018_idioms
)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

/// Friendly names for the shim's fast-path functions.
pub use self::{
    fl_rte_errno as rte_errno, fl_rte_eth_rx_burst as rte_eth_rx_burst,
    fl_rte_eth_tx_burst as rte_eth_tx_burst, fl_rte_get_tsc_hz as rte_get_tsc_hz,
    fl_rte_lcore_id as rte_lcore_id, fl_rte_mbuf_dynfield_u64 as rte_mbuf_dynfield_u64,
    fl_rte_mbuf_ol_flags as rte_mbuf_ol_flags, fl_rte_pktmbuf_alloc as rte_pktmbuf_alloc,
    fl_rte_pktmbuf_alloc_bulk as rte_pktmbuf_alloc_bulk,
    fl_rte_pktmbuf_append as rte_pktmbuf_append, fl_rte_pktmbuf_data_len as rte_pktmbuf_data_len,
    fl_rte_pktmbuf_free as rte_pktmbuf_free, fl_rte_pktmbuf_free_bulk as rte_pktmbuf_free_bulk,
    fl_rte_pktmbuf_mtod as rte_pktmbuf_mtod, fl_rte_pktmbuf_pkt_len as rte_pktmbuf_pkt_len,
    fl_rte_pktmbuf_port as rte_pktmbuf_port, fl_rte_pktmbuf_rss_hash as rte_pktmbuf_rss_hash,
    fl_rte_pktmbuf_set_port as rte_pktmbuf_set_port, fl_rte_prefetch0 as rte_prefetch0,
    fl_rte_rdtsc as rte_rdtsc, fl_rte_ring_count as rte_ring_count,
    fl_rte_ring_dequeue_burst as rte_ring_dequeue_burst,
    fl_rte_ring_enqueue_burst as rte_ring_enqueue_burst,
};
