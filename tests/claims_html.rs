//! `cargo run --bin claims -- --html PATH`: the reader's run beside the book's accepted one. The
//! page must be well-formed, self-contained and accessible (a caption and header cells in every
//! table), list every finding of the run and of the accepted snapshots, and mark a difference as
//! one: a verdict that differs, a claim the accepted run does not make, and one this run misses.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A directory of its own under target/, empty.
fn scratch(name: &str) -> PathBuf {
    let dir = support::root()
        .join("target")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `claims ARGS` as the claims test does: this run's binaries through the shim, each program
/// once per test run.
fn claims(args: &[&str], snapshots: Option<&Path>) -> Output {
    let mut command = Command::new(support::binary("claims"));
    command
        .args(args)
        .current_dir(support::root())
        .envs(support::shim_environment())
        .stdin(Stdio::null());
    if let Some(dir) = snapshots {
        command.env("VMBOOK_SNAPSHOT_DIR", dir);
    }
    command.output().expect("start claims")
}

#[test]
fn the_page_lists_every_finding_beside_the_accepted_one() {
    let dir = scratch("claims-html");
    let page = dir.join("compared.html");
    let output = claims(&["--html", page.to_str().unwrap()], None);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let html = std::fs::read_to_string(&page).unwrap_or_else(|e| {
        panic!(
            "claims --html wrote no page ({e}); exit {}\n{stdout}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(
        stdout.contains(&page.display().to_string()),
        "claims does not say where the page is:\n{stdout}"
    );
    if let Err(why) = well_formed(&html) {
        panic!("{}: not well-formed: {why}", page.display());
    }
    self_contained_and_accessible(&html);

    // Every finding this run printed (claims lists them as `  VERDICT  CLAIM`, with the evidence
    // after a claim that was not confirmed) is a row of the page ...
    let heads: Vec<String> = html
        .lines()
        .filter(|l| l.starts_with("<tr "))
        .filter_map(|l| {
            let start = l.find("<th scope=\"row\">")? + "<th scope=\"row\">".len();
            Some(l[start..start + l[start..].find("</th>")?].to_string())
        })
        .collect();
    let mut listed = 0;
    for line in stdout.lines() {
        for verdict in ["confirmed", "REFUTED", "not checked"] {
            if let Some(rest) = line.strip_prefix(&format!("  {verdict} ")) {
                let shown = escape(rest.trim_start());
                assert!(
                    heads
                        .iter()
                        .any(|h| shown == *h || shown.starts_with(&format!("{h} ("))),
                    "this run's finding `{rest}` is not a row of the page"
                );
                listed += 1;
            }
        }
    }
    assert!(listed > 0, "claims listed no finding:\n{stdout}");
    // ... and so is every claim the book accepted, each next to its directive's run.
    let placeholder = regex::Regex::new(r"\\\[[A-Z]+\\\]").unwrap();
    for directive in support::directives() {
        let location = format!("({})", directive.location());
        assert!(
            html.contains(&escape(&location)),
            "no table for the directive at {location}"
        );
        let name = directive.snapshot_name();
        let accepted =
            std::fs::read_to_string(support::root().join(format!("tests/snapshots/{name}.snap")))
                .unwrap_or_else(|e| panic!("no accepted snapshot {name}: {e}"));
        assert!(
            html.contains(&format!("tests/snapshots/{name}.snap")),
            "the page does not name {name}.snap as the accepted run of {location}"
        );
        for finding in vmbook::book::findings(&accepted) {
            // The row shows this run's claim where it names a value the snapshot redacted.
            let claim = finding.expect("a finding of known form").claim;
            let pattern = regex::Regex::new(&format!(
                "^{}$",
                placeholder.replace_all(&regex::escape(&escape(&claim)), ".+")
            ))
            .unwrap();
            assert!(
                heads.iter().any(|h| pattern.is_match(h)),
                "the accepted claim `{claim}` of {name} is not on the page"
            );
        }
    }
    // The tally at the top counts the rows below it.
    let rows = html.matches("<tr id=\"run-").count();
    let tally = regex::Regex::new(
        r"(\d+) same, (\d+) differ, (\d+) not in the accepted run, (\d+) missing from yours",
    )
    .unwrap();
    let caps = tally.captures(&html).expect("the tally line");
    let counted: usize = (1..=4).map(|i| caps[i].parse::<usize>().unwrap()).sum();
    assert_eq!(counted, rows, "the tally does not count the rows");
    // Verdicts may differ from the accepted run (a timing claim on a busy machine), claims may not:
    // every claim the programs print is one the book accepted, with any value it names redacted.
    // (On the reference configuration; elsewhere a recorded variant may print fewer claims.)
    if html.contains("were accepted on: none.") {
        assert_eq!(
            (&caps[3], &caps[4]),
            ("0", "0"),
            "claims this run printed are not matched with the accepted ones"
        );
    }
    println!("{}: {rows} findings compared; {}", page.display(), &caps[0]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_page_marks_where_the_run_differs() {
    let dir = scratch("claims-html-differs");
    // Accepted snapshots in which one verdict was flipped, one claim renamed (so this run's claim
    // is not in it and the renamed one is missing from this run), one claim holds markup.
    let snapshots = dir.join("snapshots");
    std::fs::create_dir_all(&snapshots).unwrap();
    for entry in std::fs::read_dir(support::root().join("tests/snapshots")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, snapshots.join(path.file_name().unwrap())).unwrap();
    }
    let reserve = snapshots.join("virtual-memory__reserve.snap");
    let text = std::fs::read_to_string(&reserve).unwrap();
    let flipped = "mmap grows VmSize by the size reserved";
    let renamed = "mmap alone leaves VmRSS unchanged (within 1 MiB)";
    let marked_up = "a claim with <b>markup</b> & \"quotes\"";
    assert!(text.contains(&format!("finding: {flipped} — confirmed")));
    assert!(text.contains(&format!("finding: {renamed} — confirmed")));
    let text = text
        .replace(
            &format!("finding: {flipped} — confirmed"),
            &format!("finding: {flipped} — not checked"),
        )
        .replace(
            &format!("finding: {renamed} — confirmed"),
            &format!("finding: {marked_up} — confirmed"),
        );
    std::fs::write(&reserve, text).unwrap();

    let page = dir.join("compared.html");
    let output = claims(
        &[
            "--chapter",
            "virtual-memory",
            "--html",
            page.to_str().unwrap(),
        ],
        Some(&snapshots),
    );
    let html = std::fs::read_to_string(&page).unwrap_or_else(|e| {
        panic!(
            "no page ({e}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    if let Err(why) = well_formed(&html) {
        panic!("not well-formed: {why}");
    }
    let row = |claim: &str| -> String {
        let head = format!("<th scope=\"row\">{}</th>", escape(claim));
        html.lines()
            .find(|l| l.starts_with("<tr ") && l.contains(&head))
            .unwrap_or_else(|| panic!("no row for `{claim}`:\n{html}"))
            .to_string()
    };
    let compared = |claim: &str| -> String {
        let row = row(claim);
        let start = row
            .find("<td class=\"compared\">")
            .expect("a Compared cell")
            + 21;
        row[start..row[start..].find("</td>").unwrap() + start].to_string()
    };
    assert_eq!(compared(flipped), "differs");
    assert_eq!(compared(renamed), "not in accepted run");
    assert_eq!(compared(marked_up), "missing");
    assert_eq!(
        compared("each kind of value lives in the mapping its kind predicts"),
        "same"
    );
    assert!(row(marked_up).contains("&lt;b&gt;markup&lt;/b&gt; &amp; &quot;quotes&quot;"));
    // The three are listed at the top, each a link to its row.
    let top = &html[html.find("id=\"where-it-differs\"").unwrap()..html.find("<section").unwrap()];
    for claim in [flipped, renamed, marked_up] {
        let id = row(claim)
            .split("id=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap()
            .to_string();
        assert!(
            top.contains(&format!("<a href=\"#{id}\">{}</a>", escape(claim))),
            "`{claim}` is not linked from the list of differences"
        );
    }
    assert!(html.contains("1 differ, 1 not in the accepted run, 1 missing from yours"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn self_contained_and_accessible(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    assert!(html.contains("<meta charset=\"utf-8\" />"));
    assert!(html.contains("<title>Does this machine agree with the book?</title>"));
    for outside in ["<script", "<link", "src=", "http://", "https://", "url("] {
        assert!(
            !html.contains(outside),
            "the page loads something: {outside}"
        );
    }
    let tables = html.matches("<table").count();
    assert!(tables > 0);
    assert_eq!(
        html.matches("<caption>").count(),
        tables,
        "a table without caption"
    );
    assert_eq!(
        html.matches("<thead><tr><th scope=\"col\">Claim</th>")
            .count(),
        tables,
        "a table without column headers"
    );
    for row in html.lines().filter(|l| l.starts_with("<tr ")) {
        assert!(
            row.contains("<th scope=\"row\">"),
            "a row without its header cell: {row}"
        );
    }
}

/// Whether `html` is well-formed as XML would have it (every element closed in order, void
/// elements self-closed, attributes quoted, `&` only in entities, no stray `<` or `>`), reading
/// the contents of `<style>` as raw text.
fn well_formed(html: &str) -> Result<(), String> {
    const VOID: [&str; 4] = ["meta", "br", "hr", "img"];
    let mut open: Vec<String> = Vec::new();
    let mut rest = html
        .strip_prefix("<!DOCTYPE html>")
        .ok_or("no <!DOCTYPE html>")?;
    let at = |rest: &str| format!("at byte {}", html.len() - rest.len());
    loop {
        let text_end = rest.find('<').unwrap_or(rest.len());
        check_text(&rest[..text_end]).map_err(|e| format!("{e} {}", at(rest)))?;
        rest = &rest[text_end..];
        if rest.is_empty() {
            break;
        }
        let end = rest
            .find('>')
            .ok_or_else(|| format!("unclosed tag {}", at(rest)))?;
        let tag = &rest[1..end];
        if let Some(name) = tag.strip_prefix('/') {
            match open.pop() {
                Some(top) if top == name => {}
                top => return Err(format!("</{name}> closes {top:?} {}", at(rest))),
            }
            rest = &rest[end + 1..];
            continue;
        }
        let self_closed = tag.ends_with('/');
        let tag = tag.trim_end_matches('/').trim_end();
        let (name, attributes) = tag.split_once(' ').unwrap_or((tag, ""));
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("a tag named {name:?} {}", at(rest)));
        }
        check_attributes(attributes).map_err(|e| format!("<{name}>: {e} {}", at(rest)))?;
        if VOID.contains(&name) != self_closed {
            return Err(format!("<{name}> self-closed: {self_closed} {}", at(rest)));
        }
        rest = &rest[end + 1..];
        if name == "style" {
            let close = rest.find("</style>").ok_or("<style> not closed")?;
            if rest[..close].contains('<') {
                return Err("a < inside <style>".into());
            }
            rest = &rest[close + "</style>".len()..];
        } else if !self_closed {
            open.push(name.to_string());
        }
    }
    if open.is_empty() {
        Ok(())
    } else {
        Err(format!("never closed: {open:?}"))
    }
}

/// `name="value"` pairs, separated by spaces, values free of `<` and unescaped `&`.
fn check_attributes(mut attributes: &str) -> Result<(), String> {
    loop {
        attributes = attributes.trim_start();
        if attributes.is_empty() {
            return Ok(());
        }
        let (name, value) = attributes
            .split_once("=\"")
            .ok_or_else(|| format!("an attribute without a quoted value: {attributes:?}"))?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!("an attribute named {name:?}"));
        }
        let close = value.find('"').ok_or("an attribute value never closed")?;
        check_text(&value[..close])?;
        attributes = &value[close + 1..];
    }
}

/// Text between tags: no `>`, and every `&` starts an entity.
fn check_text(text: &str) -> Result<(), String> {
    if text.contains('>') {
        return Err("a > in text".into());
    }
    let entity = regex::Regex::new(r"^&(?:[a-z]+|#[0-9]+);").unwrap();
    for (i, _) in text.match_indices('&') {
        if !entity.is_match(&text[i..]) {
            return Err(format!(
                "a bare & in {:?}",
                &text[i..text.len().min(i + 20)]
            ));
        }
    }
    Ok(())
}
