//! Memory hints for the hot tables: cache prefetch and transparent huge
//! pages. One of the plugin's few rooms for `unsafe` (with `dpdk/`), because
//! both hints are raw-pointer intrinsics; neither can cause undefined
//! behaviour (a prefetch never faults, `madvise` only advises).

#![allow(unsafe_code)]

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

/// Allocates `n` default values in one boxed slice and asks the kernel to
/// back it with transparent huge pages (`madvise(MADV_HUGEPAGE)`), which cuts
/// TLB misses on random access to a big table. The advice is best-effort.
pub fn huge_boxed_slice<T: Default + Clone>(n: usize) -> Box<[T]> {
    let v: Box<[T]> = vec![T::default(); n].into_boxed_slice();
    let bytes = std::mem::size_of_val(&*v);
    if bytes >= 2 << 20 {
        let page = 4096usize;
        let start = v.as_ptr() as usize;
        let aligned = (start + page - 1) & !(page - 1);
        let len = (start + bytes).saturating_sub(aligned) & !(page - 1);
        if len > 0 {
            // SAFETY: [aligned, aligned+len) lies inside the live allocation
            // `v` (rounded inwards to page bounds); MADV_HUGEPAGE changes no
            // contents, only how the kernel backs the pages.
            let rc = unsafe { libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
            if rc != 0 {
                tracing::debug!("madvise(MADV_HUGEPAGE) refused; tables use normal pages");
            }
        }
    }
    v
}
