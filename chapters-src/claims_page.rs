//! `claims --html`: the reader's run beside the book's, as one self-contained page.
//!
//! Each finding of this run is put next to the one the book accepted for the same directive (the
//! snapshot under `tests/snapshots/`, the output the published book was checked against), and
//! marked `same`, `differs`, `not in accepted run` or `missing`. A difference that a configuration
//! recorded beside the reference one explains (`NAME@TAGS.snap`: frames hidden, THP always, one
//! CPU, …) says so, so that a reader without root sees why the frame claims went `not checked`.
//!
//! The page has no script and loads nothing: it opens from disk, and prints.

use anyhow::{Context, Result};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use vmbook::book::{Directive, Finding};
use vmbook::figure::escape;

/// One directive as this run saw it.
pub struct Ran {
    /// The chapter's title as SUMMARY.md gives it.
    pub title: String,
    pub directive: Directive,
    /// Its findings (a line of no known form comes back whole), or why the program failed.
    pub outcome: Result<Vec<Result<Finding, String>>, String>,
}

/// How one finding of this run compares with the book's.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Compared {
    Same,
    Differs,
    NotInAccepted,
    Missing,
}

impl Compared {
    const ALL: [Compared; 4] = [
        Compared::Same,
        Compared::Differs,
        Compared::NotInAccepted,
        Compared::Missing,
    ];

    fn label(self) -> &'static str {
        match self {
            Compared::Same => "same",
            Compared::Differs => "differs",
            Compared::NotInAccepted => "not in accepted run",
            Compared::Missing => "missing",
        }
    }

    fn class(self) -> &'static str {
        match self {
            Compared::Same => "same",
            Compared::Differs => "differs",
            Compared::NotInAccepted => "new",
            Compared::Missing => "missing",
        }
    }
}

/// One row of a directive's table.
struct Row {
    claim: String,
    mine: Option<Finding>,
    accepted: Option<Finding>,
    compared: Compared,
    /// A recorded configuration of this machine's whose snapshot has this run's verdict.
    explained_by: Option<String>,
}

/// The snapshots the book accepted, and the configuration they were accepted on.
pub struct Accepted {
    dir: PathBuf,
    /// This machine's differences from the reference configuration, as snapshot tags
    /// (`frames-hidden`), or why they could not be told.
    differences: Result<BTreeSet<String>, String>,
}

impl Accepted {
    /// `ROOT/tests/snapshots` (or `VMBOOK_SNAPSHOT_DIR`, as in the tests), and this machine's
    /// differences from `[reference]` in `ROOT/tests/environments.toml`.
    pub fn find(root: &Path) -> Accepted {
        let dir = std::env::var_os("VMBOOK_SNAPSHOT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("tests/snapshots"));
        let differences =
            reference_configuration(&root.join("tests/environments.toml")).map(|reference| {
                vmbook::environment::Environment::detect()
                    .facts()
                    .into_iter()
                    .filter(|(key, value)| {
                        reference
                            .iter()
                            .all(|(k, v)| k != key || v.as_str() != value)
                    })
                    .map(|(key, value)| format!("{key}-{value}"))
                    .collect()
            });
        Accepted { dir, differences }
    }

    /// The findings of snapshot `name` (`pages__touch`, `pages__touch@thp-always`), if it exists.
    fn findings(&self, name: &str) -> Option<Vec<Finding>> {
        let text = std::fs::read_to_string(self.dir.join(format!("{name}.snap"))).ok()?;
        // insta's format: `---`, a YAML header, `---`, then the output.
        let rest = text.strip_prefix("---\n")?;
        let body = &rest[rest.find("\n---\n")? + 5..];
        Some(vmbook::book::findings(body).into_iter().flatten().collect())
    }

    /// The variants of `name` recorded for configurations this machine shares (`NAME@TAGS` with
    /// every tag among this machine's differences), with their findings.
    fn variants(&self, name: &str) -> Vec<(String, Vec<Finding>)> {
        let Ok(differences) = &self.differences else {
            return Vec::new();
        };
        let prefix = format!("{name}@");
        let mut found: Vec<(String, Vec<Finding>)> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let file = entry.file_name().to_string_lossy().into_owned();
                let tags = file.strip_prefix(&prefix)?.strip_suffix(".snap")?;
                tags.split('+')
                    .all(|t| differences.contains(t))
                    .then(|| tags.to_string())
            })
            .filter_map(|tags| Some((tags.clone(), self.findings(&format!("{name}@{tags}"))?)))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }
}

