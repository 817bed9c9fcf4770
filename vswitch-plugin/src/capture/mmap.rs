//! The one place where this crate maps a file into memory.
//!
//! Mapping is `unsafe` because the compiler cannot know whether some other
//! process will shrink or rewrite the file while we hold a `&[u8]` over it.
//! Everything else in `capture` works on the safe slice this returns.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;

use memmap2::Mmap;

/// Maps `file` read-only, populated at once (one call maps every page that
/// is in the page cache, instead of a page fault per few pages while
/// reading), and tells the kernel we will read it front to back.
///
/// The caller has checked that `file` is a regular, non-empty file.
pub(super) fn map_readonly(file: &File) -> io::Result<Mmap> {
    // SAFETY: a capture is an immutable input: the mapping is read-only and
    // private, nothing in this process writes the file, and `Capture::open`
    // documents that no other process may truncate or rewrite it while the
    // `Capture` lives (the contract of every mmap-based reader; breaking it
    // raises SIGBUS, it cannot hand us torn bytes of another type).
    let map = unsafe { memmap2::MmapOptions::new().populate().map(file)? };
    // Only a hint: a kernel that ignores it costs speed, not correctness.
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(map)
}
