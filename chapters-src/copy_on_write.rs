//! Chapter 3, "Copy-on-write": after `fork`, parent and child share every private page until one of
//! them writes it; the writer then takes a page fault and gets a copy of its own.

use anyhow::{bail, ensure, Context, Result};
use clap::{Parser, Subcommand};
use nix::sys::mman::{madvise, MmapAdvise};
use nix::unistd::{fork, pipe, ForkResult};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::ptr::NonNull;
use std::time::{Duration, Instant};
use vmbook::process::{fork_child, thread_count, wait_child, wait_exit_code};
use vmbook::procinfo::{frames_visible, page_entry, page_faults, page_size, smaps_of, PageEntry};
use vmbook::{banner, bytes, finding, kb, not_checked, section, Mapping};

/// Chapter 3 of the book, "Copy-on-write": the frames parent and child share after fork, what a
/// write costs the writer, why one byte copies a page, and what fork itself costs.
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
    /// Fork; show the frames (as root) and pagemap's exclusive bit on both sides, before and after
    /// the child writes.
    SameFrame {
        /// How many pages the region holds.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
        pages: u32,
    },
    /// Count and time the child's copy-on-write faults, next to first-touch faults.
    CowCost {
        /// How many pages the child writes (more pages: steadier times).
        #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1048576))]
        pages: u32,
    },
    /// The child writes N bytes into one page, then one byte into each of N pages.
    OneByte {
        /// N: bytes written into one page, and pages written one byte each.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
        count: u32,
    },
    /// Seed 004 with MAP_PRIVATE: the child writes a string, the parent looks for it.
    PrivateWrite {
        /// What the child writes into the mapping.
        #[arg(long, default_value = "hello from the child")]
        text: String,
    },
    /// Time fork with a small and a big resident region.
    ForkCost {
        /// The small region, in MiB.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=16384))]
        small_mib: u64,
        /// The big region, in MiB (try 1024 for a gigabyte).
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=16384))]
        big_mib: u64,
    },
}

fn main() -> std::process::ExitCode {
    let options = Options::parse();
    vmbook::pause::enable(options.pause);
    vmbook::run(|| {
        banner();
        match options.experiment {
            Some(experiment) => run(experiment),
            None => {
                run(Experiment::SameFrame { pages: 4 })?;
                run(Experiment::CowCost { pages: 1024 })?;
                run(Experiment::OneByte { count: 64 })?;
                run(Experiment::PrivateWrite {
                    text: "hello from the child".into(),
                })?;
                run(Experiment::ForkCost {
                    small_mib: 1,
                    big_mib: 64,
                })
            }
        }
    })
}

fn run(experiment: Experiment) -> Result<()> {
    match experiment {
        Experiment::SameFrame { pages } => same_frame_after_fork(pages as usize),
        Experiment::CowCost { pages } => cow_fault_cost(pages as usize),
        Experiment::OneByte { count } => one_byte_copies_a_page(count as usize),
        Experiment::PrivateWrite { text } => parent_never_sees_private_write(&text),
        Experiment::ForkCost { small_mib, big_mib } => {
            fork_cost_grows_with_memory(small_mib, big_mib)
        }
    }
}

/// Writes one byte into every page of `region`.
fn touch_each_page(region: &mut Mapping, value: u8) {
    for byte in region.bytes_mut().iter_mut().step_by(page_size()) {
        // SAFETY: a valid, exclusive reference into the mapping; volatile, so it is never elided.
        unsafe { std::ptr::write_volatile(byte, value) };
    }
}

/// A private mapping of `len` bytes on 4 KiB pages only (MADV_NOHUGEPAGE), so that every
/// experiment counts base pages even where transparent huge pages are `always` on.
fn base_page_region(len: usize) -> Result<Mapping> {
    let region = Mapping::private(len)?;
    let start = NonNull::new(region.as_ptr().cast()).context("mmap returned null")?;
    // SAFETY: advice about a mapping we own; MADV_NOHUGEPAGE changes no contents.
    unsafe { madvise(start, len, MmapAdvise::MADV_NOHUGEPAGE) }
        .context("madvise(MADV_NOHUGEPAGE)")?;
    Ok(region)
}

