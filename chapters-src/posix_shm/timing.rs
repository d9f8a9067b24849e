//! How the pipeline's parent and child time themselves: CPU time from getrusage, and times printed
//! with a unit (redacted in snapshots).

use anyhow::{Context, Result};
use nix::sys::resource::{getrusage, UsageWho};
use std::time::Duration;

/// Time as the book prints it: with a unit, redacted in snapshots.
pub fn fmt_time(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.0} µs", ns / 1e3)
    }
}

pub fn cpu_time(who: UsageWho) -> Result<Duration> {
    let usage = getrusage(who).context("getrusage")?;
    let micros = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
    Ok(Duration::from_micros(
        micros(usage.user_time()) + micros(usage.system_time()),
    ))
}
