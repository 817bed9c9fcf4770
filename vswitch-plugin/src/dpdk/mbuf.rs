//! Bursts of mbufs in a caller-owned fixed array: RX fills it, the datapath
//! reads packets as `&[u8]`, TX takes from it, and whatever is left is freed
//! when the burst is cleared or dropped.

use super::{DpdkError, Mempool};
use std::ptr;

/// Where drivers put RX timestamps: DPDK's dynamic mbuf field
/// `rte_dynfield_timestamp` and flag `rte_dynflag_rx_timestamp`.
#[derive(Clone, Copy, Debug)]
pub struct RxTimestamp {
    offset: i32,
    flag: u64,
}

impl RxTimestamp {
    /// Registers (or finds) the timestamp field and flag.
    pub fn register() -> Result<RxTimestamp, DpdkError> {
        let (mut offset, mut flag) = (0i32, 0u64);
        // SAFETY: both are valid out-pointers; registration is idempotent.
        let rc = unsafe { dpdk_sys::rte_mbuf_dyn_rx_timestamp_register(&mut offset, &mut flag) };
        if rc < 0 {
            return Err(DpdkError::last("rte_mbuf_dyn_rx_timestamp_register"));
        }
        Ok(RxTimestamp { offset, flag })
    }
}

/// One owned mbuf outside a [`Burst`]: what a worker hands another one
/// (over an SPSC ring) when the packet's connection belongs to it. Freed on
/// drop.
#[derive(Debug)]
pub struct Packet {
    raw: ptr::NonNull<dpdk_sys::rte_mbuf>,
}

// SAFETY: the packet exclusively owns its mbuf; an mbuf may be moved to and
// freed on another thread (DPDK mempools are thread-safe).
unsafe impl Send for Packet {}

impl Drop for Packet {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and nothing else refers to it.
        unsafe { dpdk_sys::rte_pktmbuf_free(self.raw.as_ptr()) };
    }
}

/// Packets per RX/TX burst.
pub const BURST_SIZE: usize = 32;

/// Up to [`BURST_SIZE`] owned mbufs. Allocated once, reused for every burst.
#[derive(Debug)]
pub struct Burst {
    ptrs: [*mut dpdk_sys::rte_mbuf; BURST_SIZE],
    len: usize,
}

// SAFETY: the burst exclusively owns the mbufs it points to; an mbuf may be
// moved to and freed on another thread (DPDK mempools are thread-safe).
unsafe impl Send for Burst {}

impl Default for Burst {
    fn default() -> Self {
        Burst::new()
    }
}

impl Burst {
    /// An empty burst.
    pub fn new() -> Burst {
        Burst {
            ptrs: [ptr::null_mut(); BURST_SIZE],
            len: 0,
        }
    }

    /// Packets held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// No packet held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first segment's data of packet `i` (`i < len`).
    #[inline]
    pub fn data(&self, i: usize) -> &[u8] {
        assert!(i < self.len, "packet {i} of a burst of {}", self.len);
        let m = self.ptrs[i];
        debug_assert!(!m.is_null());
        // SAFETY: `i < len` (checked above), so `m` is an mbuf we own; its data
        // segment holds data_len initialised bytes at mtod, which live as long
        // as we own the mbuf (borrowed through &self).
        unsafe {
            let p = dpdk_sys::rte_pktmbuf_mtod(m) as *const u8;
            std::slice::from_raw_parts(p, usize::from(dpdk_sys::rte_pktmbuf_data_len(m)))
        }
    }

    /// The whole packet's length (all segments) of packet `i`.
    #[inline]
    pub fn pkt_len(&self, i: usize) -> u32 {
        assert!(i < self.len, "packet {i} of a burst of {}", self.len);
        // SAFETY: `i < len`, so the pointer is an mbuf we own.
        unsafe { dpdk_sys::rte_pktmbuf_pkt_len(self.ptrs[i]) }
    }

    /// The RX timestamp of packet `i` (for `net_pcap`, microseconds since
    /// the epoch: the capture time), if the driver set one.
    #[inline]
    pub fn rx_timestamp(&self, i: usize, ts: &RxTimestamp) -> Option<u64> {
        assert!(i < self.len, "packet {i} of a burst of {}", self.len);
        let m = self.ptrs[i];
        // SAFETY: `i < len`: an mbuf we own; the dynamic field at `offset`
        // was registered (RxTimestamp::register) and is 8 bytes inside it.
        unsafe {
            if dpdk_sys::rte_mbuf_ol_flags(m) & ts.flag != 0 {
                Some(dpdk_sys::rte_mbuf_dynfield_u64(m, ts.offset))
            } else {
                None
            }
        }
    }

