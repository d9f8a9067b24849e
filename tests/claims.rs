//! `cargo run --bin claims` answers "does my machine agree with the book?": it must find every
//! directive the tests find, run them all, and end with a summary line of a fixed form; on the
//! machine that checks the book, every claim holds and it exits 0. Its programs run through the
//! same `scripts/cargo-shim` as the tests' book build, so the outputs it checks are the ones the
//! built book shows.

mod support;

use regex::Regex;
use std::process::Command;
use std::time::Duration;

#[test]
fn claims_runs_every_directive_and_this_machine_agrees() {
    let output = support::runner::run(
        Command::new(support::binary("claims"))
            .current_dir(support::root())
            // The directives run as in the tests' book build: this test run's binaries, each
            // program once (an output it already printed in this environment is reused).
            .envs(support::shim_environment()),
        Duration::from_secs(600),
    )
    .expect("claims");
    let (stdout, stderr) = (&output.stdout, &output.stderr);
    assert!(
        output.status.success(),
        "claims exited with {}: some claim was refuted or a program failed on this machine\n\
         stdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );

    // Every directive the snapshot tests know, at the same place in the book.
    for directive in support::directives() {
        let location = format!("({})", directive.location());
        assert!(
            stdout.lines().any(|l| l.ends_with(&location)),
            "claims did not run the directive at {}\n{stdout}",
            directive.location()
        );
    }

    let summary = Regex::new(
        r"^summary: (\d+) confirmed, (\d+) refuted, (\d+) not checked; on \S+ \S+ \(\S+\), page size \d+ (?:KiB|MiB), (?:root|not root), \d+ CPUs?$",
    )
    .unwrap();
    let last = stdout.lines().last().unwrap_or("");
    let caps = summary
        .captures(last)
        .unwrap_or_else(|| panic!("last line is not the summary: {last:?}\n{stdout}"));
    let confirmed: usize = caps[1].parse().unwrap();
    let refuted: usize = caps[2].parse().unwrap();
    let not_checked: usize = caps[3].parse().unwrap();
    assert_eq!(refuted, 0, "{stdout}");
    assert!(confirmed > 0, "no claim confirmed at all:\n{stdout}");
    // The tally is the findings listed above it.
    let listed = |verdict: &str| {
        stdout
            .lines()
            .filter(|l| l.starts_with(&format!("  {verdict} ")))
            .count()
    };
    assert_eq!(listed("confirmed"), confirmed, "{stdout}");
    assert_eq!(listed("not checked"), not_checked, "{stdout}");
    println!("{last}");
}
