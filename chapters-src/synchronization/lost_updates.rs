//! Lost updates: two processes increment one shared counter, plainly, with fetch_add, with a mutex.

use crate::children::fork_guarded;
use crate::pthread::init_mutex;
use crate::shared::Shared;
use crate::timing::{percent, ratio};
use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use vmbook::clock::monotonic_ns;
use vmbook::measure::time;
use vmbook::{cleanup, finding, section};

// ANCHOR: counter_page
#[repr(C)]
struct CounterPage {
    count: AtomicU64,
    mutex: UnsafeCell<libc::pthread_mutex_t>,
    ready: AtomicU32, // children at the starting line
    go: AtomicU32,    // the parent's starting shot
    added: [AtomicU64; 2],
    loop_ns: [AtomicU64; 2],
}

#[derive(Clone, Copy, PartialEq)]
enum Increment {
    Plain,
    FetchAdd,
    Mutex,
}

fn add_one(page: &CounterPage, how: Increment) {
    let count = page.count.as_ptr();
    match how {
        // SAFETY (all three): `count` and `mutex` point into the shared page, valid while `page`
        // lives. The plain case races on purpose: that is the experiment.
        Increment::Plain => unsafe { count.write_volatile(count.read_volatile() + 1) },
        Increment::FetchAdd => {
            page.count.fetch_add(1, Ordering::Relaxed);
        }
        Increment::Mutex => unsafe {
            libc::pthread_mutex_lock(page.mutex.get());
            count.write_volatile(count.read_volatile() + 1);
            libc::pthread_mutex_unlock(page.mutex.get());
        },
    }
}
// ANCHOR_END: counter_page

// ANCHOR: overlap
/// Child `me` adds 1 at least `n` times, and goes on until the other child has added `n / 2`: on a
/// busy machine one child could otherwise finish before the other was even scheduled.
///
/// Overlapping in time is not enough either: when the two share one CPU (one usable CPU, or two
/// with other programs running), they interleave only where the scheduler switches one out, and an
/// update is lost only when a switch falls between a load and its store. A few switches may all
/// miss (10 runs in 30 lost nothing, measured with two busy loops beside them on two CPUs), so
/// each also goes on until it has seen the other's count move during [`INTERLEAVINGS`] of its
/// rounds of 1000, or the other has finished. On two idle CPUs nearly every round sees it move,
/// and this adds nothing.
fn increment_while_the_other_does(page: &CounterPage, how: Increment, n: u64, me: usize) {
    let start = Instant::now();
    let other = 1 - me;
    let (mut added, mut interleavings) = (0, 0);
    let mut others_before = page.added[other].load(Ordering::Relaxed);
    while added < n
        || page.added[other].load(Ordering::Relaxed) < n / 2
        || (interleavings < INTERLEAVINGS && page.loop_ns[other].load(Ordering::Acquire) == 0)
    {
        for _ in 0..1000 {
            add_one(page, how);
        }
        added += 1000;
        page.added[me].store(added, Ordering::Relaxed);
        let others_now = page.added[other].load(Ordering::Relaxed);
        interleavings += u32::from(others_now != others_before);
        others_before = others_now;
        if start.elapsed() > Duration::from_secs(5) {
            break; // the other child is gone: stop anyway
        }
    }
}
// ANCHOR_END: overlap

/// How many of its rounds each child must see the other's count move in.
const INTERLEAVINGS: u32 = 16;

