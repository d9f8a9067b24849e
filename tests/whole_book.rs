//! Builds the whole book in-process, with the pinned mdbook and mdbook-cmdrun as libraries, and
//! fails on what mdbook-cmdrun and mdbook only print or log: a `cmdrun error`, an output block that
//! came out empty, an `{{#include}}` whose file or anchor is missing, and an internal link or anchor
//! that points nowhere.

mod reader;
mod support;

use regex::Regex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[test]
fn the_book_builds_with_every_output_in_place() {
    let out = support::build_book("test-book");

    let pages = html_pages(&out);
    assert!(
        pages.len() > 3,
        "only {} pages were rendered into {}",
        pages.len(),
        out.display()
    );
    let mut problems = Vec::new();
    let empty_block = Regex::new(r"<pre><code[^>]*>\s*</code></pre>").unwrap();
    for (path, html) in &pages {
        let page = path.strip_prefix(&out).unwrap().display().to_string();
        if page == "print.html" {
            continue; // the same content again; its links are rewritten to anchors
        }
        if html.contains("cmdrun error") {
            problems.push(format!("{page}: contains a `cmdrun error`"));
        }
        // mdbook only logs a missing {{#include}} file or anchor, and leaves the link in the page.
        if html.contains("{{#include") || html.contains("{{#rustdoc_include") {
            problems.push(format!("{page}: an {{{{#include}}}} that did not resolve"));
        }
        if empty_block.is_match(html) {
            problems.push(format!("{page}: has an empty output block"));
        }
        problems.extend(broken_links(&out, path, html, &pages));
    }
    // Every chapter directive must have produced its command line in the rendered page.
    for directive in support::directives() {
        if let Ok((bin, _)) = &directive.parsed {
            let page = out.join(
                directive
                    .file
                    .strip_prefix("book")
                    .unwrap()
                    .with_extension("html"),
            );
            let html = pages.get(&page).map(String::as_str).unwrap_or("");
            if !html.contains(&format!("$ cargo run --bin {bin}")) {
                problems.push(format!(
                    "{}: the output of `{bin}` is missing from {}",
                    directive.location(),
                    page.display()
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn html_pages(dir: &Path) -> HashMap<PathBuf, String> {
    let mut pages = HashMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "html") {
                let html = std::fs::read_to_string(&path).unwrap();
                pages.insert(path, html);
            }
        }
    }
    pages
}

/// Internal links (`href="x.html#anchor"`) whose file or anchor does not exist.
fn broken_links(
    out: &Path,
    page: &Path,
    html: &str,
    pages: &HashMap<PathBuf, String>,
) -> Vec<String> {
    let href = Regex::new(r#"href="([^"]*)""#).unwrap();
    let mut broken = Vec::new();
    for cap in href.captures_iter(html) {
        let link = &cap[1];
        if link.contains("://") || link.starts_with("mailto:") || link.is_empty() {
            continue;
        }
        let (file, anchor) = link.split_once('#').unwrap_or((link, ""));
        let target = if file.is_empty() {
            page.to_path_buf()
        } else {
            normalize(&page.parent().unwrap().join(file))
        };
        let shown = page.strip_prefix(out).unwrap().display();
        if !target.exists() {
            broken.push(format!("{shown}: link to {link}: no such file"));
            continue;
        }
        if !anchor.is_empty() {
            if let Some(target_html) = pages.get(&target) {
                if !target_html.contains(&format!("id=\"{anchor}\"")) {
                    broken.push(format!("{shown}: link to {link}: no such anchor"));
                }
            }
        }
    }
    broken
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// `claims` and the tests read the book through one model (`vmbook::book`), which must read it as
/// the real tools do: on every line of the book, the directives mdbook-cmdrun's own pattern finds;
/// in book/SUMMARY.md, the pages in the order mdBook's own summary parser gives.
#[test]
fn the_book_model_reads_the_book_as_mdbook_and_mdbook_cmdrun_do() {
    let root = support::root();
    let cmdrun = Regex::new(r"<!--[ ]*cmdrun (.*?)-->").unwrap();
    let mut lines = 0;
    let mut stack = vec![root.join("book")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                for (index, line) in std::fs::read_to_string(&path).unwrap().lines().enumerate() {
                    let theirs: Vec<&str> = cmdrun
                        .captures_iter(line)
                        .map(|c| c.get(1).unwrap().as_str())
                        .collect();
                    assert_eq!(
                        vmbook::book::cmdrun_matches(line),
                        theirs,
                        "{}:{}",
                        path.display(),
                        index + 1
                    );
                    lines += 1;
                }
            }
        }
    }
    assert!(lines > 100, "only {lines} lines of Markdown under book/");
    let ours: Vec<(String, PathBuf)> = vmbook::book::summary(&root)
        .unwrap()
        .into_iter()
        .map(|page| (page.title, page.file))
        .collect();
    let mdbooks: Vec<(String, PathBuf)> = reader::chapters()
        .into_iter()
        .map(|chapter| (chapter.title, chapter.file))
        .collect();
    assert_eq!(ours, mdbooks);
}
