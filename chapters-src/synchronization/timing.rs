//! How the chapter's experiments summarize what they measured (times: `vmbook::measure::time`;
//! clocks: `vmbook::clock`).

/// CPU time (user + system) this process has used so far, in nanoseconds (the library's cpu_time).
pub fn cpu_ns() -> u64 {
    let cpu = vmbook::measure::cpu_time().expect("getrusage(RUSAGE_SELF) cannot fail");
    cpu.as_nanos() as u64
}

/// `a / b` as `3.2×`. A `b` of zero (a count of whole µs that came out as none) divides as 1, so
/// that the line stays readable; any other `b`, fractions of a unit included, divides as it is.
pub fn ratio(a: f64, b: f64) -> String {
    let b = if b > 0.0 { b } else { 1.0 };
    format!("{:.1}×", a / b)
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
