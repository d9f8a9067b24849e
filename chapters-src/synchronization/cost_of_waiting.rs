//! The cost of waiting: usleep polling, spinning and futex wait/wake, in latency and CPU time.

use crate::children::{fork_guarded, until_set};
use crate::shared::Shared;
use crate::timing::{cpu_ns, median, ratio};
use anyhow::{ensure, Result};
use plotters::prelude::SeriesLabelPosition;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use vmbook::chart::{bars_svg, Axes};
use vmbook::clock::monotonic_ns;
use vmbook::measure::time;
use vmbook::process::wait_exit_code;
use vmbook::{finding, futex, section};

#[repr(C)]
struct WaitPage {
    flag: AtomicU32,
    waiting: AtomicU32,
    set_at: AtomicU64,
    seen_at: AtomicU64,
    waited_ns: AtomicU64,
    cpu_ns: AtomicU64,
}

#[derive(Clone, Copy, PartialEq)]
enum Waiter {
    Poll,
    Spin,
    Futex,
}

// ANCHOR: waiters
/// Waits until `flag` is 1 (giving up after `limit`); the three ways of the chapter.
fn wait_for(flag: &AtomicU32, how: Waiter, limit: Duration) -> bool {
    let start = Instant::now();
    while flag.load(Ordering::Acquire) == 0 {
        if start.elapsed() > limit {
            return false;
        }
        match how {
            // Seed 001: check, sleep 1 ms, check again.
            Waiter::Poll => std::thread::sleep(Duration::from_micros(1000)),
            // Check again at once: the core never rests.
            Waiter::Spin => std::hint::spin_loop(),
            // Sleep in the kernel until someone calls futex::wake on this word, but only if it
            // still holds 0 (checked atomically by the kernel, so no wake-up can be missed).
            Waiter::Futex => {
                futex::wait(flag, 0, Some(limit));
            }
        }
    }
    true
}

/// The other side: publish with a Release store; only a futex waiter needs a wake-up call.
fn set_flag(flag: &AtomicU32, how: Waiter) {
    flag.store(1, Ordering::Release);
    if how == Waiter::Futex {
        futex::wake(flag, 1);
    }
}
// ANCHOR_END: waiters

/// One round: a child waits `wait` for the parent's flag; returns (latency, waited, cpu) in ns.
fn one_wait(how: Waiter, wait: Duration) -> Result<(u64, u64, u64)> {
    let page = Shared::<WaitPage>::new()?;
    let limit = wait + Duration::from_secs(2);
    let child = fork_guarded(|| {
        // Take the copy-on-write faults of a fresh child (its stack) before measuring.
        std::hint::black_box([1u8; 16 << 10]);
        let cpu0 = cpu_ns();
        let t0 = monotonic_ns();
        page.waiting.store(1, Ordering::Release);
        if !wait_for(&page.flag, how, limit) {
            return 1;
        }
        let seen = monotonic_ns();
        page.seen_at.store(seen, Ordering::Relaxed);
        page.waited_ns.store(seen - t0, Ordering::Relaxed);
        page.cpu_ns.store(cpu_ns() - cpu0, Ordering::Release);
        0
    })?;
    until_set(&page.waiting, child)?;
    std::thread::sleep(wait);
    page.set_at.store(monotonic_ns(), Ordering::Relaxed);
    set_flag(&page.flag, how);
    ensure!(wait_exit_code(child)? == 0, "the waiting child gave up");
    let latency = page
        .seen_at
        .load(Ordering::Acquire)
        .saturating_sub(page.set_at.load(Ordering::Acquire));
    Ok((
        latency,
        page.waited_ns.load(Ordering::Acquire),
        page.cpu_ns.load(Ordering::Acquire),
    ))
}

pub fn cost_of_waiting(wait_ms: u64, rounds: u32) -> Result<()> {
    section("A child waits for its parent's flag: three ways to wait");
    let wait = Duration::from_millis(wait_ms);
    println!("the parent sets the flag {wait_ms} ms after the child starts waiting; {rounds} rounds each, medians");
    let mut rows = Vec::new();
    let ways = [
        (Waiter::Poll, "usleep(1000) polling"),
        (Waiter::Spin, "spinning"),
        (Waiter::Futex, "futex wait/wake"),
    ];
    let labels = ways.map(|(_, label)| label);
    for (how, label) in ways {
        let mut samples = Vec::new();
        for _ in 0..rounds {
            samples.push(one_wait(how, wait)?);
        }
        let latency = median(samples.iter().map(|s| s.0).collect());
        let cpu = median(samples.iter().map(|s| s.2).collect());
        let waited = median(samples.iter().map(|s| s.1).collect());
        let per_second = cpu as f64 / waited.max(1) as f64 * 1e9;
        println!(
            "{label:<22} woke up {} after the flag was set; burned {} of CPU ({} per second of waiting)",
            time(latency as f64),
            time(cpu as f64),
            time(per_second)
        );
        rows.push((latency, cpu, waited));
    }
    vmbook::figure::save(FIGURE, &cpu_chart(&labels, &rows, wait_ms, rounds)?);
    let (poll, spin, fx) = (rows[0], rows[1], rows[2]);
    println!(
        "in this run: polling woke up after {} the futex's time and burned {} its CPU; spinning burned {} the CPU of polling",
        ratio(poll.0 as f64, fx.0 as f64),
        ratio(poll.1 as f64, fx.1 as f64),
        ratio(spin.1 as f64, poll.1 as f64),
    );
    // Wake-up times are printed, not claimed: when other programs keep both cores busy, every
    // waiter waits for a core after its wake-up, and that wait swamps the difference. CPU time is
    // what the waiter itself used, and keeps its order on a busy machine.
    finding(
        "a spinner burns the most CPU while it waits, a 1 ms poller less, a futex waiter the least",
        fx.1 < poll.1 && poll.1 * 5 < spin.1,
        format!(
            "{} < {} < {}",
            time(fx.1 as f64),
            time(poll.1 as f64),
            time(spin.1 as f64)
        ),
    );
    Ok(())
}

/// The figure's file name under the book's charts directory.
const FIGURE: &str = "synchronization-cpu-per-wait.svg";

/// The CPU each way burned while it waited (the medians the finding compares), on a log scale:
/// a spinner burns its whole wait, a futex waiter microseconds.
fn cpu_chart(
    labels: &[&str],
    rows: &[(u64, u64, u64)],
    wait_ms: u64,
    rounds: u32,
) -> Result<String> {
    let groups: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
    let cpu_us = rows.iter().map(|r| Some(r.1 as f64 / 1e3)).collect();
    let axes = Axes {
        x: "way of waiting",
        y: "CPU time burned (µs, log scale)",
        legend: SeriesLabelPosition::UpperRight,
    };
    bars_svg(
        &format!("CPU burned while a child waits {wait_ms} ms for a flag (median of {rounds})"),
        &groups,
        &[("CPU time while waiting".to_string(), cpu_us)],
        &axes,
        true,
    )
}
