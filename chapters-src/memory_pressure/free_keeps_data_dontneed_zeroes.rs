//! MADV_FREE and MADV_DONTNEED both say "I no longer need these pages", with a different
//! contract: DONTNEED drops them now; FREE lets the kernel drop them later, when it needs the RAM.

use crate::memory::{
    advise, check, fill, most, resident_pages, smaps_counter, OneCpu, Region, SwapAreas,
};
use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::mman::MmapAdvise;
use vmbook::procinfo::page_size;
use vmbook::{bytes, finding, kb, not_checked, section};

pub fn free_keeps_data_dontneed_zeroes(pages: usize) -> Result<()> {
    let len = pages * page_size();
    section(&format!(
        "MADV_FREE and MADV_DONTNEED side by side, {} each",
        bytes(len as u64)
    ));
    println!("{}", SwapAreas::read()?.describe());
    let claims = [
        "after MADV_FREE the pages keep their data and stay in RSS; smaps counts them as \
         LazyFree (all but at most 32 pages, a per-CPU batch the kernel has not yet flushed)",
        "after MADV_DONTNEED RSS drops at once and the pages read as zeros",
        "under reclaim (MADV_PAGEOUT) lazily freed pages are dropped, not swapped: RSS falls, \
         they read as zeros, nothing goes to swap (with or without swap)",
        "a page written after MADV_FREE keeps its new data through reclaim: the write cancels \
         the free",
    ];
    // From the first touch to the last madvise on one CPU: see OneCpu.
    let pinned = OneCpu::here()?;
    // ANCHOR: free_vs_dontneed
    let mut freed = Region::new(len)?;
    let mut dropped = Region::new(len)?;
    fill(freed.bytes_mut(), 7);
    fill(dropped.bytes_mut(), 9);
    // SAFETY (both): regions of our own; reading them again is the experiment, which expects old
    // contents or zeros and checks which.
    let free = unsafe { advise(freed.as_ptr(), len, MmapAdvise::MADV_FREE) };
    if let Err(Errno::EINVAL) = free {
        let why = "madvise(MADV_FREE): EINVAL: this kernel lacks it (Linux 4.5+)";
        claims.iter().for_each(|claim| not_checked(claim, why));
        return Ok(());
    }
    unsafe { advise(dropped.as_ptr(), len, MmapAdvise::MADV_DONTNEED) }
        .context("madvise(MADV_DONTNEED)")?;
    let rss_freed = smaps_counter(freed.addr(), "Rss")?;
    let lazy = smaps_counter(freed.addr(), "LazyFree")?;
    let rss_dropped = smaps_counter(dropped.addr(), "Rss")?;
    // Reading does not cancel MADV_FREE (only a write does).
    let (freed_changed, _) = check(freed.bytes(), 7);
    let (_, dropped_zero) = check(dropped.bytes(), 9);
    // ANCHOR_END: free_vs_dontneed
    let page = page_size();
    println!(
        "after MADV_FREE:     Rss {}, LazyFree {}, {freed_changed} pages changed",
        kb(rss_freed),
        kb(lazy)
    );
    println!(
        "after MADV_DONTNEED: Rss {}, {dropped_zero} of {pages} pages read as zeros",
        kb(rss_dropped)
    );
    vmbook::pause::here(
        "one region after MADV_FREE, one after MADV_DONTNEED",
        &["grep -E '^(Size|Rss|LazyFree):' /proc/PID/smaps | paste - - - | grep -v ' 0 kB$'"],
    );
    finding(
        claims[0],
        freed_changed == 0
            && rss_freed * 10 >= len as u64 * 9
            && lazy + 32 * page as u64 >= len as u64,
        format!("Rss {}, LazyFree {}", kb(rss_freed), kb(lazy)),
    );
    finding(
        claims[1],
        rss_dropped * 10 <= len as u64 && dropped_zero == pages,
        format!("Rss {}, {dropped_zero} pages of zeros", kb(rss_dropped)),
    );

    // ANCHOR: free_under_reclaim
    // Write into the first page again, then make reclaim look at the region now.
    freed.bytes_mut()[..page].fill(0x5a);
    // SAFETY: a region of our own; MADV_PAGEOUT keeps the contents.
    if let Err(Errno::EINVAL) = unsafe { advise(freed.as_ptr(), len, MmapAdvise::MADV_PAGEOUT) } {
        let why = "madvise(MADV_PAGEOUT): EINVAL: this kernel lacks it (Linux 5.4+)";
        claims[2..].iter().for_each(|claim| not_checked(claim, why));
        return Ok(());
    }
    let rss_reclaimed = smaps_counter(freed.addr(), "Rss")?;
    let swapped = smaps_counter(freed.addr(), "Swap")?;
    let resident = resident_pages(freed.as_ptr(), len)?;
    let rest = &freed.bytes()[page..];
    let zeros = rest
        .chunks(page)
        .filter(|p| p.iter().all(|&b| b == 0))
        .count();
    let kept = freed.bytes()[..page].iter().all(|&b| b == 0x5a);
    // ANCHOR_END: free_under_reclaim
    drop(pinned);
    println!(
        "after MADV_PAGEOUT:  Rss {}, Swap {}, resident {}; {zeros} of {} untouched pages \
         read as zeros; the written page {}",
        kb(rss_reclaimed),
        kb(swapped),
        kb((resident * page) as u64),
        pages - 1,
        if kept {
            "kept its data"
        } else {
            "LOST its data"
        }
    );
    let one_page = page as u64;
    finding(
        claims[2],
        rss_reclaimed <= one_page + len as u64 / 10
            && swapped <= one_page
            && most(zeros, pages - 1),
        format!(
            "Rss {}, Swap {}, {zeros} pages of zeros",
            kb(rss_reclaimed),
            kb(swapped)
        ),
    );
    finding(
        claims[3],
        kept,
        if kept {
            "the written page reads back 0x5a"
        } else {
            "the written page does not read back 0x5a"
        },
    );
    Ok(())
}
