//! Running a chapter locally, as a reader would: every chapter program's `--help` (and each
//! experiment's) runs, names its chapter and says what every option does; and every
//! `$ cargo run --bin ...` command in a chapter's "## Try it" section is a valid invocation that
//! finishes (its time is printed; more than a minute counts as hung), exits 0 and leaves nothing in /dev/shm.
//!
//! The chapters are the pages `book/SUMMARY.md` links to that run programs, so a new chapter is
//! covered as soon as it is linked.

mod reader;
mod support;

use reader::{program_chapters, Chapter};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::runner::run as run_with_limit;

/// How long a "Try it" command may run before it counts as hung. STYLE.md asks for "a few
/// seconds", but a test asserts no absolute time (each command's time is printed instead): a
/// 1 GiB transfer took over 10 s on a two-core machine busy with other builds, and a reader's
/// command is not wrong for that.
const TRY_IT_LIMIT: Duration = Duration::from_secs(60);
const HELP_LIMIT: Duration = Duration::from_secs(5);

#[test]
fn every_chapter_program_explains_itself() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for chapter in program_chapters() {
        for bin in chapter.binaries() {
            let help = match help_of(&bin, &[]) {
                Ok(help) => help,
                Err(why) => {
                    problems.push(format!("{}: `{bin} --help`: {why}", chapter.file.display()));
                    continue;
                }
            };
            checked += 1;
            let flat = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
            let name = chapter.name_in_help();
            // The package's own description ("... virtual memory ...") does not count.
            let own = flat(&help).replace(env!("CARGO_PKG_DESCRIPTION"), "");
            if !own.to_lowercase().contains(&flat(&name).to_lowercase()) {
                problems.push(format!(
                    "{}: `{bin} --help` does not name its chapter \"{name}\" (clap shows the \
                     package description instead of the doc comment when the command says a bare \
                     `about`):\n{help}",
                    chapter.file.display()
                ));
            }
            problems.extend(undescribed_options(&bin, &[], &help));
            for sub in subcommands(&help) {
                match help_of(&bin, &[sub.as_str()]) {
                    Ok(sub_help) => problems.extend(undescribed_options(&bin, &[&sub], &sub_help)),
                    Err(why) => problems.push(format!("`{bin} {sub} --help`: {why}")),
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    eprintln!("--help checked for {checked} chapter programs");
}

/// `BIN [SUB] --help`: exit 0 and its text.
fn help_of(bin: &str, sub: &[&str]) -> Result<String, String> {
    let run = run_with_limit(
        Command::new(support::binary(bin)).args(sub).arg("--help"),
        HELP_LIMIT,
    )?;
    if !run.status.success() {
        return Err(format!("exited with {}: {}", run.status, run.stderr.trim()));
    }
    if run.stdout.trim().is_empty() {
        return Err("printed nothing".into());
    }
    Ok(run.stdout)
}

/// The names under `Commands:`, except clap's own `help`.
fn subcommands(help: &str) -> Vec<String> {
    section_lines(help, "Commands:")
        .iter()
        .filter(|l| l.starts_with("  ") && !l.starts_with("    "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect()
}

/// Options under `Options:` (or `Arguments:`) printed without a description.
fn undescribed_options(bin: &str, sub: &[&str], help: &str) -> Vec<String> {
    let mut missing = Vec::new();
    for heading in ["Options:", "Arguments:"] {
        let lines = section_lines(help, heading);
        for (i, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            if indent == 0 || indent > 6 || !(trimmed.starts_with('-') || trimmed.starts_with('<'))
            {
                continue; // not the start of an entry: a wrapped description line
            }
            // `--name <VALUE>  description` (two spaces before it), or, in clap's long help,
            // the description on the next line, indented further.
            let described = trimmed.contains("  ")
                || lines.get(i + 1).is_some_and(|next| {
                    !next.trim().is_empty() && next.len() - next.trim_start().len() > indent
                });
            if !described {
                missing.push(format!(
                    "`{bin}{}{} --help`: `{}` has no description of what it changes",
                    if sub.is_empty() { "" } else { " " },
                    sub.join(" "),
                    trimmed
                ));
            }
        }
    }
    missing
}

/// The lines after `heading` up to the next heading (a line that is not indented).
fn section_lines<'a>(help: &'a str, heading: &str) -> Vec<&'a str> {
    help.lines()
        .skip_while(|l| l.trim() != heading)
        .skip(1)
        .take_while(|l| l.trim().is_empty() || l.starts_with(' '))
        .collect()
}

/// One `$ cargo run --bin ...` line of a "Try it" section.
struct TryIt {
    chapter: String,
    line: usize,
    text: String,
}

/// The `$ ... cargo run ...` lines inside console fences of the chapter's `## Try it` section.
fn try_it_commands(chapter: &Chapter) -> Vec<TryIt> {
    let text = std::fs::read_to_string(support::root().join(&chapter.file)).unwrap();
    let mut found = Vec::new();
    let mut in_section = false;
    let mut in_fence = false;
    for (index, line) in text.lines().enumerate() {
        if line.starts_with("```") {
            in_fence = !in_fence && line.trim_start_matches('`').trim() == "console";
            continue;
        }
        if !in_fence && line.starts_with("## ") {
            in_section = line.trim() == "## Try it";
            continue;
        }
        if in_section && in_fence {
            if let Some(command) = line.strip_prefix("$ ") {
                if command.contains("cargo run") {
                    found.push(TryIt {
                        chapter: chapter.file.display().to_string(),
                        line: index + 1,
                        text: command.trim().to_string(),
                    });
                }
            }
        }
    }
    found
}

/// Turns `[PREFIX] cargo run [-q|--release] --bin NAME [-- ARGS]` into a shell command that runs
/// the built binary instead of cargo, with the same prefix (`setarch -R`) and arguments.
fn as_shell_command(command: &str, bin_dir: &Path) -> Result<String, String> {
    let at = command
        .find("cargo run")
        .ok_or("no `cargo run` in the command")?;
    let prefix = &command[..at];
    let words = shell_words::split(&command[at + "cargo run".len()..])
        .map_err(|e| format!("cannot split into words: {e}"))?;
    let mut bin = None;
    let mut words = words.into_iter();
    let mut args = Vec::new();
    while let Some(word) = words.next() {
        match word.as_str() {
            "--bin" => bin = words.next(),
            "-q" | "--quiet" | "--release" => {}
            "--" => {
                args.extend(words.by_ref());
            }
            other => {
                return Err(format!(
                    "`{other}` is not a cargo run option this test knows"
                ))
            }
        }
    }
    let bin = bin.ok_or("no `--bin NAME`")?;
    let path = bin_dir.join(&bin);
    if !path.exists() {
        return Err(format!("there is no binary `{bin}`"));
    }
    let mut line = format!("{prefix}{}", shell_words::quote(&path.to_string_lossy()));
    for arg in args {
        line.push(' ');
        line.push_str(&shell_words::quote(&arg));
    }
    Ok(line)
}

#[test]
fn every_try_it_command_is_a_valid_invocation() {
    let bin_dir = support::binary("x").parent().unwrap().to_path_buf();
    let mut problems = Vec::new();
    let mut commands = Vec::new();
    for chapter in program_chapters() {
        let found = try_it_commands(&chapter);
        if !(2..=3).contains(&found.len()) {
            problems.push(format!(
                "{}: its \"## Try it\" section has {} `$ cargo run --bin ...` commands; \
                 STYLE.md asks for two or three",
                chapter.file.display(),
                found.len()
            ));
        }
        for try_it in found {
            let place = format!("{}:{}: `$ {}`", try_it.chapter, try_it.line, try_it.text);
            match as_shell_command(&try_it.text, &bin_dir) {
                Ok(shell) => commands.push((place, shell)),
                Err(why) => problems.push(format!("{place}: {why}")),
            }
        }
    }
    // Two at a time: nothing here is compared with a snapshot, a command only has to succeed, and
    // most of them keep one CPU busy.
    let next = std::sync::Mutex::new(commands.iter());
    let results: Vec<Result<String, String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    while let Some((place, shell)) = {
                        let mut next = next.lock().unwrap();
                        next.next()
                    } {
                        done.push(try_it(place, shell));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let mut ran = Vec::new();
    for result in results {
        match result {
            Ok(line) => ran.push(line),
            Err(why) => problems.push(why),
        }
    }
    ran.sort();
    eprintln!("{}", ran.join("\n"));
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    assert!(!ran.is_empty(), "no \"Try it\" command found in the book");
}

/// Runs one "Try it" command (`shell`, for `sh -c`) under a fresh tag: its time, or what is wrong.
fn try_it(place: &str, shell: &str) -> Result<String, String> {
    let tag = support::fresh_tag();
    let result = run_with_limit(
        Command::new("sh")
            .arg("-c")
            .arg(shell)
            .current_dir(support::root())
            .env("VMBOOK_RUN_TAG", &tag),
        TRY_IT_LIMIT,
    );
    let left = support::leftovers(&tag);
    let run = result.map_err(|why| format!("{place}: {why}"))?;
    if !run.status.success() {
        return Err(format!(
            "{place}: exited with {}\nstderr: {}",
            run.status,
            run.stderr.trim()
        ));
    }
    if run.stdout.trim().is_empty() {
        return Err(format!("{place}: printed nothing"));
    }
    if !left.is_empty() {
        return Err(format!("{place}: left in /dev/shm: {left:?}"));
    }
    Ok(format!("{place}: {:.2?}", run.elapsed))
}
