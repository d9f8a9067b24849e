//! The first touch of a fresh page is a minor fault; the second touch of it is not.

use crate::residency::{about, resident_pages};
use anyhow::Result;
use vmbook::measure::{measure, one_per_page, per, touch_each_page, TIMED_PAGES};
use vmbook::procinfo::{page_size, vm_counters};
use vmbook::{bytes, finding, kb, not_checked, section, Mapping};

// ANCHOR: first_touch_faults
pub fn first_touch_faults(pages: usize) -> Result<()> {
    section(&format!(
        "Touching {pages} fresh pages, then touching them again"
    ));
    let rss_before = vm_counters()?.rss;
    let mut region = Mapping::private(pages * page_size())?;
    region.base_pages_only()?;
    let rss_mapped = vm_counters()?.rss;
    let resident_mapped = resident_pages(&region)?;
    let (first_faults, first_time) = measure(|| touch_each_page(&mut region, 1))?;
    let rss_touched = vm_counters()?.rss;
    let resident_touched = resident_pages(&region)?;
    // The second pass: the best of three, each touching every page again.
    let mut again = Vec::new();
    for _ in 0..3 {
        again.push(measure(|| touch_each_page(&mut region, 2))?);
    }
    let again_faults: i64 = again.iter().map(|(faults, _)| faults).sum();
    let again_time = again
        .iter()
        .map(|(_, time)| *time)
        .min()
        .unwrap_or_default();
    // ANCHOR_END: first_touch_faults
    vmbook::pause::here(
        "every page of the region has been touched",
        &[
            "grep -E 'VmRSS|RssAnon' /proc/PID/status",
            "ps -o pid,min_flt,rss,cmd --pid PID",
        ],
    );
    // Varying values are never padded: the snapshot sees them redacted, and padding would not be.
    println!("before mmap:            VmRSS {}", kb(rss_before));
    println!(
        "after mmap:             VmRSS {}, {resident_mapped} of {pages} pages resident (mincore)",
        kb(rss_mapped)
    );
    println!(
        "after the first touch:  VmRSS {}, {resident_touched} of {pages} pages resident (mincore)",
        kb(rss_touched)
    );
    println!(
        "first touch:  {first_faults} faults, {} per page",
        per(first_time, pages)
    );
    println!(
        "second touch: {again_faults} faults in 3 passes, {} per page (best pass)",
        per(again_time, pages)
    );
    let rss_growth = rss_touched.saturating_sub(rss_mapped);
    let touched = (pages * page_size()) as u64;
    let speedup = first_time.as_secs_f64() / again_time.as_secs_f64().max(1e-9);
    finding(
        "mmap alone makes no page resident",
        resident_mapped == 0 && rss_mapped.saturating_sub(rss_before) < 1 << 20,
        format!(
            "mincore: {resident_mapped} of {pages} resident, VmRSS grew by {}",
            kb(rss_mapped.saturating_sub(rss_before))
        ),
    );
    finding(
        "the first touch of each page is one minor page fault (to within a tenth, plus at most 8 of the program's own)",
        one_per_page(first_faults, pages),
        format!("{pages} pages touched, {first_faults} faults"),
    );
    finding(
        "after the first touch every page is resident, and VmRSS grew by what was touched \
         (to within a tenth, or 1 MiB)",
        resident_touched == pages && about(rss_growth, touched),
        format!(
            "mincore: {resident_touched} of {pages} resident; touched {}, VmRSS grew by {}",
            bytes(touched),
            kb(rss_growth)
        ),
    );
    finding(
        "touching the pages again takes almost no faults (under one per hundred pages)",
        again_faults as usize * 100 < pages * 3 || again_faults == 0,
        format!("{again_faults} faults in 3 passes over {pages} pages"),
    );
    let claim = "the second touch is at least 5 times faster per page than the first";
    if pages < TIMED_PAGES {
        not_checked(
            claim,
            format!("{pages} pages are too few to time; try {TIMED_PAGES} or more"),
        );
    } else {
        finding(
            claim,
            speedup >= 5.0,
            format!(
                "{} vs {} per page: {speedup:.0}×",
                per(first_time, pages),
                per(again_time, pages)
            ),
        );
    }
    Ok(())
}
