//! Packet-buffer pools.

use super::DpdkError;
use std::ffi::CString;
use std::ptr::NonNull;

/// An owned `rte_mempool` of packet buffers; freed on drop.
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<dpdk_sys::rte_mempool>,
}

// SAFETY: rte_mempool is designed for use from many lcores at once (per-lcore
// caches plus a lock-free ring); the handle only frees it on drop.
unsafe impl Send for Mempool {}
// SAFETY: as above: every mempool operation is thread-safe in DPDK.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `n` mbufs with DPDK's default data room.
    pub fn new(name: &str, n: u32, cache: u32, socket: i32) -> Result<Mempool, DpdkError> {
        let cname = CString::new(name)
            .map_err(|_| DpdkError::msg("rte_pktmbuf_pool_create", "name contains NUL"))?;
        let data_room = u16::try_from(dpdk_sys::RTE_MBUF_DEFAULT_BUF_SIZE).expect("2176 fits");
        // SAFETY: cname is a valid C string for the call; the other arguments
        // are plain values; the result is checked for NULL below.
        let p = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket)
        };
        NonNull::new(p)
            .map(|raw| Mempool { raw })
            .ok_or_else(|| DpdkError::last(format!("rte_pktmbuf_pool_create({name})")))
    }

    /// The raw pointer, for DPDK calls in this module.
    pub(super) fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.raw.as_ptr()
    }

    /// Mbufs currently free in the pool.
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is alive (owned by self).
        unsafe { dpdk_sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: we own the pool; callers must have stopped the ports using
        // it (ports are stopped before pools are dropped in every runtime).
        unsafe { dpdk_sys::rte_mempool_free(self.raw.as_ptr()) }
    }
}
