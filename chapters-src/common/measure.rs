//! How the chapters count page faults and time work: touch every page, count the minor faults and
//! the time a piece of work takes, and judge a fault count against the number of pages; and the
//! one way every chapter prints a time ([`time`]), so that its numbers read the same everywhere.

use crate::procinfo::{page_faults, page_size};
use crate::Mapping;
use anyhow::{Context, Result};
use std::time::{Duration, Instant};

// ANCHOR: touch_each_page
/// Writes one byte into every page of `region`: the smallest access that needs each page in RAM.
pub fn touch_each_page(region: &mut Mapping, value: u8) {
    for byte in region.bytes_mut().iter_mut().step_by(page_size()) {
        // SAFETY: `byte` is a valid, exclusive reference into the mapping. A volatile write is
        // never optimized away, so every page really is written.
        unsafe { std::ptr::write_volatile(byte, value) };
    }
}
// ANCHOR_END: touch_each_page

// ANCHOR: measure
/// Runs `work` and returns the minor page faults it took (getrusage) and how long it took.
pub fn measure(work: impl FnOnce()) -> Result<(i64, Duration)> {
    let before = page_faults()?.0;
    let start = Instant::now();
    work();
    let time = start.elapsed();
    Ok((page_faults()?.0 - before, time))
}
// ANCHOR_END: measure

/// The CPU time (user + system) this process has used so far, from `getrusage(RUSAGE_SELF)`:
/// what polling costs, next to the wall time it waits. Microsecond resolution.
pub fn cpu_time() -> Result<Duration> {
    use nix::sys::resource::{getrusage, UsageWho};
    let usage = getrusage(UsageWho::RUSAGE_SELF).context("getrusage")?;
    let micros = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
    Ok(Duration::from_micros(
        micros(usage.user_time()) + micros(usage.system_time()),
    ))
}

/// Below this many pages, a pass takes a few microseconds: too short to compare times reliably.
pub const TIMED_PAGES: usize = 64;

/// Whether `faults` is one per page: to within a tenth, plus at most 8 that the program takes
/// elsewhere (its own stack and heap; a forked child copies those too).
pub fn one_per_page(faults: i64, pages: usize) -> bool {
    let (faults, pages) = (faults as f64, pages as f64);
    faults >= pages * 0.9 && faults <= pages * 1.1 + 8.0
}

/// A time in the unit that suits it (ns, µs, ms, s), to three significant figures: `850 ns`,
/// `35.2 ns`, `6.12 µs`, `123 µs`, `2.34 ms`, `1.50 s`. Every chapter prints times this one way.
pub fn time(ns: f64) -> String {
    let units = [("ns", 1.0), ("µs", 1e3), ("ms", 1e6), ("s", 1e9)];
    // The smallest unit in which the value, rounded to three figures, stays below 1000.
    let (unit, scale) = units
        .iter()
        .copied()
        .find(|&(_, scale)| ns / scale < 999.5)
        .unwrap_or(units[units.len() - 1]);
    let value = ns / scale;
    let decimals = if value < 9.995 {
        2
    } else if value < 99.95 {
        1
    } else {
        0
    };
    format!("{value:.decimals$} {unit}")
}

/// A duration, as [`time`] prints it.
pub fn duration(elapsed: Duration) -> String {
    time(elapsed.as_nanos() as f64)
}

/// A time per item (`per(elapsed, 1)` for the whole time), as [`time`] prints it.
pub fn per(elapsed: Duration, items: usize) -> String {
    time(elapsed.as_nanos() as f64 / items.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_take_the_unit_that_suits_them() {
        assert_eq!(time(850.4), "850 ns");
        assert_eq!(time(35.24), "35.2 ns");
        assert_eq!(time(6_120.0), "6.12 µs");
        assert_eq!(time(123_400.0), "123 µs");
        assert_eq!(time(2_340_000.0), "2.34 ms");
        assert_eq!(time(1.5e9), "1.50 s");
        assert_eq!(time(7.2e12), "7200 s");
        // Rounding never prints 1000 of a unit: it moves to the next.
        assert_eq!(time(999.7), "1.00 µs");
        assert_eq!(duration(Duration::from_millis(12)), "12.0 ms");
        assert_eq!(per(Duration::from_micros(3), 3), "1.00 µs");
        assert_eq!(per(Duration::from_nanos(10), 0), "10.0 ns");
    }

    #[test]
    fn one_per_page_allows_a_tenth_and_eight() {
        assert!(one_per_page(1024, 1024));
        assert!(one_per_page(1024 + 102 + 8, 1024));
        assert!(!one_per_page(1024 + 102 + 9, 1024));
        assert!(!one_per_page(900, 1024));
        assert!(one_per_page(9, 1));
    }
}
