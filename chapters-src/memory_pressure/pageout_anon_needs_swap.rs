//! An anonymous page has no file to go back to: it can leave RAM only for swap. With swap, the
//! page table entry then holds a swap entry (pagemap bit 62) and touching the page faults it back.

use crate::memory::{
    advise, check, few, fill, most, resident_pages, smaps_counter, swapped_pages, OneCpu, Region,
    SwapAreas,
};
use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::mman::MmapAdvise;
use procfs::process::Process;
use vmbook::procinfo::{page_faults, page_size};
use vmbook::{bytes, finding, kb, not_checked, section};

/// VmSwap of this process, in bytes: how much of it is in swap.
pub fn vm_swap() -> Result<u64> {
    let status = Process::myself()
        .and_then(|p| p.status())
        .context("read /proc/self/status")?;
    Ok(status.vmswap.unwrap_or(0) * 1024)
}

pub fn pageout_anon_needs_swap(pages: usize) -> Result<()> {
    let len = pages * page_size();
    section(&format!(
        "{} of anonymous memory and MADV_PAGEOUT",
        bytes(len as u64)
    ));
    let swap = SwapAreas::read()?;
    println!("{}", swap.describe());
    let with_swap = [
        "with swap, MADV_PAGEOUT moves anonymous pages out of RAM: pagemap marks them swapped \
         (bit 62) and mincore no longer resident (nine in ten)",
        "VmSwap grows by what left (to within a tenth, or 256 KiB)",
        "touching them again brings each page back with its data, one fault per swapped page \
         (to within a tenth)",
    ];
    let without_swap = "without swap, anonymous pages cannot leave RAM: after MADV_PAGEOUT \
                        every page is still resident, none swapped";
    // From the first touch to the madvise on one CPU: see OneCpu.
    let pinned = OneCpu::here()?;
    // ANCHOR: pageout_anon_needs_swap
    let mut region = Region::new(len)?;
    fill(region.bytes_mut(), 5);
    let swap_before = vm_swap()?;
    // SAFETY: a region of our own; MADV_PAGEOUT keeps the contents.
    if let Err(Errno::EINVAL) = unsafe { advise(region.as_ptr(), len, MmapAdvise::MADV_PAGEOUT) } {
        let why = "madvise(MADV_PAGEOUT): EINVAL: this kernel lacks it (Linux 5.4+)";
        with_swap.iter().for_each(|claim| not_checked(claim, why));
        not_checked(without_swap, why);
        return Ok(());
    }
    let resident_out = resident_pages(region.as_ptr(), len)?;
    let swapped = swapped_pages(region.as_ptr(), len)?;
    let in_swap = smaps_counter(region.addr(), "Swap")?;
    let swap_after = vm_swap()?;
    drop(pinned);
    vmbook::pause::here(
        "MADV_PAGEOUT is done; the region has not been touched again",
        &["grep -E 'VmRSS|VmSwap' /proc/PID/status", "cat /proc/swaps"],
    );
    let before = page_faults()?;
    let (changed, _) = check(region.bytes(), 5);
    let after = page_faults()?;
    let resident_back = resident_pages(region.as_ptr(), len)?;
    // ANCHOR_END: pageout_anon_needs_swap

    let page = page_size() as u64;
    let (minor, major) = (after.0 - before.0, after.1 - before.1);
    println!(
        "after MADV_PAGEOUT: resident {}, marked swapped in pagemap {}, smaps Swap {}, \
         VmSwap grew by {}",
        kb(resident_out as u64 * page),
        kb(swapped as u64 * page),
        kb(in_swap),
        kb(swap_after.saturating_sub(swap_before))
    );
    println!(
        "touching every page again: {minor} minor faults, {major} major faults; resident {}, \
         {changed} pages changed",
        kb(resident_back as u64 * page)
    );
    if !swap.configured() {
        let why = "no swap configured: /proc/swaps lists no swap area";
        with_swap.iter().for_each(|claim| not_checked(claim, why));
        finding(
            without_swap,
            resident_out == pages && swapped == 0 && changed == 0,
            format!(
                "resident {} of {}, swapped {}",
                kb(resident_out as u64 * page),
                bytes(len as u64),
                kb(swapped as u64 * page)
            ),
        );
        return Ok(());
    }
    if swap.free() < len as u64 {
        let why = format!("swap has only {} free", kb(swap.free()));
        with_swap.iter().for_each(|claim| not_checked(claim, &why));
    } else {
        finding(
            with_swap[0],
            most(swapped, pages) && few(resident_out, pages),
            format!(
                "swapped {}, resident {}",
                kb(swapped as u64 * page),
                kb(resident_out as u64 * page)
            ),
        );
        let grew = swap_after.saturating_sub(swap_before);
        let left = swapped as u64 * page;
        finding(
            with_swap[1],
            grew.abs_diff(left) <= (left / 10).max(256 << 10),
            format!("VmSwap grew by {}, {} left", kb(grew), kb(left)),
        );
        let faults = (minor + major) as usize;
        finding(
            with_swap[2],
            changed == 0 && most(faults, swapped) && faults <= swapped + swapped / 10 + 8,
            format!("{faults} faults for {} swapped", kb(left)),
        );
        // ANCHOR: which_faults
        // A page read back from the swap device is a major fault; one still in the swap cache
        // (written out but not yet freed, or read ahead with a neighbor) is a minor fault.
        let kind = if major as usize * 10 >= faults * 9 {
            "major: each page was read back from the swap device"
        } else if minor as usize * 10 >= faults * 9 {
            "minor: the pages were still in the swap cache, no device read was needed"
        } else {
            "both: some pages came from the swap device, some from the swap cache"
        };
        // ANCHOR_END: which_faults
        println!("the kernel counted these faults as {kind}");
    }
    not_checked(
        without_swap,
        format!("swap is configured ({} in /proc/swaps)", kb(swap.total)),
    );
    Ok(())
}
