//! `claims`: does this machine agree with the book?
//!
//! Finds every `<!-- cmdrun ... -->` directive in `book/` exactly as the book build does (the same
//! pattern mdbook-cmdrun matches, the one form the book allows), runs each one the same way (`sh -c`
//! in the chapter's directory, stdout kept, exit status 0 required), and collects the `finding:`
//! lines the programs print. Then it says how many of the book's claims hold on this machine.
//!
//! It starts processes and never forks itself.

use anyhow::{Context, Result};
use clap::Parser;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

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
}

/// One directive found in the book.
struct Directive {
    /// The Markdown file, relative to the project root.
    file: PathBuf,
    line: usize,
    /// Everything between `cmdrun ` and `-->`, trimmed: what mdbook-cmdrun runs (after `-0`).
    text: String,
}

/// One `finding:` line.
struct Finding {
    claim: String,
    verdict: Verdict,
    evidence: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Verdict {
    Confirmed,
    Refuted,
    NotChecked,
}

impl Verdict {
    const ALL: [Verdict; 3] = [Verdict::Confirmed, Verdict::Refuted, Verdict::NotChecked];

    /// As the book's programs print it (`vmbook::finding`, `vmbook::not_checked`).
    fn printed(self) -> &'static str {
        match self {
            Verdict::Confirmed => "confirmed",
            Verdict::Refuted => "REFUTED",
            Verdict::NotChecked => "not checked",
        }
    }
}

fn main() -> ExitCode {
    let options = Options::parse();
    vmbook::run(|| check_the_book(&options))
}