/// Runs `work`; returns the minor faults it took (getrusage) and how long it took.
fn measure(work: impl FnOnce()) -> Result<(i64, Duration)> {
    let before = page_faults()?.0;
    let start = Instant::now();
    work();
    let time = start.elapsed();
    Ok((page_faults()?.0 - before, time))
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

/// Below this many pages, a pass takes a few microseconds: too short to compare times reliably.
const TIMED_PAGES: usize = 64;

/// Two pipes between parent and child: reports up, go-aheads down.
struct Link {
    up: (File, File),
    down: (File, File),
}

impl Link {
    fn new() -> Result<Link> {
        let (up_read, up_write) = pipe().context("pipe")?;
        let (down_read, down_write) = pipe().context("pipe")?;
        Ok(Link {
            up: (up_read.into(), up_write.into()),
            down: (down_read.into(), down_write.into()),
        })
    }

    /// The parent's ends that the child must close: if the parent dies, the child then reads
    /// end-of-file instead of waiting forever.
    fn parent_ends(&self) -> [RawFd; 2] {
        [self.up.0.as_raw_fd(), self.down.1.as_raw_fd()]
    }

    /// After fork, in the parent: keeps its two ends and closes the child's, so that a read sees
    /// end-of-file if the child dies.
    fn parent(self) -> (File, File) {
        (self.up.0, self.down.1)
    }
}

fn send(to: &mut File, values: &[u64]) -> Result<()> {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
    to.write_all(&raw).context("write to pipe")
}

fn receive(from: &mut File, count: usize) -> Result<Vec<u64>> {
    let mut raw = vec![0u8; count * 8];
    from.read_exact(&mut raw)
        .context("read from pipe: the other process ended early")?;
    Ok(raw
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8])))
        .collect())
}

/// Runs the child's part: closes the parent's pipe ends, runs `body`, exits 0 or 1.
fn child_side(parent_ends: [RawFd; 2], body: impl FnOnce() -> Result<()>) -> i32 {
    for fd in parent_ends {
        let _ = nix::unistd::close(fd);
    }
    match body() {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("copy-on-write (child): error: {error:#}");
            1
        }
    }
}

/// The pagemap entry of each page of `region` in this process, as (frame or 0, exclusive) pairs.
fn entries(region: &Mapping) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for addr in (region.addr()..region.addr() + region.len()).step_by(page_size()) {
        let PageEntry { pfn, exclusive, .. } = page_entry(addr)?;
        out.extend([pfn.unwrap_or(0), u64::from(exclusive)]);
    }
    Ok(out)
}

/// Shared_Dirty and Private_Dirty of the mapping holding `region`, from this process's smaps.
fn dirty(region: &Mapping) -> Result<(u64, u64)> {
    let smaps = smaps_of(region.addr())?;
    let get = |key: &str| smaps.get(key).copied().unwrap_or(0);
    Ok((get("Shared_Dirty"), get("Private_Dirty")))
}