    /// The input port DPDK recorded for packet `i`.
    #[inline]
    pub fn port(&self, i: usize) -> u16 {
        assert!(i < self.len, "packet {i} of a burst of {}", self.len);
        // SAFETY: `i < len`, so the pointer is an mbuf we own.
        unsafe { dpdk_sys::rte_pktmbuf_port(self.ptrs[i]) }
    }

    /// Prefetches the data of packet `i` into the cache (no-op if out of range).
    #[inline]
    pub fn prefetch(&self, i: usize) {
        if i < self.len {
            // SAFETY: `i < len`: an mbuf we own; mtod only reads its header.
            // (The prefetch itself is inline, not a call into the C shim.)
            crate::mem::prefetch(unsafe { dpdk_sys::rte_pktmbuf_mtod(self.ptrs[i]) })
        }
    }

    /// Prefetches the mbuf header of packet `i` (its first cache line, which
    /// [`Burst::prefetch`] and [`Burst::data`] read), without reading it:
    /// for packets another core touched last, such as handed-off ones. No-op
    /// if out of range.
    #[inline]
    pub fn prefetch_header(&self, i: usize) {
        if i < self.len {
            crate::mem::prefetch(self.ptrs[i]);
        }
    }

    /// Moves packet `i` to the end of `to` (if it has room; returns false and
    /// keeps the packet otherwise). The order of the remaining packets changes.
    pub fn move_to(&mut self, i: usize, to: &mut Burst) -> bool {
        if i >= self.len || to.len == BURST_SIZE {
            return false;
        }
        to.ptrs[to.len] = self.ptrs[i];
        to.len += 1;
        self.len -= 1;
        self.ptrs[i] = self.ptrs[self.len];
        self.ptrs[self.len] = ptr::null_mut();
        true
    }

    /// Takes out every packet `i` for which `pick(i)` is true (indices as
    /// before the call), handing each to `sink` as a [`Packet`]; the others
    /// stay, in their order, at the front. Returns how many were taken.
    pub fn extract(
        &mut self,
        mut pick: impl FnMut(usize) -> bool,
        mut sink: impl FnMut(Packet),
    ) -> usize {
        let mut kept = 0;
        let n = self.len;
        for i in 0..n {
            let m = self.ptrs[i];
            self.ptrs[i] = ptr::null_mut();
            if pick(i) {
                if let Some(raw) = ptr::NonNull::new(m) {
                    sink(Packet { raw });
                }
            } else {
                self.ptrs[kept] = m;
                kept += 1;
            }
        }
        self.len = kept;
        n - kept
    }

    /// Appends `p` at the end, or gives it back if the burst is full.
    pub fn push(&mut self, p: Packet) -> Result<(), Packet> {
        if self.len == BURST_SIZE {
            return Err(p);
        }
        self.ptrs[self.len] = p.raw.as_ptr();
        self.len += 1;
        std::mem::forget(p);
        Ok(())
    }

    /// Routes every packet, in order: `route(i, data)` names the burst in
    /// `outs` it goes to, or `None` to drop it (it is freed). A full out
    /// burst is handed to `full` first (which must empty it, by sending or
    /// freeing). Leaves this burst empty.
    pub fn route(
        &mut self,
        outs: &mut [Burst],
        mut route: impl FnMut(usize, &[u8]) -> Option<usize>,
        mut full: impl FnMut(usize, &mut Burst),
    ) {
        for i in 0..self.len {
            let Some(d) = route(i, self.data(i)) else {
                continue;
            };
            let o = &mut outs[d];
            if o.len == BURST_SIZE {
                full(d, o);
                if o.len == BURST_SIZE {
                    o.clear();
                }
            }
            o.ptrs[o.len] = self.ptrs[i];
            o.len += 1;
            self.ptrs[i] = ptr::null_mut();
        }
        // Free the dropped ones (the routed slots are null now).
        for i in 0..self.len {
            let m = self.ptrs[i];
            if !m.is_null() {
                // SAFETY: `m` is an mbuf we own that was not routed.
                unsafe { dpdk_sys::rte_pktmbuf_free(m) };
                self.ptrs[i] = ptr::null_mut();
            }
        }
        self.len = 0;
    }

