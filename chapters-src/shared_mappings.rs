//! Chapter 4, "Anonymous shared mappings": MAP_SHARED and MAP_PRIVATE side by side across fork
//! (seed 004, without its bugs), the frames behind them after both sides wrote, and the race hidden
//! in seed 002.

use anyhow::{ensure, Context, Result};
use clap::{Parser, Subcommand};
use nix::sys::mman::MapFlags;
use nix::sys::signal::Signal;
use nix::unistd::{pipe, read, write};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use vmbook::process::{fork_child, wait_exit_code};
use vmbook::procinfo::{frames_visible, page_entry, page_entry_of_pid, page_size, smaps_of};
use vmbook::{banner, bytes, finding, kb, not_checked, section, Mapping};

/// Chapter 4 of the book, "Anonymous shared mappings": what a child's writes do to MAP_SHARED and
/// MAP_PRIVATE memory, the physical frames behind both, and the race in seed 002.
#[derive(Parser)]
#[command(version, long_about = None)]
struct Options {
    #[command(subcommand)]
    experiment: Experiment,
    /// Stop at each experiment, print this process's pid and what to inspect, wait for Enter.
    #[arg(long, global = true)]
    pause: bool,
}

#[derive(Subcommand)]
enum Experiment {
    /// Seed 004: map a region shared, then private; a child writes a string; the parent reads.
    Compare {
        /// Size of each region in pages.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1 << 24))]
        pages: u64,
        /// The string the child writes.
        #[arg(long, default_value = "written by the child", conflicts_with = "stdin")]
        text: String,
        /// Read the string from one line of stdin instead (at most one page is kept).
        #[arg(long)]
        stdin: bool,
    },
    /// Both sides write every page; compare their physical frames (pagemap) and smaps counters.
    Frames {
        /// Size of each region in pages.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=65_536))]
        pages: u64,
    },
    /// Seed 002 run many times: how often does the child read before the parent wrote?
    Race {
        /// Forks per batch.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        runs: u32,
        /// In the second batch the parent sleeps this long after fork before writing.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        widen_us: u64,
    },
}

fn main() -> std::process::ExitCode {
    let options = Options::parse();
    vmbook::pause::enable(options.pause);
    vmbook::run(|| {
        banner();
        match options.experiment {
            Experiment::Compare { pages, text, stdin } => {
                shared_vs_private(pages as usize, text, stdin)
            }
            Experiment::Frames { pages } => same_frame_after_writes(pages as usize),
            Experiment::Race { runs, widen_us } => child_can_read_first(runs, widen_us),
        }
    })
}

// ANCHOR: shared_vs_private
fn shared_vs_private(pages: usize, text: String, from_stdin: bool) -> Result<()> {
    section("A child writes a string; what does the parent see?");
    let len = pages * page_size();
    let text = if from_stdin {
        // Never `gets`: keep at most one page of the line, whatever its length.
        let mut line = Vec::new();
        let stdin = &mut std::io::stdin().lock();
        vmbook::numbers::read_line_bounded(stdin, page_size() - 1, &mut line)
            .context("read a line from stdin")?;
        String::from_utf8_lossy(&line).into_owned()
    } else {
        text
    };
    ensure!(!text.is_empty(), "the string to write is empty");
    ensure!(
        text.len() < len,
        "the string does not fit in {}",
        bytes(len as u64)
    );
    let mut seen = Vec::new();
    for (flag, what) in [
        (MapFlags::MAP_SHARED, "MAP_SHARED|MAP_ANONYMOUS"),
        (MapFlags::MAP_PRIVATE, "MAP_PRIVATE|MAP_ANONYMOUS"),
    ] {
        // An error, never a pointer to compare with NULL: mmap failing is MAP_FAILED, not NULL.
        let mut region = Mapping::anonymous(len, flag, what)?;
        let child = fork_child(|| {
            region.bytes_mut()[..text.len()].copy_from_slice(text.as_bytes());
            0
        })?;
        ensure!(wait_exit_code(child)? == 0, "the child failed");
        let after = &region.bytes()[..text.len()];
        // ANCHOR_END: shared_vs_private
        let shown = String::from_utf8_lossy(after).replace('\0', "");
        let zeros = after.iter().filter(|&&b| b == 0).count();
        println!(
            "{what:<26} {}: the parent reads {shown:?} ({zeros} of {} bytes are zero)",
            bytes(len as u64),
            text.len()
        );
        seen.push((after == text.as_bytes(), zeros == text.len()));
    }
    finding(
        "with MAP_SHARED, the parent sees what the child wrote",
        seen[0].0,
        format!("the parent read back all {} bytes", text.len()),
    );
    finding(
        "with MAP_PRIVATE, the parent sees only zeros: the child wrote to its own copy",
        seen[1].1,
        format!("{} of {} bytes zero in the parent", text.len(), text.len()),
    );
    Ok(())
}

