//! One byte written copies a whole page: the copy is made page by page.

use crate::link::{child_side, receive, send, Link};
use crate::region::{base_page_region, dirty};
use anyhow::{ensure, Result};
use vmbook::measure::{measure, one_per_page, touch_each_page};
use vmbook::process::{fork_child, wait_exit_code};
use vmbook::procinfo::page_size;
use vmbook::{finding, kb, section};

// ANCHOR: one_byte_copies_a_page
/// `--count`: from 1 to this machine's page size, since the first part writes that many bytes
/// into one page.
pub fn count_within_a_page(text: &str) -> std::result::Result<usize, String> {
    let page = page_size();
    match text.parse::<usize>() {
        Ok(n) if (1..=page).contains(&n) => Ok(n),
        Ok(n) => Err(format!("{n} is out of range 1..={page} (the page size)")),
        Err(_) => Err(format!("`{text}` is not a number of bytes")),
    }
}

pub fn one_byte_copies_a_page(count: usize) -> Result<()> {
    section(&format!(
        "The child writes {count} bytes into one page, then 1 byte into each of {count} pages"
    ));
    let page = page_size();
    let mut region = base_page_region((count + 1) * page)?;
    touch_each_page(&mut region, 1);
    let mut link = Link::new()?;
    let ends = link.parent_ends();
    let child = fork_child(|| {
        child_side(ends, || {
            let (_, start) = dirty(&region)?;
            // An empty measurement first: the first calls in a fresh child write to its own
            // stack, whose pages are copy-on-write too. Those faults are not the region's.
            measure(|| ())?;
            let (faults_one, _) = measure(|| region.bytes_mut()[..count].fill(2))?; // page 0
            let (_, in_one_page) = dirty(&region)?;
            let (faults_many, _) = measure(|| {
                for byte in region.bytes_mut()[page..].iter_mut().step_by(page) {
                    *byte = 2; // pages 1..=count, one byte each
                }
            })?;
            let (_, across_pages) = dirty(&region)?;
            let report = [
                start,
                in_one_page,
                across_pages,
                faults_one as u64,
                faults_many as u64,
            ];
            send(&mut link.up.1, &report)
        })
    })?;
    let r = receive(&mut link.parent().0, 5)?;
    ensure!(wait_exit_code(child)? == 0, "the child failed");
    // ANCHOR_END: one_byte_copies_a_page
    let (start, in_one_page, across_pages) = (r[0], r[1], r[2]);
    let one = in_one_page.saturating_sub(start);
    let many = across_pages.saturating_sub(in_one_page);
    println!(
        "the child's Private_Dirty for the region: {} at first",
        kb(start)
    );
    let plural = |n: u64, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    let faults = |n: u64| plural(n, "fault");
    println!(
        "after {count} bytes in one page:     {} ({} more, {})",
        kb(in_one_page),
        kb(one),
        faults(r[3])
    );
    println!(
        "after 1 byte in each of {count} pages: {} ({} more, {})",
        kb(across_pages),
        kb(many),
        faults(r[4])
    );
    finding(
        &format!("{count} bytes written within one page copy exactly one page"),
        one == page as u64,
        format!(
            "Private_Dirty grew by {} = {}",
            kb(one),
            plural(one / page as u64, "page")
        ),
    );
    finding(
        &format!("one byte written into each of {count} pages copies {count} whole pages"),
        many == (count * page) as u64,
        format!(
            "Private_Dirty grew by {} = {}",
            kb(many),
            plural(many / page as u64, "page")
        ),
    );
    finding(
        "each step takes one fault per page it copies: one for the bytes in one page, one per \
         page for the bytes spread out (to within a tenth, plus at most 8 of the program's own)",
        one_per_page(r[3] as i64, 1) && one_per_page(r[4] as i64, count),
        format!("{} and {}", faults(r[3]), faults(r[4])),
    );
    Ok(())
}
