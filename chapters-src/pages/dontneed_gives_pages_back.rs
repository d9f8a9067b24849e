//! MADV_DONTNEED gives touched pages back; the next read faults in the shared zero page.

use crate::advice::advise;
use crate::residency::{about, resident_pages};
use anyhow::Result;
use nix::sys::mman::MmapAdvise;
use vmbook::measure::{measure, one_per_page, touch_each_page};
use vmbook::procinfo::{page_size, vm_counters};
use vmbook::{finding, kb, section, Mapping};

// ANCHOR: dontneed_gives_pages_back
pub fn dontneed_gives_pages_back(pages: usize) -> Result<()> {
    section(&format!(
        "Touching {pages} pages, then madvise(MADV_DONTNEED)"
    ));
    let mut region = Mapping::private(pages * page_size())?;
    region.base_pages_only()?;
    touch_each_page(&mut region, 0xAB);
    let rss_touched = vm_counters()?.rss;
    let resident_touched = resident_pages(&region)?;
    vmbook::pause::here(
        "every page has been written; MADV_DONTNEED comes next",
        &["grep -E 'VmRSS|RssAnon' /proc/PID/status"],
    );
    // SAFETY: the whole of our own mapping; we read it next expecting zeros.
    unsafe { advise(region.as_ptr(), region.len(), MmapAdvise::MADV_DONTNEED) }?;
    vmbook::pause::here(
        "MADV_DONTNEED has given the pages back; the mapping is still there",
        &[
            "grep -E 'VmRSS|RssAnon' /proc/PID/status",
            "grep -c rw-p /proc/PID/maps",
        ],
    );
    let rss_dropped = vm_counters()?.rss;
    let resident_dropped = resident_pages(&region)?;
    let mut sum = 0u64;
    let (read_faults, _) = measure(|| {
        for byte in region.bytes().iter().step_by(page_size()) {
            // SAFETY: a valid reference into the mapping; volatile, so each page is really read.
            sum += u64::from(unsafe { std::ptr::read_volatile(byte) });
        }
    })?;
    let all_zero = sum == 0 && region.bytes().iter().all(|&b| b == 0);
    let rss_read = vm_counters()?.rss;
    let resident_read = resident_pages(&region)?;
    // ANCHOR_END: dontneed_gives_pages_back
    for (label, resident, rss) in [
        (
            "after writing into every page",
            resident_touched,
            rss_touched,
        ),
        ("after MADV_DONTNEED", resident_dropped, rss_dropped),
        ("after reading every page again", resident_read, rss_read),
    ] {
        println!(
            "{:<33} {resident} of {pages} pages resident (mincore), VmRSS {}",
            format!("{label}:"),
            kb(rss)
        );
    }
    println!(
        "reading after MADV_DONTNEED: {read_faults} faults; every byte is {}",
        if all_zero { "0" } else { "NOT 0" }
    );
    let touched = (pages * page_size()) as u64;
    let drop = rss_touched.saturating_sub(rss_dropped);
    finding(
        "MADV_DONTNEED gives the pages back: none stays resident and VmRSS drops by what was \
         touched (to within a tenth, or 1 MiB)",
        resident_dropped == 0 && about(drop, touched),
        format!(
            "mincore: {resident_dropped} of {pages} resident; VmRSS dropped by {}",
            kb(drop)
        ),
    );
    finding(
        "the next read sees zeros, not the old contents",
        all_zero,
        format!("sum of all bytes after the read: {sum}"),
    );
    finding(
        "that read faults again, once per page (to within a tenth, plus at most 8 of the program's own)",
        one_per_page(read_faults, pages),
        format!("{read_faults} faults reading {pages} pages"),
    );
    let regrowth = rss_read.saturating_sub(rss_dropped);
    finding(
        "reading maps the kernel's shared zero page: every page is mapped again (mincore), yet \
         VmRSS does not grow back (to within a tenth, or 1 MiB)",
        resident_read == pages && regrowth <= (touched / 10).max(1 << 20),
        format!(
            "mincore: {resident_read} of {pages} resident, VmRSS grew by {}",
            kb(regrowth)
        ),
    );
    Ok(())
}
