//! The rendered book in a real browser, as a reader sees it.
//!
//! Builds the book (in-process, like `whole_book.rs`, into its own `target/browser-book`) and opens
//! every page `book/SUMMARY.md` links to in one headless Chromium, driven over the DevTools
//! protocol (`headless_chrome`; a fresh, empty profile, no background networking), from the built
//! files, as a reader opens `target/book/index.html`. What is checked is what the browser
//! rendered, read from its DOM after the page's scripts ran. For each page: the title; for each
//! chapter, every output block present and not empty, no `cmdrun error`; every `<img>` loaded and
//! decoded (`naturalWidth > 0`), and a screenshot of each (of its `<figure>`, if it has one) in
//! `target/screenshots/PAGE--N-IMAGE.png`; mdBook's search (`?search=TERM`) finds a word that
//! appears only in that chapter's program output, and only there; print.html holds every chapter.
//!
//! Without Chromium the test says so and passes, unless `CI` is set: `.ci/run` installs it.

mod reader;
mod support;

use headless_chrome::protocol::cdp::Page as Cdp;
use headless_chrome::{Browser, LaunchOptions, Tab};
use reader::{chapters, Chapter};
use serde_json::Value;
use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vmbook::book::banner;

/// How long one page may take to load, or one script in it to answer.
const PAGE_LIMIT: Duration = Duration::from_secs(30);

