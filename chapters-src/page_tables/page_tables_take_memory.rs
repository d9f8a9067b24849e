//! Page tables are memory too: touching one page in every stretch that one last-level table covers
//! makes the kernel allocate a table per touch, and VmPTE in /proc/self/status counts them.

use crate::layout::Layout;
use crate::settings::vm_pte;
use anyhow::Result;
use nix::sys::mman::MapFlags;
use vmbook::procinfo::vm_counters;
use vmbook::{bytes, finding, kb, section, Mapping};

/// A region of `len` bytes on base pages only (so that THP `always` cannot replace a table by a
/// huge page), reserving no swap or commit charge for the parts never touched.
fn sparse_region(len: usize) -> Result<Mapping> {
    let region = Mapping::anonymous(
        len,
        MapFlags::MAP_PRIVATE | MapFlags::MAP_NORESERVE,
        "MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE",
    )?;
    region.base_pages_only()?;
    Ok(region)
}

/// Writes one byte at each of `touches` places `stride` bytes apart; returns VmPTE and VmRSS growth.
fn touch(region: &Mapping, touches: usize, stride: usize) -> Result<(u64, u64)> {
    let (pte, rss) = (vm_pte()?, vm_counters()?.rss);
    for i in 0..touches {
        // SAFETY: i * stride < touches * stride <= region.len(); volatile, so every write happens.
        unsafe { std::ptr::write_volatile(region.as_ptr().add(i * stride), 1) };
    }
    let grew = |before: u64, after: u64| after.saturating_sub(before);
    Ok((grew(pte, vm_pte()?), grew(rss, vm_counters()?.rss)))
}

// ANCHOR: page_tables_take_memory
pub fn page_tables_take_memory(touches: usize) -> Result<()> {
    let layout = Layout::detect()?;
    let (page, table_span) = (layout.page, layout.span(2) as usize);
    section(&format!(
        "Page-table memory: {touches} pages touched side by side, then one every {}",
        bytes(table_span as u64)
    ));
    vm_pte()?; // read once, so that the reader itself maps nothing new below
    let dense = sparse_region(touches * page)?;
    let (dense_pte, dense_rss) = touch(&dense, touches, page)?;
    let sparse = sparse_region(touches * table_span)?;
    let (sparse_pte, sparse_rss) = touch(&sparse, touches, table_span)?;
    vmbook::pause::here(
        "both regions are touched",
        &["grep -E 'VmPTE|VmRSS' /proc/PID/status"],
    );
    let before_unmap = vm_pte()?;
    drop(sparse);
    let freed = before_unmap.saturating_sub(vm_pte()?);
    // ANCHOR_END: page_tables_take_memory
    println!(
        "side by side ({} region):  VmRSS +{}, VmPTE +{}",
        bytes((touches * page) as u64),
        kb(dense_rss),
        kb(dense_pte)
    );
    println!(
        "one every {} ({} region): VmRSS +{}, VmPTE +{}",
        bytes(table_span as u64),
        bytes((touches * table_span) as u64),
        kb(sparse_rss),
        kb(sparse_pte)
    );
    println!("munmap of the sparse region: VmPTE -{}", kb(freed));
    let in_pages = |bytes: u64| bytes as f64 / page as f64;
    let n = touches as f64;
    // A table per touch, plus a few tables one level up (one per span(3) of region).
    let upper = (touches * table_span).div_ceil(layout.span(3) as usize) as f64 + 2.0;
    finding(
        "touching one page in each stretch a last-level table covers costs one table page per touch",
        in_pages(sparse_pte) >= 0.9 * n && in_pages(sparse_pte) <= 1.1 * n + upper,
        format!(
            "{touches} touches, VmPTE +{}: {:.2}× a page per touch",
            kb(sparse_pte),
            in_pages(sparse_pte) / n
        ),
    );
    let tables = touches.div_ceil(layout.entries()) as f64;
    finding(
        "touching as many pages side by side costs only a table per table's worth of pages",
        in_pages(dense_pte) <= tables + 2.0,
        format!(
            "{touches} pages, {} entries per table, VmPTE +{}",
            layout.entries(),
            kb(dense_pte)
        ),
    );
    finding(
        "munmap gives the page tables back",
        in_pages(freed) >= 0.9 * in_pages(sparse_pte),
        format!("VmPTE -{} after +{}", kb(freed), kb(sparse_pte)),
    );
    drop(dense);
    Ok(())
}
