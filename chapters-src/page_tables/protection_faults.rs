//! The permissions live in the page table: a write to a read-only page and a touch of an address
//! nothing maps both end in SIGSEGV, and `si_code` tells the two apart; a guard page and a page
//! without execute permission fault the same way ([`crate::guard_page`], [`crate::no_execute`]).

use crate::fault_report::{in_child, Outcome, SEGV_ACCERR, SEGV_MAPERR};
use anyhow::{Context, Result};
use nix::sys::mman::{mprotect, munmap, ProtFlags};
use std::ptr::NonNull;
use vmbook::procinfo::page_size;
use vmbook::{finding, section, Mapping};

/// The permissions column of the /proc/self/maps line that holds `addr`, or `none`.
pub fn perms_of(addr: usize) -> Result<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").context("read /proc/self/maps")?;
    for line in maps.lines() {
        let mut words = line.split_whitespace();
        let (Some(range), Some(perms)) = (words.next(), words.next()) else {
            continue;
        };
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (start, end) = (
            usize::from_str_radix(start, 16)?,
            usize::from_str_radix(end, 16)?,
        );
        if start <= addr && addr < end {
            return Ok(perms.to_string());
        }
    }
    Ok("none".into())
}

/// Checks an outcome: SIGSEGV with this `si_code` at exactly `addr`.
pub fn is_segv(outcome: Outcome, want: i32, addr: usize) -> bool {
    outcome
        == Outcome::Fault {
            signal: libc::SIGSEGV,
            code: want,
            addr,
        }
}

/// `page-tables protect`: each kind of access the page table refuses, in a forked child.
pub fn protection_faults() -> Result<()> {
    read_only_and_unmapped()?;
    crate::guard_page::guard_page()?;
    crate::no_execute::no_execute()
}

// ANCHOR: protection_faults
fn read_only_and_unmapped() -> Result<()> {
    section("Writing a read-only page, touching an unmapped address (each in a forked child)");
    let page = page_size();
    let region = Mapping::private(page)?;
    // SAFETY: the first byte of our own, writable page.
    unsafe { region.as_ptr().write_volatile(b'A') };
    let start = NonNull::new(region.as_ptr().cast()).context("null mapping")?;
    // SAFETY: our own page; from now on nothing in this program writes it.
    unsafe { mprotect(start, page, ProtFlags::PROT_READ) }.context("mprotect(PROT_READ)")?;
    let target = region.addr() + 100;
    let read_only = in_child(|| {
        // SAFETY: reading the page is allowed; the write faults, and the child's handler ends the
        // child before the write could complete.
        unsafe {
            std::ptr::read_volatile(region.as_ptr());
            std::ptr::write_volatile(target as *mut u8, b'B');
        }
    })?;
    let gone = Mapping::private(page)?;
    let hole = gone.addr();
    // Unmapped by hand below: the address must have no mapping at all.
    std::mem::forget(gone);
    // SAFETY: the page was ours; nothing refers to it, and nothing unmaps it again.
    unsafe { munmap(NonNull::new(hole as *mut _).context("null")?, page) }.context("munmap")?;
    let unmapped = in_child(|| {
        // SAFETY: the read faults; the child's handler ends the child.
        unsafe { std::ptr::read_volatile(hole as *const u8) };
    })?;
    // ANCHOR_END: protection_faults
    println!(
        "read-only page at {:#x} (maps: {}), the child writes {target:#x}: {read_only}",
        region.addr(),
        perms_of(region.addr())?
    );
    println!(
        "unmapped page at {hole:#x} (maps: {}), the child reads it: {unmapped}",
        perms_of(hole)?
    );
    finding(
        "writing a read-only page raises SIGSEGV with si_code SEGV_ACCERR, si_addr the byte written",
        is_segv(read_only, SEGV_ACCERR, target),
        format!("{read_only}; written {target:#x}"),
    );
    finding(
        "touching an address no mapping covers raises SIGSEGV with si_code SEGV_MAPERR",
        is_segv(unmapped, SEGV_MAPERR, hole),
        format!("{unmapped}; read {hole:#x}"),
    );
    Ok(())
}
