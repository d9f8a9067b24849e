//! Every program run the book embeds, run again as an unprivileged user.
//!
//! Readers are rarely root. This test finds every `<!-- cmdrun ... -->` directive in `book/` (the
//! same list `book_outputs.rs` snapshots, so chapters added later are covered without editing this
//! file) and runs each binary with its arguments as user `nobody`, through
//! `setpriv --reuid=nobody --regid=nogroup --clear-groups`. Changing the uid from 0 drops every
//! capability, so the programs see what an ordinary user sees: among other things, physical frame
//! numbers in `/proc/self/pagemap` read as 0 (hidden without CAP_SYS_ADMIN since Linux 4.2).
//!
//! Each run must exit 0, never panic, print no `REFUTED` finding and leave nothing in /dev/shm. A
//! program whose accepted snapshot shows frame numbers (its output mentions frames or PFNs and holds
//! hex values) must, as `nobody`, say so with a `not checked` finding, and must never print a zero
//! frame number as if it were real.
//!
//! A run that fails only with "Permission denied" on a path inside the project tree is reported as
//! not checked: the checkout belongs to root on the machine that runs this test, while a reader
//! owns theirs.
//!
//! The test needs root to drop privileges, and `nobody` must be able to reach target/; without
//! root, without `setpriv`, or with target/ out of reach, it prints why and passes without checking
//! anything.
//!
//! The runs go one at a time, as in `book_outputs.rs`: the programs measure timings, and two at
//! once would measure each other.

mod support;

use regex::Regex;
use std::time::Instant;
use support::{binary, directives, fresh_tag, leftovers, root, runner, PROGRAM_LIMIT};

/// Whether a failed run failed only because `nobody` may not write into the project tree, which
/// belongs to root here. A reader owns their checkout, so that is this machine's problem, not the
/// program's: the run is reported as not checked instead of failing the test.
fn blocked_by_checkout_owner(stderr: &str) -> bool {
    let project = root().to_string_lossy().into_owned();
    !stderr.contains("panicked")
        && stderr
            .lines()
            .any(|line| line.contains(&project) && line.contains("Permission denied"))
}

/// Whether the accepted snapshot of a directive shows physical frame numbers.
fn snapshot_shows_frames(snapshot_name: &str) -> bool {
    let path = root().join(format!("tests/snapshots/{snapshot_name}.snap"));
    let Ok(text) = std::fs::read_to_string(path) else {
        return false; // no accepted output yet: nothing to compare with
    };
    let mentions = Regex::new(r"(?i)\b(pfns?|frames?)\b").unwrap();
    mentions.is_match(&text) && text.contains("[ADDR]")
}

#[test]
fn every_directive_runs_as_nobody() {
    if let Some(why) = support::cannot_run_as_nobody() {
        println!("non_root: not checked: {why}");
        return;
    }
    let zero_frame = Regex::new(r"(?i)\b(pfn|frame)\b.*\b0x0+\b").unwrap();
    let refuted = Regex::new(r"(?m)^finding: .* — REFUTED").unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let mut failures = Vec::new();
    let mut runs = 0;
    for directive in directives() {
        let Ok((bin, args)) = &directive.parsed else {
            continue; // book_outputs.rs reports malformed directives
        };
        let name = directive.snapshot_name();
        if !seen.insert(name.clone()) {
            continue;
        }
        runs += 1;
        let tag = fresh_tag();
        let start = Instant::now();
        let output = match runner::run(
            support::as_nobody(&binary(bin))
                .args(args)
                .current_dir(root().join("book"))
                .env("VMBOOK_RUN_TAG", &tag),
            PROGRAM_LIMIT,
        ) {
            Ok(output) => output,
            Err(why) => {
                failures.push(format!(
                    "{} (`{bin}`), as nobody: {why}",
                    directive.location()
                ));
                continue;
            }
        };
        let (stdout, stderr) = (&output.stdout, &output.stderr);
        println!(
            "non_root: {name}: {} in {:.2} s",
            output.status,
            start.elapsed().as_secs_f64()
        );
        let mut problems = Vec::new();
        if !output.status.success() && blocked_by_checkout_owner(stderr) {
            println!(
                "non_root: {name}: not checked: it writes into the project tree, which user \
                 nobody may not write here: {}",
                stderr.trim()
            );
            continue;
        }
        if !output.status.success() {
            problems.push(format!("exited with {}", output.status));
        }
        if stderr.contains("panicked") {
            problems.push("panicked".to_string());
        }
        if let Some(line) = refuted.find(stdout) {
            problems.push(format!("a finding was refuted: {}", line.as_str()));
        }
        let left = leftovers(&tag);
        if !left.is_empty() {
            problems.push(format!("left in /dev/shm: {left:?}"));
        }
        if let Some(line) = stdout.lines().find(|l| zero_frame.is_match(l)) {
            problems.push(format!("prints a zero frame number as if real: {line}"));
        }
        if snapshot_shows_frames(&name) && !stdout.contains("not checked") {
            problems.push(
                "shows frame numbers as root, but as nobody gives no `not checked` finding \
                 explaining why they are hidden"
                    .to_string(),
            );
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{} (`{bin} {}`), as nobody: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
                directive.location(),
                args.join(" "),
                problems.join("; ")
            ));
        }
    }
    assert!(runs > 0, "no directive found under book/");
    assert!(
        failures.is_empty(),
        "{} of {runs} directives fail without root:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
