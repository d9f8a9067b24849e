//! Seed 002 run many times: the parent writes a greeting after fork, the child reads it at once.
//! How often is the child first?

use anyhow::{ensure, Result};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use vmbook::process::{fork_child, wait_exit_code};
use vmbook::procinfo::page_size;
use vmbook::{finding, section, Mapping};

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

pub fn child_can_read_first(runs: u32, widen_us: u64) -> Result<()> {
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
            "{label}: of {runs} runs, the child read nothing in {}, part of the greeting in {}, \
             all of it in {}",
            pct(seen[0], runs),
            pct(seen[1], runs),
            pct(seen[2], runs)
        );
    }
    let evidence = format!(
        "empty in {} of {runs} runs as written, in {} with the window widened",
        pct(empty[0], runs),
        pct(empty[1], runs)
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
