//! madvise(2) on the experiments' regions, and the transparent huge page settings in sysfs.

use anyhow::{Context, Result};
use nix::sys::mman::{madvise, MmapAdvise};
use std::ptr::NonNull;
use vmbook::Mapping;

/// Gives the kernel `advice` about `len` bytes at `start`, part of a mapping we own.
pub fn advise(start: *mut u8, len: usize, advice: MmapAdvise) -> Result<()> {
    let start = NonNull::new(start.cast()).context("madvise: null address")?;
    // SAFETY: the range lies inside a mapping this program owns; the advice given here either
    // changes no contents (huge page hints) or is MADV_DONTNEED, after which nothing relies on
    // the old contents.
    unsafe { madvise(start, len, advice) }.with_context(|| format!("madvise({advice:?})"))
}

/// Keeps `region` on base pages, so that the experiments count one fault per base page even
/// where transparent huge pages are `always` on.
pub fn base_pages_only(region: &Mapping) -> Result<()> {
    advise(region.as_ptr(), region.len(), MmapAdvise::MADV_NOHUGEPAGE)
}
