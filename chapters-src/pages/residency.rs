//! What is resident: mincore(2) per page, and VmRSS changes judged against what was touched.

use anyhow::{Context, Result};
use vmbook::procinfo::page_size;
use vmbook::Mapping;

// ANCHOR: resident_pages
/// How many pages of `region` are resident in RAM, as mincore(2) reports them.
pub fn resident_pages(region: &Mapping) -> Result<usize> {
    let mut vector = vec![0u8; region.len().div_ceil(page_size())];
    // SAFETY: the range is one whole mapping we own, and `vector` holds one byte per page of it.
    // (mincore has no wrapper in nix.)
    let rc = unsafe { libc::mincore(region.as_ptr().cast(), region.len(), vector.as_mut_ptr()) };
    if rc != 0 {
        return Err(nix::errno::Errno::last()).context("mincore");
    }
    Ok(vector.iter().filter(|&&v| v & 1 == 1).count())
}
// ANCHOR_END: resident_pages

/// Whether a measured change of VmRSS matches `expected` bytes: to within a tenth, or 1 MiB for
/// small sizes. VmRSS is read from counters the kernel updates in batches (per CPU since Linux
/// 6.2, per thread before, synced every 64 faults), so it can lag the page tables a little.
pub fn about(change: u64, expected: u64) -> bool {
    change.abs_diff(expected) <= (expected / 10).max(1 << 20)
}
