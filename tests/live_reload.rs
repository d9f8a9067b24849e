//! Live reload while writing, as a writer uses it: `mdbook serve` is running, a line of a chapter
//! program under `chapters-src/` changes, and the served page shows the program's new output.
//!
//! The test works on a copy of the project (.gitignore, book.toml, Cargo.toml, Cargo.lock, book/,
//! chapters-src/, tests/) in `target/live-reload/project`, kept between runs so that only what
//! changed is rebuilt. The copy has its own cargo target directory: sharing the real one would
//! overwrite `target/debug/CHAPTER` (which every other test runs) with the edited program. It
//! starts the pinned `mdbook serve` on a free port of 127.0.0.1, edits the title a chapter program
//! prints for one experiment, polls the page until the new title appears, and reports the time
//! from the save to the refreshed page.
//!
//! Without mdbook (installed by `scripts/book.sh`) it says so and passes, unless `CI` is set.

mod reader;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The first build of the copy compiles the dependencies; after that, one chapter program.
const FIRST_BUILD_LIMIT: Duration = Duration::from_secs(20 * 60);
/// `mdbook serve`'s first build runs every program in the book.
const SERVE_LIMIT: Duration = Duration::from_secs(5 * 60);
const RELOAD_LIMIT: Duration = Duration::from_secs(5 * 60);

#[test]
fn a_changed_chapter_program_shows_in_the_served_page() {
    let Some(tools) = find_tools() else {
        reader::skip_or_fail(
            "mdbook and mdbook-cmdrun are not installed: run `scripts/book.sh build` once",
        );
        return;
    };
    let root = support::root();
    let copy = root.join("target/live-reload/project");
    sync_copy(&root, &copy);
    let (chapter, source, title) = what_to_edit(&copy);
    let page = chapter.html();

    // Build the chapter programs first, as scripts/book.sh does, so the serve starts warm. Another
    // chapter's program may be half-written right now: only the one edited here must build.
    let started = Instant::now();
    seed_target(&root, &copy);
    let bin = chapter.binaries()[0].clone();
    let _ = reader::run_with_limit(
        cargo_in(&copy).args(["build", "-q", "--bins"]),
        FIRST_BUILD_LIMIT,
    );
    let build = reader::run_with_limit(
        cargo_in(&copy).args(["build", "-q", "--bin", &bin]),
        FIRST_BUILD_LIMIT,
    )
    .unwrap_or_else(|why| panic!("cargo build in the copy: {why}"));
    assert!(
        build.status.success(),
        "cargo build in the copy:\n{}",
        build.stderr
    );
    eprintln!("copy of the project built in {:.1?}", started.elapsed());

    let port = free_port();
    let serve = Serve::start(&copy, &tools, port);
    let before = format!("== {title}");
    let started = Instant::now();
    wait_for(port, &page, &before, SERVE_LIMIT, &serve)
        .unwrap_or_else(|why| panic!("mdbook serve's first build: {why}"));
    eprintln!("mdbook serve's first build: {:.1?}", started.elapsed());

    // The writer's edit: the title the experiment prints.
    let original = std::fs::read_to_string(&source).unwrap();
    let edited_title = format!("{title}, edited {}", std::process::id());
    let edited = original.replacen(
        &format!("section(\"{title}\")"),
        &format!("section(\"{edited_title}\")"),
        1,
    );
    std::fs::write(&source, &edited).unwrap();
    let saved = Instant::now();
    let result = wait_for(
        port,
        &page,
        &format!("== {edited_title}"),
        RELOAD_LIMIT,
        &serve,
    );
    let elapsed = saved.elapsed();
    std::fs::write(&source, &original).unwrap();
    drop(serve);
    result.unwrap_or_else(|why| panic!("after editing {}: {why}", source.display()));
    eprintln!(
        "live reload: {} edited; {page} showed the new output {:.1?} after the save",
        source.strip_prefix(&copy).unwrap().display(),
        elapsed
    );
}

