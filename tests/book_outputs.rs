//! Snapshot tests over every program run the book embeds.
//!
//! The list of tests *is* the list of `<!-- cmdrun ... -->` directives in `book/`: each becomes one
//! test, named after its snapshot, that runs the chapter binary with the directive's arguments,
//! checks that it succeeded and left nothing in /dev/shm, and compares its redacted output with
//! `tests/snapshots/NAME.snap`. A directive of any other form is a failing test naming its line.
//!
//! The runs go one at a time: chapter programs measure timings and races, and two of them at once
//! on a small machine would measure each other.
//!
//! Review changed outputs with `cargo insta review`; in CI, insta never writes snapshots.

mod support;

use libtest_mimic::{Arguments, Failed, Trial};
use std::collections::BTreeMap;
use support::{directives, fresh_tag, leftovers, redact::redact, run, Directive};

fn main() {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        args.test_threads = Some(1);
    }
    let mut trials = Vec::new();
    let mut seen = BTreeMap::new();
    for directive in directives() {
        match &directive.parsed {
            Err(why) => {
                let name = format!("directive-form::{}", directive.location());
                let message = format!(
                    "{}: `<!-- cmdrun {} -->` is {why}",
                    directive.location(),
                    directive.text
                );
                trials.push(Trial::test(name, move || Err(message.into())));
            }
            Ok(_) => {
                // The same command shown twice in one chapter is one run and one snapshot.
                let name = directive.snapshot_name();
                if seen.insert(name.clone(), ()).is_none() {
                    trials.push(Trial::test(name, move || check(&directive)));
                }
            }
        }
    }
    if trials.is_empty() {
        trials.push(Trial::test("book-has-directives", || {
            Err("no cmdrun directive found under book/".into())
        }));
    }
    libtest_mimic::run(&args, trials).exit();
}

fn check(directive: &Directive) -> Result<(), Failed> {
    let (bin, args) = directive.parsed.as_ref().unwrap();
    let tag = fresh_tag();
    let output = run(bin, args, &tag);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!(
            "{}: `{bin}` exited with {} (the book build would show a cmdrun error)\nstdout:\n{stdout}\nstderr:\n{stderr}",
            directive.location(),
            output.status
        )
        .into());
    }
    if stdout.trim().is_empty() {
        return Err(format!("{}: `{bin}` printed nothing", directive.location()).into());
    }
    let left = leftovers(&tag);
    if !left.is_empty() {
        return Err(format!("{}: left in /dev/shm: {left:?}", directive.location()).into());
    }
    let name = directive.snapshot_name();
    let snapshot = redact(&stdout);
    let result = std::panic::catch_unwind(|| {
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(support::root().join("tests/snapshots"));
        settings.set_prepend_module_to_snapshot(false);
        settings.set_description(format!(
            "{}: cargo run -q --bin {bin} -- {}",
            directive.file.display(),
            args.join(" ")
        ));
        settings.set_omit_expression(true);
        settings.bind(|| insta::assert_snapshot!(name.as_str(), snapshot));
    });
    result.map_err(|panic| {
        let text = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Failed::from(format!(
            "{}: output of `{bin}` differs from its snapshot `{name}`; if the prose still holds, \
             run `cargo insta review`\n{text}",
            directive.location()
        ))
    })
}
