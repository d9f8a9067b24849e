//! How the pipeline's parent and child print the times they measured (CPU time comes from
//! `vmbook::measure::cpu_time`).

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
