//! What the child's copy-on-write faults cost, next to first-touch faults.

use crate::link::{child_side, receive, send, Link};
use crate::region::base_page_region;
use anyhow::{ensure, Result};
use std::time::Duration;
use vmbook::measure::{measure, one_per_page, per, touch_each_page, TIMED_PAGES};
use vmbook::process::{fork_child, wait_exit_code};
use vmbook::procinfo::page_size;
use vmbook::{finding, not_checked, section};

// ANCHOR: cow_fault_cost
pub fn cow_fault_cost(pages: usize) -> Result<()> {
    section(&format!(
        "What writing {pages} shared pages costs the child"
    ));
    let len = pages * page_size();
    // First touch, for comparison: the best of five fresh regions. The last one stays.
    let mut region = base_page_region(len)?;
    let mut first_touch = Duration::MAX;
    for attempt in 0..5 {
        if attempt > 0 {
            region = base_page_region(len)?;
        }
        let (_, time) = measure(|| touch_each_page(&mut region, 1))?;
        first_touch = first_touch.min(time);
    }
    // Five children, one after the other; each writes every page twice.
    let mut reports = Vec::new();
    for _ in 0..5 {
        let mut link = Link::new()?;
        let ends = link.parent_ends();
        let child = fork_child(|| {
            child_side(ends, || {
                let (faults, time) = measure(|| touch_each_page(&mut region, 2))?;
                let (again_faults, again) = measure(|| touch_each_page(&mut region, 3))?;
                let report = [
                    faults,
                    time.as_nanos() as i64,
                    again_faults,
                    again.as_nanos() as i64,
                ];
                send(&mut link.up.1, &report.map(|v| v as u64))
            })
        })?;
        let report = receive(&mut link.parent().0, 4)?;
        ensure!(wait_exit_code(child)? == 0, "the child failed");
        reports.push(report.iter().map(|&v| v as i64).collect::<Vec<_>>());
    }
    // ANCHOR_END: cow_fault_cost
    let nanos = |v: i64| Duration::from_nanos(v as u64);
    let cow = reports
        .iter()
        .map(|r| nanos(r[1]))
        .min()
        .unwrap_or_default();
    let again = reports
        .iter()
        .map(|r| nanos(r[3]))
        .min()
        .unwrap_or_default();
    println!(
        "first touch in the parent (best of 5):   {} per page",
        per(first_touch, pages)
    );
    for (i, r) in reports.iter().enumerate() {
        println!(
            "child {}: first write {} faults, {} per page; second write {} faults, {} per page",
            i + 1,
            r[0],
            per(nanos(r[1]), pages),
            r[2],
            per(nanos(r[3]), pages)
        );
    }
    let cow_vs_touch = cow.as_secs_f64() / first_touch.as_secs_f64().max(1e-9);
    let cow_vs_again = cow.as_secs_f64() / again.as_secs_f64().max(1e-9);
    println!(
        "best copy-on-write fault {} per page: {cow_vs_touch:.1}× a first-touch fault, \
         {cow_vs_again:.0}× a write to a page already copied",
        per(cow, pages)
    );
    let faults: Vec<String> = reports.iter().map(|r| format!("{} faults", r[0])).collect();
    finding(
        "each child takes one minor fault per page it writes (to within a tenth, plus at most 8 of the program's own)",
        reports.iter().all(|r| one_per_page(r[0], pages)),
        format!("{pages} pages written; {}", faults.join(", ")),
    );
    let cost_claim =
        "a copy-on-write fault costs the same order of magnitude as a first-touch fault \
         (within a factor of 10 either way)";
    let again_claim =
        "writing the copied pages again takes almost no faults and is at least 5 times faster";
    if pages < TIMED_PAGES {
        let why = format!("{pages} pages are too few to time; try {TIMED_PAGES} or more");
        not_checked(cost_claim, &why);
        not_checked(again_claim, &why);
        return Ok(());
    }
    finding(
        cost_claim,
        (0.1..=10.0).contains(&cow_vs_touch),
        format!(
            "{} vs {} per page: {cow_vs_touch:.1}×",
            per(cow, pages),
            per(first_touch, pages)
        ),
    );
    finding(
        again_claim,
        reports
            .iter()
            .all(|r| r[2] as usize * 100 < pages * 3 || r[2] == 0)
            && cow_vs_again >= 5.0,
        format!(
            "{} per page, {cow_vs_again:.0}× faster than the copy",
            per(again, pages)
        ),
    );
    Ok(())
}
