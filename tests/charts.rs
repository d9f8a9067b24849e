//! The book's figures, drawn by the programs at build time (`vmbook::figure`, `vmbook::chart`).
//!
//! Every `![alt](charts/NAME.svg)` in `book/` must stand right after a directive's output (the
//! run that drew it), have a real description as its alt text, and, after a build of the book,
//! be a well-formed SVG document (parsed) with something drawn in it and the labels listed for it
//! below. A figure that cannot be written must change nothing but stderr, and an explicit `--out`
//! must receive the appendix's and the TLB chapter's charts.

mod support;

use regex::Regex;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::redact::redact;

/// The labels each figure must carry (`a|b`: either), whatever the run measured.
const LABELS: &[(&str, &[&str])] = &[
    (
        "virtual-memory-address-space.svg",
        &[
            "/proc/self/maps",
            "size (log scale)",
            "program code",
            "heap",
            "shared library",
            "stack",
            "a local variable",
            "a small Box",
            "a 4 MiB Vec",
            "this function's code",
            "unmapped",
        ],
    ),
    (
        "copy-on-write-frames.svg",
        &[
            "right after fork",
            "after the child's write",
            "parent",
            "child",
            "exclusive",
            "PFN|frame numbers hidden",
        ],
    ),
    (
        "page-tables-tlb-reach.svg",
        &[
            "base pages",
            "MADV_HUGEPAGE",
            "region size (KiB)",
            "ns per read",
        ],
    ),
    (
        "memory-pressure-rss-pss.svg",
        &["parent", "child", "sum", "VmRSS", "Pss"],
    ),
    (
        "synchronization-cpu-per-wait.svg",
        &[
            "usleep(1000) polling",
            "spinning",
            "futex wait/wake",
            "CPU time",
        ],
    ),
    (
        "ipc-throughput.svg",
        &[
            "memcpy",
            "pipe",
            "Unix socket",
            "shm ring",
            "chunk size (KiB)",
            "GB/s",
        ],
    ),
    (
        "ipc-latency.svg",
        &["pipe", "shm + futex", "shm + spin", "signals", "one core"],
    ),
];

/// The values a figure shows that its run also printed: (figure, chapter page, pattern whose first
/// group must appear in that page's output). Start addresses of mappings and frame numbers differ in
/// every run, so finding them in the page shows the figure and the output come from one run.
const SAME_RUN: &[(&str, &str, &str)] = &[
    (
        "virtual-memory-address-space.svg",
        "virtual-memory.html",
        r"^(0x[0-9a-f]+)$",
    ),
    (
        "copy-on-write-frames.svg",
        "copy-on-write.html",
        r"^PFN (0x[0-9a-f]+)$",
    ),
];

/// A figure line of the book: where it is, its alt text and its file name under charts/.
struct FigureLine {
    place: String,
    alt: String,
    name: String,
    /// Whether the nearest code block above it runs a directive.
    after_directive: bool,
}

fn figure_lines() -> Vec<FigureLine> {
    let image = Regex::new(r"^!\[([^\]]*)\]\(charts/([^)]+\.svg)\)\s*$").unwrap();
    let mut found = Vec::new();
    let book = support::root().join("book");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&book)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(cap) = image.captures(line) else {
                continue;
            };
            // Up from the figure: the first fence closes a block; it must hold a directive.
            let mut above = lines[..i]
                .iter()
                .rev()
                .skip_while(|l| !l.starts_with("```"));
            above.next();
            let block: Vec<&&str> = above.take_while(|l| !l.starts_with("```")).collect();
            found.push(FigureLine {
                place: format!("{}:{}", file.file_name().unwrap().to_string_lossy(), i + 1),
                alt: cap[1].to_string(),
                name: cap[2].to_string(),
                after_directive: block.iter().any(|l| l.contains("<!-- cmdrun ")),
            });
        }
    }
    found
}

/// The text of every node of a parsed SVG document, or why it is not one.
fn svg_text(name: &str, svg: &str) -> Result<String, String> {
    let doc = roxmltree::Document::parse(svg).map_err(|e| format!("{name}: not XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "svg" {
        return Err(format!(
            "{name}: the root element is <{}>",
            root.tag_name().name()
        ));
    }
    let drawn = root
        .descendants()
        .filter(|n| {
            matches!(
                n.tag_name().name(),
                "rect" | "line" | "polyline" | "path" | "circle" | "text"
            )
        })
        .count();
    if drawn < 10 {
        return Err(format!("{name}: only {drawn} shapes and texts drawn"));
    }
    Ok(root
        .descendants()
        .filter_map(|n| n.text())
        .collect::<Vec<_>>()
        .join("\n"))
}

/// The labels of `name` missing from `text`.
fn missing_labels(name: &str, text: &str) -> Vec<String> {
    let labels = LABELS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, l)| *l)
        .unwrap_or(&[]);
    labels
        .iter()
        .filter(|label| !label.split('|').any(|one| text.contains(one)))
        .map(|label| format!("{name}: no `{label}`"))
        .collect()
}

