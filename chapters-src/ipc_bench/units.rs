//! How the appendix reads sizes and prints rates and percentiles (times: `vmbook::measure::time`).

/// Parses `4096`, `64K`, `8M`, `1G` (binary units; `KiB`, `MiB`, `GiB` work too).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return Err(format!("`{text}`: unknown unit (use K, M or G)")),
    };
    let n: usize = number
        .parse()
        .map_err(|_| format!("`{text}`: not a size such as 4096, 64K or 1G"))?;
    n.checked_mul(1 << shift)
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("`{text}`: must be between 1 byte and the address space"))
}

/// A rate in GB/s (10^9 bytes per second, as network and memory rates are quoted).
pub fn gbps(bytes_per_second: f64) -> String {
    format!("{:.2} GB/s", bytes_per_second / 1e9)
}

/// Median and 99th percentile (nearest rank) of nanosecond samples.
pub fn percentiles(samples: &mut [f64]) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at =
        |q: f64| samples[((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1];
    (at(0.5), at(0.99))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentiles(&mut v), (50.0, 99.0));
        assert_eq!(percentiles(&mut [7.0]), (7.0, 7.0));
    }
}
