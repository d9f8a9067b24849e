//! Reserving address space is not using memory: VmSize vs VmRSS around a huge MAP_NORESERVE.

use anyhow::{ensure, Context, Result};
use nix::sys::mman::MapFlags;
use procfs::Current;
use vmbook::procinfo::vm_counters;
use vmbook::{bytes, finding, kb, section, Mapping};

// ANCHOR: reserve_more_than_ram
pub fn reserve_more_than_ram(reserve_gib: u64, touch_mib: u64) -> Result<()> {
    section("Reserving address space is not using memory");
    let ram = procfs::Meminfo::current()
        .context("read /proc/meminfo")?
        .mem_total;
    let reserve = reserve_gib << 30;
    let touch = touch_mib << 20;
    ensure!(
        touch <= reserve,
        "--touch-mib must not exceed --reserve-gib"
    );
    let before = vm_counters()?;
    let mut region = Mapping::anonymous(
        reserve as usize,
        MapFlags::MAP_PRIVATE | MapFlags::MAP_NORESERVE,
        "MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE",
    )?;
    let reserved = vm_counters()?;
    let page = vmbook::procinfo::page_size();
    for offset in (0..touch as usize).step_by(page) {
        region.bytes_mut()[offset] = 1; // one write per page is enough to make it resident
    }
    let touched = vm_counters()?;
    // ANCHOR_END: reserve_more_than_ram
    vmbook::pause::here(
        "the reservation exists and its first pages are touched",
        &[
            "grep -E 'VmSize|VmRSS' /proc/PID/status",
            "cat /proc/PID/smaps_rollup",
        ],
    );
    println!("RAM in this machine (MemTotal): {}", kb(ram));
    println!("{:<34} {:>16} {:>12}", "", "VmSize", "VmRSS");
    for (label, c) in [
        ("before mmap".to_string(), before),
        (format!("after mmap of {}", bytes(reserve)), reserved),
        (format!("after touching {}", bytes(touch)), touched),
    ] {
        println!("{label:<34} {:>16} {:>12}", kb(c.size), kb(c.rss));
    }
    let size_growth = reserved.size.saturating_sub(before.size);
    let rss_growth_at_mmap = reserved.rss.saturating_sub(before.rss);
    let rss_growth_at_touch = touched.rss.saturating_sub(reserved.rss);
    finding(
        "the reservation is larger than this machine's RAM",
        reserve > ram,
        format!("reserved {}, MemTotal {}", bytes(reserve), kb(ram)),
    );
    finding(
        "mmap grows VmSize by the size reserved",
        size_growth >= reserve && size_growth < reserve + (1 << 20),
        format!("VmSize grew by {}", kb(size_growth)),
    );
    finding(
        "mmap alone leaves VmRSS unchanged (within 1 MiB)",
        rss_growth_at_mmap < 1 << 20,
        format!("VmRSS grew by {}", kb(rss_growth_at_mmap)),
    );
    // With transparent huge pages in "always" mode a touch may bring in a whole 2 MiB page.
    finding(
        "touching pages grows VmRSS by what was touched (up to one huge page more)",
        rss_growth_at_touch >= touch * 9 / 10 && rss_growth_at_touch <= touch + (2 << 20),
        format!(
            "touched {}, VmRSS grew by {}",
            bytes(touch),
            kb(rss_growth_at_touch)
        ),
    );
    Ok(())
}
