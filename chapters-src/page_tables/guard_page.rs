//! A guard page: one page mapped PROT_NONE right below a region, so that running off the bottom
//! of the region faults instead of scribbling over whatever lies below (the `---p` rows of
//! /proc/self/maps).

use crate::fault_report::{in_child, SEGV_ACCERR};
use crate::protection_faults::{is_segv, perms_of};
use anyhow::{Context, Result};
use nix::sys::mman::{mprotect, ProtFlags};
use std::ptr::NonNull;
use vmbook::procinfo::page_size;
use vmbook::{bytes, finding, section, Mapping};

// ANCHOR: guard_page
pub fn guard_page() -> Result<()> {
    let page = page_size();
    let pages = 4;
    section(&format!(
        "A PROT_NONE guard page below a {} region",
        bytes((pages * page) as u64)
    ));
    let whole = Mapping::private((1 + pages) * page)?;
    let guard = NonNull::new(whole.as_ptr().cast()).context("null mapping")?;
    // SAFETY: the first page of our own mapping; nothing uses it.
    unsafe { mprotect(guard, page, ProtFlags::PROT_NONE) }.context("mprotect(PROT_NONE)")?;
    let region = whole.addr() + page;
    let below = region - 1; // the last byte of the guard page: one step too far down
    let outcome = in_child(|| {
        // SAFETY: the first write is inside the region; the second faults in the guard page, and
        // the child's handler ends the child.
        unsafe {
            std::ptr::write_volatile(region as *mut u8, 1);
            std::ptr::write_volatile(below as *mut u8, 1);
        }
    })?;
    // ANCHOR_END: guard_page
    vmbook::pause::here(
        "the guard page and the region are mapped",
        &["grep -B1 -A1 -- '---p' /proc/PID/maps"],
    );
    let (guard_perms, region_perms) = (perms_of(whole.addr())?, perms_of(region)?);
    println!("guard page  {:#x}: {guard_perms}", whole.addr());
    println!("region      {region:#x}: {region_perms}");
    println!("the child writes the region's first byte, then {below:#x}: {outcome}");
    finding(
        "a PROT_NONE guard page shows as ---p, and a touch raises SEGV_ACCERR: mapped, but not accessible",
        guard_perms == "---p" && is_segv(outcome, SEGV_ACCERR, below),
        format!("{guard_perms}; {outcome}"),
    );
    Ok(())
}
