//! The private region the experiments fork with, and what smaps say about its dirty pages.

use anyhow::Result;
use vmbook::procinfo::smaps_of;
use vmbook::Mapping;

/// A private mapping of `len` bytes on base pages only (MADV_NOHUGEPAGE), so that every
/// experiment counts base pages even where transparent huge pages are `always` on.
pub fn base_page_region(len: usize) -> Result<Mapping> {
    let region = Mapping::private(len)?;
    region.base_pages_only()?;
    Ok(region)
}

/// Shared_Dirty and Private_Dirty of the mapping holding `region`, from this process's smaps.
pub fn dirty(region: &Mapping) -> Result<(u64, u64)> {
    let smaps = smaps_of(region.addr())?;
    let get = |key: &str| smaps.get(key).copied().unwrap_or(0);
    Ok((get("Shared_Dirty"), get("Private_Dirty")))
}
