//! MAP_POPULATE takes the faults inside mmap instead of at the first touch.

use crate::residency::resident_pages;
use anyhow::{Context, Result};
use nix::sys::mman::MapFlags;
use nix::sys::prctl;
use vmbook::measure::{measure, one_per_page, per, touch_each_page};
use vmbook::procinfo::page_size;
use vmbook::procinfo::thp_setting;
use vmbook::{finding, section, Mapping};

/// Runs `work` with transparent huge pages off for this process (`prctl(PR_SET_THP_DISABLE)`),
/// whatever the system-wide mode: MAP_POPULATE fills a region inside `mmap`, before any madvise
/// could reach it, and in `always` mode it would fill it with huge pages, one fault each.
fn without_thp<T>(work: impl FnOnce() -> Result<T>) -> Result<T> {
    let before = prctl::get_thp_disable().context("prctl(PR_GET_THP_DISABLE)")?;
    prctl::set_thp_disable(true).context("prctl(PR_SET_THP_DISABLE)")?;
    let result = work();
    prctl::set_thp_disable(before).context("prctl(PR_SET_THP_DISABLE)")?;
    result
}

// ANCHOR: populate_moves_the_faults
pub fn populate_moves_the_faults(pages: usize) -> Result<()> {
    section(&format!(
        "{pages} pages, mapped without and with MAP_POPULATE"
    ));
    println!(
        "transparent huge pages: [{}], and off for this process during the experiment",
        thp_setting("enabled")
    );
    without_thp(|| map_and_touch(pages))
}

fn map_and_touch(pages: usize) -> Result<()> {
    let len = pages * page_size();
    let mut rows = Vec::new();
    for populate in [false, true] {
        let flags = if populate {
            MapFlags::MAP_PRIVATE | MapFlags::MAP_POPULATE
        } else {
            MapFlags::MAP_PRIVATE
        };
        let what = if populate {
            "MAP_PRIVATE|MAP_ANONYMOUS|MAP_POPULATE"
        } else {
            "MAP_PRIVATE|MAP_ANONYMOUS"
        };
        let mut region = None;
        let (map_faults, map_time) =
            measure(|| region = Some(Mapping::anonymous(len, flags, what)))?;
        let mut region = region.context("the mapping was not made")??;
        let resident = resident_pages(&region)?;
        let (touch_faults, touch_time) = measure(|| touch_each_page(&mut region, 1))?;
        rows.push((
            populate,
            map_faults,
            map_time,
            resident,
            touch_faults,
            touch_time,
        ));
    }
    // ANCHOR_END: populate_moves_the_faults
    for (populate, map_faults, map_time, resident, touch_faults, touch_time) in &rows {
        println!(
            "{:<14} mmap: {map_faults} faults in {}; then {resident} of {pages} pages resident; \
             touching them: {touch_faults} faults in {}",
            if *populate {
                "MAP_POPULATE:"
            } else {
                "plain mmap:"
            },
            per(*map_time, 1),
            per(*touch_time, 1)
        );
    }
    let (_, plain_map_faults, _, plain_resident, plain_touch_faults, _) = rows[0];
    let (_, pop_map_faults, _, pop_resident, pop_touch_faults, _) = rows[1];
    finding(
        "without MAP_POPULATE, mmap itself takes almost no faults and the touch takes one per page",
        plain_map_faults <= 8 && plain_resident == 0 && one_per_page(plain_touch_faults, pages),
        format!(
            "{plain_map_faults} faults in mmap, {plain_touch_faults} faults touching {pages} pages"
        ),
    );
    finding(
        "with MAP_POPULATE, every page is resident when mmap returns",
        pop_resident == pages,
        format!("mincore: {pop_resident} of {pages} resident"),
    );
    finding(
        "with MAP_POPULATE, touching takes almost no faults (under one per hundred pages)",
        pop_touch_faults as usize * 100 < pages * 3 || pop_touch_faults == 0,
        format!("{pop_touch_faults} faults touching {pages} pages"),
    );
    finding(
        "the faults moved into mmap itself (to within a tenth, plus at most 8 of the program's own)",
        one_per_page(pop_map_faults, pages),
        format!("{pop_map_faults} faults inside mmap for {pages} pages"),
    );
    Ok(())
}
