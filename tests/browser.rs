//! The rendered book in a real browser, as a reader sees it.
//!
//! Builds the book (in-process, like `whole_book.rs`, into its own `target/browser-book`), serves
//! it on 127.0.0.1 from a tiny HTTP server in this test, and opens every page `book/SUMMARY.md`
//! links to in headless Chromium (a fresh, empty profile; no background networking). For each page:
//! the title; for each chapter, every output block present and not empty, no `cmdrun error`, every
//! image (SVG charts) loaded; mdBook's search (`?search=TERM`) finds a word that appears only in
//! that chapter's program output, and only there; print.html holds every chapter. One screenshot
//! per page goes to `target/screenshots/`.
//!
//! Without Chromium the test says so and passes, unless `CI` is set: `.ci/run` installs it.

mod reader;
mod support;

use reader::{chapters, Chapter};
use regex::Regex;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vmbook::book::banner;

/// Written into every HTML page the test server sends: after `load`, a hidden `<pre>` lists each
/// image and whether the browser could decode it.
const PROBE: &str = r#"<script>
window.addEventListener('load', function () {
  var lines = ['probe: loaded'];
  document.querySelectorAll('img').forEach(function (img) {
    var ok = img.complete && img.naturalWidth > 0;
    lines.push((ok ? 'image ok ' : 'image BROKEN ') + img.getAttribute('src'));
  });
  var pre = document.createElement('pre');
  pre.id = 'vmbook-probe';
  pre.hidden = true;
  pre.textContent = lines.join('\n');
  document.body.appendChild(pre);
});
</script>"#;

