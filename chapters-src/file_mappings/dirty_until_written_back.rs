//! "Changes are saved to the file automatically"? A store dirties a page-cache page; writeback
//! comes later. msync(MS_SYNC) and fsync write the dirty pages now, and the kernel write-protects
//! them again so that it notices the next store.

use crate::file_map::{dirty_bytes, FileMap};
use crate::scratch::Scratch;
use anyhow::{Context, Result};
use nix::sys::mman::{msync, MapFlags, MsFlags, ProtFlags};
use procfs::Current;
use std::time::Instant;
use vmbook::measure::{one_per_page, per};
use vmbook::procinfo::{page_faults, page_size};
use vmbook::{finding, kb, not_checked, section};

/// Stores one byte into every page and returns the page faults that took.
fn store_each_page(map: &FileMap, value: u8) -> Result<i64> {
    let before = page_faults()?;
    for offset in (0..map.len()).step_by(page_size()) {
        map.write(offset, value);
    }
    let after = page_faults()?;
    Ok(after.0 - before.0 + after.1 - before.1)
}

/// `Dirty:` in /proc/meminfo, in bytes: every dirty page of the whole machine.
fn dirty_system_wide() -> Result<u64> {
    let meminfo = procfs::Meminfo::current().context("read /proc/meminfo")?;
    Ok(meminfo.dirty)
}

/// A writeback setting in /proc/sys/vm, in seconds (the files hold hundredths of a second).
fn vm_seconds(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/vm/{name}"))
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .map_or("unknown".into(), |cs| vmbook::measure::time(cs * 1e7))
}

pub fn dirty_until_written_back(scratch: &Scratch, pages: usize) -> Result<()> {
    section("Stores into a MAP_SHARED file mapping: dirty pages, and msync");
    println!("{}", scratch.describe());
    let page = page_size();
    let len = pages * page;
    let file = scratch.unnamed_file()?;
    file.set_len(len as u64).context("ftruncate")?;
    let map = FileMap::new(
        &file,
        len,
        ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
        MapFlags::MAP_SHARED,
    )?;
    let system_before = dirty_system_wide()?;
    // ANCHOR: dirty_until_written_back
    let first = store_each_page(&map, b'a')?; // the first store to each page faults it in
    let dirty_after_stores = dirty_bytes(map.addr())?;
    let again = store_each_page(&map, b'b')?; // already dirty and writable: no fault
    let start = Instant::now();
    // SAFETY: the range is exactly our mapping.
    unsafe { msync(map.as_non_null(), len, MsFlags::MS_SYNC) }.context("msync(MS_SYNC)")?;
    let msync_time = start.elapsed();
    let dirty_after_msync = dirty_bytes(map.addr())?;
    let after_msync = store_each_page(&map, b'c')?; // clean pages are write-protected again
    let dirty_again = dirty_bytes(map.addr())?;
    file.sync_all().context("fsync")?; // fsync on the descriptor writes them back too
    let dirty_after_fsync = dirty_bytes(map.addr())?;
    // ANCHOR_END: dirty_until_written_back
    let system_after = dirty_system_wide()?;
    let pages_of = |b: u64| format!("{} of {pages} pages", b / page as u64);
    let rows = [
        ("", "dirty in smaps".to_string(), "page faults".to_string()),
        (
            "first store to each page",
            pages_of(dirty_after_stores),
            format!("{first} faults"),
        ),
        (
            "second store, before msync",
            String::new(),
            format!("{again} faults"),
        ),
        (
            "after msync(MS_SYNC)",
            pages_of(dirty_after_msync),
            String::new(),
        ),
        (
            "a store to each page after msync",
            pages_of(dirty_again),
            format!("{after_msync} faults"),
        ),
        ("after fsync", pages_of(dirty_after_fsync), String::new()),
    ];
    for (what, dirty, faults) in rows {
        println!(
            "{}",
            format!("{what:<34} {dirty:>18} {faults:>12}").trim_end()
        );
    }
    println!(
        "msync(MS_SYNC) of {pages} dirty pages took {}",
        per(msync_time, 1)
    );
    println!(
        "without msync: the flusher threads write back data dirty for longer than {}\n  \
         (vm.dirty_expire_centisecs), and wake every {} (vm.dirty_writeback_centisecs)",
        vm_seconds("dirty_expire_centisecs"),
        vm_seconds("dirty_writeback_centisecs")
    );
    println!(
        "for context, Dirty in /proc/meminfo (the whole machine): {} before, {} after the stores",
        kb(system_before),
        kb(system_after)
    );
    vmbook::pause::here(
        "the file is mapped and dirty again after the last stores and fsync",
        &[
            "grep -A20 vmbook-file-mappings /proc/PID/smaps",
            "grep -e Dirty -e Writeback /proc/meminfo",
        ],
    );
    let whole = len as u64;
    finding(
        "right after the stores, smaps counts most written pages dirty: nothing is written back yet",
        dirty_after_stores * 2 > whole,
        pages_of(dirty_after_stores),
    );
    finding(
        "a second store to a dirty page takes no page fault",
        again <= (pages / 10) as i64 + 2,
        format!("{again} faults for {pages} pages"),
    );
    let writeback = [
        (
            "after msync(MS_SYNC), smaps counts no page dirty: they were written to the file",
            dirty_after_msync == 0,
            pages_of(dirty_after_msync),
        ),
        (
            "after msync, the next store to each page faults again: clean pages are write-protected",
            one_per_page(after_msync, pages),
            format!("{after_msync} faults for {pages} pages"),
        ),
        (
            "fsync on the file's descriptor also writes the mapping's dirty pages back",
            dirty_again * 2 > whole && dirty_after_fsync == 0,
            format!("{} before fsync, {} after", pages_of(dirty_again), pages_of(dirty_after_fsync)),
        ),
    ];
    for (claim, holds, evidence) in writeback {
        if scratch.disk {
            finding(claim, holds, evidence);
        } else {
            not_checked(
                claim,
                format!(
                    "{} is {}: no writeback, nothing for msync to write",
                    scratch.dir.display(),
                    scratch.fs
                ),
            );
        }
    }
    Ok(())
}
