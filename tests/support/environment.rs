//! The one place that decides how a snapshot test treats a machine that is not the reference one.
//!
//! Two questions are kept apart:
//!
//! 1. *Did a program or the prose drift?* Answered by an exact comparison with an accepted snapshot,
//!    which is only meaningful on a configuration a snapshot was accepted on.
//! 2. *Does this machine agree with the book?* Answered by the findings: none may be REFUTED, every
//!    claim of the book must still be made, and a claim may say `not checked` only where a recorded
//!    configuration shows that difference makes it uncheckable.
//!
//! The harness detects this machine's settings itself (`vmbook::environment`, from the kernel's
//! files; never from a program's `not checked`), and compares them with the reference
//! configuration in `tests/environments.toml`. Each setting that differs is a *tag*
//! (`thp-always`, `frames-hidden`, `user-ordinary`, `cpus-one`, `valgrind-no`, `aslr-off`, …).
//!
//! For the snapshot `NAME` and the tags `D` of this machine:
//!
//! - `D` empty: exact comparison with `NAME.snap`.
//! - every tag of `D` belongs to a configuration `scripts/matrix.sh` has verified: let `R` be the
//!   tags of `D` that some `NAME@TAGS.snap` of this snapshot mentions (the differences this output
//!   is known to depend on). `R` empty: exact comparison with `NAME.snap` (the matrix showed the
//!   other differences do not change it); otherwise exact comparison with `NAME@R.snap`, or, when
//!   that combination was never recorded, the findings check of question 2.
//! - a tag no verified configuration covers (another kernel, page size or architecture): the
//!   findings check of question 2, and the test says so.
//!
//! With `VMBOOK_RECORD_VARIANTS=1` (set by `scripts/matrix.sh --record`), an output that differs
//! from what it is compared with is written as `NAME@D.snap.new` for `cargo insta review`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What one snapshot test compares its output with on this machine.
#[derive(Debug)]
pub enum Expectation {
    /// An exact comparison with this accepted snapshot (`NAME` or `NAME@TAGS`).
    Exact(String),
    /// Only the findings check; the reason is printed with the test's result.
    FindingsOnly(String),
}

/// The reference configuration and what the matrix has verified, from `tests/environments.toml`.
pub struct Environments {
    pub reference: BTreeMap<String, String>,
    pub verified: Vec<BTreeSet<String>>,
}

pub fn environments() -> Environments {
    let path = super::root().join("tests/environments.toml");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let value: toml::Table = text
        .parse()
        .unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
    let reference = value["reference"]
        .as_table()
        .expect("[reference]")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("a string value").to_string()))
        .collect();
    let verified = value["matrix"]["verified"]
        .as_array()
        .expect("[matrix] verified")
        .iter()
        .map(|tags| split_tags(tags.as_str().expect("TAGS strings")))
        .collect();
    Environments {
        reference,
        verified,
    }
}

