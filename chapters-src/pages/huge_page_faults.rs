//! With MADV_HUGEPAGE, one fault maps a whole huge page instead of one base page.

use crate::advice::advise;
use anyhow::Result;
use nix::sys::mman::MmapAdvise;
use vmbook::measure::{measure, one_per_page, per};
use vmbook::procinfo::thp_setting;
use vmbook::procinfo::{page_size, smaps_of, thp_size};
use vmbook::{bytes, finding, kb, not_checked, section, Mapping};

const CLAIM_SMALL: &str = "with MADV_NOHUGEPAGE, every base page takes its own fault";
const CLAIM_HUGE: &str =
    "with MADV_HUGEPAGE, one fault maps a whole huge page (at most two faults \
     per huge page the kernel found, plus one per base page where it fell back)";

// ANCHOR: huge_page_faults
pub fn huge_page_faults(huge_pages: usize) -> Result<()> {
    section(&format!(
        "A region of {huge_pages} transparent huge pages, touched once per base page"
    ));
    let page = page_size();
    let Some(huge) = thp_size() else {
        println!("this kernel has no transparent huge pages (no hpage_pmd_size)");
        not_checked(CLAIM_SMALL, "no transparent huge pages in this kernel");
        not_checked(CLAIM_HUGE, "no transparent huge pages in this kernel");
        return Ok(());
    };
    let len = huge_pages * huge;
    let mut rows = Vec::new();
    for advice in [MmapAdvise::MADV_NOHUGEPAGE, MmapAdvise::MADV_HUGEPAGE] {
        // One huge page more than needed, to find a start aligned to a huge page inside it.
        let mut region = Mapping::private(len + huge)?;
        let offset = region.addr().next_multiple_of(huge) - region.addr();
        let aligned = &mut region.bytes_mut()[offset..offset + len];
        // SAFETY: a huge-page-aligned range of our own mapping; huge page advice keeps contents.
        unsafe { advise(aligned.as_mut_ptr(), len, advice) }?;
        let (faults, time) = measure(|| {
            for byte in aligned.iter_mut().step_by(page) {
                // SAFETY: a valid, exclusive reference into the mapping; volatile, so it happens.
                unsafe { std::ptr::write_volatile(byte, 1) };
            }
        })?;
        vmbook::pause::here(
            &format!("the region has been touched after {advice:?}"),
            &[
                "grep -E 'AnonHugePages' /proc/PID/smaps_rollup",
                "grep AnonHugePages /proc/meminfo",
            ],
        );
        let smaps = smaps_of(aligned.as_ptr() as usize)?;
        let anon_huge = smaps.get("AnonHugePages").copied().unwrap_or(0);
        rows.push((advice, faults, time, anon_huge));
    }
    // ANCHOR_END: huge_page_faults
    let thp = thp_setting("enabled");
    println!(
        "transparent huge pages: [{thp}]; huge page size {}",
        bytes(huge as u64)
    );
    for (advice, faults, time, anon_huge) in &rows {
        let name = if *advice == MmapAdvise::MADV_HUGEPAGE {
            "MADV_HUGEPAGE"
        } else {
            "MADV_NOHUGEPAGE"
        };
        println!(
            "{:<17} {faults} faults in {}; AnonHugePages {}",
            format!("{name}:"),
            per(*time, 1),
            kb(*anon_huge)
        );
    }
    let pages = len / page;
    let (_, small_faults, _, small_huge) = rows[0];
    let (_, huge_faults, _, huge_anon) = rows[1];
    finding(
        CLAIM_SMALL,
        one_per_page(small_faults, pages) && small_huge == 0,
        format!("{small_faults} faults for {pages} pages"),
    );
    let found = huge_anon as usize / huge; // huge pages the kernel mapped
    let fell_back = (len - found * huge) / page; // base pages where it found none
    if thp == "never" || thp == "unavailable" {
        not_checked(
            CLAIM_HUGE,
            format!("transparent huge pages are [{thp}] on this machine"),
        );
    } else if found == 0 {
        not_checked(
            CLAIM_HUGE,
            "the kernel found no free huge page and fell back to base pages",
        );
    } else {
        finding(
            CLAIM_HUGE,
            huge_faults as usize <= 2 * found + fell_back + fell_back / 10 + 8,
            format!(
                "{huge_faults} faults; the kernel found {found} of {huge_pages} huge pages \
                 (AnonHugePages {}), {fell_back} base pages fell back",
                kb(huge_anon)
            ),
        );
    }
    Ok(())
}