#[test]
fn every_figure_in_the_book_is_drawn_by_the_build() {
    let figures = figure_lines();
    assert!(
        figures.len() >= 7,
        "only {} figures in the book",
        figures.len()
    );
    let mut problems = Vec::new();
    for f in &figures {
        if !f.after_directive {
            problems.push(format!(
                "{}: {} does not follow a directive's output",
                f.place, f.name
            ));
        }
        if f.alt.split_whitespace().count() < 6 {
            problems.push(format!(
                "{}: the alt text of {} describes nothing",
                f.place, f.name
            ));
        }
        if !LABELS.iter().any(|(n, _)| *n == f.name) {
            problems.push(format!(
                "{}: {} has no labels listed in tests/charts.rs",
                f.place, f.name
            ));
        }
    }
    // Gone before the build, so that finding them after it shows this build produced them.
    let charts = support::root().join("book/charts");
    for f in &figures {
        let _ = std::fs::remove_file(charts.join(&f.name));
    }
    let out = support::build_book("figures-book");
    for f in &figures {
        for (copy, dir) in [
            ("book/charts", &charts),
            ("the rendered book", &out.join("charts")),
        ] {
            let path = dir.join(&f.name);
            let svg = match std::fs::read_to_string(&path) {
                Ok(svg) => svg,
                Err(e) => {
                    problems.push(format!("{}: {} not in {copy}: {e}", f.place, f.name));
                    continue;
                }
            };
            match svg_text(&f.name, &svg) {
                Ok(text) => problems.extend(missing_labels(&f.name, &text)),
                Err(why) => problems.push(why),
            }
        }
    }
    for (name, page, pattern) in SAME_RUN {
        let svg = std::fs::read_to_string(out.join("charts").join(name)).unwrap_or_default();
        let html = std::fs::read_to_string(out.join(page)).unwrap_or_default();
        let value = Regex::new(pattern).unwrap();
        let shown: Vec<String> = svg_text(name, &svg)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| Some(value.captures(line)?[1].to_string()))
            .collect();
        if shown.is_empty() && !svg.contains("frame numbers hidden") {
            problems.push(format!("{name}: no value matching {pattern}"));
        }
        for v in shown.iter().filter(|v| !html.contains(v.as_str())) {
            problems.push(format!(
                "{name}: {v} is not in the output on {page}: another run drew it"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Runs `bin args` from book/ with the figures directed to `figures`.
fn run_with_figures(bin: &str, args: &[&str], figures: &Path) -> support::runner::Finished {
    support::runner::run(
        Command::new(support::binary(bin))
            .args(args)
            .current_dir(support::root().join("book"))
            .env("VMBOOK_FIGURES", figures),
        support::PROGRAM_LIMIT,
    )
    .unwrap_or_else(|why| panic!("{why}"))
}

#[test]
fn a_figure_that_cannot_be_written_changes_only_stderr() {
    let dir = std::env::temp_dir().join(format!("vmbook-figures-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let args = ["same-frame"];
    let written = run_with_figures("copy-on-write", &args, &dir);
    // No directory can be made under /proc, even by root.
    let refused = run_with_figures("copy-on-write", &args, Path::new("/proc/vmbook-figures"));
    for run in [&written, &refused] {
        assert!(run.status.success(), "copy-on-write failed: {}", run.stderr);
    }
    let svg = std::fs::read_to_string(dir.join("copy-on-write-frames.svg")).expect("the figure");
    svg_text("copy-on-write-frames.svg", &svg).unwrap();
    assert_eq!(
        redact(&written.stdout),
        redact(&refused.stdout),
        "the output changed when the figure could not be written"
    );
    let stderr = &refused.stderr;
    assert!(
        stderr.contains("figure copy-on-write-frames.svg not written"),
        "no word on stderr about the figure: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `bin args --out DIR` and checks the named charts landed in DIR, whole and labelled.
fn charts_written_to_out(bin: &str, args: &[&str], names: &[&str]) {
    let out = std::env::temp_dir().join(format!("vmbook-{bin}-chart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = support::runner::run(
        Command::new(support::binary(bin))
            .args(args)
            .arg("--out")
            .arg(&out),
        support::PROGRAM_LIMIT,
    )
    .unwrap_or_else(|why| panic!("{why}"));
    assert!(run.status.success(), "{bin} failed: {}", run.stderr);
    let mut problems = Vec::new();
    for name in names {
        let path = out.join(name);
        let svg =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        match svg_text(name, &svg) {
            Ok(text) => problems.extend(missing_labels(name, &text)),
            Err(why) => problems.push(why),
        }
    }
    let _ = std::fs::remove_dir_all(&out);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn ipc_bench_writes_its_two_charts_where_told() {
    charts_written_to_out(
        "ipc-bench",
        &["chart", "--volume", "512K", "--iterations", "20"],
        &["ipc-throughput.svg", "ipc-latency.svg"],
    );
}

#[test]
fn page_tables_writes_its_tlb_reach_chart_where_told() {
    charts_written_to_out(
        "page-tables",
        &["tlb", "--max-size", "1M", "--reads", "2000"],
        &["page-tables-tlb-reach.svg"],
    );
}
