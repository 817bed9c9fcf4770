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
    fl_rte_lcore_id as rte_lcore_id, fl_rte_pktmbuf_alloc as rte_pktmbuf_alloc,
    fl_rte_pktmbuf_alloc_bulk as rte_pktmbuf_alloc_bulk,
    fl_rte_pktmbuf_append as rte_pktmbuf_append, fl_rte_pktmbuf_free as rte_pktmbuf_free,
    fl_rte_pktmbuf_free_bulk as rte_pktmbuf_free_bulk,
    fl_rte_pktmbuf_rss_hash as rte_pktmbuf_rss_hash,
    fl_rte_pktmbuf_set_port as rte_pktmbuf_set_port, fl_rte_rdtsc as rte_rdtsc,
    fl_rte_ring_count as rte_ring_count, fl_rte_ring_dequeue_burst as rte_ring_dequeue_burst,
    fl_rte_ring_enqueue_burst as rte_ring_enqueue_burst,
};

// The mbuf field reads of the per-packet path, in Rust so that they inline
// (each shim call is a call the datapath pays per packet). They read the
// fields of bindgen's `rte_mbuf`, whose offsets a test
// (`vswitch-plugin/src/dpdk/mbuf.rs`) checks against the C compiler's
// (`fl_rte_mbuf_offsets`).

/// `rte_pktmbuf_mtod(m, void *)`: the start of the first segment's data.
///
/// # Safety
/// `m` points to a valid mbuf.
#[inline(always)]
pub unsafe fn rte_pktmbuf_mtod(m: *mut rte_mbuf) -> *mut ::std::os::raw::c_void {
    (*m).buf_addr
        .cast::<u8>()
        .add(usize::from((*m).data_off))
        .cast()
}

/// `rte_pktmbuf_data_len(m)`: the first segment's data length.
///
/// # Safety
/// `m` points to a valid mbuf.
#[inline(always)]
pub unsafe fn rte_pktmbuf_data_len(m: *const rte_mbuf) -> u16 {
    (*m).data_len
}

/// `rte_pktmbuf_pkt_len(m)`: the whole packet's length.
///
/// # Safety
/// `m` points to a valid mbuf.
#[inline(always)]
pub unsafe fn rte_pktmbuf_pkt_len(m: *const rte_mbuf) -> u32 {
    (*m).pkt_len
}

/// `m->port`: the input port.
///
/// # Safety
/// `m` points to a valid mbuf.
#[inline(always)]
pub unsafe fn rte_pktmbuf_port(m: *const rte_mbuf) -> u16 {
    (*m).port
}

/// `m->ol_flags`.
///
/// # Safety
/// `m` points to a valid mbuf.
#[inline(always)]
pub unsafe fn rte_mbuf_ol_flags(m: *const rte_mbuf) -> u64 {
    (*m).ol_flags
}

/// `*RTE_MBUF_DYNFIELD(m, offset, uint64_t *)`.
///
/// # Safety
/// `m` points to a valid mbuf and `offset` is a registered dynamic field of
/// at least 8 bytes.
#[inline(always)]
pub unsafe fn rte_mbuf_dynfield_u64(m: *const rte_mbuf, offset: ::std::os::raw::c_int) -> u64 {
    m.cast::<u8>()
        .add(offset as usize)
        .cast::<u64>()
        .read_unaligned()
}
