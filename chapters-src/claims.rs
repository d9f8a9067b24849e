//! `claims`: does this machine agree with the book?
//!
//! Finds every `<!-- cmdrun ... -->` directive in `book/` exactly as the book build does (the same
//! pattern mdbook-cmdrun matches, the one form the book allows), runs each one the same way (`sh -c`
//! in the chapter's directory, stdout kept, exit status 0 required), and collects the `finding:`
//! lines the programs print. Then it says how many of the book's claims hold on this machine.
//!
//! It starts processes and never forks itself.

mod claims_page;

use anyhow::{Context, Result};
use clap::Parser;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use vmbook::book::{Directive, Finding, Verdict};

/// Does this machine agree with the book? Runs every program the book embeds, exactly as the book
/// build does, prints each finding with its chapter, and a summary: how many of the book's claims
/// were confirmed and how many refuted on this kernel. Exits non-zero if any claim was refuted or
/// any program failed. Run it from the project root: `cargo run --bin claims`.
#[derive(Parser)]
#[command(version, long_about = None)]
struct Options {
    /// Only run the chapters whose file name contains this text (for example `virtual-memory`).
    #[arg(long)]
    chapter: Option<String>,
    /// Also print the evidence each finding was computed from.
    #[arg(long)]
    evidence: bool,
    /// Also write a page that puts each finding of this run beside the one the book accepted
    /// (same, differs, not in accepted run, missing), to PATH or target/claims.html.
    #[arg(long, value_name = "PATH")]
    html: Option<Option<PathBuf>>,
}

fn main() -> ExitCode {
    let options = Options::parse();
    vmbook::run(|| check_the_book(&options))
}

fn check_the_book(options: &Options) -> Result<ExitCode> {
    let root = project_root()?;
    let pages = vmbook::book::summary(&root)?;
    let mut directives = vmbook::book::directives(&root)?;
    // In reading order, as the book build runs them; files SUMMARY.md does not list come last.
    directives.sort_by_key(|d| {
        pages
            .iter()
            .position(|p| p.file == d.file)
            .unwrap_or(usize::MAX)
    });
    if let Some(only) = &options.chapter {
        directives.retain(|d| d.file.to_string_lossy().contains(only.as_str()));
    }
    anyhow::ensure!(
        !directives.is_empty(),
        "no cmdrun directive found under {}",
        root.join("book").display()
    );
    println!(
        "Does this machine agree with the book? Running its {} programs as the book build does.",
        directives.len()
    );

    let mut tally: HashMap<&'static str, usize> = HashMap::new();
    let mut failed = Vec::new();
    let mut refuted = Vec::new();
    let mut chapter_shown = None;
    let mut ran = Vec::new();
    for directive in &directives {
        let title = pages
            .iter()
            .find(|p| p.file == directive.file)
            .map_or("(not in SUMMARY.md)", |p| p.title.as_str());
        if chapter_shown.as_ref() != Some(&directive.file) {
            println!("\n== {title} ({})", directive.file.display());
            chapter_shown = Some(directive.file.clone());
        }
        let location = directive.location();
        let shown = directive.command().unwrap_or(&directive.text);
        println!("$ {shown}  ({location})");
        let outcome = run_directive(&root, directive).map_err(|why| format!("{why:#}"));
        ran.push(claims_page::Ran {
            title: title.to_string(),
            directive: directive.clone(),
            outcome: outcome.clone(),
        });
        let findings = match outcome {
            Ok(findings) => findings,
            Err(why) => {
                println!("  FAILED       {why}");
                failed.push(format!("{location}: {why}"));
                continue;
            }
        };
        if findings.is_empty() {
            println!("  (no findings)");
        }
        for finding in findings {
            match finding {
                Ok(f) => {
                    *tally.entry(f.verdict.printed()).or_default() += 1;
                    let shown = format!("{:<12} {}", f.verdict.printed(), f.claim);
                    if options.evidence || f.verdict != Verdict::Confirmed {
                        println!("  {shown} ({})", f.evidence);
                    } else {
                        println!("  {shown}");
                    }
                    if f.verdict == Verdict::Refuted {
                        refuted.push(format!("{location}: {} ({})", f.claim, f.evidence));
                    }
                }
                Err(line) => {
                    println!("  MALFORMED    {line}");
                    failed.push(format!(
                        "{location}: a finding line of no known form: {line}"
                    ));
                }
            }
        }
    }

    if let Some(path) = &options.html {
        let path = path
            .clone()
            .unwrap_or_else(|| root.join("target/claims.html"));
        let accepted = claims_page::Accepted::find(&root);
        claims_page::write(&path, &this_machine(), &accepted, &ran)?;
        println!(
            "\nthis run beside the book's accepted one: {}",
            path.display()
        );
    }
    println!("\n== Summary");
    for line in &refuted {
        println!("refuted: {line}");
    }
    for line in &failed {
        println!("failed: {line}");
    }
    println!("{} programs run, {} failed", directives.len(), failed.len());
    let count = |v: Verdict| tally.get(v.printed()).copied().unwrap_or(0);
    println!(
        "summary: {} confirmed, {} refuted, {} not checked; on {}",
        count(Verdict::Confirmed),
        count(Verdict::Refuted),
        count(Verdict::NotChecked),
        this_machine()
    );
    Ok(if refuted.is_empty() && failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The directory holding book.toml: the current directory or one above it.
fn project_root() -> Result<PathBuf> {
    let cwd = std::env::current_dir().context("getcwd")?;
    cwd.ancestors()
        .find(|dir| dir.join("book.toml").is_file() && dir.join("book").is_dir())
        .map(Path::to_path_buf)
        .with_context(|| {
            format!(
                "no book.toml with a book/ directory in {} or above: run from the project",
                cwd.display()
            )
        })
}

/// Runs one directive as mdbook-cmdrun does: `sh -c COMMAND` in the chapter's directory, exit
/// status 0 required, stdout kept. Returns its findings (or the lines that look like one but aren't).
fn run_directive(root: &Path, directive: &Directive) -> Result<Vec<Result<Finding, String>>> {
    let command = directive.command().map_err(anyhow::Error::msg)?;
    let dir = root.join(directive.file.parent().unwrap_or(Path::new("book")));
    let output = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("sh -c '{command}'"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or("(nothing on stderr)");
        anyhow::bail!("exited with {}: {last}", output.status);
    }
    anyhow::ensure!(!stdout.trim().is_empty(), "printed nothing");
    Ok(vmbook::book::findings(&stdout))
}

/// `Linux 6.18.44 (x86_64), page size 4 KiB, root, 2 CPUs`
fn this_machine() -> String {
    let kernel = match nix::sys::utsname::uname() {
        Ok(u) => format!(
            "{} {} ({})",
            u.sysname().to_string_lossy(),
            u.release().to_string_lossy(),
            u.machine().to_string_lossy()
        ),
        Err(e) => format!("an unknown kernel (uname: {e})"),
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!(
        "{kernel}, page size {}, {}, {cpus} CPU{}",
        vmbook::bytes(vmbook::procinfo::page_size() as u64),
        if vmbook::procinfo::is_root() {
            "root"
        } else {
            "not root"
        },
        if cpus == 1 { "" } else { "s" }
    )
}