/// The `key = "value"` lines of the `[reference]` table (the file is plain TOML; the programs do
/// not depend on a TOML parser, which every `cargo run` would pay for).
fn reference_configuration(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut in_reference = false;
    let mut pairs = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_reference = line == "[reference]";
        } else if let (true, Some((key, value))) = (in_reference, line.split_once('=')) {
            let value = value.trim();
            if let Some(value) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                pairs.push((key.trim().to_string(), value.to_string()));
            }
        }
    }
    if pairs.is_empty() {
        return Err(format!("{}: no [reference] table", path.display()));
    }
    Ok(pairs)
}

/// The snapshot a directive's output was accepted as: the tests' name for it (`pages__touch`,
/// `posix-shm__pipeline---input-data_numbers_txt`), chapter, binary when it differs, arguments.
pub fn snapshot_name(directive: &Directive) -> Option<String> {
    let run = directive.run().ok()?;
    Some(vmbook::book::snapshot_name(
        &directive.chapter(),
        &run.bin,
        &run.args,
    ))
}

/// Pairs this run's findings with the accepted ones, claim by claim, in this run's order; the
/// accepted claims this run did not print come last.
fn compare(
    mine: &[Finding],
    accepted: &[Finding],
    variants: &[(String, Vec<Finding>)],
) -> Vec<Row> {
    let mut unused: Vec<Option<&Finding>> = accepted.iter().map(Some).collect();
    let mut rows = Vec::new();
    for finding in mine {
        let matched = unused
            .iter_mut()
            .find(|a| a.is_some_and(|a| same_claim(&a.claim, &finding.claim)))
            .and_then(Option::take);
        let compared = match matched {
            None => Compared::NotInAccepted,
            Some(a) if a.verdict == finding.verdict => Compared::Same,
            Some(_) => Compared::Differs,
        };
        let explained_by = (compared != Compared::Same)
            .then(|| {
                variants.iter().find(|(_, found)| {
                    found.iter().any(|f| {
                        same_claim(&f.claim, &finding.claim) && f.verdict == finding.verdict
                    })
                })
            })
            .flatten()
            .map(|(tags, _)| tags.clone());
        rows.push(Row {
            claim: finding.claim.clone(),
            mine: Some(finding.clone()),
            accepted: matched.cloned(),
            compared,
            explained_by,
        });
    }
    for accepted in unused.into_iter().flatten() {
        let explained_by = variants
            .iter()
            .find(|(_, found)| !found.iter().any(|f| f.claim == accepted.claim))
            .map(|(tags, _)| tags.clone());
        rows.push(Row {
            claim: accepted.claim.clone(),
            mine: None,
            accepted: Some(accepted.clone()),
            compared: Compared::Missing,
            explained_by,
        });
    }
    rows
}

/// Whether this run's `claim` is the `accepted` one. A claim may name an option's value (`a 1 ms
/// poller`), which the snapshots redact like any varying value (`a [TIME] poller`): a placeholder
/// of that form (`[TIME]`, `[SIZE]`, `[ADDR]`, ...) stands for any text that is not empty.
fn same_claim(accepted: &str, claim: &str) -> bool {
    if accepted == claim {
        return true;
    }
    // The accepted claim as literal pieces, split at the placeholders.
    let mut pieces = Vec::new();
    let mut rest = accepted;
    while let Some(open) = rest.find('[') {
        let close = rest[open..].find(']').map(|c| open + c);
        match close {
            Some(close)
                if close > open + 1
                    && rest[open + 1..close]
                        .chars()
                        .all(|c| c.is_ascii_uppercase()) =>
            {
                pieces.push(&rest[..open]);
                rest = &rest[close + 1..];
            }
            _ => return false, // a bracket that is no placeholder: the claims differ
        }
    }
    pieces.push(rest);
    if pieces.len() == 1 {
        return false;
    }
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    if !claim.starts_with(first) || !claim[first.len()..].ends_with(last) {
        return false;
    }
    // Each placeholder takes at least one character, each middle piece its first match after it.
    let mut at = first.len();
    let end = claim.len() - last.len();
    for piece in &pieces[1..pieces.len() - 1] {
        let between = &claim[at..end];
        let skip = between.chars().next().map_or(0, char::len_utf8);
        match between[skip..].find(piece) {
            Some(i) if skip > 0 => at += skip + i + piece.len(),
            _ => return false,
        }
    }
    end > at
}

/// Writes the page to `path` (its directory is created).
pub fn write(path: &Path, machine: &str, accepted: &Accepted, runs: &[Ran]) -> Result<()> {
    let html = render(machine, accepted, runs);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("mkdir -p {}", dir.display()))?;
    }
    std::fs::write(path, html).with_context(|| format!("write {}", path.display()))
}

