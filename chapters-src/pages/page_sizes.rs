//! The page size, the huge page size and the THP mode; a one-byte mapping takes a whole page.

use anyhow::{Context, Result};
use procfs::Current;
use vmbook::procinfo::thp_setting;
use vmbook::procinfo::{page_size, thp_size, vm_counters};
use vmbook::{bytes, finding, not_checked, section, Mapping};

// ANCHOR: page_sizes
pub fn page_sizes() -> Result<()> {
    section("Page sizes on this machine");
    let page = page_size();
    let meminfo = procfs::Meminfo::current().context("read /proc/meminfo")?;
    let hugetlb = meminfo.hugepagesize; // the default size of MAP_HUGETLB / hugetlbfs pages
    let thp = thp_size(); // the size of a transparent huge page: one PMD entry
    let na = || "none".to_string();
    for (what, value) in [
        ("page size, sysconf(_SC_PAGESIZE)", bytes(page as u64)),
        (
            "transparent huge page size, hpage_pmd_size",
            thp.map_or_else(na, |h| bytes(h as u64)),
        ),
        (
            "hugetlbfs default page size, meminfo Hugepagesize",
            hugetlb.map_or_else(na, bytes),
        ),
        (
            "transparent huge pages (THP), enabled",
            format!("[{}]", thp_setting("enabled")),
        ),
        (
            "THP defrag (what a fault may do for one)",
            format!("[{}]", thp_setting("defrag")),
        ),
    ] {
        println!("{:<51} {value}", format!("{what}:"));
    }
    vm_counters()?; // warm up the reader, so that it maps nothing new below
    let before = vm_counters()?.size;
    let one_byte = Mapping::private(1)?;
    let after = vm_counters()?.size;
    // SAFETY: mmap maps whole pages, so the last byte of the first page belongs to the mapping.
    unsafe { std::ptr::write_volatile(one_byte.as_ptr().add(page - 1), 1) };
    // ANCHOR_END: page_sizes
    println!(
        "mmap(1 byte) returned {:#x} and grew VmSize by {}",
        one_byte.addr(),
        bytes(after - before)
    );
    finding(
        "mmap hands out whole pages: a 1-byte mapping is page-aligned and grows VmSize by one page",
        one_byte.addr() % page == 0 && after - before == page as u64,
        format!(
            "address {:#x} is {}page-aligned, VmSize grew by {}",
            one_byte.addr(),
            if one_byte.addr() % page == 0 {
                ""
            } else {
                "not "
            },
            bytes(after - before)
        ),
    );
    // A page table is one page of 8-byte entries; one entry a level up maps all it maps.
    let entries = page / 8;
    let claim = "a transparent huge page is as many base pages as one page table has entries \
                 (one page of 8-byte entries)";
    match thp {
        Some(h) => finding(
            claim,
            h % page == 0 && h / page == entries,
            format!(
                "{} / {} = {} pages; {} / 8 bytes = {entries} entries",
                bytes(h as u64),
                bytes(page as u64),
                h / page,
                bytes(page as u64)
            ),
        ),
        None => not_checked(
            claim,
            "this kernel has no /sys/kernel/mm/transparent_hugepage/hpage_pmd_size",
        ),
    }
    Ok(())
}