/// Two children increment at once; returns (final count, increments made, ns per increment).
fn race_two_children(how: Increment, n: u64) -> Result<(u64, u64, f64)> {
    let page = Shared::<CounterPage>::new()?;
    // SAFETY: the mutex lives in the new shared page, which outlives both children; no one uses it.
    unsafe { init_mutex(page.mutex.get(), false) }?;
    let mut children = Vec::new();
    for me in 0..2 {
        let page = &page;
        children.push(fork_guarded(move || {
            page.ready.fetch_add(1, Ordering::AcqRel);
            while page.go.load(Ordering::Acquire) == 0 {
                std::hint::spin_loop();
            }
            let start = monotonic_ns();
            increment_while_the_other_does(page, how, n, me);
            page.loop_ns[me].store(monotonic_ns() - start, Ordering::Release);
            0
        })?);
    }
    // Both children at the starting line, then go.
    let started = Instant::now();
    while page.ready.load(Ordering::Acquire) < 2 && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_micros(100));
    }
    page.go.store(1, Ordering::Release);
    wait_all(&children)?;
    let added: Vec<u64> = page
        .added
        .iter()
        .map(|a| a.load(Ordering::Acquire))
        .collect();
    let ns: Vec<u64> = page
        .loop_ns
        .iter()
        .map(|t| t.load(Ordering::Acquire))
        .collect();
    // Each child's time per increment, averaged over the two.
    let per_increment = (ns[0] as f64 / added[0] as f64 + ns[1] as f64 / added[1] as f64) / 2.0;
    // SAFETY: both children have exited; nobody holds the mutex.
    unsafe { libc::pthread_mutex_destroy(page.mutex.get()) };
    Ok((
        page.count.load(Ordering::Acquire),
        added[0] + added[1],
        per_increment,
    ))
}

pub fn lost_updates(n: u64) -> Result<()> {
    section("Two processes, one counter in a MAP_SHARED page, each adding 1");
    println!(
        "each process adds 1 at least {n} times, until the other has added {}, and until it has \
         seen the other's count move during {INTERLEAVINGS} of its rounds of 1000",
        n / 2
    );
    let mut results = Vec::new();
    for (how, label) in [
        (Increment::Plain, "plain read + write (volatile)"),
        (Increment::FetchAdd, "AtomicU64::fetch_add"),
        (Increment::Mutex, "pthread mutex (process-shared)"),
    ] {
        let (got, made, ns) = race_two_children(how, n)?;
        results.push((got, made, ns));
        // Values that vary are never padded: the redacted output must not depend on their width.
        println!(
            "{label:<32} {} of the increments counted, {} per increment ({} the plain one)",
            percent(got.min(made), made),
            time(ns),
            ratio(ns, results[0].2)
        );
    }
    vmbook::pause::here(
        "the three races are over; the counters are gone",
        &["cat /proc/PID/maps"],
    );
    let (plain, atomic, mutex) = (results[0], results[1], results[2]);
    finding(
        "plain increments from two processes lose updates",
        plain.0 < plain.1,
        format!(
            "{} of the increments lost",
            percent(plain.1 - plain.0.min(plain.1), plain.1)
        ),
    );
    finding(
        "fetch_add loses none",
        atomic.0 == atomic.1,
        format!("{} lost", atomic.1 - atomic.0.min(atomic.1)),
    );
    finding(
        "a process-shared pthread mutex loses none",
        mutex.0 == mutex.1,
        format!("{} lost", mutex.1 - mutex.0.min(mutex.1)),
    );
    finding(
        "the mutex costs more per increment than fetch_add",
        mutex.2 > atomic.2,
        format!("{} vs {}", time(mutex.2), time(atomic.2)),
    );
    Ok(())
}

/// Reaps every child in `children`, in the order they end; once one has failed, kills the others
/// (they might wait for it), reaps them too, then reports the failure.
fn wait_all(children: &[Pid]) -> Result<()> {
    let mut running = children.to_vec();
    let mut failed = None;
    while !running.is_empty() {
        let status = waitpid(Pid::from_raw(-1), None).context("waitpid")?;
        if let Some(pid) = status.pid() {
            cleanup::untrack_child(pid.as_raw());
            running.retain(|&p| p != pid);
        }
        if failed.is_none() && !matches!(status, WaitStatus::Exited(_, 0)) {
            failed = Some(status);
            for &other in &running {
                let _ = kill(other, Signal::SIGKILL);
            }
        }
    }
    match failed {
        None => Ok(()),
        Some(WaitStatus::Signaled(_, sig, _)) => bail!("a child was killed by {sig}"),
        Some(other) => bail!("a child failed: {other:?}"),
    }
}