fn check_the_book(options: &Options) -> Result<ExitCode> {
    let root = project_root()?;
    let titles = chapter_titles(&root)?;
    let mut directives = find_directives(&root)?;
    // In reading order, as the book build runs them; files SUMMARY.md does not list come last.
    directives.sort_by_key(|d| titles.get(&d.file).map_or(usize::MAX, |(order, _)| *order));
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
    for directive in &directives {
        if chapter_shown.as_ref() != Some(&directive.file) {
            let title = titles
                .get(&directive.file)
                .map_or("(not in SUMMARY.md)", |(_, title)| title.as_str());
            println!("\n== {title} ({})", directive.file.display());
            chapter_shown = Some(directive.file.clone());
        }
        let location = format!("{}:{}", directive.file.display(), directive.line);
        let shown = accepted_command(&directive.text).unwrap_or(&directive.text);
        println!("$ {shown}  ({location})");
        let findings = match run_directive(&root, directive) {
            Ok(findings) => findings,
            Err(why) => {
                println!("  FAILED       {why:#}");
                failed.push(format!("{location}: {why:#}"));
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

/// `book/FILE.md` -> its place in `book/SUMMARY.md` and the chapter title given there.
fn chapter_titles(root: &Path) -> Result<HashMap<PathBuf, (usize, String)>> {
    let path = root.join("book/SUMMARY.md");
    let summary =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let mut titles = HashMap::new();
    for line in summary.lines() {
        // `- [Title](file.md)` or `[Title](file.md)`
        let Some(open) = line.find('[') else { continue };
        let Some(close) = line[open..].find("](").map(|i| open + i) else {
            continue;
        };
        let Some(end) = line[close..].find(')').map(|i| close + i) else {
            continue;
        };
        let target = &line[close + 2..end];
        if !target.is_empty() {
            let order = titles.len();
            titles
                .entry(Path::new("book").join(target))
                .or_insert((order, line[open + 1..close].to_string()));
        }
    }
    Ok(titles)
}

/// Every directive under `book/`, files in sorted order, as `tests/support` finds them.
fn find_directives(root: &Path) -> Result<Vec<Directive>> {
    let mut files = Vec::new();
    collect_markdown(&root.join("book"), &mut files)?;
    files.sort();
    let mut found = Vec::new();
    for path in files {
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        let file = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        for (index, line) in text.lines().enumerate() {
            for inner in cmdrun_matches(line) {
                found.push(Directive {
                    file: file.clone(),
                    line: index + 1,
                    text: inner.trim().to_string(),
                });
            }
        }
    }
    Ok(found)
}

fn collect_markdown(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("read {}", dir.display()))?
            .path();
        if path.is_dir() {
            collect_markdown(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
    Ok(())
}

/// What mdbook-cmdrun's pattern `<!--[ ]*cmdrun (.*?)-->` captures in one line, left to right.
fn cmdrun_matches(line: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(start) = line[from..].find("<!--").map(|i| from + i) {
        let after = line[start + 4..].trim_start_matches(' ');
        let body_start = line.len() - after.len();
        if let Some(body) = after.strip_prefix("cmdrun ") {
            if let Some(end) = body.find("-->") {
                found.push(&body[..end]);
                from = body_start + "cmdrun ".len() + end + 3;
                continue;
            }
        }
        from = start + 1;
    }
    found
}

/// Checks the one accepted form, `-0 cargo run -q --bin NAME [-- ARGS]`, and returns the command.
fn accepted_command(text: &str) -> Result<&str> {
    let form = "not of the form `<!-- cmdrun -0 cargo run -q --bin NAME -- ARGS -->`";
    let command = text.strip_prefix("-0 ").context(form)?;
    let rest = command.strip_prefix("cargo run -q --bin ").context(form)?;
    let (name, args) = match rest.split_once(' ') {
        Some((name, args)) => (name, Some(args)),
        None => (rest, None),
    };
    let name_ok = name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let args_ok = args.is_none_or(|a| a.strip_prefix("-- ").is_some_and(|a| !a.is_empty()));
    anyhow::ensure!(name_ok && args_ok, form);
    Ok(command)
}

/// Runs one directive as mdbook-cmdrun does: `sh -c COMMAND` in the chapter's directory, exit
/// status 0 required, stdout kept. Returns its findings (or the lines that look like one but aren't).
fn run_directive(root: &Path, directive: &Directive) -> Result<Vec<Result<Finding, String>>> {
    let command = accepted_command(&directive.text)?;
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
    Ok(stdout
        .lines()
        .filter_map(|line| line.strip_prefix("finding: "))
        .map(|rest| parse_finding(rest).ok_or_else(|| format!("finding: {rest}")))
        .collect())
}

/// `CLAIM — VERDICT (EVIDENCE)`, split at the last ` — VERDICT (` (a claim may contain dashes).
fn parse_finding(rest: &str) -> Option<Finding> {
    let (at, verdict) = Verdict::ALL
        .iter()
        .filter_map(|&v| {
            rest.rfind(&format!(" — {} (", v.printed()))
                .map(|at| (at, v))
        })
        .max_by_key(|&(at, _)| at)?;
    let after = &rest[at + format!(" — {} (", verdict.printed()).len()..];
    let evidence = after.strip_suffix(')')?;
    Some(Finding {
        claim: rest[..at].to_string(),
        verdict,
        evidence: evidence.to_string(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_are_found_as_mdbook_cmdrun_finds_them() {
        let line = "x <!-- cmdrun -0 cargo run -q --bin a -- b --> y <!--cmdrun echo hi-->";
        assert_eq!(
            cmdrun_matches(line),
            vec!["-0 cargo run -q --bin a -- b ", "echo hi"]
        );
        assert!(cmdrun_matches("<!-- a comment --> <!-- cmdrun-x -->").is_empty());
        assert!(accepted_command("-0 cargo run -q --bin pages -- --pages 64").is_ok());
        assert!(accepted_command("-0 cargo run -q --bin pages").is_ok());
        assert!(accepted_command("cargo run -q --bin pages").is_err());
        assert!(accepted_command("-0 cargo run -q --bin Pages").is_err());
        assert!(accepted_command("-0 cargo run -q --bin pages --").is_err());
    }

    #[test]
    fn findings_split_at_the_last_verdict() {
        let f = parse_finding("a — b holds — confirmed (x = 1 (ok))").unwrap();
        assert_eq!(f.claim, "a — b holds");
        assert!(f.verdict == Verdict::Confirmed);
        assert_eq!(f.evidence, "x = 1 (ok)");
        let f = parse_finding("c — not checked (not root)").unwrap();
        assert!(f.verdict == Verdict::NotChecked);
        assert!(parse_finding("c — maybe (x)").is_none());
    }
}