/// smaps bytes counted Shared and Private, for one mapping.
type SharedPrivate = (u64, u64);

// ANCHOR: same_frame_after_writes
fn same_frame_after_writes(pages: usize) -> Result<()> {
    section("Parent and child both write every page: which frames are behind them?");
    let page = page_size();
    let len = pages * page;
    let mut shared = Mapping::shared(len)?;
    let mut private = Mapping::private(len)?;
    shared.bytes_mut().fill(b'P'); // the parent writes first, so both regions are resident
    private.bytes_mut().fill(b'P');
    let (child_done, child_signals) = pipe().context("pipe")?;
    let (parent_done, parent_signals) = pipe().context("pipe")?;
    let child = fork_child(|| {
        // The write end moves in here, so the parent's copy closes when fork_child drops this
        // closure there: a child that dies gives the parent an end-of-file, not a hang.
        let (signal, wait) = (child_signals, &parent_done);
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL); // nor waits for a dead parent
        shared.bytes_mut().fill(b'C'); // the child writes every page of both, after the fork
        private.bytes_mut().fill(b'C');
        // Tell the parent, then stay alive until it has read our page tables.
        let _ = write(&signal, b"w");
        let _ = read(wait, &mut [0u8; 1]);
        0
    })?;
    let look = || -> Result<([usize; 2], [SharedPrivate; 2])> {
        let got = read(&child_done, &mut [0u8; 1]).context("wait for the child's writes")?;
        ensure!(got == 1, "the child ended before it had written");
        let pid = child.as_raw();
        let mut same = [0usize; 2];
        for (i, region) in [&shared, &private].iter().enumerate() {
            for addr in (region.addr()..region.addr() + len).step_by(page) {
                let (mine, childs) = (page_entry(addr)?, page_entry_of_pid(pid, addr)?);
                same[i] += usize::from(mine.pfn.is_some() && mine.pfn == childs.pfn);
            }
        }
        // ANCHOR_END: same_frame_after_writes
        vmbook::pause::here(
            "the child has written every page and waits; both map both regions",
            &[
                "grep -A12 -e '-rw-s' /proc/PID/smaps",
                "ps -o pid,stat,cmd --ppid PID",
            ],
        );
        let sizes = |region: &Mapping| -> Result<(u64, u64)> {
            let s = smaps_of(region.addr())?;
            let get = |k: &str| s.get(k).copied().unwrap_or(0);
            Ok((
                get("Shared_Clean") + get("Shared_Dirty"),
                get("Private_Clean") + get("Private_Dirty"),
            ))
        };
        Ok((same, [sizes(&shared)?, sizes(&private)?]))
    };
    let looked = look();
    // Whatever happened, let the child go and reap it before reporting.
    let _ = write(&parent_signals, b"g");
    let ended = wait_exit_code(child);
    let (same, counters) = looked?;
    ensure!(ended? == 0, "the child failed");
    let parent_reads = [shared.bytes()[0], private.bytes()[0]];
    println!(
        "{:<26} {:>16} {:>13} {:>13} {:>13}",
        "", "same frame", "smaps Shared", "smaps Private", "parent reads"
    );
    for (i, what) in ["MAP_SHARED|MAP_ANONYMOUS", "MAP_PRIVATE|MAP_ANONYMOUS"]
        .iter()
        .enumerate()
    {
        println!(
            "{what:<26} {:>16} {:>13} {:>13} {:>13}",
            format!("{} of {pages}", same[i]),
            kb(counters[i].0),
            kb(counters[i].1),
            format!("{:?}", parent_reads[i] as char)
        );
    }
    let whole = len as u64;
    if frames_visible() {
        finding(
            "after both wrote, every MAP_SHARED page is the same frame in parent and child",
            same[0] == pages,
            format!("{} of {pages} pages", same[0]),
        );
        finding(
            "after the child's writes, every MAP_PRIVATE page has its own frame in each (copy-on-write)",
            same[1] == 0,
            format!("{} of {pages} pages share a frame", same[1]),
        );
    } else {
        for claim in [
            "after both wrote, every MAP_SHARED page is the same frame in parent and child",
            "after the child's writes, every MAP_PRIVATE page has its own frame in each (copy-on-write)",
        ] {
            not_checked(claim, "frame numbers in pagemap need CAP_SYS_ADMIN");
        }
    }
    finding(
        "smaps counts the MAP_SHARED region as Shared (two processes map it) and none as Private",
        counters[0] == (whole, 0),
        format!(
            "Shared {}, Private {}",
            kb(counters[0].0),
            kb(counters[0].1)
        ),
    );
    finding(
        "smaps counts the MAP_PRIVATE region as Private: each process has its own copies",
        counters[1] == (0, whole),
        format!(
            "Shared {}, Private {}",
            kb(counters[1].0),
            kb(counters[1].1)
        ),
    );
    finding(
        "the parent reads the child's byte in the shared region and its own in the private one",
        parent_reads == [b'C', b'P'],
        format!(
            "{:?} and {:?}",
            parent_reads[0] as char, parent_reads[1] as char
        ),
    );
    Ok(())
}

