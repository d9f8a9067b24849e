//! What the tests share: finding the book's directives, running them, redacting what varies.
#![allow(dead_code)]

pub mod redact;

use regex::Regex;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// The root of the project (where book.toml is).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One `<!-- cmdrun ... -->` directive found in the book.
#[derive(Clone, Debug)]
pub struct Directive {
    /// The Markdown file, relative to the project root (`book/virtual-memory.md`).
    pub file: PathBuf,
    pub line: usize,
    /// Everything between `cmdrun ` and `-->`, trimmed.
    pub text: String,
    /// `Ok((binary, args))` for a directive of the one accepted form, else why not.
    pub parsed: Result<(String, Vec<String>), String>,
}

impl Directive {
    /// The chapter's slug: the Markdown file's name without `.md`.
    pub fn chapter(&self) -> String {
        self.file
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    /// A stable, readable snapshot name: chapter, binary and arguments (`pages__--pages-64`).
    pub fn snapshot_name(&self) -> String {
        let (bin, args) = self.parsed.as_ref().expect("a well-formed directive");
        // `virtual-memory__maps` when the chapter and its binary share the slug, as they should.
        let mut name = if self.chapter() == *bin {
            self.chapter()
        } else {
            format!("{}__{}", self.chapter(), bin)
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

    pub fn location(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// The directive regex mdbook-cmdrun itself uses, so that the tests see exactly what it runs.
fn cmdrun_regex() -> Regex {
    Regex::new(r"<!--[ ]*cmdrun (.*?)-->").unwrap()
}

/// The one form the book allows: exit code checked, the chapter binary run through cargo.
fn accepted_form() -> Regex {
    Regex::new(r"^-0 cargo run -q --bin ([a-z0-9][a-z0-9-]*)(?: -- (.+))?$").unwrap()
}

/// Every directive in every Markdown file under `book/`, in file order.
pub fn directives() -> Vec<Directive> {
    let mut files = Vec::new();
    collect_markdown(&root().join("book"), &mut files);
    files.sort();
    let mut found = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let rel = path.strip_prefix(root()).unwrap().to_path_buf();
        for (index, line) in text.lines().enumerate() {
            for cap in cmdrun_regex().captures_iter(line) {
                let inner = cap[1].trim().to_string();
                found.push(Directive {
                    file: rel.clone(),
                    line: index + 1,
                    parsed: parse(&inner),
                    text: inner,
                });
            }
        }
    }
    found
}

fn parse(inner: &str) -> Result<(String, Vec<String>), String> {
    let caps = accepted_form().captures(inner).ok_or_else(|| {
        "not of the form `<!-- cmdrun -0 cargo run -q --bin NAME -- ARGS -->`".to_string()
    })?;
    let args = match caps.get(2) {
        Some(args) => shell_words::split(args.as_str()).map_err(|e| format!("arguments: {e}"))?,
        None => Vec::new(),
    };
    Ok((caps[1].to_string(), args))
}

fn collect_markdown(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_markdown(&path, out);
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
}

/// The path of a chapter binary, built by `cargo test` next to the test executables.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/test-HASH -> target/debug/NAME
    exe.parent().unwrap().parent().unwrap().join(name)
}

/// A tag unique to one run, passed as VMBOOK_RUN_TAG so that its /dev/shm objects can be found.
pub fn fresh_tag() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs a chapter binary as the book does: from the chapter's directory, stdin empty.
pub fn run(bin: &str, args: &[String], tag: &str) -> Output {
    Command::new(binary(bin))
        .args(args)
        .current_dir(root().join("book"))
        .env("VMBOOK_RUN_TAG", tag)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary(bin).display()))
}

/// Entries in /dev/shm (including named semaphores, `sem.NAME`) created under `tag`.
pub fn leftovers(tag: &str) -> Vec<String> {
    let needle = format!("vmbook-{tag}-");
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(&needle))
                .collect()
        })
        .unwrap_or_default()
}

/// Builds the whole book in-process, with the pinned mdbook and mdbook-cmdrun as libraries, into
/// `target/DIR` (each test its own directory, so that two builds never race), and returns it.
pub fn build_book(dir: &str) -> PathBuf {
    let root = root();
    // mdbook-cmdrun reads ./book.toml to find the chapters' directory: build from the book root.
    std::env::set_current_dir(&root).unwrap();
    let mut config = mdbook::Config::from_disk(root.join("book.toml")).unwrap();
    // Use the library's CmdRun, never whatever `mdbook-cmdrun` happens to be on PATH.
    if let Some(table) = config
        .get_mut("preprocessor")
        .and_then(|p| p.as_table_mut())
    {
        table.remove("cmdrun");
    }
    let out = root.join("target").join(dir);
    let _ = std::fs::remove_dir_all(&out);
    config.build.build_dir = out.clone();
    let mut book = mdbook::MDBook::load_with_config(&root, config).unwrap();
    book.with_preprocessor(mdbook_cmdrun::CmdRun);
    book.build().expect("mdbook build");
    out
}

/// Gives SIGINT, SIGQUIT, SIGTERM and SIGHUP back their default action in this test process, so
/// that the programs it starts inherit it. A shell starts background jobs (`cargo test &`, a CI
/// script) with SIGINT and SIGQUIT ignored, an ignored signal stays ignored across `execve`, and a
/// program interrupted before it installs its own handler would then not be interrupted at all:
/// the tests that send SIGINT would time out instead of testing anything.
pub fn signals_at_default() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    for sig in [
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTERM,
        Signal::SIGHUP,
    ] {
        // SAFETY: installing SIG_DFL runs no code of ours in a signal context.
        let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    }
}
