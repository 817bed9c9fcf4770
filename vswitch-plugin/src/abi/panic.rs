//! The panic boundary: no panic crosses into C. Every `extern "C"` body runs
//! inside [`boundary`], which turns a panic into [`FLOWLOG_ERR_PANIC`]
//! (rustls-ffi's `ffi_panic_boundary!` shape, as a function).

use super::flowlog_status::{self, FLOWLOG_ERR_PANIC};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`; a panic becomes [`FLOWLOG_ERR_PANIC`].
///
/// `AssertUnwindSafe`: what a panic may leave half-updated is the plugin's
/// own state, and the caller marks the plugin as broken after one (see
/// `Plugin::broken`), so no later call reads it as if nothing happened.
#[inline]
pub(crate) fn boundary(f: impl FnOnce() -> flowlog_status) -> flowlog_status {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(FLOWLOG_ERR_PANIC)
}

/// As [`boundary`], for a call that returns a plain value: `on_panic` then.
#[inline]
pub(crate) fn boundary_value<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(on_panic)
}