// ANCHOR: same_frame_after_fork
fn same_frame_after_fork(pages: usize) -> Result<()> {
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
        let why = "frame numbers read as 0 without CAP_SYS_ADMIN (Linux 4.2 and later); \
                   the findings below need no privilege";
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

// ANCHOR: cow_fault_cost
fn cow_fault_cost(pages: usize) -> Result<()> {
    section(&format!(
        "What writing {pages} shared pages costs the child"
    ));
    let len = pages * page_size();
    // First touch, for comparison: the best of five fresh regions. The last one stays.
    let mut region = base_page_region(len)?;
    let mut first_touch = Duration::MAX;
    for attempt in 0..5 {
        if attempt > 0 {
            region = base_page_region(len)?;
        }
        let (_, time) = measure(|| touch_each_page(&mut region, 1))?;
        first_touch = first_touch.min(time);
    }
    // Five children, one after the other; each writes every page twice.
    let mut reports = Vec::new();
    for _ in 0..5 {
        let mut link = Link::new()?;
        let ends = link.parent_ends();
        let child = fork_child(|| {
            child_side(ends, || {
                let (faults, time) = measure(|| touch_each_page(&mut region, 2))?;
                let (again_faults, again) = measure(|| touch_each_page(&mut region, 3))?;
                let report = [
                    faults,
                    time.as_nanos() as i64,
                    again_faults,
                    again.as_nanos() as i64,
                ];
                send(&mut link.up.1, &report.map(|v| v as u64))
            })
        })?;
        let report = receive(&mut link.parent().0, 4)?;
        ensure!(wait_exit_code(child)? == 0, "the child failed");
        reports.push(report.iter().map(|&v| v as i64).collect::<Vec<_>>());
    }
    // ANCHOR_END: cow_fault_cost
    let nanos = |v: i64| Duration::from_nanos(v as u64);
    let cow = reports
        .iter()
        .map(|r| nanos(r[1]))
        .min()
        .unwrap_or_default();
    let again = reports
        .iter()
        .map(|r| nanos(r[3]))
        .min()
        .unwrap_or_default();
    println!(
        "first touch in the parent (best of 5):   {} per page",
        per(first_touch, pages)
    );
    for (i, r) in reports.iter().enumerate() {
        println!(
            "child {}: first write {} faults, {} per page; second write {} faults, {} per page",
            i + 1,
            r[0],
            per(nanos(r[1]), pages),
            r[2],
            per(nanos(r[3]), pages)
        );
    }
    let cow_vs_touch = cow.as_secs_f64() / first_touch.as_secs_f64().max(1e-9);
    let cow_vs_again = cow.as_secs_f64() / again.as_secs_f64().max(1e-9);
    println!(
        "best copy-on-write fault {} per page: {cow_vs_touch:.1}× a first-touch fault, \
         {cow_vs_again:.0}× a write to a page already copied",
        per(cow, pages)
    );
    let faults: Vec<String> = reports.iter().map(|r| format!("{} faults", r[0])).collect();
    finding(
        "each child takes one minor fault per page it writes (to within a tenth, plus at most 8 of the program's own)",
        reports.iter().all(|r| one_per_page(r[0], pages)),
        format!("{pages} pages written; {}", faults.join(", ")),
    );
    let cost_claim =
        "a copy-on-write fault costs about as much as a first-touch fault (between a quarter and 4 times)";
    let again_claim =
        "writing the copied pages again takes almost no faults and is at least 5 times faster";
    if pages < TIMED_PAGES {
        let why = format!("{pages} pages are too few to time; try {TIMED_PAGES} or more");
        not_checked(cost_claim, &why);
        not_checked(again_claim, &why);
        return Ok(());
    }
    finding(
        cost_claim,
        (0.25..=4.0).contains(&cow_vs_touch),
        format!(
            "{} vs {} per page: {cow_vs_touch:.1}×",
            per(cow, pages),
            per(first_touch, pages)
        ),
    );
    finding(
        again_claim,
        reports
            .iter()
            .all(|r| r[2] as usize * 100 < pages * 3 || r[2] == 0)
            && cow_vs_again >= 5.0,
        format!(
            "{} per page, {cow_vs_again:.0}× faster than the copy",
            per(again, pages)
        ),
    );
    Ok(())
}

// ANCHOR: one_byte_copies_a_page
fn one_byte_copies_a_page(count: usize) -> Result<()> {
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
    println!(
        "after {count} bytes in one page:     {} ({} more, {} faults)",
        kb(in_one_page),
        kb(one),
        r[3]
    );
    println!(
        "after 1 byte in each of {count} pages: {} ({} more, {} faults)",
        kb(across_pages),
        kb(many),
        r[4]
    );
    finding(
        &format!("{count} bytes written within one page copy exactly one page"),
        one == page as u64,
        format!(
            "Private_Dirty grew by {} = {} page(s)",
            kb(one),
            one / page as u64
        ),
    );
    finding(
        &format!("one byte written into each of {count} pages copies {count} whole pages"),
        many == (count * page) as u64,
        format!(
            "Private_Dirty grew by {} = {} page(s)",
            kb(many),
            many / page as u64
        ),
    );
    Ok(())
}

// ANCHOR: parent_never_sees_private_write
fn parent_never_sees_private_write(text: &str) -> Result<()> {
    section("Seed 004 with MAP_PRIVATE instead of MAP_SHARED");
    const NUM_TARGET_PAGES: usize = 10_000; // as in the seed
    let mut buffer = Mapping::private(NUM_TARGET_PAGES * page_size())?;
    if text.len() >= buffer.len() {
        bail!("--text: {} bytes do not fit into the mapping", text.len());
    }
    let child = fork_child(|| {
        let buffer = &mut buffer.bytes_mut()[..text.len() + 1];
        buffer[..text.len()].copy_from_slice(text.as_bytes()); // the C string and its NUL
        buffer[text.len()] = 0;
        println!("child:  wrote {:?} into the buffer", text);
        0
    })?;
    wait_exit_code(child)?;
    let end = buffer.bytes().iter().position(|&b| b == 0).unwrap_or(0);
    let seen = String::from_utf8_lossy(&buffer.bytes()[..end]);
    println!("parent: after wait, the buffer holds {seen:?}");
    // ANCHOR_END: parent_never_sees_private_write
    finding(
        "with MAP_PRIVATE, the parent never sees the child's write",
        seen.is_empty(),
        format!("the parent read {} bytes before the first NUL", seen.len()),
    );
    Ok(())
}

/// Forks a child that exits at once; returns how long `fork` took in the parent.
fn time_one_fork() -> Result<Duration> {
    let start = Instant::now();
    // SAFETY: the caller checked that this process is single-threaded; the child only calls
    // _exit, which is async-signal-safe.
    let child = match unsafe { fork() }.context("fork")? {
        ForkResult::Child => unsafe { libc::_exit(0) },
        ForkResult::Parent { child } => child,
    };
    let time = start.elapsed();
    vmbook::cleanup::track_child(child.as_raw());
    wait_child(child)?;
    Ok(time)
}

// ANCHOR: fork_cost_grows_with_memory
fn fork_cost_grows_with_memory(small_mib: u64, big_mib: u64) -> Result<()> {
    ensure!(
        small_mib < big_mib,
        "--small-mib must be less than --big-mib"
    );
    ensure!(
        thread_count() == 1,
        "fork refused: this process has more than one thread"
    );
    section(&format!(
        "fork with {} and with {} resident",
        bytes(small_mib << 20),
        bytes(big_mib << 20)
    ));
    let mut fork_times = Vec::new();
    let mut resident = None;
    for mib in [small_mib, big_mib] {
        drop(resident.take()); // each size alone
        let mut region = base_page_region((mib << 20) as usize)?;
        touch_each_page(&mut region, 1); // resident: every page has a frame and a page table entry
        let best = (0..5)
            .map(|_| time_one_fork())
            .collect::<Result<Vec<_>>>()?;
        fork_times.push(best.into_iter().min().unwrap_or_default());
        resident = Some(region);
    }
    // What copying the big region would cost instead: memcpy into pages already resident.
    let source = resident.context("no region was mapped")?;
    let mut copy = base_page_region(source.len())?;
    touch_each_page(&mut copy, 2);
    let mut memcpy_time = Duration::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        copy.bytes_mut().copy_from_slice(source.bytes());
        memcpy_time = memcpy_time.min(start.elapsed());
        std::hint::black_box(copy.bytes());
    }
    // ANCHOR_END: fork_cost_grows_with_memory
    let (small, big) = (fork_times[0], fork_times[1]);
    let size_ratio = big_mib as f64 / small_mib as f64;
    let time_ratio = big.as_secs_f64() / small.as_secs_f64().max(1e-9);
    let copy_ratio = memcpy_time.as_secs_f64() / big.as_secs_f64().max(1e-9);
    println!(
        "fork with {} resident: {} (best of 5)",
        bytes(small_mib << 20),
        per(small, 1)
    );
    println!(
        "fork with {} resident: {} (best of 5)",
        bytes(big_mib << 20),
        per(big, 1)
    );
    println!("size ratio {size_ratio:.0}×, fork time ratio {time_ratio:.1}×");
    println!(
        "copying the {} region with memcpy (best of 3): {}, {copy_ratio:.1}× the fork",
        bytes(big_mib << 20),
        per(memcpy_time, 1)
    );
    finding(
        "fork takes longer when more memory is resident (at least twice as long for the big region)",
        time_ratio >= 2.0,
        format!("fork time ratio {time_ratio:.1}× for a size ratio of {size_ratio:.0}×"),
    );
    finding(
        "fork time grows less than in proportion to resident memory (time ratio below size ratio)",
        time_ratio < size_ratio,
        format!("fork time ratio {time_ratio:.1}× for a size ratio of {size_ratio:.0}×"),
    );
    finding(
        "fork copies page tables, not pages: it is at least twice as fast as copying the big region",
        copy_ratio >= 2.0,
        format!("fork {}, memcpy {}", per(big, 1), per(memcpy_time, 1)),
    );
    Ok(())
}
