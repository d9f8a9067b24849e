//! What the reader's-experience tests share (browser, live reload, help and "Try it", --pause):
//! the chapters as `book/SUMMARY.md` lists them, and whether a missing tool fails the test.
#![allow(dead_code)]

use crate::support::{self, Directive};
use std::path::PathBuf;

/// One page `book/SUMMARY.md` links to.
#[derive(Clone, Debug)]
pub struct Chapter {
    /// As the table of contents shows it (`Virtual memory`, `Appendix A: Measured IPC`).
    pub title: String,
    /// Relative to the project root: `book/virtual-memory.md`.
    pub file: PathBuf,
    /// The directives in this file, in order.
    pub directives: Vec<Directive>,
}

impl Chapter {
    /// The rendered page, relative to the build directory: `virtual-memory.html`.
    pub fn html(&self) -> String {
        self.file
            .strip_prefix("book")
            .unwrap()
            .with_extension("html")
            .to_string_lossy()
            .into_owned()
    }

    /// The chapter binaries its directives run, in order of first use.
    pub fn binaries(&self) -> Vec<String> {
        let mut bins: Vec<String> = Vec::new();
        for d in &self.directives {
            if let Ok((bin, _)) = &d.parsed {
                if !bins.contains(bin) {
                    bins.push(bin.clone());
                }
            }
        }
        bins
    }

    /// The words a chapter program's `--help` must mention: the title, without an `Appendix A: `.
    pub fn name_in_help(&self) -> String {
        match self.title.split_once(": ") {
            Some((prefix, rest)) if prefix.starts_with("Appendix") => rest.to_string(),
            _ => self.title.clone(),
        }
    }
}

/// Every page SUMMARY.md links to (drafts `- [Title]()` are skipped), in reading order as mdBook
/// itself reads it (`mdbook::book::parse_summary`), with the directives `tests/support` finds in it.
pub fn chapters() -> Vec<Chapter> {
    let summary = std::fs::read_to_string(support::root().join("book/SUMMARY.md")).unwrap();
    let summary = mdbook::book::parse_summary(&summary).expect("book/SUMMARY.md");
    let mut links = Vec::new();
    collect_links(
        summary
            .prefix_chapters
            .iter()
            .chain(&summary.numbered_chapters)
            .chain(&summary.suffix_chapters),
        &mut links,
    );
    let all = support::directives();
    links
        .into_iter()
        .map(|(title, file)| Chapter {
            title,
            directives: all.iter().filter(|d| d.file == file).cloned().collect(),
            file,
        })
        .collect()
}

fn collect_links<'a>(
    items: impl Iterator<Item = &'a mdbook::book::SummaryItem>,
    out: &mut Vec<(String, PathBuf)>,
) {
    for item in items {
        if let mdbook::book::SummaryItem::Link(link) = item {
            if let Some(location) = &link.location {
                out.push((link.name.clone(), PathBuf::from("book").join(location)));
            }
            collect_links(link.nested_items.iter(), out);
        }
    }
}

/// The chapters that run programs: the ones whose binaries, help and "Try it" are tested.
///
/// The introduction runs only `machine` (which reports the build machine, not a chapter's
/// experiment): it has no "Try it", no chapter name in its help and nothing to pause at.
pub fn program_chapters() -> Vec<Chapter> {
    chapters()
        .into_iter()
        .filter(|c| c.binaries().iter().any(|bin| bin != "machine"))
        .collect()
}

/// Whether the tests run in CI (where a missing tool is a failure, not a skip).
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Skips a test whose tool is missing: a clear message outside CI, a failure in CI.
pub fn skip_or_fail(why: &str) {
    if in_ci() {
        panic!("{why} (CI is set: a missing tool fails here; .ci/run installs it)");
    }
    eprintln!("SKIPPED: {why} (this fails in CI; .ci/run installs it)");
}
