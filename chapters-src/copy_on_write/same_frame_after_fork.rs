//! After fork, parent and child map the same frames until the child writes.

use crate::frames_figure::{self, frames_svg, Moment};
use crate::link::{child_side, receive, send, Link};
use crate::region::{base_page_region, dirty};
use anyhow::{ensure, Result};
use vmbook::measure::touch_each_page;
use vmbook::process::{fork_child, wait_exit_code};
use vmbook::procinfo::{frames_visible, page_entry, page_size, PageEntry, FRAMES_HIDDEN};
use vmbook::{finding, kb, not_checked, section, Mapping};

/// The pagemap entry of each page of `region` in this process, as (frame or 0, exclusive) pairs.
fn entries(region: &Mapping) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for addr in (region.addr()..region.addr() + region.len()).step_by(page_size()) {
        let PageEntry { pfn, exclusive, .. } = page_entry(addr)?;
        out.extend([pfn.unwrap_or(0), u64::from(exclusive)]);
    }
    Ok(out)
}

// ANCHOR: same_frame_after_fork
pub fn same_frame_after_fork(pages: usize) -> Result<()> {
    section(&format!(
        "{pages} private pages, before and after the child writes them"
    ));
    let mut region = base_page_region(pages * page_size())?;
    touch_each_page(&mut region, b'P'); // the parent's data: every page now has a frame
    let before_fork = entries(&region)?;
    let mut link = Link::new()?;
    let ends = link.parent_ends();
    let child = fork_child(|| {
        child_side(ends, || {
            send(&mut link.up.1, &entries(&region)?)?; // 1. the child's view right after fork
            receive(&mut link.down.0, 1)?; // 2. wait until the parent has looked too
            touch_each_page(&mut region, b'C'); // 3. write every page
            let mut report = entries(&region)?;
            report.push(u64::from(region.bytes()[0]));
            send(&mut link.up.1, &report) // 4. the child's view after writing
        })
    })?;
    let (mut from_child, mut to_child) = link.parent();
    let child_shared = receive(&mut from_child, 2 * pages)?;
    let parent_shared = entries(&region)?;
    let dirty_shared = dirty(&region)?;
    vmbook::pause::here(
        "parent and child share the region; the child has not written yet",
        &["grep -A16 rw-p /proc/PID/smaps | grep -E 'Shared_Dirty|Private_Dirty'"],
    );
    send(&mut to_child, &[1])?;
    let mut child_wrote = receive(&mut from_child, 2 * pages + 1)?;
    let child_byte = child_wrote.pop().unwrap_or(0) as u8;
    let parent_after = entries(&region)?;
    let dirty_after = dirty(&region)?;
    ensure!(wait_exit_code(child)? == 0, "the child failed");
    let parent_byte = region.bytes()[0];
    // ANCHOR_END: same_frame_after_fork
    let visible = frames_visible();
    let frame = |entry: &[u64], i: usize| match (visible, entry[2 * i]) {
        (false, _) => "hidden".to_string(),
        (true, 0) => "none".to_string(),
        (true, pfn) => format!("{pfn:#x}"),
    };
    let excl = |entry: &[u64], i: usize| if entry[2 * i + 1] == 1 { "yes" } else { "no" };
    // Frame numbers vary in width: they are never padded, so that redacted snapshots stay exact.
    for (title, parent, child) in [
        (
            "right after fork, before the child writes",
            &parent_shared,
            &child_shared,
        ),
        (
            "after the child wrote every page",
            &parent_after,
            &child_wrote,
        ),
    ] {
        println!("{title}:");
        for i in 0..pages {
            println!(
                "  page {i}: frame parent {} child {}; exclusive parent {} child {}",
                frame(parent, i),
                frame(child, i),
                excl(parent, i),
                excl(child, i)
            );
        }
    }
    println!(
        "parent's smaps right after fork:        Shared_Dirty {}, Private_Dirty {}",
        kb(dirty_shared.0),
        kb(dirty_shared.1)
    );
    println!(
        "parent's smaps after the child's write: Shared_Dirty {}, Private_Dirty {}",
        kb(dirty_after.0),
        kb(dirty_after.1)
    );
    println!(
        "first byte: the parent reads {:?}, the child read {:?}",
        parent_byte as char, child_byte as char
    );
    let pairs = |entry: &[u64]| -> Vec<(u64, bool)> {
        entry
            .chunks(2)
            .take(pages)
            .map(|e| (e[0], e[1] == 1))
            .collect()
    };
    let (before, after) = (
        [pairs(&parent_shared), pairs(&child_shared)],
        [pairs(&parent_after), pairs(&child_wrote)],
    );
    let moments = [
        Moment {
            title: "right after fork",
            parent: &before[0],
            child: &before[1],
        },
        Moment {
            title: "after the child's write",
            parent: &after[0],
            child: &after[1],
        },
    ];
    vmbook::figure::save(frames_figure::NAME, &frames_svg(&moments, pages, visible));
    let all =
        |entry: &[u64], field: usize, want: u64| (0..pages).all(|i| entry[2 * i + field] == want);
    let same = |a: &[u64], b: &[u64]| (0..pages).all(|i| a[2 * i] == b[2 * i] && a[2 * i] != 0);
    let differ = |a: &[u64], b: &[u64]| (0..pages).all(|i| a[2 * i] != b[2 * i]);
    let len = region.len() as u64;
    let same_claim =
        "right after fork, parent and child map the same physical frame for every page";
    let new_claim = "the child's write gives it new frames; the parent keeps its old ones";
    if visible {
        finding(
            same_claim,
            same(&parent_shared, &child_shared),
            "frame numbers above, from /proc/self/pagemap",
        );
        finding(
            new_claim,
            differ(&parent_after, &child_wrote) && same(&parent_after, &before_fork),
            "frame numbers above",
        );
    } else {
        let why = FRAMES_HIDDEN;
        not_checked(same_claim, why);
        not_checked(new_claim, why);
    }
    finding(
        "before fork every page is exclusive; right after it, no page is, on either side (pagemap bit 56)",
        all(&before_fork, 1, 1) && all(&parent_shared, 1, 0) && all(&child_shared, 1, 0),
        "the exclusive flags above",
    );
    finding(
        "right after fork, the parent's smaps count the whole region as Shared_Dirty",
        dirty_shared == (len, 0),
        format!(
            "Shared_Dirty {}, Private_Dirty {}",
            kb(dirty_shared.0),
            kb(dirty_shared.1)
        ),
    );
    finding(
        "after the child's write, every page is exclusive again on both sides",
        all(&parent_after, 1, 1) && all(&child_wrote, 1, 1),
        "the exclusive flags above",
    );
    finding(
        "after the child's write, the parent's smaps count the region as Private_Dirty again",
        dirty_after == (0, len),
        format!(
            "Shared_Dirty {}, Private_Dirty {}",
            kb(dirty_after.0),
            kb(dirty_after.1)
        ),
    );
    finding(
        "each side reads its own data: the child its write, the parent its old bytes",
        child_byte == b'C'
            && parent_byte == b'P'
            && region
                .bytes()
                .iter()
                .step_by(page_size())
                .all(|&b| b == b'P'),
        format!(
            "child read {:?}, parent reads {:?}",
            child_byte as char, parent_byte as char
        ),
    );
    Ok(())
}