#[test]
fn every_page_in_a_real_browser() {
    let Some(chromium) = find_chromium() else {
        reader::skip_or_fail("chromium is not installed: `apt-get install -y chromium`");
        return;
    };
    let started = Instant::now();
    let out = support::build_book("browser-book");
    let built = started.elapsed();
    // Only this run's screenshots: the files are the figures the book shows.
    let shots = support::root().join("target/screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let browser = Reader::start(&chromium, &out);

    let book_chapters = chapters();
    assert!(!book_chapters.is_empty(), "SUMMARY.md links to no page");
    let mut problems = Vec::new();
    let mut report = Vec::new();
    let mut screenshots = Vec::new();
    let mut pages = Vec::new();
    for chapter in &book_chapters {
        let name = chapter.html();
        let page = match browser.open(&name, "") {
            Ok(page) => page,
            Err(why) => {
                problems.push(format!("{name}: {why}"));
                continue;
            }
        };
        let before = problems.len();
        problems.extend(check_page(chapter, &page));
        let mut line = format!("{name}: title, {} output blocks", chapter.directives.len());
        match browser.images(&name, &shots) {
            Ok(images) if images.is_empty() => {}
            Ok(images) => {
                let loaded = images.iter().filter(|i| i.problem.is_none()).count();
                line.push_str(&format!(", {loaded} of {} images loaded", images.len()));
                for image in images {
                    match image.problem {
                        Some(why) => problems.push(format!("{name}: image {}: {why}", image.src)),
                        None => screenshots.extend(image.screenshot),
                    }
                }
            }
            Err(why) => problems.push(format!("{name}: images: {why}")),
        }
        report.push((problems.len() == before).then_some(line));
        pages.push(page);
    }

    let mut searched = 0;
    for (chapter, line) in book_chapters.iter().zip(&mut report) {
        if chapter.directives.is_empty() {
            continue;
        }
        match search_only_here(&browser, chapter, &pages) {
            Ok(found) => {
                searched += 1;
                if let Some(line) = line {
                    line.push_str(&found)
                }
            }
            // As the book grows, a chapter's output may share every long word with another
            // page; search is still checked on the chapters that have one of their own.
            Err(why) if why.starts_with(NO_UNIQUE_WORD) => {
                if let Some(line) = line {
                    line.push_str(", search not tried (no word of its output is unique to it)")
                }
            }
            Err(why) => {
                problems.push(format!("{}: {why}", chapter.html()));
                *line = None;
            }
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
    match browser.open("print.html", "") {
        Ok(print) => problems.extend(check_print_page(&book_chapters, &print)),
        Err(why) => problems.push(format!("print.html: {why}")),
    }

    eprintln!(
        "browser test: {} pages checked in {:.1?} (book build {:.1?}), in one Chromium",
        book_chapters.len(),
        started.elapsed(),
        built,
    );
    for line in report.iter().flatten() {
        eprintln!("  {line}");
    }
    eprintln!("screenshots of the {} figures:", screenshots.len());
    for shot in &screenshots {
        eprintln!("  {}", shot.display());
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// What the browser shows of one page, read from its DOM once its scripts have run.
struct Page {
    /// `virtual-memory.html`
    name: String,
    title: String,
    /// The text of every `<code>` element (blocks and inline), as the reader sees it.
    code: Vec<String>,
    /// The text of `<main>` (the page without the sidebar), lowercase.
    text: String,
    /// The same without the `<pre>` blocks: the prose, lowercase.
    prose: String,
    /// The text of each `<h1>`.
    headings: Vec<String>,
    cmdrun_error: bool,
}

/// Run in a page: the facts [`Page`] holds, as JSON.
const FACTS: &str = r#"(() => {
  const main = document.querySelector('main') || document.body;
  const prose = main.cloneNode(true);
  prose.querySelectorAll('pre').forEach(pre => pre.remove());
  return JSON.stringify({
    title: document.title,
    code: Array.from(document.querySelectorAll('code'), code => code.textContent),
    text: main.textContent,
    prose: prose.textContent,
    headings: Array.from(document.querySelectorAll('h1'), h => h.textContent.trim()),
    cmdrun_error: document.documentElement.outerHTML.includes('cmdrun error'),
  });
})()"#;

const NO_UNIQUE_WORD: &str = "no word of its program output is unique to it: nothing to search for";

/// Searches (`index.html?search=WORD`) for words only this chapter's output has, until one leads
/// to this chapter and nowhere else.
fn search_only_here(browser: &Reader, chapter: &Chapter, pages: &[Page]) -> Result<String, String> {
    let name = chapter.html();
    let words = unique_output_words(&name, pages);
    if words.is_empty() {
        return Err(NO_UNIQUE_WORD.into());
    }
    let mut tried = Vec::new();
    for word in words {
        let results = browser.search(&word)?;
        // Appendix B restates the claims, so it may be found beside the chapter.
        if results.contains(&name) && results.iter().all(|r| *r == name || r == "findings.html") {
            return Ok(format!(
                ", search `{word}` -> {} result(s), all in {name}",
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

/// The title, the output blocks and no `cmdrun error`.
fn check_page(chapter: &Chapter, page: &Page) -> Vec<String> {
    let name = &page.name;
    let mut problems = Vec::new();
    if !page.title.starts_with(&format!("{} - ", chapter.title)) {
        problems.push(format!(
            "{name}: title is {:?}, not \"{} - <book title>\"",
            page.title, chapter.title
        ));
    }
    if page.cmdrun_error {
        problems.push(format!("{name}: shows a `cmdrun error`"));
    }
    for directive in &chapter.directives {
        let Ok((bin, args)) = &directive.parsed else {
            continue;
        };
        let banner = banner(bin, args);
        let found = page.code.iter().find(|b| b.lines().next() == Some(&banner));
        match found {
            None => problems.push(format!(
                "{name}: no output block for {} (`{banner}`)",
                directive.location()
            )),
            Some(block) if block.lines().skip(1).all(|l| l.trim().is_empty()) => {
                problems.push(format!(
                    "{name}: the output block of {} is empty",
                    directive.location()
                ))
            }
            Some(_) => {}
        }
    }
    problems
}

/// print.html holds every chapter: its title as a heading and each of its outputs.
fn check_print_page(chapters: &[Chapter], print: &Page) -> Vec<String> {
    let mut problems = Vec::new();
    for chapter in chapters {
        let heading = chapter_heading(chapter);
        if !print.headings.contains(&heading) {
            problems.push(format!(
                "print.html: no heading \"{heading}\" ({})",
                chapter.file.display()
            ));
        }
        for directive in &chapter.directives {
            if let Ok((bin, args)) = &directive.parsed {
                let banner = banner(bin, args);
                if !print.code.iter().any(|b| b.starts_with(&banner)) {
                    problems.push(format!(
                        "print.html: no output of {} (`{banner}`)",
                        directive.location()
                    ));
                }
            }
        }
    }
    if print.cmdrun_error {
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

/// Up to three words of the page's program output (in an output block, six letters or more)
/// whose stem appears on no other page: mdBook's search stems words and matches prefixes, so only
/// such a word must lead to this chapter alone. Words the chapter's prose does not use come first:
/// the search can then only have found the program's output.
fn unique_output_words(name: &str, pages: &[Page]) -> Vec<String> {
    let Some(own) = pages.iter().find(|p| p.name == name) else {
        return Vec::new();
    };
    let others: Vec<&str> = pages
        .iter()
        // Appendix B restates every chapter's claims, so it is not "another chapter" here.
        .filter(|p| p.name != name && p.name != "findings.html")
        .map(|p| p.text.as_str())
        .collect();
    let outputs = own
        .code
        .iter()
        .filter(|b| b.starts_with("$ cargo run --bin ") && b.lines().count() > 1);
    let mut candidates = BTreeSet::new();
    for block in outputs {
        for token in block.split(|c: char| c.is_whitespace() || c == '-') {
            let word = token
                .trim_matches(|c: char| !c.is_ascii_alphanumeric())
                .to_lowercase();
            if word.len() < 6 || !word.chars().all(|c| c.is_ascii_lowercase()) {
                continue;
            }
            let stem = rough_stem(&word);
            if stem.len() >= 4 && !others.iter().any(|text| text.contains(stem)) {
                // Sorted: first the words the prose never uses, then the rest.
                candidates.insert((own.prose.contains(stem), word.len() != stem.len(), word));
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

/// One headless Chromium, and the one tab every page is opened in, reading the built book.
struct Reader {
    /// Owns the browser process: dropping it ends Chromium and removes its profile.
    _browser: Browser,
    tab: Arc<Tab>,
    book: PathBuf,
    /// Whether the tab shows a search already (`?search=`), with its index loaded.
    searching: std::cell::Cell<bool>,
}

/// One `<img>` of a page: loaded, decoded and photographed, or why not.
struct Image {
    src: String,
    problem: Option<String>,
    screenshot: Option<PathBuf>,
}

/// Run in a page: once it has loaded, its address.
const LOADED: &str = r#"new Promise(answer => {
  if (document.readyState === 'complete') answer(location.href);
  else window.addEventListener('load', () => answer(location.href));
})"#;

/// Run in a page: waits (at most 10 s) until every image has loaded or failed, numbers each
/// image's figure for its screenshot, and answers `N ok|BROKEN WIDTHxHEIGHT SRC` per image.
const IMAGES: &str = r#"(async () => {
  const images = Array.from(document.images);
  const settled = Promise.all(images.map(img => { img.loading = 'eager'; return img.decode().catch(() => null); }));
  await Promise.race([settled, new Promise(done => setTimeout(done, 10000))]);
  return images.map((img, n) => {
    (img.closest('figure') || img).setAttribute('data-vmbook-figure', n);
    const ok = img.complete && img.naturalWidth > 0;
    return n + (ok ? ' ok ' : ' BROKEN ') + img.naturalWidth + 'x' + img.naturalHeight + ' ' + img.getAttribute('src');
  }).join('\n');
})()"#;

/// Run in a page searching for WORD (opened with `?search=WORD`, or WORD typed into its search
/// bar): waits (at most 10 s) until mdBook's search has written its results header for WORD, and
/// answers the pages its results link to, as JSON.
const SEARCH_RESULTS: &str = r#"new Promise(answer => {
  const start = Date.now();
  (function poll() {
    const header = document.getElementById('searchresults-header');
    if (header && header.textContent.includes("'WORD'")) {
      const links = document.querySelectorAll('#searchresults > li > a');
      answer(JSON.stringify(Array.from(links, a => a.getAttribute('href').split(/[?#]/)[0])));
    } else if (Date.now() - start > 10000) answer('timeout');
    else setTimeout(poll, 20);
  })();
})"#;

impl Reader {
    fn start(chromium: &Path, book: &Path) -> Reader {
        let args: Vec<&OsStr> = [
            "--disable-gpu",
            "--disable-quic",
            "--disable-component-update",
            "--hide-scrollbars",
        ]
        .iter()
        .map(OsStr::new)
        .collect();
        let options = LaunchOptions {
            path: Some(chromium.to_path_buf()),
            headless: true,
            // As root (in CI, in containers) Chromium refuses to start with its sandbox.
            sandbox: false,
            window_size: Some((1280, 2400)),
            idle_browser_timeout: Duration::from_secs(300),
            args,
            ..LaunchOptions::default()
        };
        let browser = Browser::new(options)
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()));
        let tab = browser.new_tab().expect("a tab in chromium");
        tab.set_default_timeout(PAGE_LIMIT);
        // print.html prints itself once loaded; a reader's print dialog is of no use here.
        tab.call_method(Cdp::AddScriptToEvaluateOnNewDocument {
            source: "window.print = function () {};".into(),
            world_name: None,
            include_command_line_api: None,
            run_immediately: None,
        })
        .expect("Page.addScriptToEvaluateOnNewDocument");
        Reader {
            _browser: browser,
            tab,
            book: book.to_path_buf(),
            searching: false.into(),
        }
    }

    /// Opens `page` of the built book (with `query`, e.g. `search=x`) and waits for its `load`.
    fn navigate(&self, page: &str, query: &str) -> Result<(), String> {
        self.searching.set(false);
        let mut url = url::Url::from_file_path(self.book.join(page))
            .map_err(|()| format!("{} is not an absolute path", self.book.display()))?;
        url.set_query((!query.is_empty()).then_some(query));
        self.tab
            .navigate_to(url.as_str())
            .map_err(|e| format!("opening {url}: {e}"))?;
        // Until the new document has loaded (a script may still find the one before it).
        let started = Instant::now();
        while self.evaluate(LOADED)? != url.as_str() {
            if started.elapsed() > PAGE_LIMIT {
                return Err(format!("{url} did not load within {PAGE_LIMIT:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Opens `page` and reads what it shows.
    fn open(&self, page: &str, query: &str) -> Result<Page, String> {
        self.navigate(page, query)?;
        let facts: Value = serde_json::from_str(&self.evaluate(FACTS)?)
            .map_err(|e| format!("reading {page}: {e}"))?;
        let text = |key: &str| facts[key].as_str().unwrap_or_default().to_string();
        let list = |key: &str| -> Vec<String> {
            facts[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        };
        Ok(Page {
            name: page.to_string(),
            title: text("title"),
            code: list("code"),
            text: text("text").to_lowercase(),
            prose: text("prose").to_lowercase(),
            headings: list("headings"),
            cmdrun_error: facts["cmdrun_error"].as_bool().unwrap_or(true),
        })
    }

    /// The images of the page last opened (`page`): each loaded and decoded, or why not; each
    /// loaded one photographed into `shots`.
    fn images(&self, page: &str, shots: &Path) -> Result<Vec<Image>, String> {
        let answer = self.evaluate(IMAGES)?;
        let stem = page.trim_end_matches(".html").replace('/', "-");
        let mut images = Vec::new();
        for line in answer.lines().filter(|l| !l.is_empty()) {
            let mut fields = line.splitn(4, ' ');
            let (Some(n), Some(state), Some(size), Some(src)) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(format!("unexpected answer from the page: {line:?}"));
            };
            let mut image = Image {
                src: src.to_string(),
                problem: None,
                screenshot: None,
            };
            if state != "ok" {
                image.problem = Some(format!("did not load or decode ({size})"));
                images.push(image);
                continue;
            }
            let name = Path::new(src)
                .file_stem()
                .map_or("image".into(), |s| s.to_string_lossy().into_owned());
            let file = shots.join(format!("{stem}--{n}-{name}.png"));
            let taken = self.screenshot(&format!("[data-vmbook-figure='{n}']"));
            match taken {
                Ok(png) if png.len() > 100 => {
                    std::fs::write(&file, png).unwrap();
                    image.screenshot = Some(file);
                }
                Ok(png) => image.problem = Some(format!("its screenshot is {} bytes", png.len())),
                Err(e) => image.problem = Some(format!("no screenshot: {e}")),
            }
            images.push(image);
        }
        Ok(images)
    }

    /// A PNG of the element `selector` finds, as the page shows it.
    fn screenshot(&self, selector: &str) -> Result<Vec<u8>, String> {
        // Where it is in the document (what the clip counts from), once in the middle of the window,
        // clear of mdBook's menu bar.
        let script = format!(
            "(() => {{ const e = document.querySelector(\"{selector}\"); e.scrollIntoView({{ block: \"center\" }}); \
             const r = e.getBoundingClientRect(); \
             return [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height].join(' '); }})()"
        );
        let rect: Vec<f64> = self
            .evaluate(&script)?
            .split(' ')
            .filter_map(|n| n.parse().ok())
            .collect();
        let [x, y, width, height] = rect[..] else {
            return Err(format!("no position for {selector}: {rect:?}"));
        };
        if width < 1.0 || height < 1.0 {
            return Err(format!("{selector} is {width}x{height} pixels"));
        }
        let shot = self
            .tab
            .call_method(Cdp::CaptureScreenshot {
                format: Some(Cdp::CaptureScreenshotFormatOption::Png),
                quality: None,
                clip: Some(Cdp::Viewport {
                    x,
                    y,
                    width,
                    height,
                    scale: 1.0,
                }),
                from_surface: Some(true),
                capture_beyond_viewport: Some(true),
                optimize_for_speed: None,
            })
            .map_err(|e| format!("screenshot of {selector}: {e}"))?;
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(shot.data)
            .map_err(|e| format!("screenshot of {selector}: {e}"))
    }

    /// The pages mdBook's search lists for `word`, in order (`virtual-memory.html`): the first
    /// search opens `index.html?search=WORD`, as a link to a search does; later ones type the word
    /// into the open page's search bar, as a reader does (no reload of the page and its index).
    fn search(&self, word: &str) -> Result<Vec<String>, String> {
        if !word.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("`{word}` is not a plain word"));
        }
        if self.searching.replace(true) {
            self.evaluate(&format!(
                "(() => {{ const bar = document.getElementById('searchbar'); bar.value = '{word}'; \
                 bar.dispatchEvent(new KeyboardEvent('keyup')); return 'typed'; }})()"
            ))?;
        } else {
            self.navigate("index.html", &format!("search={word}"))?;
        }
        let answer = self.evaluate(&SEARCH_RESULTS.replace("WORD", word))?;
        serde_json::from_str(&answer)
            .map_err(|_| format!("searching `{word}`: no results header within 10 s ({answer})"))
    }

    /// Runs `script` in the page (awaiting a promise) and returns the string it answers.
    fn evaluate(&self, script: &str) -> Result<String, String> {
        let result = self
            .tab
            .evaluate(script, true)
            .map_err(|e| format!("running a script in the page: {e}"))?;
        result
            .value
            .as_ref()
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| format!("the page's script answered {result:?}"))
    }
}

fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}
