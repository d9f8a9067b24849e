//! Page faults that wait for a disk: drop a file's pages from the page cache, touch its mapping,
//! and count major faults (readahead, fault-around, MADV_RANDOM, mincore residency).

use crate::file_map::FileMap;
use crate::scratch::Scratch;
use anyhow::{Context, Result};
use nix::fcntl::{posix_fadvise, PosixFadviseAdvice};
use nix::sys::mman::{madvise, MapFlags, MmapAdvise, ProtFlags};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::time::{Duration, Instant};
use vmbook::measure::{one_per_page, per};
use vmbook::procinfo::{page_faults, page_size};
use vmbook::{finding, not_checked, section};

/// What reading one byte of every page cost: minor and major faults, and time.
struct Pass {
    minor: i64,
    major: i64,
    time: Duration,
}

// ANCHOR: touch
/// Reads one byte of every page of `map`, counting the faults (getrusage) and the time.
fn touch(map: &FileMap) -> Result<Pass> {
    let (minor, major) = page_faults()?;
    let start = Instant::now();
    for offset in (0..map.len()).step_by(page_size()) {
        map.read(offset);
    }
    let time = start.elapsed();
    let after = page_faults()?;
    Ok(Pass {
        minor: after.0 - minor,
        major: after.1 - major,
        time,
    })
}
// ANCHOR_END: touch

// ANCHOR: drop_from_page_cache
/// Drops the file's (clean, unmapped) pages from the page cache; says how, or why it could not.
fn drop_from_page_cache(file: &File, len: usize) -> Result<Result<&'static str, String>> {
    file.sync_all().context("fsync")?; // only clean pages can be dropped
    posix_fadvise(file, 0, len as i64, PosixFadviseAdvice::POSIX_FADV_DONTNEED)
        .context("posix_fadvise")?;
    let map = FileMap::new(file, len, ProtFlags::PROT_READ, MapFlags::MAP_SHARED)?;
    if map.resident_pages()? == 0 {
        return Ok(Ok("posix_fadvise(POSIX_FADV_DONTNEED)"));
    }
    // Some file systems keep them: map them in and ask for them to be paged out (Linux 5.4).
    touch(&map)?;
    // SAFETY: the range is exactly our mapping; paging out clean file pages loses nothing.
    match unsafe { madvise(map.as_non_null(), len, MmapAdvise::MADV_PAGEOUT) } {
        Ok(()) if map.resident_pages()? == 0 => Ok(Ok("madvise(MADV_PAGEOUT)")),
        Ok(()) => Ok(Err(format!(
            "{} of the file's pages stayed in the page cache",
            map.resident_pages()?
        ))),
        Err(e) => Ok(Err(format!(
            "the page cache kept the pages, and MADV_PAGEOUT failed: {e}"
        ))),
    }
}
// ANCHOR_END: drop_from_page_cache

