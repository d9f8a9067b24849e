//! Chapter 2, "Pages": memory is mapped one page at a time, and a page costs RAM (and a page fault)
//! only when it is first touched.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use nix::sys::mman::{madvise, MapFlags, MmapAdvise};
use procfs::Current;
use std::ptr::NonNull;
use std::time::{Duration, Instant};
use vmbook::procinfo::{page_faults, page_size, smaps_of, vm_counters};
use vmbook::{banner, bytes, finding, kb, not_checked, section, Mapping};

/// Chapter 2 of the book, "Pages": the page size, page faults on first touch (counted and timed),
/// residency with mincore, MAP_POPULATE, MADV_DONTNEED and transparent huge pages.
#[derive(Parser)]
#[command(version, long_about = None)]
struct Options {
    #[command(subcommand)]
    experiment: Option<Experiment>,
    /// Stop at each experiment, print this process's pid and what to inspect, wait for Enter.
    #[arg(long, global = true)]
    pause: bool,
}

#[derive(Subcommand)]
enum Experiment {
    /// Print the page size, the huge page size and the transparent huge page mode.
    Sizes,
    /// Map pages, write one byte into each, then do it again: faults, residency, time per page.
    Touch {
        /// How many 4 KiB pages to map and touch (more pages: steadier times, longer run).
        #[arg(long, default_value_t = 1024, value_parser = pages_in_range)]
        pages: usize,
    },
    /// Map with and without MAP_POPULATE: where the page faults happen.
    Populate {
        /// How many pages to map, each way.
        #[arg(long, default_value_t = 1024, value_parser = pages_in_range)]
        pages: usize,
    },
    /// Touch pages, give them back with madvise(MADV_DONTNEED), then read them again.
    Dontneed {
        /// How many pages to touch and give back.
        #[arg(long, default_value_t = 1024, value_parser = pages_in_range)]
        pages: usize,
    },
    /// Touch a region with and without madvise(MADV_HUGEPAGE): faults per huge page.
    Huge {
        /// How many huge pages (2 MiB each on x86-64) the region spans.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=512))]
        huge_pages: u32,
    },
}

/// `--pages`: at least one page, at most 1 Mi pages (4 GiB with 4 KiB pages).
fn pages_in_range(text: &str) -> Result<usize, String> {
    let n: usize = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of pages"))?;
    if (1..=1 << 20).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} pages is out of range 1..=1048576"))
    }
}

fn main() -> std::process::ExitCode {
    let options = Options::parse();
    vmbook::pause::enable(options.pause);
    vmbook::run(|| {
        banner();
        match options.experiment {
            Some(experiment) => run(experiment),
            None => {
                run(Experiment::Sizes)?;
                run(Experiment::Touch { pages: 1024 })?;
                run(Experiment::Populate { pages: 1024 })?;
                run(Experiment::Dontneed { pages: 1024 })?;
                run(Experiment::Huge { huge_pages: 2 })
            }
        }
    })
}

fn run(experiment: Experiment) -> Result<()> {
    match experiment {
        Experiment::Sizes => page_sizes(),
        Experiment::Touch { pages } => first_touch_faults(pages),
        Experiment::Populate { pages } => populate_moves_the_faults(pages),
        Experiment::Dontneed { pages } => dontneed_gives_pages_back(pages),
        Experiment::Huge { huge_pages } => huge_page_faults(huge_pages as usize),
    }
}

// ANCHOR: helpers
/// Writes one byte into every page of `region`: the smallest access that needs each page in RAM.
fn touch_each_page(region: &mut Mapping, value: u8) {
    for byte in region.bytes_mut().iter_mut().step_by(page_size()) {
        // SAFETY: `byte` is a valid, exclusive reference into the mapping. A volatile write is
        // never optimized away, so every page really is written.
        unsafe { std::ptr::write_volatile(byte, value) };
    }
}

