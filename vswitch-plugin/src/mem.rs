//! Memory for the hot tables: cache prefetch and transparent huge pages.
//! One of the plugin's few rooms for `unsafe` (with `dpdk/`): both are
//! raw-pointer operations.

#![allow(unsafe_code)]

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

/// Hints the CPU to bring the cache line holding `p` into all cache levels.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it never faults, even on an invalid
    // address, and SSE is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Types for which all-zero bytes is a valid value (and their `Default`).
///
/// # Safety
/// Implement only for plain-data types whose every field is valid when all
/// its bytes are zero (integers, bools, arrays and structs of them).
pub unsafe trait Zeroable: Copy {}

// SAFETY: FlowEntry is integers, byte arrays and a bool: all-zero is valid
// (and is its Default: an unused slot).
unsafe impl Zeroable for crate::flow::FlowEntry {}

/// One cache line of integers (the memory-limit benchmark's unit).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
pub struct CacheLine(pub [u64; 8]);

// SAFETY: eight integers: all-zero is valid.
unsafe impl Zeroable for CacheLine {}

/// A fixed-size, zero-initialised array aligned to 2 MiB and advised to the
/// kernel as transparent-huge-page memory *before* it is touched, so the
/// first-touch faults map huge pages: fewer TLB misses on random access.
pub struct HugeSlice<T: Zeroable> {
    ptr: NonNull<T>,
    len: usize,
    layout: Layout,
}

// SAFETY: HugeSlice owns its elements like a Box<[T]>.
unsafe impl<T: Zeroable + Send> Send for HugeSlice<T> {}
// SAFETY: shared access only hands out &[T].
unsafe impl<T: Zeroable + Sync> Sync for HugeSlice<T> {}

const HUGE: usize = 2 << 20;

impl<T: Zeroable> HugeSlice<T> {
    /// `len` zeroed elements (at least one).
    pub fn zeroed(len: usize) -> HugeSlice<T> {
        let len = len.max(1);
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .expect("table size overflows");
        let align = if bytes >= HUGE {
            HUGE
        } else {
            std::mem::align_of::<T>()
        };
        let layout = Layout::from_size_align(bytes.max(1), align).expect("valid layout");
        // SAFETY: layout has a non-zero size.
        let p = unsafe { alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(p.cast::<T>()) else {
            std::alloc::handle_alloc_error(layout)
        };
        if bytes >= HUGE {
            // SAFETY: [p, p+bytes) is the allocation just made; MADV_HUGEPAGE
            // changes no contents, only how the kernel backs the pages.
            let rc = unsafe { libc::madvise(p.cast(), bytes, libc::MADV_HUGEPAGE) };
            if rc != 0 {
                tracing::debug!("madvise(MADV_HUGEPAGE) refused; tables use normal pages");
            }
        }
        HugeSlice { ptr, len, layout }
    }
}

impl<T: Zeroable> Deref for HugeSlice<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: ptr points to `len` initialised (zeroed, and T: Zeroable)
        // elements owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Zeroable> DerefMut for HugeSlice<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref, and &mut self gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Zeroable> Drop for HugeSlice<T> {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with exactly this layout.
        unsafe { dealloc(self.ptr.as_ptr().cast(), self.layout) }
    }
}

impl<T: Zeroable> std::fmt::Debug for HugeSlice<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HugeSlice({} x {} B)",
            self.len,
            std::mem::size_of::<T>()
        )
    }
}
