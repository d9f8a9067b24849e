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
}

// ANCHOR: wait_plain
/// Seed 001's loop, `while (shared->data_ready == 0) ;`, as an ordinary (non-atomic) load.
/// Another process writes the flag, which is a data race: undefined behavior in C and in Rust. The
/// optimizer assumes nobody else writes it, so it may load it once, before the loop.
#[inline(never)]
fn wait_plain(flag: *const u32) {
    // SAFETY: not sound, deliberately: this is the bug the experiment shows.
    while unsafe { flag.read() } == 0 {}
}

/// The same loop with a volatile load: the compiler must load the flag every time round.
#[inline(never)]
fn wait_volatile(flag: *const u32) {
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

/// Forks a child that waits for the flag with `load`, then checks the data published with it.
/// Returns whether the child saw the flag (and the right data) before the timeout.
fn one_flag_run(load: Load, timeout: Duration) -> Result<(bool, bool)> {
    let page = Shared::<FlagPage>::new()?;
    let child = fork_guarded(|| {
        page.waiting.store(1, Ordering::Release);
        match load {
            Load::Plain => wait_plain(page.flag.as_ptr()),
            Load::Volatile => wait_volatile(page.flag.as_ptr()),
            Load::Acquire => wait_acquire(&page.flag),
        }
        // Exit code 0: the data written before the flag was there when the flag was seen.
        i32::from(page.data.load(Ordering::Acquire) != 42)
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
        Some(WaitStatus::Exited(_, code)) => (true, code == 0),
        Some(WaitStatus::Signaled(_, sig, _)) => bail!("the waiting child was killed by {sig}"),
        Some(other) => bail!("the waiting child ended unexpectedly: {other:?}"),
        None => (false, false),
    })
}

pub fn plain_flag_is_not_enough(timeout_ms: u64) -> Result<()> {
    section("A child spins until its parent sets a flag in shared memory");
    let timeout = Duration::from_millis(timeout_ms);
    println!("the parent sets the flag 5 ms after the child starts waiting, and kills the child");
    println!("if it is still spinning {timeout_ms} ms later");
    let mut seen = Vec::new();
    for (load, label) in [
        (Load::Plain, "plain load (seed 001's int flag)"),
        (Load::Volatile, "volatile load (seed 001's advice)"),
        (Load::Acquire, "atomic Acquire load"),
    ] {
        let (saw, data_ok) = one_flag_run(load, timeout)?;
        let outcome = match (saw, data_ok) {
            (false, _) => format!("still spinning after {timeout_ms} ms: killed"),
            (true, true) => "saw the flag, and the data written before it".to_string(),
            (true, false) => "saw the flag, but NOT the data written before it".to_string(),
        };
        println!("{label:<36} {outcome}");
        seen.push((saw, data_ok));
    }
    finding(
        "with a plain load the optimizer hoists the flag out of the loop: the waiter never sees it change",
        !seen[0].0,
        format!("plain-load waiter still spinning after {timeout_ms} ms"),
    );
    finding(
        "a volatile load sees the flag change",
        seen[1].0,
        "the volatile-load waiter exited",
    );
    finding(
        "an Acquire load sees the flag and the data the Release store published",
        seen[2] == (true, true),
        "the Acquire waiter exited and read 42",
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