/// `thp-always+frames-hidden` → {frames-hidden, thp-always}.
pub fn split_tags(text: &str) -> BTreeSet<String> {
    text.split('+')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// The canonical spelling of a set of tags, as snapshot suffixes use it.
pub fn join_tags(tags: &BTreeSet<String>) -> String {
    tags.iter().cloned().collect::<Vec<_>>().join("+")
}

/// This machine's differences from the reference, as tags (`KEY-VALUE`), detected now.
pub fn differences() -> BTreeSet<String> {
    let envs = environments();
    vmbook::environment::Environment::detect()
        .facts()
        .into_iter()
        .filter(|(key, value)| envs.reference.get(*key) != Some(value))
        .map(|(key, value)| format!("{key}-{value}"))
        .collect()
}

/// The snapshot suffixes recorded for `name` (`NAME@TAGS.snap` in `dir`), as tag sets.
pub fn variants(dir: &Path, name: &str) -> Vec<BTreeSet<String>> {
    let prefix = format!("{name}@");
    let mut found: Vec<BTreeSet<String>> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let file = e.file_name().to_string_lossy().into_owned();
                    let tags = file.strip_prefix(&prefix)?.strip_suffix(".snap")?;
                    Some(split_tags(tags))
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// How the snapshot `name` (kept in `dir`) is checked on a machine with the tags `machine`.
pub fn expectation(
    envs: &Environments,
    dir: &Path,
    name: &str,
    machine: &BTreeSet<String>,
) -> Expectation {
    if machine.is_empty() {
        return Expectation::Exact(name.to_string());
    }
    let covered: BTreeSet<&String> = envs.verified.iter().flatten().collect();
    let unknown: Vec<&String> = machine.iter().filter(|t| !covered.contains(t)).collect();
    if !unknown.is_empty() {
        return Expectation::FindingsOnly(format!(
            "this machine differs from the reference configuration in {} (tests/environments.toml), \
             which no recorded configuration covers",
            unknown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let depends: BTreeSet<String> = variants(dir, name).into_iter().flatten().collect();
    let relevant: BTreeSet<String> = machine.intersection(&depends).cloned().collect();
    if relevant.is_empty() {
        return Expectation::Exact(name.to_string());
    }
    let variant = format!("{name}@{}", join_tags(&relevant));
    if dir.join(format!("{variant}.snap")).exists() {
        Expectation::Exact(variant)
    } else {
        Expectation::FindingsOnly(format!(
            "no snapshot was accepted for the combination {} of this machine's differences",
            join_tags(&relevant)
        ))
    }
}

/// The content of an accepted snapshot file (what follows insta's header), if it exists.
pub fn snapshot_content(dir: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(format!("{name}.snap"))).ok()?;
    // insta's format: `---`, a YAML header, `---`, then the content.
    let rest = text.strip_prefix("---\n")?;
    let end = rest.find("\n---\n")?;
    Some(rest[end + 5..].to_string())
}

/// A recorded variant: its tags and its findings.
type Variant = (BTreeSet<String>, Vec<(String, String)>);

/// One `finding:` line: the claim and its verdict (`confirmed`, `REFUTED`, `not checked`).
pub fn findings(output: &str) -> Vec<(String, String)> {
    output
        .lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix("finding: ")?;
            let (claim, verdict) = rest.rsplit_once(" — ")?;
            let verdict = ["confirmed", "REFUTED", "not checked"]
                .into_iter()
                .find(|v| verdict.starts_with(v))?;
            Some((claim.to_string(), verdict.to_string()))
        })
        .collect()
}

/// Question 2 for one output: no REFUTED, every claim of the book still made (as in the reference
/// snapshot or a recorded variant), and `not checked` only where a recorded configuration that
/// shares a difference with this machine shows it, or where this machine has a difference no
/// configuration covers (then nothing can be attributed). Returns the problems found.
pub fn findings_check(
    envs: &Environments,
    dir: &Path,
    name: &str,
    machine: &BTreeSet<String>,
    output: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    let got = findings(output);
    for (claim, verdict) in &got {
        if verdict == "REFUTED" {
            problems.push(format!("REFUTED: {claim}"));
        }
    }
    let Some(base) = snapshot_content(dir, name) else {
        return vec![format!(
            "no accepted snapshot {name}.snap to take the book's claims from"
        )];
    };
    let base = findings(&base);
    let recorded: Vec<Variant> = variants(dir, name)
        .into_iter()
        .filter_map(|tags| {
            let text = snapshot_content(dir, &format!("{name}@{}", join_tags(&tags)))?;
            Some((tags, findings(&text)))
        })
        .collect();
    let covered: BTreeSet<&String> = envs.verified.iter().flatten().collect();
    let unattributable = machine.iter().any(|t| !covered.contains(t));
    let known_claim = |claim: &str| {
        base.iter().any(|(c, _)| c == claim)
            || recorded
                .iter()
                .any(|(_, f)| f.iter().any(|(c, _)| c == claim))
    };
    for (claim, _) in &got {
        if !known_claim(claim) {
            problems.push(format!(
                "a claim the book does not make (not in {name}.snap nor any variant): {claim}"
            ));
        }
    }
    for (claim, verdict) in &base {
        let dropped_somewhere = recorded
            .iter()
            .any(|(_, f)| !f.iter().any(|(c, _)| c == claim));
        if !got.iter().any(|(c, _)| c == claim) && !dropped_somewhere && !unattributable {
            problems.push(format!("the book's claim is no longer made: {claim}"));
        }
        let now_unchecked = got
            .iter()
            .any(|(c, v)| c == claim && v == "not checked" && verdict != "not checked");
        let explained = unattributable
            || recorded.iter().any(|(tags, f)| {
                tags.iter().any(|t| machine.contains(t))
                    && f.iter().any(|(c, v)| c == claim && v == "not checked")
            });
        if now_unchecked && !explained {
            problems.push(format!(
                "`{claim}` says not checked here, but no recorded configuration sharing this \
                 machine's differences ({}) explains it",
                join_tags(machine)
            ));
        }
    }
    problems
}

/// The directory the snapshots are kept in (`VMBOOK_SNAPSHOT_DIR` lets the matrix record into a
/// copy an unprivileged user may write).
pub fn snapshot_dir() -> PathBuf {
    std::env::var_os("VMBOOK_SNAPSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::root().join("tests/snapshots"))
}