/// How many pages of `region` are resident in RAM, as mincore(2) reports them.
fn resident_pages(region: &Mapping) -> Result<usize> {
    let mut vector = vec![0u8; region.len().div_ceil(page_size())];
    // SAFETY: the range is one whole mapping we own, and `vector` holds one byte per page of it.
    // (mincore has no wrapper in nix.)
    let rc = unsafe { libc::mincore(region.as_ptr().cast(), region.len(), vector.as_mut_ptr()) };
    if rc != 0 {
        return Err(nix::errno::Errno::last()).context("mincore");
    }
    Ok(vector.iter().filter(|&&v| v & 1 == 1).count())
}

/// Runs `work` and returns the minor page faults it took (getrusage) and how long it took.
fn measure(work: impl FnOnce()) -> Result<(i64, Duration)> {
    let before = page_faults()?.0;
    let start = Instant::now();
    work();
    let time = start.elapsed();
    Ok((page_faults()?.0 - before, time))
}
// ANCHOR_END: helpers

/// Below this many pages, a pass takes a few microseconds: too short to compare times reliably.
const TIMED_PAGES: usize = 64;

/// Gives the kernel `advice` about `len` bytes at `start`, part of a mapping we own.
fn advise(start: *mut u8, len: usize, advice: MmapAdvise) -> Result<()> {
    let start = NonNull::new(start.cast()).context("madvise: null address")?;
    // SAFETY: the range lies inside a mapping this program owns; the advice given here either
    // changes no contents (huge page hints) or is MADV_DONTNEED, after which nothing relies on
    // the old contents.
    unsafe { madvise(start, len, advice) }.with_context(|| format!("madvise({advice:?})"))
}

/// Keeps `region` on base pages, so that the experiments count one fault per 4 KiB page even
/// where transparent huge pages are `always` on.
fn base_pages_only(region: &Mapping) -> Result<()> {
    advise(region.as_ptr(), region.len(), MmapAdvise::MADV_NOHUGEPAGE)
}

/// A time per item, in ns, µs or ms.
fn per(time: Duration, items: usize) -> String {
    let ns = time.as_nanos() as f64 / items.max(1) as f64;
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{:.1} ms", ns / 1e6)
    }
}

/// Whether `faults` is one per page: to within a tenth, plus at most 8 that the program takes
/// elsewhere (its own stack and heap; a forked child copies those too).
fn one_per_page(faults: i64, pages: usize) -> bool {
    let (faults, pages) = (faults as f64, pages as f64);
    faults >= pages * 0.9 && faults <= pages * 1.1 + 8.0
}

/// Whether a measured change of VmRSS matches `expected` bytes: to within a tenth, or 1 MiB for
/// small sizes (the kernel keeps RSS in per-CPU counters that can lag by a few hundred kB).
fn about(change: u64, expected: u64) -> bool {
    change.abs_diff(expected) <= (expected / 10).max(1 << 20)
}

/// The transparent huge page mode, the word in brackets in /sys/kernel/mm/transparent_hugepage.
fn thp_setting(file: &str) -> String {
    std::fs::read_to_string(format!("/sys/kernel/mm/transparent_hugepage/{file}"))
        .ok()
        .and_then(|text| {
            let start = text.find('[')?;
            let end = text[start..].find(']')?;
            Some(text[start + 1..start + end].to_string())
        })
        .unwrap_or_else(|| "unavailable".to_string())
}

