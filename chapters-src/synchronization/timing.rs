//! Clocks that every process reads alike, and how the experiments print what they measured.

use nix::time::{clock_gettime, ClockId};
use std::time::Duration;

/// CLOCK_MONOTONIC in nanoseconds: the same clock in every process, so a timestamp taken in one
/// process can be compared with one taken in another.
pub fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC exists on Linux");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// CPU time (user + system) this process has used so far, in nanoseconds (the library's cpu_time).
pub fn cpu_ns() -> u64 {
    let cpu = vmbook::measure::cpu_time().expect("getrusage(RUSAGE_SELF) cannot fail");
    cpu.as_nanos() as u64
}

/// A time in the unit that suits it: `850 ns`, `12.3 µs`, `4.56 ms`.
pub fn time(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

pub fn ratio(a: f64, b: f64) -> String {
    format!("{:.1}×", a / b.max(1.0))
}

/// `part` as a percentage of `whole`, with as many decimals as it takes never to print a part that
/// is neither none nor all of it as `0%` or `100%`.
pub fn percent(part: u64, whole: u64) -> String {
    if part == 0 || whole == 0 {
        return "0%".into();
    }
    if part >= whole {
        return "100%".into();
    }
    let p = 100.0 * part as f64 / whole as f64;
    for decimals in 1..9 {
        let shown = format!("{p:.decimals$}");
        let value: f64 = shown.parse().unwrap_or(p);
        if value > 0.0 && value < 100.0 {
            return format!("{shown}%");
        }
    }
    format!("{p}%")
}

pub fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// An absolute CLOCK_REALTIME deadline `d` from now, as sem_timedwait and pthread_mutex_timedlock
/// want it.
pub fn deadline(d: Duration) -> libc::timespec {
    let now = clock_gettime(ClockId::CLOCK_REALTIME).expect("CLOCK_REALTIME exists on Linux");
    let ns = now.tv_nsec() as u64 + d.subsec_nanos() as u64;
    libc::timespec {
        tv_sec: now.tv_sec() + d.as_secs() as libc::time_t + (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    }
}
