//! The page size, the huge page size and the THP mode; a one-byte mapping takes a whole page.

use crate::advice::thp_setting;
use anyhow::{Context, Result};
use procfs::Current;
use vmbook::procinfo::{page_size, vm_counters};
use vmbook::{bytes, finding, not_checked, section, Mapping};

// ANCHOR: page_sizes
pub fn page_sizes() -> Result<()> {
    section("Page sizes on this machine");
    let page = page_size();
    let meminfo = procfs::Meminfo::current().context("read /proc/meminfo")?;
    let huge = meminfo.hugepagesize;
    let thp = thp_setting("enabled");
    println!(
        "page size, sysconf(_SC_PAGESIZE):           {}",
        bytes(page as u64)
    );
    match huge {
        Some(h) => println!("huge page size, Hugepagesize in meminfo:    {}", bytes(h)),
        None => println!("huge page size, Hugepagesize in meminfo:    none"),
    }
    println!("transparent huge pages (THP), enabled:     [{thp}]");
    println!(
        "THP defrag (what a fault may do for one):  [{}]",
        thp_setting("defrag")
    );
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
    match huge {
        Some(h) => finding(
            "a huge page is a whole number of base pages",
            h % page as u64 == 0,
            format!(
                "{} / {} = {}",
                bytes(h),
                bytes(page as u64),
                h / page as u64
            ),
        ),
        None => not_checked(
            "a huge page is a whole number of base pages",
            "this kernel reports no Hugepagesize",
        ),
    }
    Ok(())
}
