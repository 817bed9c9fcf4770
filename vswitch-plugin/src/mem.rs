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
/// Implement only for types with no drop glue whose every field is valid
/// when all its bytes are zero (integers, atomic integers, bools, arrays and
/// structs of them).
pub unsafe trait Zeroable {}

// SAFETY: FlowEntry is integers, byte arrays and a bool: all-zero is valid
// (and is its Default: an unused slot).
unsafe impl Zeroable for crate::flow::FlowEntry {}

// SAFETY: an integer: all-zero is valid.
unsafe impl Zeroable for u64 {}

// SAFETY: an atomic integer has the layout of its integer (all-zero is
// `AtomicU64::new(0)`) and no drop glue.
unsafe impl Zeroable for std::sync::atomic::AtomicU64 {}

/// One cache line of integers (the memory-limit benchmark's unit).
#[derive(Clone, Copy, Debug, Default)]
#[repr(C, align(64))]
pub struct CacheLine(pub [u64; 8]);

// SAFETY: eight integers: all-zero is valid.
unsafe impl Zeroable for CacheLine {}

/// A fixed-size, zero-initialised array for the hot tables. Big ones are
/// mapped straight from the kernel (anonymous `mmap`, hence zero), aligned
/// to 2 MiB and advised as transparent huge pages *before* anything touches
/// them, so the first-touch faults map huge pages: far fewer TLB misses on
/// random access. (Allocating through `alloc_zeroed` with a 2 MiB alignment
/// would `memset` the memory first and get small pages.)
pub struct HugeSlice<T: Zeroable> {
    ptr: NonNull<T>,
    len: usize,
    backing: Backing,
}

enum Backing {
    Heap(Layout),
    Map { base: *mut libc::c_void, len: usize },
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
        if bytes >= HUGE && std::mem::align_of::<T>() <= HUGE {
            if let Some(s) = Self::mapped(len, bytes) {
                return s;
            }
        }
        let layout =
            Layout::from_size_align(bytes.max(1), std::mem::align_of::<T>()).expect("valid layout");
        // SAFETY: layout has a non-zero size.
        let p = unsafe { alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(p.cast::<T>()) else {
            std::alloc::handle_alloc_error(layout)
        };
        HugeSlice {
            ptr,
            len,
            backing: Backing::Heap(layout),
        }
    }

    fn mapped(len: usize, bytes: usize) -> Option<HugeSlice<T>> {
        let map_len = bytes.checked_add(HUGE)?;
        // SAFETY: an anonymous private mapping of a fresh range: no file, no
        // aliasing; the result is checked for MAP_FAILED.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        let aligned = (base as usize + HUGE - 1) & !(HUGE - 1);
        debug_assert!(aligned + bytes <= base as usize + map_len);
        // SAFETY: [aligned, aligned+bytes) lies inside the mapping just made;
        // MADV_HUGEPAGE changes no contents, only how pages are backed.
        let rc = unsafe { libc::madvise(aligned as *mut libc::c_void, bytes, libc::MADV_HUGEPAGE) };
        if rc != 0 {
            tracing::debug!("madvise(MADV_HUGEPAGE) refused; tables use normal pages");
        }
        // Fault every page in now, while nothing waits: a first touch later
        // would stall the worker that made it for the zeroing of a 2 MiB
        // page (about a millisecond here) in the middle of a burst.
        // SAFETY: as above; MADV_POPULATE_WRITE only faults the range in
        // (zero-filled, as a first write would), changing no contents.
        let rc = unsafe {
            libc::madvise(
                aligned as *mut libc::c_void,
                bytes,
                libc::MADV_POPULATE_WRITE,
            )
        };
        if rc != 0 {
            tracing::debug!("madvise(MADV_POPULATE_WRITE) refused (Linux before 5.14); tables fault in on first use");
        }
        Some(HugeSlice {
            ptr: NonNull::new(aligned as *mut T)?,
            len,
            backing: Backing::Map { base, len: map_len },
        })
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
        match self.backing {
            // SAFETY: allocated in `zeroed` with exactly this layout.
            Backing::Heap(layout) => unsafe { dealloc(self.ptr.as_ptr().cast(), layout) },
            // SAFETY: the mapping made in `mapped`, unmapped once.
            Backing::Map { base, len } => unsafe {
                libc::munmap(base, len);
            },
        }
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