#[test]
fn every_page_in_a_real_browser() {
    let Some(chromium) = find_chromium() else {
        reader::skip_or_fail("chromium is not installed: `apt-get install -y chromium`");
        return;
    };
    let started = Instant::now();
    let root = support::root();
    let out = support::build_book("browser-book");
    let built = started.elapsed();
    let server = Server::start(out.clone());
    let shots = root.join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let browser = Browser { chromium };

    let book_chapters = chapters();
    assert!(!book_chapters.is_empty(), "SUMMARY.md links to no page");
    let texts: Vec<(String, String)> = book_chapters
        .iter()
        .map(|c| {
            let html = std::fs::read_to_string(out.join(c.html())).unwrap_or_default();
            (c.html(), html)
        })
        .collect();

    let mut problems = Vec::new();
    let mut searched = 0;
    let mut report = Vec::new();
    for chapter in &book_chapters {
        let page = chapter.html();
        let shot = shots.join(page.replace(".html", ".png"));
        let dom = match browser.open(&server.url(&page), Some(&shot)) {
            Ok(dom) => dom,
            Err(why) => {
                problems.push(format!("{page}: {why}"));
                continue;
            }
        };
        let before = problems.len();
        problems.extend(check_page(chapter, &dom, &server));
        let mut line = format!("{page}: title, {} output blocks", chapter.directives.len());
        let images = probe_text(&dom).map_or(0, |p| {
            p.lines().filter(|l| l.starts_with("image ok ")).count()
        });
        if images > 0 {
            line.push_str(&format!(", {images} images loaded"));
        }

        if !chapter.directives.is_empty() {
            match search_only_here(&browser, &server, chapter, &texts) {
                Ok(found) => {
                    searched += 1;
                    line.push_str(&found)
                }
                // As the book grows, a chapter's output may share every long word with another
                // page; search is still checked on the chapters that have one of their own.
                Err(why) if why.starts_with(NO_UNIQUE_WORD) => {
                    line.push_str(", search not tried (no word of its output is unique to it)")
                }
                Err(why) => problems.push(format!("{page}: {why}")),
            }
        }
        if problems.len() == before {
            report.push(line);
        }
    }

    let with_outputs = book_chapters
        .iter()
        .filter(|c| !c.directives.is_empty())
        .count();
    if searched * 2 < with_outputs {
        problems.push(format!(
            "search was checked on only {searched} of {with_outputs} pages with outputs"
        ));
    }
    match browser.open(&server.url("print.html"), None) {
        Ok(dom) => problems.extend(check_print_page(&book_chapters, &dom)),
        Err(why) => problems.push(format!("print.html: {why}")),
    }

    eprintln!(
        "browser test: {} pages checked in {:.1?} (book build {:.1?}); screenshots in {}",
        book_chapters.len(),
        started.elapsed(),
        built,
        shots.display()
    );
    for line in &report {
        eprintln!("  {line}");
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

const NO_UNIQUE_WORD: &str = "no word of its program output is unique to it: nothing to search for";

/// Searches (`index.html?search=WORD`) for words only this chapter's output has, until one leads
/// to this chapter and nowhere else.
fn search_only_here(
    browser: &Browser,
    server: &Server,
    chapter: &Chapter,
    texts: &[(String, String)],
) -> Result<String, String> {
    let page = chapter.html();
    let words = unique_output_words(chapter, texts);
    if words.is_empty() {
        return Err(NO_UNIQUE_WORD.into());
    }
    let mut tried = Vec::new();
    for word in words {
        let dom = browser.open(&server.url(&format!("index.html?search={word}")), None)?;
        let results = search_results(&dom);
        // Appendix B restates the claims, so it may be found beside the chapter.
        if results.contains(&page) && results.iter().all(|r| *r == page || r == "findings.html") {
            return Ok(format!(
                ", search `{word}` -> {} result(s), all in {page}",
                results.len()
            ));
        }
        tried.push(format!("`{word}` found {results:?}"));
    }
    Err(format!(
        "the search did not lead to this page alone for any word only its output has: {}",
        tried.join("; ")
    ))
}

/// The title, the output blocks, no `cmdrun error`, and images, in what the browser rendered.
fn check_page(chapter: &Chapter, dom: &str, server: &Server) -> Vec<String> {
    let page = chapter.html();
    let mut problems = Vec::new();
    let title = Regex::new(r"(?s)<title>(.*?)</title>").unwrap();
    let shown = title
        .captures(dom)
        .map(|c| decode(c[1].trim()))
        .unwrap_or_default();
    if !shown.starts_with(&format!("{} - ", chapter.title)) {
        problems.push(format!(
            "{page}: title is {shown:?}, not \"{} - <book title>\"",
            chapter.title
        ));
    }
    if dom.contains("cmdrun error") {
        problems.push(format!("{page}: shows a `cmdrun error`"));
    }
    let blocks = code_blocks(dom);
    for directive in &chapter.directives {
        let Ok((bin, args)) = &directive.parsed else {
            continue;
        };
        let banner = banner(bin, args);
        let found = blocks.iter().find(|b| b.lines().next() == Some(&banner));
        match found {
            None => problems.push(format!(
                "{page}: no output block for {} (`{banner}`)",
                directive.location()
            )),
            Some(block) if block.lines().skip(1).all(|l| l.trim().is_empty()) => {
                problems.push(format!(
                    "{page}: the output block of {} is empty",
                    directive.location()
                ))
            }
            Some(_) => {}
        }
    }
    // Every image the page shows was fetched, and the browser could decode it.
    match probe_text(dom) {
        None => problems.push(format!(
            "{page}: the page's load event never fired (probe missing)"
        )),
        Some(probe) => {
            for line in probe.lines() {
                if let Some(src) = line.strip_prefix("image BROKEN ") {
                    problems.push(format!("{page}: image {src} did not load"));
                } else if let Some(src) = line.strip_prefix("image ok ") {
                    if src.ends_with(".svg") && !server.served_ok(src) {
                        problems.push(format!("{page}: {src} was not served"));
                    }
                }
            }
        }
    }
    problems
}

/// What the probe script wrote into the page once it had loaded.
fn probe_text(dom: &str) -> Option<String> {
    dom.split("<pre id=\"vmbook-probe\"")
        .nth(1)
        .and_then(|p| p.split_once('>'))
        .map(|(_, rest)| decode(rest.split("</pre>").next().unwrap_or("")))
}

/// print.html holds every chapter: its title as a heading and each of its outputs.
fn check_print_page(chapters: &[Chapter], dom: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let text = decode(&strip_tags(dom));
    let blocks = code_blocks(dom);
    for chapter in chapters {
        let heading = Regex::new(&format!(
            r"(?s)<h1[^>]*>(?:<a[^>]*>)?\s*{}\s*(?:</a>)?</h1>",
            regex::escape(&encode(&chapter_heading(chapter)))
        ))
        .unwrap();
        if !heading.is_match(dom) {
            problems.push(format!(
                "print.html: no heading \"{}\" ({})",
                chapter_heading(chapter),
                chapter.file.display()
            ));
        }
        for directive in &chapter.directives {
            if let Ok((bin, args)) = &directive.parsed {
                let banner = banner(bin, args);
                if !blocks.iter().any(|b| b.starts_with(&banner)) {
                    problems.push(format!(
                        "print.html: no output of {} (`{banner}`)",
                        directive.location()
                    ));
                }
            }
        }
    }
    if text.contains("cmdrun error") {
        problems.push("print.html: shows a `cmdrun error`".into());
    }
    problems
}

/// The chapter's first `# ` heading in its Markdown (what print.html shows as the chapter start).
fn chapter_heading(chapter: &Chapter) -> String {
    std::fs::read_to_string(support::root().join(&chapter.file))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("# "))
        .unwrap_or(&chapter.title)
        .trim()
        .to_string()
}

/// The text of every `<code>` element (blocks and inline), as the reader sees it. (In the browser,
/// mdBook's script puts its copy button inside `<pre>`, before `<code>`.)
fn code_blocks(dom: &str) -> Vec<String> {
    let code = Regex::new(r"(?s)<code[^>]*>(.*?)</code>").unwrap();
    code.captures_iter(dom)
        .map(|c| decode(&strip_tags(&c[1])))
        .collect()
}

/// The pages the search results link to, in order (`virtual-memory.html`).
fn search_results(dom: &str) -> Vec<String> {
    let list = dom
        .split("<ul id=\"searchresults\"")
        .nth(1)
        .and_then(|s| s.split("</ul>").next())
        .unwrap_or("");
    let link = Regex::new(r#"<li>\s*<a href="([^"?#]*)"#).unwrap();
    link.captures_iter(list).map(|c| c[1].to_string()).collect()
}

/// Up to three words of the chapter's program output (in an output block, six letters or more)
/// whose stem appears on no other page: mdBook's search stems words and matches prefixes, so only
/// such a word must lead to this chapter alone. Words the chapter's prose does not use come first:
/// the search can then only have found the program's output.
fn unique_output_words(chapter: &Chapter, pages: &[(String, String)]) -> Vec<String> {
    let Some((_, own)) = pages.iter().find(|(p, _)| *p == chapter.html()) else {
        return Vec::new();
    };
    let others: String = pages
        .iter()
        // Appendix B restates every chapter's claims, so it is not "another chapter" here.
        .filter(|(p, _)| *p != chapter.html() && p != "findings.html")
        .map(|(_, html)| decode(&strip_tags(html)).to_lowercase())
        .collect::<Vec<_>>()
        .join("\n");
    let outputs: Vec<String> = code_blocks(own)
        .into_iter()
        .filter(|b| b.starts_with("$ cargo run --bin ") && b.lines().count() > 1)
        .collect();
    let prose = Regex::new(r"(?s)<pre.*?</pre>")
        .unwrap()
        .replace_all(own, " ");
    let prose = decode(&strip_tags(&prose)).to_lowercase();
    let mut candidates = BTreeSet::new();
    for block in &outputs {
        for token in block.split(|c: char| c.is_whitespace() || c == '-') {
            let word = token
                .trim_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_lowercase();
            if word.len() < 6 || !word.chars().all(|c| c.is_ascii_lowercase()) {
                continue;
            }
            let stem = rough_stem(&word);
            if stem.len() >= 4 && !others.contains(stem) {
                // Sorted: first the words the prose never uses, then the rest.
                candidates.insert((prose.contains(stem), word.len() != stem.len(), word));
            }
        }
    }
    candidates
        .into_iter()
        .take(3)
        .map(|(_, _, word)| word)
        .collect()
}

/// The word without a common English ending: close enough to the Porter stem mdBook's search
/// uses (`adding` -> `add`, which would also find `address`) to rule out such words.
fn rough_stem(word: &str) -> &str {
    const ENDINGS: [&str; 16] = [
        "ations", "ation", "ingly", "ings", "ing", "edly", "ers", "ed", "er", "es", "ly", "ment",
        "ness", "s", "e", "y",
    ];
    ENDINGS
        .iter()
        .find_map(|ending| word.strip_suffix(ending))
        .unwrap_or(word)
}

fn strip_tags(html: &str) -> String {
    let without_scripts = Regex::new(r"(?s)<script.*?</script>|<style.*?</style>")
        .unwrap()
        .replace_all(html, " ");
    Regex::new(r"<[^>]*>")
        .unwrap()
        .replace_all(&without_scripts, "")
        .into_owned()
}

fn decode(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

fn encode(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Headless Chromium, started afresh for every page.
struct Browser {
    chromium: PathBuf,
}

impl Browser {
    /// Opens `url`, lets its scripts run, and returns the DOM; also saves a screenshot if asked.
    fn open(&self, url: &str, screenshot: Option<&Path>) -> Result<String, String> {
        let profile = std::env::temp_dir().join(format!(
            "vmbook-chromium-{}-{}",
            std::process::id(),
            support::fresh_tag()
        ));
        std::fs::create_dir_all(&profile).unwrap();
        let mut command = Command::new(&self.chromium);
        command.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--window-size=1280,2400",
            "--virtual-time-budget=5000",
        ]);
        command.arg(format!("--user-data-dir={}", profile.display()));
        if let Some(path) = screenshot {
            command.arg(format!("--screenshot={}", path.display()));
        }
        command.arg("--dump-dom").arg(url);
        let result = reader::run_with_limit(&mut command, Duration::from_secs(60));
        let _ = std::fs::remove_dir_all(&profile);
        let run = result?;
        if !run.status.success() || run.stdout.trim().is_empty() {
            let errors: Vec<&str> = run
                .stderr
                .lines()
                .filter(|l| !l.contains("dbus") && !l.contains("unexpected operator"))
                .collect();
            return Err(format!(
                "chromium exited with {} and printed {} bytes; stderr:\n{}",
                run.status,
                run.stdout.len(),
                errors.join("\n")
            ));
        }
        if let Some(path) = screenshot {
            if !std::fs::metadata(path).is_ok_and(|m| m.len() > 1000) {
                return Err(format!("no screenshot in {}", path.display()));
            }
        }
        Ok(run.stdout)
    }
}

fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A static file server for the built book on 127.0.0.1, on a free port, for this test only.
struct Server {
    port: u16,
    /// Every request: (path, status).
    log: Arc<Mutex<Vec<(String, u16)>>>,
}

impl Server {
    fn start(dir: PathBuf) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let server_log = Arc::clone(&log);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let dir = dir.clone();
                let log = Arc::clone(&server_log);
                std::thread::spawn(move || {
                    if let Some(entry) = serve(stream, &dir) {
                        log.lock().unwrap().push(entry);
                    }
                });
            }
        });
        Server { port, log }
    }

    fn url(&self, page: &str) -> String {
        format!("http://127.0.0.1:{}/{page}", self.port)
    }

    fn served_ok(&self, src: &str) -> bool {
        let name = src.trim_start_matches("./");
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|(path, status)| *status == 200 && path.trim_start_matches('/').ends_with(name))
    }
}

/// Answers one HTTP request from the files in `dir`; returns what was asked and the status.
fn serve(stream: TcpStream, dir: &Path) -> Option<(String, u16)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request = String::new();
    reader.read_line(&mut request).ok()?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header.trim().is_empty() {
            break;
        }
    }
    let target = request.split_whitespace().nth(1)?.to_string();
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let path = percent_decode(path);
    let mut file = dir.join(path.trim_start_matches('/'));
    if path.ends_with('/') {
        file.push("index.html");
    }
    let safe = !path.split('/').any(|part| part == "..");
    let (status, body, kind) = match std::fs::read(&file) {
        Ok(body) if safe => {
            let kind = content_type(&file);
            let body = if kind.starts_with("text/html") {
                String::from_utf8_lossy(&body)
                    .replacen("</body>", &format!("{PROBE}</body>"), 1)
                    .into_bytes()
            } else {
                body
            };
            (200, body, kind)
        }
        _ => (404, b"not found".to_vec(), "text/plain"),
    };
    let mut stream = stream;
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        if status == 200 { "OK" } else { "Not Found" },
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(&body).ok()?;
    Some((path, status))
}

fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(byte) = u8::from_str_radix(hex, 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css",
        "js" => "application/javascript",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}
