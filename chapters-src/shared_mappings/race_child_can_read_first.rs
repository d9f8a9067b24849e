//! Seed 002 run many times: the parent writes a greeting after fork, the child reads it at once.
//! How often is the child first, and what decides it?

use anyhow::{bail, ensure, Context, Result};
use std::process::Stdio;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use vmbook::process::{fork_child, spawn_tracked_ending_with, wait_exit_code, wait_spawned};
use vmbook::procinfo::page_size;
use vmbook::{finding, section, Mapping};

const GREETING: &[u8] = b"Hello, child process!";
/// What the child read: nothing, part of the greeting, all of it.
const OUTCOMES: [&str; 3] = ["empty", "part", "all"];

/// The first bytes of a shared page, read and written one atomic byte at a time: the two processes
/// race on purpose, and atomics keep that race defined (a torn read is possible, garbage is not).
fn greeting_bytes(region: &Mapping) -> &[AtomicU8] {
    // SAFETY: the mapping is at least one page, lives as long as the borrow, and AtomicU8 has the
    // layout of u8; every access to these bytes in both processes goes through this slice.
    unsafe { std::slice::from_raw_parts(region.as_ptr() as *const AtomicU8, GREETING.len()) }
}

// ANCHOR: race_child_can_read_first
/// Seed 002's body: a fresh shared page, fork, the child reads at once, the parent writes.
/// `pause` stands for anything that delays the parent between fork and its write.
fn seed_002(pause: Duration) -> Result<usize> {
    let region = Mapping::shared(page_size())?; // fresh, never touched, as in the seed
    let buffer = greeting_bytes(&region);
    let child = fork_child(|| {
        let read: Vec<u8> = buffer.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        match read.iter().position(|&b| b == 0) {
            Some(0) => 0,               // empty: the parent had not written yet
            _ if read == GREETING => 2, // the whole greeting
            _ => 1,                     // part of it: caught in the middle of the copy
        }
    })?;
    std::thread::sleep(pause); // zero: no pause at all
    for (cell, &byte) in buffer.iter().zip(GREETING) {
        cell.store(byte, Ordering::Relaxed);
    }
    let outcome = wait_exit_code(child)?;
    ensure!((0..3).contains(&outcome), "the child failed");
    Ok(outcome as usize)
}

/// The seed as it is run from a shell: a new process each time (this program, started again),
/// which maps, forks and writes soon after it starts; `nap` first sleeps just before the fork.
fn seed_002_in_a_new_process(nap: Duration) -> Result<usize> {
    let mut command =
        vmbook::chapter::child_command("seed-002", &["--nap-us", &nap.as_micros().to_string()])?;
    // As a subreaper, this process inherits the seed's forked child if the new process is killed
    // before reaping it, and reaps it below: no zombie is left to the shell.
    nix::sys::prctl::set_child_subreaper(true).context("prctl(PR_SET_CHILD_SUBREAPER)")?;
    // An interrupting signal ends that process with SIGTERM: its own handler then kills and reaps
    // the seed's child before it dies (SIGKILL would orphan that child).
    let child = spawn_tracked_ending_with(command.stdout(Stdio::piped()), libc::SIGTERM)?;
    let output = wait_spawned(child)?;
    if !output.status.success() {
        while nix::sys::wait::waitpid(None, None).is_ok() {}
    }
    let said = String::from_utf8_lossy(&output.stdout);
    match OUTCOMES.iter().position(|o| *o == said.trim()) {
        Some(outcome) if output.status.success() => Ok(outcome),
        _ => bail!(
            "`child seed-002` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}
// ANCHOR_END: race_child_can_read_first

/// `shared-mappings child seed-002`: one run of the seed in this fresh process; prints the outcome.
pub fn seed_002_child(nap_us: u64) -> Result<()> {
    std::thread::sleep(Duration::from_micros(nap_us));
    println!("{}", OUTCOMES[seed_002(Duration::ZERO)?]);
    Ok(())
}

pub fn race_child_can_read_first(runs: u32, pause_us: u64) -> Result<()> {
    section("Seed 002, run many times: what did the child read?");
    let pause = Duration::from_micros(pause_us);
    let ways: [(String, &dyn Fn() -> Result<usize>); 4] = [
        ("as the seed runs, a new process each time".into(), &|| {
            seed_002_in_a_new_process(Duration::ZERO)
        }),
        (
            format!(
                "a new process each time, asleep {} before fork",
                fmt_us(pause_us)
            ),
            &|| seed_002_in_a_new_process(pause),
        ),
        (
            "one process forking again and again (each fork after a waitpid)".into(),
            &|| seed_002(Duration::ZERO),
        ),
        (
            format!(
                "the same, the parent pausing {} after fork",
                fmt_us(pause_us)
            ),
            &|| seed_002(pause),
        ),
    ];
    let mut empty = [0u32; 4];
    for (row, (label, way)) in ways.iter().enumerate() {
        let mut seen = [0u32; 3];
        for _ in 0..runs {
            seen[way().with_context(|| label.clone())?] += 1;
        }
        empty[row] = seen[0];
        println!(
            "{label}: of {runs} runs, the child read nothing in {}, part of the greeting in {}, \
             all of it in {}",
            pct(seen[0], runs),
            pct(seen[1], runs),
            pct(seen[2], runs)
        );
    }
    let [fresh, napped, looped, paused] = empty;
    let evidence = format!(
        "empty in {} of {runs} new processes, {} after a nap, {} in the loop, {} with the pause",
        pct(fresh, runs),
        pct(napped, runs),
        pct(looped, runs),
        pct(paused, runs)
    );
    finding(
        "the child can read the buffer before the parent has written it",
        empty.iter().any(|&e| e > 0),
        &evidence,
    );
    // The rows of a parent that had just slept (napped, looped) are not compared with the first
    // in a finding: how often a new process's child reads first swings with the machine's load
    // (0-3 in 50 on a quiet machine, many more on a busy one), so no verdict would hold from one
    // run to the next. The prose reads the rows instead.
    finding(
        "pausing the parent between fork and its write makes the early read more frequent",
        paused > looped,
        evidence,
    );
    Ok(())
}

/// `n` as a share of `runs`: `7%`, or `0.3%` when it is not a whole percent.
fn pct(n: u32, runs: u32) -> String {
    let share = f64::from(n) * 100.0 / f64::from(runs.max(1));
    if share.fract() == 0.0 {
        format!("{share:.0}%")
    } else {
        format!("{share:.1}%")
    }
}

fn fmt_us(us: u64) -> String {
    if us % 1000 == 0 {
        format!("{} ms", us / 1000)
    } else {
        format!("{us} µs")
    }
}
