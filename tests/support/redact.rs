//! The one set of redactions every snapshot goes through.
//!
//! Chapter programs print values that honestly vary between runs in these forms, and only these
//! (see `chapters-src/common/output.rs`); everything else in an output is compared exactly, so a
//! finding that flips from `confirmed` to `REFUTED` fails the test.
//!
//! | printed as                 | what it is                                  | becomes        |
//! |----------------------------|---------------------------------------------|----------------|
//! | `0x7ffd5a3c1000`           | addresses, frame numbers                    | `[ADDR]`       |
//! | `pid 4242`                 | process ids                                 | `pid [PID]`    |
//! | `2.31 µs`, `15 ns`, `3 ms` | times (ns, µs, us, ms, s)                   | `[TIME]`       |
//! | `7.9 GB/s`, `850 MB/s`     | rates                                       | `[RATE]`       |
//! | `12.5×`                    | ratios                                      | `[RATIO]×`     |
//! | `1234 kB`                  | sizes read from the kernel                  | `[SIZE] kB`    |
//! | `97.3%`                    | percentages                                 | `[PCT]%`       |
//! | `1025 faults`              | page-fault counts                           | `[N] faults`   |
//! | `machine.KEY: VALUE`       | the build machine's settings (`machine`)    | `machine.KEY: [MACHINE]` |
//!
//! Then runs of spaces become one space: a table pads its columns to the width of values that
//! vary, so the padding varies with them.

use regex::Regex;

/// (pattern, replacement) pairs, applied in order.
pub const FILTERS: &[(&str, &str)] = &[
    (r"(?m)^(machine\.[^:\n]+): .*$", "$1: [MACHINE]"), // the `machine` program's report
    (r"vmbook-[A-Za-z0-9_]+-\d+-\d+", "vmbook-[TAG]-[PID]-[N]"), // shm/semaphore names
    (r"0x[0-9a-fA-F]+", "[ADDR]"),
    (r"\bpid \d+", "pid [PID]"),
    (r"\b\d+(?:\.\d+)? ?(?:[KMGT]i?B|B)/s\b", "[RATE]"),
    (r"\b\d+(?:\.\d+)? ?(?:ns|µs|us|ms|s)\b", "[TIME]"),
    (r"\b\d+(?:\.\d+)?×", "[RATIO]×"),
    (r"\b\d+ kB\b", "[SIZE] kB"),
    (r"\b\d+(?:\.\d+)?%", "[PCT]%"),
    (r"\b\d+ (minor |major |page )?faults?\b", "[N] ${1}faults"),
];

/// Applies every filter to `text`.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for (pattern, replacement) in FILTERS {
        out = Regex::new(pattern)
            .unwrap()
            .replace_all(&out, *replacement)
            .into_owned();
    }
    Regex::new(" {2,}")
        .unwrap()
        .replace_all(&out, " ")
        .into_owned()
}
