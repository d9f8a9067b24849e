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
use support::{directives, environment, fresh_tag, leftovers, redact::redact, run, Directive};

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
    let output = run(bin, args, &tag).map_err(|why| format!("{}: {why}", directive.location()))?;
    let (stdout, stderr) = (&output.stdout, &output.stderr);
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
    let snapshot = redact(stdout);
    log_findings(&name, stdout);
    let dir = environment::snapshot_dir();
    let machine = environment::differences();
    let envs = environment::environments();
    let recording = std::env::var_os("VMBOOK_RECORD_VARIANTS").is_some();
    let compared_with = match environment::expectation(&envs, &dir, &name, &machine) {
        environment::Expectation::Exact(accepted) => {
            let same = environment::snapshot_content(&dir, &accepted).as_deref()
                == Some(snapshot.as_str());
            if recording && !same && !machine.is_empty() {
                format!("{name}@{}", environment::join_tags(&machine))
            } else {
                accepted
            }
        }
        environment::Expectation::FindingsOnly(why) => {
            if recording {
                // A configuration being recorded keeps a variant only where its output differs.
                if environment::snapshot_content(&dir, &name).as_deref() == Some(snapshot.as_str())
                {
                    name.clone()
                } else {
                    format!("{name}@{}", environment::join_tags(&machine))
                }
            } else {
                let problems = environment::findings_check(&envs, &dir, &name, &machine, &snapshot);
                if problems.is_empty() {
                    // The one line a passing trial may print: what it did not compare, and why.
                    println!("{name}: findings checked, output not compared ({why})");
                    return Ok(());
                }
                return Err(format!(
                    "{}: `{bin}` on this machine ({why}):\n  {}\n--- output:\n{stdout}",
                    directive.location(),
                    problems.join("\n  ")
                )
                .into());
            }
        }
    };
    let result = std::panic::catch_unwind(|| {
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(&dir);
        settings.set_prepend_module_to_snapshot(false);
        settings.set_description(format!(
            "{}: cargo run -q --bin {bin} -- {}",
            directive.file.display(),
            args.join(" ")
        ));
        settings.set_omit_expression(true);
        settings.bind(|| insta::assert_snapshot!(compared_with.as_str(), snapshot));
    });
    result.map_err(|panic| {
        let text = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Failed::from(format!(
            "{}: output of `{bin}` differs from its snapshot `{compared_with}` (this machine's \
             differences from the reference configuration: {}); if the prose still holds, run \
             `cargo insta review`\n{text}",
            directive.location(),
            if machine.is_empty() {
                "none".to_string()
            } else {
                environment::join_tags(&machine)
            }
        ))
    })
}

/// Appends each finding as `NAME<TAB>VERDICT<TAB>CLAIM` to `$VMBOOK_FINDINGS_LOG`, if set: the
/// configuration matrix (`scripts/matrix.sh`) tallies them per configuration.
fn log_findings(name: &str, stdout: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os("VMBOOK_FINDINGS_LOG") else {
        return;
    };
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.to_string_lossy()));
    for (claim, verdict) in environment::findings(stdout) {
        writeln!(log, "{name}\t{verdict}\t{claim}").unwrap();
    }
}
