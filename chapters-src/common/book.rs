//! The book as its tools see it: the `<!-- cmdrun ... -->` directives in `book/`, the reading order
//! `book/SUMMARY.md` gives, the command line an output block starts with, and the `finding:` lines
//! the programs print. `claims` and the tests read the book through this one model.
//!
//! It depends on nothing beyond std and shell-words (the programs' dependency graph is what every
//! `cargo run` pays for): the directive matcher does by hand what mdbook-cmdrun's regex does, and
//! the tests check the two against each other and `mdbook::book::parse_summary` against
//! [`summary`] on the real book.

use std::fmt;
use std::path::{Path, PathBuf};

/// The one directive form the book allows (exit status checked, the chapter program through cargo).
pub const ACCEPTED_FORM: &str = "<!-- cmdrun -0 cargo run -q --bin NAME -- ARGS -->";

/// One `<!-- cmdrun ... -->` directive found in the book.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    /// The Markdown file, relative to the project root (`book/virtual-memory.md`).
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// Everything between `cmdrun ` and `-->`, trimmed: what mdbook-cmdrun runs (after `-0`).
    pub text: String,
}

/// What an accepted directive runs: a chapter binary and its arguments (split as `sh` splits them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub bin: String,
    pub args: Vec<String>,
}

/// The snapshot a directive's output is accepted as, the tests' name for it: chapter, binary when
/// it differs from the chapter (`virtual-memory__maps` when they share the slug, as they should),
/// then the arguments with every character outside `[A-Za-z0-9_-]` as `_`
/// (`posix-shm__pipeline---input-book_data_numbers_txt`). `claims --html` and the tests share it.
pub fn snapshot_name(chapter: &str, bin: &str, args: &[String]) -> String {
    let mut name = if chapter == bin {
        chapter.to_string()
    } else {
        format!("{chapter}__{bin}")
    };
    if !args.is_empty() {
        let slug: String = args
            .join("-")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        name.push_str("__");
        name.push_str(&slug);
    }
    name
}

impl Directive {
    /// `book/pages.md:12`
    pub fn location(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }

    /// The chapter's slug: the Markdown file's name without `.md`.
    pub fn chapter(&self) -> String {
        self.file
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
    }

    /// The command mdbook-cmdrun gives `sh -c` (`cargo run -q --bin NAME -- ARGS`), if the directive
    /// has the accepted form.
    pub fn command(&self) -> Result<&str, String> {
        let form = || format!("not of the form `{ACCEPTED_FORM}`");
        let command = self.text.strip_prefix("-0 ").ok_or_else(form)?;
        let rest = command
            .strip_prefix("cargo run -q --bin ")
            .ok_or_else(form)?;
        let (name, args) = match rest.split_once(' ') {
            Some((name, args)) => (name, Some(args)),
            None => (rest, None),
        };
        let name_ok = name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        let args_ok = args.is_none_or(|a| a.strip_prefix("-- ").is_some_and(|a| !a.is_empty()));
        if name_ok && args_ok {
            Ok(command)
        } else {
            Err(form())
        }
    }

    /// The binary and the arguments the directive runs, if it has the accepted form.
    pub fn run(&self) -> Result<Run, String> {
        let command = self.command()?;
        let rest = &command["cargo run -q --bin ".len()..];
        let (bin, args) = match rest.split_once(" -- ") {
            Some((bin, args)) => (
                bin,
                shell_words::split(args).map_err(|e| format!("arguments: {e}"))?,
            ),
            None => (rest, Vec::new()),
        };
        Ok(Run {
            bin: bin.to_string(),
            args,
        })
    }
}

