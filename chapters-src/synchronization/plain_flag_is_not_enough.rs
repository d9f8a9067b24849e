//! Why a plain flag is not enough: a child waits for its parent's flag with three kinds of load.

use crate::children::{fork_guarded, until_set};
use crate::shared::Shared;
use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use vmbook::process::wait_child;
use vmbook::{cleanup, finding, section};

#[repr(C)]
struct FlagPage {
    flag: AtomicU32,
    waiting: AtomicU32,
    data: AtomicU64,
    data_seen: AtomicU64, // what the child read from `data` after it saw the flag
}

/// What one waiting child did: left its loop by itself (and read what from `data`), or was killed
/// while the flag read 1 in the shared page.
enum Outcome {
    SawFlag { data: u64 },
    Killed { flag_in_memory: u32 },
}

// ANCHOR: wait_plain
/// Seed 001's loop, `while (shared->data_ready == 0) ;`, as an ordinary (non-atomic) load.
/// Another process writes the flag, which is a data race: undefined behavior in C and in Rust. The
/// optimizer assumes nobody else writes it, so it may load it once, before the loop.
///
/// # Safety
///
/// `flag` points to a `u32` that stays mapped while the loop runs. (Even then the loop is not
/// sound when another process writes the flag: that is the bug shown.)
#[inline(never)]
unsafe fn wait_plain(flag: *const u32) {
    // SAFETY: not sound, deliberately: this is the bug the experiment shows.
    while unsafe { flag.read() } == 0 {}
}

/// The same loop with a volatile load: the compiler must load the flag every time round.
///
/// # Safety
///
/// As for [`wait_plain`].
#[inline(never)]
unsafe fn wait_volatile(flag: *const u32) {
    // SAFETY: `flag` points into the shared page; a volatile load is still a race, but the compiler
    // keeps it.
    while unsafe { flag.read_volatile() } == 0 {}
}

/// The fix: an atomic load with Acquire ordering, paired with the writer's Release store.
#[inline(never)]
fn wait_acquire(flag: &AtomicU32) {
    while flag.load(Ordering::Acquire) == 0 {}
}
// ANCHOR_END: wait_plain

#[derive(Clone, Copy, PartialEq)]
enum Load {
    Plain,
    Volatile,
    Acquire,
}

/// Forks a child that waits for the flag with `load`, then reads the data published with it.
fn one_flag_run(load: Load, timeout: Duration) -> Result<Outcome> {
    let page = Shared::<FlagPage>::new()?;
    let child = fork_guarded(|| {
        page.waiting.store(1, Ordering::Release);
        // SAFETY: the flag lives in the shared page, mapped until this child exits.
        match load {
            Load::Plain => unsafe { wait_plain(page.flag.as_ptr()) },
            Load::Volatile => unsafe { wait_volatile(page.flag.as_ptr()) },
            Load::Acquire => wait_acquire(&page.flag),
        }
        let data = page.data.load(Ordering::Relaxed);
        page.data_seen.store(data, Ordering::Release);
        0
    })?;
    // ANCHOR: publish
    until_set(&page.waiting, child)?;
    std::thread::sleep(Duration::from_millis(5)); // the child is in its loop by now

    // The payload, then the flag that publishes it: whoever sees the 1 with an Acquire load
    // also sees everything this process wrote before its Release store.
    page.data.store(42, Ordering::Relaxed);
    page.flag.store(1, Ordering::Release);
    // ANCHOR_END: publish
    if load == Load::Plain {
        vmbook::pause::here(
            "the flag is 1 in shared memory, yet the child still spins (state R, CPU time growing)",
            &["ps -o pid,stat,time,cmd --ppid PID"],
        );
    }
    Ok(match wait_or_kill(child, timeout)? {
        Some(WaitStatus::Exited(_, 0)) => Outcome::SawFlag {
            data: page.data_seen.load(Ordering::Acquire),
        },
        Some(other) => bail!("the waiting child ended unexpectedly: {other:?}"),
        None => Outcome::Killed {
            flag_in_memory: page.flag.load(Ordering::Acquire),
        },
    })
}

/// How a waiter's outcome reads in a finding's evidence.
fn evidence(who: &str, outcome: &Outcome, timeout_ms: u64) -> String {
    match outcome {
        Outcome::SawFlag { data } => {
            format!("the {who} waiter left its loop and read data = {data}")
        }
        Outcome::Killed { flag_in_memory } => format!(
            "the flag read {flag_in_memory} in shared memory, and the {who} waiter was still \
             spinning {timeout_ms} ms later"
        ),
    }
}

pub fn plain_flag_is_not_enough(timeout_ms: u64) -> Result<()> {
    section("A child spins until its parent sets a flag in shared memory");
    let timeout = Duration::from_millis(timeout_ms);
    println!(
        "the parent stores data = 42, then sets the flag, 5 ms after the child starts waiting,"
    );
    println!("and kills the child if it is still spinning {timeout_ms} ms later");
    let mut seen = Vec::new();
    for (load, label) in [
        (Load::Plain, "plain load (seed 001's int flag)"),
        (Load::Volatile, "volatile load (seed 001's advice)"),
        (Load::Acquire, "atomic Acquire load"),
    ] {
        let outcome = one_flag_run(load, timeout)?;
        let shown = match &outcome {
            Outcome::Killed { flag_in_memory } => format!(
                "still spinning after {timeout_ms} ms (flag in memory: {flag_in_memory}): killed"
            ),
            Outcome::SawFlag { data: 42 } => "saw the flag, and the data written before it".into(),
            Outcome::SawFlag { data } => {
                format!("saw the flag, but NOT the data written before it (read {data})")
            }
        };
        println!("{label:<36} {shown}");
        seen.push(outcome);
    }
    finding(
        "with a plain load the optimizer hoists the flag out of the loop: the waiter never sees it change",
        matches!(seen[0], Outcome::Killed { flag_in_memory: 1 }),
        evidence("plain-load", &seen[0], timeout_ms),
    );
    finding(
        "a volatile load sees the flag change",
        matches!(seen[1], Outcome::SawFlag { .. }),
        evidence("volatile-load", &seen[1], timeout_ms),
    );
    finding(
        "an Acquire load sees the flag and the data the Release store published",
        matches!(seen[2], Outcome::SawFlag { data: 42 }),
        evidence("Acquire", &seen[2], timeout_ms),
    );
    Ok(())
}

/// Waits up to `timeout` for a child to exit; kills (SIGKILL) and reaps it if it has not.
/// Returns how it ended by itself, or `None` when it had to be killed.
fn wait_or_kill(pid: Pid, timeout: Duration) -> Result<Option<WaitStatus>> {
    let start = Instant::now();
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)).with_context(|| format!("waitpid({pid})"))? {
            WaitStatus::StillAlive => {}
            status => {
                cleanup::untrack_child(pid.as_raw());
                return Ok(Some(status));
            }
        }
        if start.elapsed() >= timeout {
            kill(pid, Signal::SIGKILL).with_context(|| format!("kill({pid}, SIGKILL)"))?;
            wait_child(pid)?;
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
