//! Reserving address space is not using memory: VmSize vs VmRSS around a huge MAP_NORESERVE.

use anyhow::{ensure, Context, Result};
use nix::errno::Errno;
use nix::sys::mman::MapFlags;
use nix::sys::resource::{getrlimit, Resource, RLIM_INFINITY};
use procfs::Current;
use vmbook::procinfo::{thp_size, vm_counters};
use vmbook::{bytes, finding, kb, not_checked, section, Mapping};

/// The largest reservation this process may try: what it asked for, or less when `RLIMIT_AS`
/// leaves less room; and why.
fn room_for(asked: u64, touch: u64) -> Result<(u64, String)> {
    let (limit, _) = getrlimit(Resource::RLIMIT_AS).context("getrlimit(RLIMIT_AS)")?;
    if limit == RLIM_INFINITY {
        return Ok((asked, "RLIMIT_AS unlimited".into()));
    }
    // What is mapped already counts against the limit; keep a margin for the program's own needs.
    let used = vm_counters()?.size + (64 << 20);
    let room = limit.saturating_sub(used) & !((1 << 30) - 1); // whole GiB
    let why = format!("RLIMIT_AS {} leaves room for {}", kb(limit), bytes(room));
    Ok((asked.min(room).max(touch), why))
}

// ANCHOR: reserve_more_than_ram
pub fn reserve_more_than_ram(reserve_gib: u64, touch_mib: u64) -> Result<()> {
    section("Reserving address space is not using memory");
    let ram = procfs::Meminfo::current()
        .context("read /proc/meminfo")?
        .mem_total;
    let (asked, touch) = (reserve_gib << 30, touch_mib << 20);
    ensure!(touch <= asked, "--touch-mib must not exceed --reserve-gib");
    let (mut reserve, mut why) = room_for(asked, touch)?;
    let before = vm_counters()?;
    let flags = MapFlags::MAP_PRIVATE | MapFlags::MAP_NORESERVE;
    let mut region = loop {
        match Mapping::anonymous(reserve as usize, flags, "MAP_PRIVATE|MAP_NORESERVE") {
            Ok(region) => break region,
            // Refused (strict overcommit, a smaller address space): try half, down to the touch.
            Err(e)
                if e.root_cause().downcast_ref() == Some(&Errno::ENOMEM)
                    && reserve / 2 >= touch =>
            {
                reserve /= 2;
                why = format!("mmap refused more (ENOMEM); {why}");
            }
            Err(e) => return Err(e),
        }
    };
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
    println!(
        "asked for {}, reserved {} ({why})",
        bytes(asked),
        bytes(reserve)
    );
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
    let overcommit = std::fs::read_to_string("/proc/sys/vm/overcommit_memory")
        .context("read /proc/sys/vm/overcommit_memory")?;
    let overcommit = overcommit.trim();
    let claim = "mmap with MAP_NORESERVE can reserve more address space than this machine has RAM";
    let evidence = format!(
        "reserved {}, MemTotal {}, overcommit_memory={overcommit}",
        bytes(reserve),
        kb(ram)
    );
    if overcommit == "2" {
        not_checked(
            claim,
            "overcommit_memory=2: strict accounting ignores MAP_NORESERVE",
        );
    } else if reserve <= ram && reserve < asked {
        not_checked(
            claim,
            format!("this process may reserve only {}: {why}", bytes(reserve)),
        );
    } else if asked <= ram {
        not_checked(
            claim,
            format!("asked for {}, not more than RAM", bytes(asked)),
        );
    } else {
        finding(claim, reserve > ram, evidence);
    }
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
    // With transparent huge pages in "always" mode a touch may bring in a whole huge page.
    let huge = thp_size().unwrap_or(page) as u64;
    finding(
        "touching pages grows VmRSS by what was touched (up to one huge page more)",
        rss_growth_at_touch >= touch * 9 / 10 && rss_growth_at_touch <= touch + huge,
        format!(
            "touched {}, VmRSS grew by {}",
            bytes(touch),
            kb(rss_growth_at_touch)
        ),
    );
    Ok(())
}