    /// Allocates `n` mbufs from `pool` and fills each with `fill(i)` bytes
    /// (for tests and traffic sources). Replaces nothing: the burst must have
    /// room for `n` more.
    pub fn alloc_with(
        &mut self,
        pool: &Mempool,
        n: usize,
        mut fill: impl FnMut(usize) -> Vec<u8>,
    ) -> Result<(), DpdkError> {
        assert!(self.len + n <= BURST_SIZE, "burst overflow");
        for i in 0..n {
            let bytes = fill(i);
            let len = u16::try_from(bytes.len())
                .map_err(|_| DpdkError::msg("rte_pktmbuf_append", "frame longer than 65535"))?;
            // SAFETY: the pool is alive for the call; NULL is checked below.
            let m = unsafe { dpdk_sys::rte_pktmbuf_alloc(pool.as_ptr()) };
            if m.is_null() {
                return Err(DpdkError::msg("rte_pktmbuf_alloc", "mempool exhausted"));
            }
            // SAFETY: `m` is a fresh mbuf we own; append returns NULL if the
            // data room is too small, checked before writing `len` bytes.
            let dst = unsafe { dpdk_sys::rte_pktmbuf_append(m, len) };
            if dst.is_null() {
                // SAFETY: `m` is ours and not stored anywhere.
                unsafe { dpdk_sys::rte_pktmbuf_free(m) };
                return Err(DpdkError::msg(
                    "rte_pktmbuf_append",
                    "frame larger than the data room",
                ));
            }
            // SAFETY: `dst` points to `len` writable bytes inside `m`.
            unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), dst.cast::<u8>(), bytes.len()) };
            self.ptrs[self.len] = m;
            self.len += 1;
        }
        Ok(())
    }

    /// Frees every packet held.
    pub fn clear(&mut self) {
        if self.len > 0 {
            let n = u32::try_from(self.len).expect("len <= 32");
            // SAFETY: the first `len` pointers are mbufs we own; after the call
            // none is referenced again (len is reset).
            unsafe { dpdk_sys::rte_pktmbuf_free_bulk(self.ptrs.as_mut_ptr(), n) };
            self.ptrs[..self.len].fill(ptr::null_mut());
            self.len = 0;
        }
    }

    /// For RX: the array to fill; `len` must be set by [`Burst::set_len`] after.
    pub(super) fn raw_mut(&mut self) -> *mut *mut dpdk_sys::rte_mbuf {
        self.ptrs.as_mut_ptr()
    }

    /// Records that RX filled `n` entries.
    pub(super) fn set_len(&mut self, n: usize) {
        debug_assert!(n <= BURST_SIZE);
        self.len = n;
    }

    /// Drops the first `n` packets from ownership (TX took them) and moves the
    /// rest to the front.
    pub(super) fn consume_front(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        self.ptrs.copy_within(n..self.len, 0);
        self.len -= n;
        self.ptrs[self.len..].fill(ptr::null_mut());
    }
}

impl Drop for Burst {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod layout_tests {
    use std::mem::offset_of;

    /// The per-packet field reads are Rust (`dpdk_sys::rte_pktmbuf_mtod`
    /// and the others): bindgen's layout must be the C compiler's.
    #[test]
    fn the_mbuf_fields_read_in_rust_sit_where_the_c_compiler_puts_them() {
        let mut c = [0u64; 7];
        // SAFETY: the shim writes exactly 7 values into the array.
        unsafe { dpdk_sys::fl_rte_mbuf_offsets(c.as_mut_ptr()) };
        let rust = [
            offset_of!(dpdk_sys::rte_mbuf, buf_addr),
            offset_of!(dpdk_sys::rte_mbuf, data_off),
            offset_of!(dpdk_sys::rte_mbuf, port),
            offset_of!(dpdk_sys::rte_mbuf, ol_flags),
            offset_of!(dpdk_sys::rte_mbuf, pkt_len),
            offset_of!(dpdk_sys::rte_mbuf, data_len),
            std::mem::size_of::<dpdk_sys::rte_mbuf>(),
        ]
        .map(|o| o as u64);
        assert_eq!(
            rust, c,
            "buf_addr, data_off, port, ol_flags, pkt_len, data_len, size"
        );
    }
}
