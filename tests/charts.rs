//! The book draws its charts at build time: `ipc-bench chart` must write two SVG files, and
//! `page-tables tlb` one, that a browser can show: non-empty, one <svg> element, tags balanced,
//! every series labelled.

use std::path::Path;
use std::process::Command;

/// Checks that `svg` is one well-nested <svg> element: every opening tag closed, in order.
fn assert_balanced(name: &str, svg: &str) {
    let mut open: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(at) = rest.find('<') {
        let end = rest[at..].find('>').map(|e| at + e).unwrap_or_else(|| {
            panic!("{name}: a tag is never closed with '>'");
        });
        let tag = &rest[at + 1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('?') || tag.starts_with('!') || tag.ends_with('/') {
            continue; // declaration, comment, or self-closing element
        }
        if let Some(closing) = tag.strip_prefix('/') {
            let expected = open.pop();
            assert_eq!(
                expected.as_deref(),
                Some(closing.trim()),
                "{name}: </{closing}> closes the wrong element"
            );
        } else {
            let element = tag.split_whitespace().next().unwrap_or("").to_string();
            open.push(element);
        }
    }
    assert!(open.is_empty(), "{name}: elements left open: {open:?}");
}

#[test]
fn chart_writes_two_valid_svg_files() {
    let out = std::env::temp_dir().join(format!("vmbook-charts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(env!("CARGO_BIN_EXE_ipc-bench"))
        .args(["chart", "--volume", "512K", "--iterations", "20", "--out"])
        .arg(&out)
        .output()
        .expect("start ipc-bench");
    assert!(
        run.status.success(),
        "ipc-bench chart failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    let expectations: [(&str, &[&str]); 2] = [
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
    for (name, labels) in expectations {
        let path = out.join(name);
        let svg =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(svg.len() > 2000, "{name}: only {} bytes", svg.len());
        assert!(
            svg.trim_start().starts_with("<svg"),
            "{name}: does not start with <svg"
        );
        assert!(
            svg.trim_end().ends_with("</svg>"),
            "{name}: does not end with </svg>"
        );
        assert_balanced(name, &svg);
        for label in labels {
            assert!(svg.contains(label), "{name}: no `{label}` in the chart");
        }
        assert!(
            stdout.contains(&format!("wrote {}", Path::new(&out).join(name).display())),
            "ipc-bench did not report writing {name}:\n{stdout}"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn balance_check_catches_broken_markup() {
    assert_balanced("ok", "<svg a=\"1\"><g><text>x</text></g><rect/></svg>");
    let broken = std::panic::catch_unwind(|| assert_balanced("bad", "<svg><g></svg>"));
    assert!(broken.is_err());
}

#[test]
fn page_tables_writes_its_tlb_reach_chart() {
    let out = std::env::temp_dir().join(format!("vmbook-pt-chart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(env!("CARGO_BIN_EXE_page-tables"))
        .args(["tlb", "--max-size", "1M", "--reads", "2000", "--out"])
        .arg(&out)
        .output()
        .expect("start page-tables");
    assert!(
        run.status.success(),
        "page-tables tlb failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let name = "page-tables-tlb-reach.svg";
    let path = out.join(name);
    let svg = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(svg.len() > 2000, "{name}: only {} bytes", svg.len());
    assert!(svg.trim_start().starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_balanced(name, &svg);
    for label in [
        "base pages",
        "MADV_HUGEPAGE",
        "region size (KiB)",
        "ns per read",
    ] {
        assert!(svg.contains(label), "{name}: no `{label}` in the chart");
    }
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains(&format!("wrote {}", path.display())),
        "page-tables did not report writing {name}:\n{stdout}"
    );
    let _ = std::fs::remove_dir_all(&out);
}