// ANCHOR: page_sizes
fn page_sizes() -> Result<()> {
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

// ANCHOR: first_touch_faults
fn first_touch_faults(pages: usize) -> Result<()> {
    section(&format!(
        "Touching {pages} fresh pages, then touching them again"
    ));
    let rss_before = vm_counters()?.rss;
    let mut region = Mapping::private(pages * page_size())?;
    base_pages_only(&region)?;
    let rss_mapped = vm_counters()?.rss;
    let resident_mapped = resident_pages(&region)?;
    let (first_faults, first_time) = measure(|| touch_each_page(&mut region, 1))?;
    let rss_touched = vm_counters()?.rss;
    let resident_touched = resident_pages(&region)?;
    // The second pass: the best of three, each touching every page again.
    let mut again = Vec::new();
    for _ in 0..3 {
        again.push(measure(|| touch_each_page(&mut region, 2))?);
    }
    let again_faults: i64 = again.iter().map(|(faults, _)| faults).sum();
    let again_time = again
        .iter()
        .map(|(_, time)| *time)
        .min()
        .unwrap_or_default();
    // ANCHOR_END: first_touch_faults
    vmbook::pause::here(
        "every page of the region has been touched",
        &[
            "grep -E 'VmRSS|RssAnon' /proc/PID/status",
            "ps -o pid,min_flt,rss,cmd --pid PID",
        ],
    );
    // Varying values are never padded: the snapshot sees them redacted, and padding would not be.
    println!("before mmap:            VmRSS {}", kb(rss_before));
    println!(
        "after mmap:             VmRSS {}, {resident_mapped} of {pages} pages resident (mincore)",
        kb(rss_mapped)
    );
    println!(
        "after the first touch:  VmRSS {}, {resident_touched} of {pages} pages resident (mincore)",
        kb(rss_touched)
    );
    println!(
        "first touch:  {first_faults} faults, {} per page",
        per(first_time, pages)
    );
    println!(
        "second touch: {again_faults} faults in 3 passes, {} per page (best pass)",
        per(again_time, pages)
    );
    let rss_growth = rss_touched.saturating_sub(rss_mapped);
    let touched = (pages * page_size()) as u64;
    let speedup = first_time.as_secs_f64() / again_time.as_secs_f64().max(1e-9);
    finding(
        "mmap alone makes no page resident",
        resident_mapped == 0 && rss_mapped.saturating_sub(rss_before) < 1 << 20,
        format!(
            "mincore: {resident_mapped} of {pages} resident, VmRSS grew by {}",
            kb(rss_mapped.saturating_sub(rss_before))
        ),
    );
    finding(
        "the first touch of each page is one minor page fault (to within a tenth, plus at most 8 of the program's own)",
        one_per_page(first_faults, pages),
        format!("{pages} pages touched, {first_faults} faults"),
    );
    finding(
        "after the first touch every page is resident, and VmRSS grew by what was touched \
         (to within a tenth, or 1 MiB)",
        resident_touched == pages && about(rss_growth, touched),
        format!(
            "mincore: {resident_touched} of {pages} resident; touched {}, VmRSS grew by {}",
            bytes(touched),
            kb(rss_growth)
        ),
    );
    finding(
        "touching the pages again takes almost no faults (under one per hundred pages)",
        again_faults as usize * 100 < pages * 3 || again_faults == 0,
        format!("{again_faults} faults in 3 passes over {pages} pages"),
    );
    let claim = "the second touch is at least 5 times faster per page than the first";
    if pages < TIMED_PAGES {
        not_checked(
            claim,
            format!("{pages} pages are too few to time; try {TIMED_PAGES} or more"),
        );
    } else {
        finding(
            claim,
            speedup >= 5.0,
            format!(
                "{} vs {} per page: {speedup:.0}×",
                per(first_time, pages),
                per(again_time, pages)
            ),
        );
    }
    Ok(())
}

// ANCHOR: populate_moves_the_faults
fn populate_moves_the_faults(pages: usize) -> Result<()> {
    section(&format!(
        "{pages} pages, mapped without and with MAP_POPULATE"
    ));
    let len = pages * page_size();
    let mut rows = Vec::new();
    for populate in [false, true] {
        let flags = if populate {
            MapFlags::MAP_PRIVATE | MapFlags::MAP_POPULATE
        } else {
            MapFlags::MAP_PRIVATE
        };
        let what = if populate {
            "MAP_PRIVATE|MAP_ANONYMOUS|MAP_POPULATE"
        } else {
            "MAP_PRIVATE|MAP_ANONYMOUS"
        };
        let mut region = None;
        let (map_faults, map_time) =
            measure(|| region = Some(Mapping::anonymous(len, flags, what)))?;
        let mut region = region.context("the mapping was not made")??;
        let resident = resident_pages(&region)?;
        let (touch_faults, touch_time) = measure(|| touch_each_page(&mut region, 1))?;
        rows.push((
            populate,
            map_faults,
            map_time,
            resident,
            touch_faults,
            touch_time,
        ));
    }
    // ANCHOR_END: populate_moves_the_faults
    for (populate, map_faults, map_time, resident, touch_faults, touch_time) in &rows {
        println!(
            "{:<14} mmap: {map_faults} faults in {}; then {resident} of {pages} pages resident; \
             touching them: {touch_faults} faults in {}",
            if *populate {
                "MAP_POPULATE:"
            } else {
                "plain mmap:"
            },
            per(*map_time, 1),
            per(*touch_time, 1)
        );
    }
    let (_, plain_map_faults, _, plain_resident, plain_touch_faults, _) = rows[0];
    let (_, pop_map_faults, _, pop_resident, pop_touch_faults, _) = rows[1];
    finding(
        "without MAP_POPULATE, mmap itself takes almost no faults and the touch takes one per page",
        plain_map_faults <= 8 && plain_resident == 0 && one_per_page(plain_touch_faults, pages),
        format!(
            "{plain_map_faults} faults in mmap, {plain_touch_faults} faults touching {pages} pages"
        ),
    );
    finding(
        "with MAP_POPULATE, every page is resident when mmap returns",
        pop_resident == pages,
        format!("mincore: {pop_resident} of {pages} resident"),
    );
    finding(
        "with MAP_POPULATE, touching takes almost no faults (under one per hundred pages)",
        pop_touch_faults as usize * 100 < pages * 3 || pop_touch_faults == 0,
        format!("{pop_touch_faults} faults touching {pages} pages"),
    );
    if thp_setting("enabled") == "always" {
        not_checked(
            "the faults moved into mmap itself (to within a tenth, plus at most 8 of the program's own)",
            "THP is [always] here, so MAP_POPULATE may fill the region with huge pages",
        );
    } else {
        finding(
            "the faults moved into mmap itself (to within a tenth, plus at most 8 of the program's own)",
            one_per_page(pop_map_faults, pages),
            format!("{pop_map_faults} faults inside mmap for {pages} pages"),
        );
    }
    Ok(())
}

// ANCHOR: dontneed_gives_pages_back
fn dontneed_gives_pages_back(pages: usize) -> Result<()> {
    section(&format!(
        "Touching {pages} pages, then madvise(MADV_DONTNEED)"
    ));
    let mut region = Mapping::private(pages * page_size())?;
    base_pages_only(&region)?;
    touch_each_page(&mut region, 0xAB);
    let rss_touched = vm_counters()?.rss;
    let resident_touched = resident_pages(&region)?;
    vmbook::pause::here(
        "every page has been written; MADV_DONTNEED comes next",
        &["grep -E 'VmRSS|RssAnon' /proc/PID/status"],
    );
    advise(region.as_ptr(), region.len(), MmapAdvise::MADV_DONTNEED)?;
    vmbook::pause::here(
        "MADV_DONTNEED has given the pages back; the mapping is still there",
        &[
            "grep -E 'VmRSS|RssAnon' /proc/PID/status",
            "grep -c rw-p /proc/PID/maps",
        ],
    );
    let rss_dropped = vm_counters()?.rss;
    let resident_dropped = resident_pages(&region)?;
    let mut sum = 0u64;
    let (read_faults, _) = measure(|| {
        for byte in region.bytes().iter().step_by(page_size()) {
            // SAFETY: a valid reference into the mapping; volatile, so each page is really read.
            sum += u64::from(unsafe { std::ptr::read_volatile(byte) });
        }
    })?;
    let all_zero = sum == 0 && region.bytes().iter().all(|&b| b == 0);
    let rss_read = vm_counters()?.rss;
    let resident_read = resident_pages(&region)?;
    // ANCHOR_END: dontneed_gives_pages_back
    for (label, resident, rss) in [
        (
            "after writing into every page",
            resident_touched,
            rss_touched,
        ),
        ("after MADV_DONTNEED", resident_dropped, rss_dropped),
        ("after reading every page again", resident_read, rss_read),
    ] {
        println!(
            "{:<33} {resident} of {pages} pages resident (mincore), VmRSS {}",
            format!("{label}:"),
            kb(rss)
        );
    }
    println!(
        "reading after MADV_DONTNEED: {read_faults} faults; every byte is {}",
        if all_zero { "0" } else { "NOT 0" }
    );
    let touched = (pages * page_size()) as u64;
    let drop = rss_touched.saturating_sub(rss_dropped);
    finding(
        "MADV_DONTNEED gives the pages back: none stays resident and VmRSS drops by what was \
         touched (to within a tenth, or 1 MiB)",
        resident_dropped == 0 && about(drop, touched),
        format!(
            "mincore: {resident_dropped} of {pages} resident; VmRSS dropped by {}",
            kb(drop)
        ),
    );
    finding(
        "the next read sees zeros, not the old contents",
        all_zero,
        format!("sum of all bytes after the read: {sum}"),
    );
    finding(
        "that read faults again, once per page (to within a tenth, plus at most 8 of the program's own)",
        one_per_page(read_faults, pages),
        format!("{read_faults} faults reading {pages} pages"),
    );
    let regrowth = rss_read.saturating_sub(rss_dropped);
    finding(
        "reading maps the kernel's shared zero page: VmRSS does not grow back (to within a \
         tenth, or 1 MiB)",
        regrowth <= (touched / 10).max(1 << 20),
        format!(
            "mincore: {resident_read} of {pages} resident, VmRSS grew by {}",
            kb(regrowth)
        ),
    );
    Ok(())
}

// ANCHOR: huge_page_faults
fn huge_page_faults(huge_pages: usize) -> Result<()> {
    section(&format!(
        "A region of {huge_pages} huge pages, touched every 4 KiB"
    ));
    let page = page_size();
    let huge = procfs::Meminfo::current()
        .context("read /proc/meminfo")?
        .hugepagesize
        .unwrap_or(2 << 20) as usize;
    let len = huge_pages * huge;
    let mut rows = Vec::new();
    for advice in [MmapAdvise::MADV_NOHUGEPAGE, MmapAdvise::MADV_HUGEPAGE] {
        // One huge page more than needed, to find a start aligned to a huge page inside it.
        let mut region = Mapping::private(len + huge)?;
        let offset = region.addr().next_multiple_of(huge) - region.addr();
        let aligned = &mut region.bytes_mut()[offset..offset + len];
        advise(aligned.as_mut_ptr(), len, advice)?;
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
        "with MADV_NOHUGEPAGE, every 4 KiB page takes its own fault",
        one_per_page(small_faults, pages) && small_huge == 0,
        format!("{small_faults} faults for {pages} pages"),
    );
    let claim =
        "with MADV_HUGEPAGE, one fault maps a whole huge page (at most two faults per huge page)";
    if thp == "never" || thp == "unavailable" {
        not_checked(
            claim,
            format!("transparent huge pages are [{thp}] on this machine"),
        );
    } else if huge_anon == 0 {
        not_checked(
            claim,
            "the kernel found no free huge page and fell back to 4 KiB pages",
        );
    } else {
        finding(
            claim,
            huge_faults as usize <= 2 * huge_pages && huge_anon == len as u64,
            format!(
                "{huge_faults} faults for {huge_pages} huge pages; AnonHugePages {}",
                kb(huge_anon)
            ),
        );
    }
    Ok(())
}