const STYLE: &str = "
body { font: 16px/1.45 system-ui, sans-serif; margin: 1.5rem auto; max-width: 80rem; padding: 0 1rem;
       color: #1b1b1b; background: #fff; }
table { border-collapse: collapse; width: 100%; margin: 0.5rem 0 1.5rem; table-layout: fixed; }
thead th { width: 30%; }
thead th:last-child { width: 10%; }
caption { text-align: left; font-weight: 600; padding: 0.3rem 0; }
th, td { border: 1px solid #bbb; padding: 0.3rem 0.5rem; text-align: left; vertical-align: top; }
thead th { background: #eee; }
tbody th { font-weight: normal; }
.evidence { display: block; color: #555; font-size: 0.9em; overflow-wrap: anywhere; }
.verdict { font-weight: 600; }
tr.differs td.compared, tr.missing td.compared { background: #fde2c8; font-weight: 600; }
tr.new td.compared { background: #fff3b0; font-weight: 600; }
tr.same td.compared { background: #dcf1dc; }
tr.failed td { background: #f8d0d0; }
code { font-family: ui-monospace, monospace; font-size: 0.95em; }
@media (prefers-color-scheme: dark) {
  body { color: #e4e4e4; background: #161616; }
  th, td { border-color: #555; }
  thead th { background: #2a2a2a; }
  .evidence { color: #b0b0b0; }
  tr.differs td.compared, tr.missing td.compared { background: #5a3510; }
  tr.new td.compared { background: #4a4210; }
  tr.same td.compared { background: #1d3b1d; }
  tr.failed td { background: #5a1d1d; }
  a { color: #8cb4ff; }
}
";

fn render(machine: &str, accepted: &Accepted, runs: &[Ran]) -> String {
    let mut counts = [0usize; 4];
    let mut attention = Vec::new();
    let mut failed = 0;
    let mut body = String::new();
    let mut chapter_open: Option<&Path> = None;
    for (index, ran) in runs.iter().enumerate() {
        let d = &ran.directive;
        if chapter_open != Some(d.file.as_path()) {
            if chapter_open.is_some() {
                body.push_str("</section>\n");
            }
            let id = format!("chapter-{}", d.chapter());
            let _ = writeln!(
                body,
                "<section aria-labelledby=\"{id}\">\n<h2 id=\"{id}\">{} <small>({})</small></h2>",
                escape(&ran.title),
                escape(&d.file.display().to_string())
            );
            chapter_open = Some(d.file.as_path());
        }
        let command = d.command().unwrap_or(&d.text);
        let name = snapshot_name(d);
        let accepted_findings = name.as_deref().and_then(|n| accepted.findings(n));
        let variants = name
            .as_deref()
            .map(|n| accepted.variants(n))
            .unwrap_or_default();
        let _ = writeln!(
            body,
            "<table id=\"run-{index}\">\n<caption><code>{}</code> ({}){}</caption>",
            escape(command),
            escape(&d.location()),
            match (&name, &accepted_findings) {
                (Some(n), Some(_)) => format!(
                    ", accepted as <code>tests/snapshots/{}.snap</code>",
                    escape(n)
                ),
                (Some(n), None) => format!(
                    ", <strong>no accepted snapshot</strong> <code>tests/snapshots/{}.snap</code>",
                    escape(n)
                ),
                (None, _) => ", <strong>not a directive of the accepted form</strong>".into(),
            }
        );
        body.push_str(
            "<thead><tr><th scope=\"col\">Claim</th><th scope=\"col\">Your run</th>\
             <th scope=\"col\">The book&#39;s accepted run</th><th scope=\"col\">Compared</th></tr></thead>\n<tbody>\n",
        );
        let mine: Vec<Finding> = match &ran.outcome {
            Ok(findings) => {
                for malformed in findings.iter().filter_map(|f| f.as_ref().err()) {
                    let _ = writeln!(
                        body,
                        "<tr class=\"failed\"><th scope=\"row\">{}</th><td>a finding line of no known form</td><td></td><td class=\"compared\">malformed</td></tr>",
                        escape(malformed)
                    );
                    failed += 1;
                }
                findings
                    .iter()
                    .filter_map(|f| f.as_ref().ok())
                    .cloned()
                    .collect()
            }
            Err(why) => {
                let _ = writeln!(
                    body,
                    "<tr class=\"failed\"><th scope=\"row\">the program failed</th><td>{}</td><td></td><td class=\"compared\">failed</td></tr>",
                    escape(why)
                );
                failed += 1;
                attention.push((format!("run-{index}"), command.to_string(), "failed".into()));
                Vec::new()
            }
        };
        let rows = compare(
            &mine,
            accepted_findings.as_deref().unwrap_or(&[]),
            &variants,
        );
        for (n, row) in rows.iter().enumerate() {
            let id = format!("run-{index}-{n}");
            counts[Compared::ALL
                .iter()
                .position(|&c| c == row.compared)
                .unwrap_or(0)] += 1;
            let mut compared = row.compared.label().to_string();
            if let Some(tags) = &row.explained_by {
                let _ = write!(compared, " (as accepted for {tags})");
            }
            if row.compared != Compared::Same {
                attention.push((id.clone(), row.claim.clone(), compared.clone()));
            }
            let _ = writeln!(
                body,
                "<tr id=\"{id}\" class=\"{}\"><th scope=\"row\">{}</th><td>{}</td><td>{}</td><td class=\"compared\">{}</td></tr>",
                row.compared.class(),
                escape(&row.claim),
                cell(row.mine.as_ref(), "not printed by your run"),
                cell(row.accepted.as_ref(), "not in the accepted run"),
                escape(&compared)
            );
        }
        if rows.is_empty() && ran.outcome.is_ok() {
            body.push_str(
                "<tr class=\"same\"><th scope=\"row\">(no findings)</th><td></td><td></td><td class=\"compared\">same</td></tr>\n",
            );
        }
        body.push_str("</tbody>\n</table>\n");
    }
    if chapter_open.is_some() {
        body.push_str("</section>\n");
    }

    let mut page = String::new();
    page.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\" />\n");
    page.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\" />\n");
    page.push_str("<title>Does this machine agree with the book?</title>\n");
    let _ = writeln!(page, "<style>{STYLE}</style>\n</head>\n<body>\n<main>");
    page.push_str("<h1>Does this machine agree with the book?</h1>\n");
    let _ = writeln!(
        page,
        "<p>Your run: {}. Its differences from the configuration the book&#39;s outputs were accepted on: {}.</p>",
        escape(machine),
        match &accepted.differences {
            Ok(d) if d.is_empty() => "none".to_string(),
            Ok(d) => format!(
                "<code>{}</code>",
                escape(&d.iter().cloned().collect::<Vec<_>>().join(", "))
            ),
            Err(why) => format!("unknown ({})", escape(why)),
        }
    );
    let _ = writeln!(
        page,
        "<p>Each finding of your run beside the one the book accepted for the same program: \
         {} same, {} differ, {} not in the accepted run, {} missing from yours{}. \
         The accepted evidence shows values that vary from run to run as <code>[ADDR]</code>, \
         <code>[TIME]</code> and the like.</p>",
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        if failed > 0 {
            format!(", {failed} programs failed or printed a malformed finding")
        } else {
            String::new()
        }
    );
    page.push_str("<h2 id=\"where-it-differs\">Where your run differs</h2>\n");
    if attention.is_empty() {
        page.push_str("<p>Nowhere: every finding has the book&#39;s verdict.</p>\n");
    } else {
        page.push_str("<ul>\n");
        for (id, what, how) in &attention {
            let _ = writeln!(
                page,
                "<li><a href=\"#{id}\">{}</a>: {}</li>",
                escape(what),
                escape(how)
            );
        }
        page.push_str("</ul>\n");
    }
    page.push_str(&body);
    page.push_str("</main>\n</body>\n</html>\n");
    page
}

/// A verdict and its evidence, or why there is none.
fn cell(finding: Option<&Finding>, absent: &str) -> String {
    match finding {
        Some(f) => format!(
            "<span class=\"verdict\">{}</span> <span class=\"evidence\">({})</span>",
            escape(f.verdict.printed()),
            escape(&f.evidence)
        ),
        None => format!("<em>{}</em>", escape(absent)),
    }
}

#[cfg(test)]
mod tests {
    use super::same_claim;

    #[test]
    fn a_placeholder_stands_for_any_value() {
        let accepted = "a spinner burns the most CPU, a [TIME] poller less";
        assert!(same_claim(
            accepted,
            "a spinner burns the most CPU, a 1 ms poller less"
        ));
        assert!(same_claim(
            accepted,
            "a spinner burns the most CPU, a 2.5 µs poller less"
        ));
        assert!(!same_claim(
            accepted,
            "a spinner burns the most CPU, a  poller less"
        ));
        assert!(!same_claim(
            accepted,
            "a spinner burns the most CPU, a 1 ms poller more"
        ));
        assert!(same_claim("[N] of [N] pages", "3 of 4 pages"));
        assert!(!same_claim("[N] of [N] pages", "3 of  pages"));
        assert!(!same_claim("plain [claim]", "plain text"));
        assert!(same_claim("plain", "plain"));
    }
}