/// What mdbook-cmdrun's pattern `<!--[ ]*cmdrun (.*?)-->` captures in one line, left to right.
pub fn cmdrun_matches(line: &str) -> Vec<&str> {
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

/// Every directive in every Markdown file under `ROOT/book`, files in sorted order.
pub fn directives(root: &Path) -> std::io::Result<Vec<Directive>> {
    let mut files = Vec::new();
    collect_markdown(&root.join("book"), &mut files)?;
    files.sort();
    let mut found = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|e| in_file(&path, e))?;
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

fn collect_markdown(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir).map_err(|e| in_file(dir, e))? {
        let path = entry.map_err(|e| in_file(dir, e))?.path();
        if path.is_dir() {
            collect_markdown(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
    Ok(())
}

fn in_file(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// One page `book/SUMMARY.md` links to, in reading order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// As the table of contents shows it (`Virtual memory`, `Appendix A: Measured IPC`).
    pub title: String,
    /// Relative to the project root: `book/virtual-memory.md`.
    pub file: PathBuf,
}

/// The pages `ROOT/book/SUMMARY.md` links to (`[Title](file.md)`), in order, each once; drafts
/// (`[Title]()`) are left out.
pub fn summary(root: &Path) -> std::io::Result<Vec<Page>> {
    let path = root.join("book/SUMMARY.md");
    let text = std::fs::read_to_string(&path).map_err(|e| in_file(&path, e))?;
    let mut pages: Vec<Page> = Vec::new();
    for line in text.lines() {
        let Some(open) = line.find('[') else { continue };
        let Some(close) = line[open..].find("](").map(|i| open + i) else {
            continue;
        };
        let Some(end) = line[close..].find(')').map(|i| close + i) else {
            continue;
        };
        let target = &line[close + 2..end];
        let file = Path::new("book").join(target);
        if !target.is_empty() && !pages.iter().any(|p| p.file == file) {
            pages.push(Page {
                title: line[open + 1..close].to_string(),
                file,
            });
        }
    }
    Ok(pages)
}

/// The first line of an output block, as the programs print it: `$ cargo run --bin NAME -- ARGS`,
/// each argument quoted so that the line can be pasted into a shell.
pub fn banner(bin: &str, args: &[String]) -> String {
    if args.is_empty() {
        format!("$ cargo run --bin {bin}")
    } else {
        let args: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
        format!("$ cargo run --bin {bin} -- {}", args.join(" "))
    }
}

/// One argument as a shell reads it back: plain words as they are, anything else in single quotes.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Whether a run confirmed a claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    Confirmed,
    Refuted,
    NotChecked,
}

impl Verdict {
    pub const ALL: [Verdict; 3] = [Verdict::Confirmed, Verdict::Refuted, Verdict::NotChecked];

    /// As the programs print it ([`crate::finding`], [`crate::not_checked`]).
    pub fn printed(self) -> &'static str {
        match self {
            Verdict::Confirmed => "confirmed",
            Verdict::Refuted => "REFUTED",
            Verdict::NotChecked => "not checked",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.printed())
    }
}

/// One `finding: CLAIM — VERDICT (EVIDENCE)` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub claim: String,
    pub verdict: Verdict,
    pub evidence: String,
}

/// The findings in a program's output, in order; a line that starts with `finding: ` but has no
/// known form comes back as the error, whole.
pub fn findings(stdout: &str) -> Vec<Result<Finding, String>> {
    stdout
        .lines()
        .filter(|line| line.starts_with("finding: "))
        .map(|line| parse_finding(line).ok_or_else(|| line.to_string()))
        .collect()
}

/// `finding: CLAIM — VERDICT (EVIDENCE)`, split at the last ` — VERDICT (` (a claim may hold dashes).
pub fn parse_finding(line: &str) -> Option<Finding> {
    let rest = line.strip_prefix("finding: ")?;
    let (at, verdict) = Verdict::ALL
        .iter()
        .filter_map(|&v| rest.rfind(&format!(" — {v} (")).map(|at| (at, v)))
        .max_by_key(|&(at, _)| at)?;
    let after = &rest[at + format!(" — {verdict} (").len()..];
    Some(Finding {
        claim: rest[..at].to_string(),
        verdict,
        evidence: after.strip_suffix(')')?.to_string(),
    })
}
