//! The book's output conventions.
//!
//! Every output block starts with the command line that reproduces it, and ends its experiments with
//! **findings**: one line each, `finding: CLAIM — confirmed (EVIDENCE)` (or `REFUTED`, or
//! `not checked` when this machine cannot show it), computed from what the program observed.
//!
//! Values that honestly differ between runs are printed in forms the snapshot tests recognise and
//! redact (see `tests/support/redact.rs`): addresses as `0x…` hex, sizes read from the kernel in
//! `kB` (as `/proc` prints them), times with a unit (`ns`, `µs`, `ms`, `s`), rates in `GB/s`/`MB/s`,
//! ratios as `N.N×`, process ids as `pid N`. Sizes the program chose itself are printed with binary
//! units (`4 KiB`, `64 GiB`) by [`bytes`] and are compared exactly.

use std::fmt::Display;
use std::path::Path;

/// The name this program was started as (`virtual-memory`), for messages.
pub fn program_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|arg0| {
            Path::new(&arg0)
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "program".to_string())
}

/// Prints `$ cargo run --bin NAME -- ARGS`: the command that reproduces this output block.
pub fn banner() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("{}", crate::book::banner(&program_name(), &args));
}

/// Starts a titled part of an output block.
pub fn section(title: &str) {
    println!();
    println!("== {title}");
}

/// Prints a finding: the claim, whether this run confirmed it, and the evidence it was computed from.
pub fn finding(claim: &str, holds: bool, evidence: impl Display) {
    let verdict = if holds { "confirmed" } else { "REFUTED" };
    println!("finding: {claim} — {verdict} ({evidence})");
}

/// Prints a finding this machine cannot check, and why (for example: no root, no valgrind).
pub fn not_checked(claim: &str, why: impl Display) {
    println!("finding: {claim} — not checked ({why})");
}

/// A size the program chose, in the largest binary unit that divides it: `4 KiB`, `64 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n;
    let mut unit = 0;
    while unit + 1 < UNITS.len() && value >= 1024 && value % 1024 == 0 {
        value /= 1024;
        unit += 1;
    }
    format!("{value} {}", UNITS[unit])
}

/// A size measured on this machine, in kB (1024 bytes, as `/proc` prints it): varies, and is redacted.
pub fn kb(bytes: u64) -> String {
    format!("{} kB", bytes / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_the_largest_exact_unit() {
        assert_eq!(bytes(4096), "4 KiB");
        assert_eq!(bytes(64 << 30), "64 GiB");
        assert_eq!(bytes(1000), "1000 bytes");
        assert_eq!(bytes(6 * 1024 + 512), "6656 bytes");
    }

    #[test]
    fn arguments_with_spaces_are_quoted() {
        use crate::book::shell_quote;
        assert_eq!(shell_quote("--pages"), "--pages");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
