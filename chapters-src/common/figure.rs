//! Where the book's figures go, and the few pieces of SVG the hand-drawn diagrams share.
//!
//! A figure is drawn by the run whose findings it shows, from the same measurements. It goes into
//! the directory `$VMBOOK_FIGURES` names (the book build points it at a fresh directory per run,
//! see scripts/cargo-shim), else into the book's own `book/charts` of this checkout. Writing it is
//! not part of the program's output: a run that cannot write its figure (a reader running the
//! programs in a checkout they cannot write to, the tests as `nobody`) says so on stderr and prints
//! exactly what it would have printed otherwise.

use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The environment variable that names the directory figures are written into.
pub const DIR_VARIABLE: &str = "VMBOOK_FIGURES";

/// The directory figures go into: `$VMBOOK_FIGURES`, else this checkout's `book/charts`.
pub fn dir() -> PathBuf {
    std::env::var_os(DIR_VARIABLE)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/book/charts")))
}

/// Writes `svg` as `dir/name`, unless the file already holds exactly that (so that a watcher sees
/// no change when there is none). The new content goes into a temporary file first and is renamed
/// over the old one, so a reader of the directory never sees half a figure.
pub fn save_in(dir: &Path, name: &str, svg: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if std::fs::read(&path).is_ok_and(|old| old == svg.as_bytes()) {
        return Ok(path);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("mkdir -p {}", dir.display()))?;
    // Named like a figure (book/charts/*.svg is gitignored), hidden from a `*.svg` glob.
    let partial = dir.join(format!(".{}-{name}", std::process::id()));
    std::fs::write(&partial, svg).with_context(|| format!("write {}", partial.display()))?;
    std::fs::rename(&partial, &path).with_context(|| {
        let _ = std::fs::remove_file(&partial);
        format!("rename to {}", path.display())
    })?;
    Ok(path)
}

/// Writes the figure `name` into [`dir`]; when that fails, says so on stderr and goes on: the
/// figure is an illustration of the output, never a reason for the output to fail.
pub fn save(name: &str, svg: &str) {
    if let Err(e) = save_in(&dir(), name, svg) {
        eprintln!("note: figure {name} not written: {e:#}");
    }
}

/// `text` with the five characters XML and HTML give a meaning to escaped, for SVG text and
/// attributes and for `claims --html`'s page (`&#39;`, which both read, for the apostrophe).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A hand-drawn SVG diagram: elements appended in drawing order, text always escaped.
pub struct Svg {
    width: u32,
    height: u32,
    body: String,
}

impl Svg {
    pub fn new(width: u32, height: u32) -> Svg {
        Svg {
            width,
            height,
            body: String::new(),
        }
    }

    /// A rectangle; `style` is SVG presentation attributes (`fill="#ccc" stroke="black"`).
    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, style: &str) {
        let _ = writeln!(
            self.body,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" {style}/>"#
        );
    }

    pub fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), style: &str) {
        let _ = writeln!(
            self.body,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" {style}/>"#
        );
    }

    /// Text at (x, y) (its baseline); `anchor` is `start`, `middle` or `end`.
    pub fn text(&mut self, x: f64, y: f64, size: u32, anchor: &str, text: &str) {
        let _ = writeln!(
            self.body,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}" text-anchor="{anchor}">{}</text>"#,
            escape(text)
        );
    }

    /// The document, with a white background and `title` as its accessible name.
    pub fn finish(self, title: &str) -> String {
        let (w, h) = (self.width, self.height);
        format!(
            concat!(
                r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" "#,
                r#"font-family="sans-serif" role="img">"#,
                "\n<title>{title}</title>\n",
                r#"<rect x="0" y="0" width="{w}" height="{h}" fill="white"/>"#,
                "\n{body}</svg>\n"
            ),
            w = w,
            h = h,
            title = escape(title),
            body = self.body
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape(r#"<a & "b">"#), "&lt;a &amp; &quot;b&quot;&gt;");
        let mut svg = Svg::new(10, 10);
        svg.text(0.0, 0.0, 10, "start", "x < y");
        assert!(svg.finish("t & u").contains("x &lt; y"));
    }

    #[test]
    fn unchanged_figure_is_not_rewritten() {
        let dir = std::env::temp_dir().join(format!("vmbook-figure-{}", std::process::id()));
        let path = save_in(&dir, "a.svg", "<svg/>").unwrap();
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        save_in(&dir, "a.svg", "<svg/>").unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            before
        );
        save_in(&dir, "a.svg", "<svg></svg>").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "<svg></svg>");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