/// The readahead window of the device holding `file`, in bytes, if sysfs tells it.
fn readahead_bytes(file: &File) -> Option<u64> {
    let dev = file.metadata().ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let kb =
        std::fs::read_to_string(format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb")).ok()?;
    kb.trim().parse::<u64>().ok().map(|kb| kb * 1024)
}

pub fn major_faults_wait_for_the_disk(scratch: &Scratch, pages: usize) -> Result<()> {
    section("Page faults that wait for the disk: major faults after dropping the page cache");
    println!("{}", scratch.describe());
    let page = page_size();
    let len = pages * page;
    let file = scratch.unnamed_file()?;
    file.write_all_at(&vec![b'x'; len], 0).context("write")?;
    let readahead = readahead_bytes(&file);
    // ANCHOR: major_faults
    let dropped = drop_from_page_cache(&file, len)?;
    let map = FileMap::new(&file, len, ProtFlags::PROT_READ, MapFlags::MAP_SHARED)?;
    let resident_before = map.resident_pages()?;
    let cold = touch(&map)?; // the pages must come from the disk
    let resident_after = map.resident_pages()?;
    let warm = touch(&map)?; // mapped and in the page cache
    drop(map);
    let fresh_map = FileMap::new(&file, len, ProtFlags::PROT_READ, MapFlags::MAP_SHARED)?;
    let fresh = touch(&fresh_map)?; // in the page cache, but a new mapping
    drop(fresh_map);
    let dropped_again = drop_from_page_cache(&file, len)?;
    let random_map = FileMap::new(&file, len, ProtFlags::PROT_READ, MapFlags::MAP_SHARED)?;
    // SAFETY: the range is exactly our mapping; MADV_RANDOM only turns readahead off for it.
    unsafe { madvise(random_map.as_non_null(), len, MmapAdvise::MADV_RANDOM) }
        .context("madvise(MADV_RANDOM)")?;
    let random = touch(&random_map)?; // cold again, with readahead off
                                      // ANCHOR_END: major_faults
    match &dropped {
        Ok(how) => println!("{pages} pages dropped from the page cache with {how}"),
        Err(why) => println!("the pages could not be dropped: {why}"),
    }
    match readahead {
        Some(bytes) => println!(
            "readahead window of the file's device (read_ahead_kb): {}",
            vmbook::kb(bytes)
        ),
        None => println!("readahead window of the file's device: not found in /sys/class/bdi"),
    }
    println!(
        "{:<44} {:>14} {:>14} {:>10}",
        "reading one byte of each page", "major faults", "minor faults", "time"
    );
    for (what, pass) in [
        ("dropped from the page cache", &cold),
        ("the same mapping again", &warm),
        ("a new mapping, pages cached", &fresh),
        ("dropped again, MADV_RANDOM (no readahead)", &random),
    ] {
        println!(
            "{what:<44} {:>14} {:>14} {:>10}",
            format!("{} faults", pass.major),
            format!("{} faults", pass.minor),
            per(pass.time, 1)
        );
    }
    println!("mincore: {resident_before} of {pages} pages resident before the first pass, {resident_after} after");
    vmbook::pause::here(
        "the file is mapped with MADV_RANDOM",
        &[
            "grep -A12 vmbook-file-mappings /proc/PID/smaps",
            "ps -o min_flt,maj_flt -p PID",
        ],
    );
    let why = match (&dropped, &dropped_again) {
        _ if !scratch.disk => Some(format!(
            "{} is {}: its pages live only in memory, there is no disk to read them from",
            scratch.dir.display(),
            scratch.fs
        )),
        (Ok(_), Ok(_)) => None,
        (Err(why), _) | (_, Err(why)) => Some(why.clone()),
    };
    let report = |claim: &str, holds: bool, evidence: String| match &why {
        None => finding(claim, holds, evidence),
        Some(why) => not_checked(claim, why),
    };
    report(
        "mincore shows none of the file's pages cached after the drop, and every page after the first pass",
        resident_before == 0 && resident_after == pages,
        format!("{resident_before} and {resident_after} of {pages} pages"),
    );
    report(
        "reading the dropped pages takes at least one major fault, and at most one per page",
        cold.major >= 1 && cold.major <= pages as i64,
        format!("{} major faults for {pages} pages", cold.major),
    );
    report(
        "reading them again takes no major fault",
        warm.major == 0,
        format!("{} major faults", warm.major),
    );
    let readahead_claim =
        "with readahead, one major fault brings in many pages: fewer major faults than pages";
    match readahead {
        Some(bytes) if bytes < 2 * page as u64 => {
            not_checked(readahead_claim, "read_ahead_kb is below two pages")
        }
        _ if pages < 2 => not_checked(readahead_claim, "one page is too few to see readahead"),
        _ => report(
            readahead_claim,
            cold.major < pages as i64,
            format!("{} major faults for {pages} pages", cold.major),
        ),
    }
    report(
        "with MADV_RANDOM there is no readahead: each page read costs its own major fault",
        one_per_page(random.major, pages),
        format!("{} major faults for {pages} pages", random.major),
    );
    fault_around(fresh.minor + fresh.major, pages);
    Ok(())
}

/// A new mapping of cached pages: fewer faults than pages, if the kernel maps neighbours too.
fn fault_around(faults: i64, pages: usize) {
    let claim = "a new mapping of a cached file takes fewer faults than pages: each read fault maps cached neighbours (fault-around)";
    let setting = std::fs::read_to_string("/sys/kernel/debug/fault_around_bytes").ok();
    match setting.and_then(|s| s.trim().parse::<usize>().ok()) {
        Some(bytes) if bytes <= page_size() => {
            not_checked(claim, "fault_around_bytes is one page: fault-around is off")
        }
        _ if pages < 32 => {
            not_checked(claim, "fewer than 32 pages are too few to see fault-around")
        }
        _ => finding(
            claim,
            faults * 2 <= pages as i64,
            format!("{faults} faults for {pages} pages"),
        ),
    }
}