/// Where `mdbook` and `mdbook-cmdrun` are: on PATH, or where scripts/book.sh installs them.
fn find_tools() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for var in ["VMBOOK_TOOLS", "CARGO_HOME"] {
        if let Some(dir) = std::env::var_os(var) {
            dirs.push(PathBuf::from(dir).join("bin"));
        }
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .find(|d| d.join("mdbook").is_file() && d.join("mdbook-cmdrun").is_file())
}

/// Makes `copy` hold the project's book and programs, rewriting only files that differ (so that
/// cargo rebuilds only what changed) and removing files the project no longer has.
fn sync_copy(root: &Path, copy: &Path) {
    std::fs::create_dir_all(copy).unwrap();
    // mdbook serve ignores what the nearest .gitignore above the book ignores: without its own,
    // the copy would be inside the project's ignored /target, and no change would ever be seen.
    if root.join(".gitignore").is_file() {
        sync_file(&root.join(".gitignore"), &copy.join(".gitignore"));
    } else {
        std::fs::write(copy.join(".gitignore"), "/target\n").unwrap();
    }
    for file in ["book.toml", "Cargo.toml", "Cargo.lock"] {
        sync_file(&root.join(file), &copy.join(file));
    }
    for dir in ["book", "chapters-src", "tests"] {
        sync_dir(&root.join(dir), &copy.join(dir));
    }
}

fn sync_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let mut wanted = Vec::new();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        wanted.push(name.clone());
        if entry.file_type().unwrap().is_dir() {
            sync_dir(&entry.path(), &to.join(&name));
        } else {
            sync_file(&entry.path(), &to.join(&name));
        }
    }
    for entry in std::fs::read_dir(to).unwrap() {
        let entry = entry.unwrap();
        if !wanted.contains(&entry.file_name()) {
            let path = entry.path();
            if path.is_dir() {
                std::fs::remove_dir_all(path).unwrap();
            } else {
                std::fs::remove_file(path).unwrap();
            }
        }
    }
}

fn sync_file(from: &Path, to: &Path) {
    let Ok(content) = std::fs::read(from) else {
        return; // removed while we copied: someone else's edit in progress
    };
    if std::fs::read(to).ok().as_deref() != Some(&content[..]) {
        std::fs::write(to, content).unwrap();
    }
}

/// The first chapter program (found through Cargo.toml: its main file, and the other files of its
/// folder) that prints a plain `section("...")` title: the chapter, its source file in the copy,
/// and the title.
fn what_to_edit(copy: &Path) -> (reader::Chapter, PathBuf, String) {
    let title = regex::Regex::new(r#"section\("([A-Za-z0-9 ,:()/._-]{8,})"\)"#).unwrap();
    let manifest = std::fs::read_to_string(copy.join("Cargo.toml")).unwrap();
    for chapter in reader::program_chapters() {
        let bin = &chapter.binaries()[0];
        let Some(main) = bin_path(&manifest, bin).map(|p| copy.join(p)) else {
            continue;
        };
        // A chapter program is a folder (main.rs and one file per experiment) or a single file.
        let mut sources = vec![main.clone()];
        if main.file_name().is_some_and(|f| f == "main.rs") {
            let mut files: Vec<PathBuf> = std::fs::read_dir(main.parent().unwrap())
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "rs"))
                .collect();
            files.sort();
            sources.extend(files);
        }
        for source in sources {
            let Ok(text) = std::fs::read_to_string(&source) else {
                continue;
            };
            if let Some(cap) = title.captures(&text) {
                return (chapter.clone(), source, cap[1].to_string());
            }
        }
    }
    panic!("no chapter program prints a plain section(\"...\") title to edit");
}

