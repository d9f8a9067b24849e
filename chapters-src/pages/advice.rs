//! madvise(2) on the experiments' regions, and the transparent huge page settings in sysfs.

use anyhow::{Context, Result};
use nix::sys::mman::{madvise, MmapAdvise};
use std::ptr::NonNull;

/// Gives the kernel `advice` about `len` bytes at `start`.
///
/// # Safety
///
/// `start` is page-aligned and `start..start + len` lies inside an anonymous mapping this program
/// owns; if the advice may discard the contents (MADV_DONTNEED), nothing relies on them any more:
/// a private anonymous page then reads as zeros.
pub unsafe fn advise(start: *mut u8, len: usize, advice: MmapAdvise) -> Result<()> {
    let start = NonNull::new(start.cast()).context("madvise: null address")?;
    // SAFETY: the caller's promise above.
    unsafe { madvise(start, len, advice) }.with_context(|| format!("madvise({advice:?})"))
}