const GREETING: &[u8] = b"Hello, child process!";

/// The first bytes of a shared page, read and written one atomic byte at a time: the two processes
/// race on purpose, and atomics keep that race defined (a torn read is possible, garbage is not).
fn greeting_bytes(region: &Mapping) -> &[AtomicU8] {
    // SAFETY: the mapping is at least one page, lives as long as the borrow, and AtomicU8 has the
    // layout of u8; every access to these bytes in both processes goes through this slice.
    unsafe { std::slice::from_raw_parts(region.as_ptr() as *const AtomicU8, GREETING.len()) }
}

// ANCHOR: child_can_read_first
/// Seed 002: parent writes after fork, child reads at once. Returns what the child saw.
fn seed_002_once(region: &Mapping, widen: Duration) -> Result<i32> {
    let buffer = greeting_bytes(region);
    buffer.iter().for_each(|b| b.store(0, Ordering::Relaxed));
    let child = fork_child(|| {
        let read: Vec<u8> = buffer.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        match read.iter().position(|&b| b == 0) {
            Some(0) => 0,               // empty: the parent had not written yet
            _ if read == GREETING => 2, // the whole greeting
            _ => 1,                     // part of it: caught in the middle of the copy
        }
    })?;
    if !widen.is_zero() {
        std::thread::sleep(widen); // stands for anything that delays the parent here
    }
    for (cell, &byte) in buffer.iter().zip(GREETING) {
        cell.store(byte, Ordering::Relaxed);
    }
    wait_exit_code(child)
}
// ANCHOR_END: child_can_read_first

fn child_can_read_first(runs: u32, widen_us: u64) -> Result<()> {
    section("Seed 002, run many times: what did the child read?");
    let region = Mapping::shared(page_size())?;
    let mut empty = [0u32; 2];
    for (batch, widen) in [Duration::ZERO, Duration::from_micros(widen_us)]
        .into_iter()
        .enumerate()
    {
        let mut seen = [0u32; 3];
        for _ in 0..runs {
            let code = seed_002_once(&region, widen)?;
            ensure!((0..3).contains(&code), "the child failed");
            seen[code as usize] += 1;
        }
        empty[batch] = seen[0];
        let label = if widen.is_zero() {
            "parent writes right after fork (as written)".to_string()
        } else {
            format!("parent writes after a {} pause", fmt_us(widen_us))
        };
        println!(
            "{label}: in {runs} runs the child read nothing ~{} times, part of the greeting ~{}, \
             all of it ~{}",
            seen[0], seen[1], seen[2]
        );
    }
    let evidence = format!(
        "empty in ~{} of {runs} runs as written, ~{} of {runs} with the window widened",
        empty[0], empty[1]
    );
    finding(
        "the child can read the buffer before the parent has written it",
        empty[0] + empty[1] > 0,
        &evidence,
    );
    finding(
        "widening the window between fork and the write makes the early read more frequent",
        empty[1] > empty[0],
        evidence,
    );
    Ok(())
}

fn fmt_us(us: u64) -> String {
    if us % 1000 == 0 {
        format!("{} ms", us / 1000)
    } else {
        format!("{us} µs")
    }
}