/// The `path` of the `[[bin]]` named `bin` in Cargo.toml.
fn bin_path(manifest: &str, bin: &str) -> Option<String> {
    let value = |line: &str, key: &str| {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    };
    let mut in_bin = false;
    let mut name = None;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
            name = None;
        } else if in_bin {
            if let Some(n) = value(line, "name") {
                name = Some(n);
            } else if let Some(path) = value(line, "path") {
                if name.as_deref() == Some(bin) {
                    return Some(path);
                }
            }
        }
    }
    None
}

/// cargo, in the copy, with the copy's own target directory.
/// Gives the copy's target directory the dependencies the project has already compiled, as hard
/// links, once: the registry crates' artifacts do not depend on where the project lives, so cargo
/// finds them fresh and compiles only the copy's own crate. (Cargo writes new artifacts under new
/// names and replaces, never rewrites, the files it links; nothing here changes the project's.)
fn seed_target(root: &Path, copy: &Path) {
    let from = root.join("target/debug");
    let to = copy.join("target/debug");
    if to.exists() || !from.join("deps").is_dir() {
        return;
    }
    std::fs::create_dir_all(&to).unwrap();
    for dir in ["deps", "build", ".fingerprint"] {
        let status = Command::new("cp")
            .arg("-al")
            .arg(from.join(dir))
            .arg(&to)
            .status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!(
                "could not seed {} from {}: building from scratch",
                to.display(),
                dir
            );
        }
    }
}

fn cargo_in(copy: &Path) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or("cargo".into()));
    command
        .current_dir(copy)
        .env("CARGO_TARGET_DIR", copy.join("target"));
    command
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `mdbook serve` on the copy, in its own process group, stopped (with whatever it started) on drop.
struct Serve {
    child: Child,
    log: PathBuf,
}

impl Serve {
    fn start(copy: &Path, tools: &Path, port: u16) -> Serve {
        use std::os::unix::process::CommandExt;
        let path = std::env::join_paths(std::iter::once(tools.to_path_buf()).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))
        .unwrap();
        let log = copy.join("../serve.log");
        let child = Command::new(tools.join("mdbook"))
            .args(["serve", "-n", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(copy)
            .env("PATH", path)
            .env("CARGO_TARGET_DIR", copy.join("target"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::options().append(true).open(&log).unwrap())
            .process_group(0)
            .spawn()
            .expect("start mdbook serve");
        Serve { child, log }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        reader::kill_group(&self.child);
        let _ = self.child.wait();
    }
}

/// Polls `page` until it contains `text`.
fn wait_for(
    port: u16,
    page: &str,
    text: &str,
    limit: Duration,
    serve: &Serve,
) -> Result<(), String> {
    let started = Instant::now();
    loop {
        if let Some(body) = get(port, page) {
            if body.contains(text) {
                return Ok(());
            }
        }
        if reader::exited(&serve.child) {
            return Err(format!("mdbook serve exited:\n{}", serve.log_tail()));
        }
        if started.elapsed() > limit {
            return Err(format!(
                "{page} did not show `{text}` within {limit:?}; mdbook serve said:\n{}",
                serve.log_tail()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET /page` over HTTP/1.0 (no chunked encoding); the body if the status is 200.
fn get(port: u16, page: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET /{page} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| body.to_string())
        .or_else(|| head.starts_with("HTTP/1.0 200").then(|| body.to_string()))
}

#[test]
fn chapter_sources_are_found_in_the_manifest() {
    let manifest = "[package]\nname = \"vmbook\"\npath = \"x\"\n\n[[bin]]\nname = \"pages\"\npath = \"chapters-src/pages.rs\"\n\n[[bin]]\nname = \"cleanup\"\npath = \"chapters-src/cleanup/main.rs\"\n";
    assert_eq!(
        bin_path(manifest, "cleanup").as_deref(),
        Some("chapters-src/cleanup/main.rs")
    );
    assert_eq!(
        bin_path(manifest, "pages").as_deref(),
        Some("chapters-src/pages.rs")
    );
    assert_eq!(bin_path(manifest, "vmbook"), None);
}
