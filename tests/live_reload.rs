//! Live reload while writing, as a writer uses it: `scripts/book.sh serve` is running, a line of a
//! chapter program under `chapters-src/` changes, and the served page shows the program's new output.
//!
//! The test works on a copy of the project (.gitignore, book.toml, Cargo.toml, Cargo.lock, book/,
//! chapters-src/, scripts/) in `target/live-reload/project`, kept between runs. The copy has its own
//! cargo target directory (sharing the real one would overwrite `target/debug/CHAPTER`, which every
//! other test runs, with the edited program), seeded from the one `cargo test` just built: files are
//! copied with their modification times, so cargo finds the copy's programs already built and
//! compiles only what the copy changes (the edited program, and the two that embed the project's
//! path). It starts the copy's `scripts/book.sh serve` on a free port of 127.0.0.1, edits the title
//! a chapter program prints for one experiment, polls the page until the new title appears, and
//! reports the time from the save to the refreshed page.
//!
//! Without the pinned mdbook (installed by `scripts/book.sh`) it says so and passes, unless `CI` is
//! set.

mod reader;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::runner::Running;

/// The first build of a copy compiles the programs the copy changes; later, only an edited one.
const SERVE_LIMIT: Duration = Duration::from_secs(10 * 60);
const RELOAD_LIMIT: Duration = Duration::from_secs(5 * 60);

#[test]
fn a_changed_chapter_program_shows_in_the_served_page() {
    let Some(tools) = find_tools() else {
        reader::skip_or_fail(
            "mdbook 0.4.52 and mdbook-cmdrun are not installed: run `scripts/book.sh build` once",
        );
        return;
    };
    let root = support::root();
    let copy = root.join("target/live-reload/project");
    let started = Instant::now();
    sync_copy(&root, &copy);
    seed_target(&root, &copy);
    let (chapter, source, title) = what_to_edit(&copy);
    let page = chapter.html();
    eprintln!("copy of the project made in {:.1?}", started.elapsed());

    let port = free_port();
    let serve = Serve::start(&copy, &tools, port);
    let before = format!("== {title}");
    let started = Instant::now();
    wait_for(port, &page, &before, SERVE_LIMIT, &serve)
        .unwrap_or_else(|why| panic!("scripts/book.sh serve's first build: {why}"));
    eprintln!(
        "scripts/book.sh serve's first build: {:.1?}",
        started.elapsed()
    );

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

/// The directory holding the pinned `mdbook` and `mdbook-cmdrun` as `cargo install` put them there
/// (what `scripts/book.sh` checks): $VMBOOK_TOOLS/bin, target/tools/bin, or a directory on PATH.
fn find_tools() -> Option<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("VMBOOK_TOOLS") {
        dirs.push(PathBuf::from(dir).join("bin"));
    }
    dirs.push(support::root().join("target/tools/bin"));
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    dirs.into_iter().find(|dir| {
        // What `cargo install` records: `[v1]` "NAME VERSION (SOURCE)" = ["BINARY", ...].
        let installed: Vec<String> = dir
            .parent()
            .and_then(|root| std::fs::read_to_string(root.join(".crates.toml")).ok())
            .and_then(|text| text.parse::<toml::Table>().ok())
            .and_then(|table| Some(table.get("v1")?.as_table()?.keys().cloned().collect()))
            .unwrap_or_default();
        let has = |package: &str| installed.iter().any(|key| key.starts_with(package));
        dir.join("mdbook").is_file()
            && dir.join("mdbook-cmdrun").is_file()
            && has("mdbook 0.4.52 ")
            && has("mdbook-cmdrun 0.7.3 ")
    })
}

/// Makes `copy` hold the project's book, programs and scripts, rewriting only files that differ
/// and giving each its original's modification time (so that cargo, comparing times, finds the
/// seeded programs up to date), and removing files the project no longer has.
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
    for dir in ["book", "chapters-src", "scripts", "tests"] {
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
    let (Ok(content), Ok(meta)) = (std::fs::read(from), std::fs::metadata(from)) else {
        return; // removed while we copied: someone else's edit in progress
    };
    if std::fs::read(to).ok().as_deref() != Some(&content[..]) {
        std::fs::write(to, content).unwrap();
    }
    let file = std::fs::File::options().write(true).open(to).unwrap();
    file.set_modified(meta.modified().unwrap()).unwrap();
    file.set_permissions(meta.permissions()).unwrap();
}

/// The first chapter program (found through Cargo.toml: its main file, and the other files of its
/// folder) that prints a plain `section("...")` title: the chapter, its source file in the copy,
/// and the title.
fn what_to_edit(copy: &Path) -> (reader::Chapter, PathBuf, String) {
    let title = regex::Regex::new(r#"section\("([A-Za-z0-9 ,:()/._-]{8,})"\)"#).unwrap();
    let manifest: toml::Table = std::fs::read_to_string(copy.join("Cargo.toml"))
        .unwrap()
        .parse()
        .expect("Cargo.toml");
    let bin_path = |bin: &str| {
        manifest.get("bin")?.as_array()?.iter().find_map(|b| {
            (b.get("name")?.as_str()? == bin).then(|| b.get("path")?.as_str().map(PathBuf::from))?
        })
    };
    for chapter in reader::program_chapters() {
        let Some(main) = bin_path(&chapter.binaries()[0]).map(|p| copy.join(p)) else {
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

/// Gives the copy's target directory what `cargo test` has just built for the project. The
/// registry crates' artifacts never change once built: they are hard links. The project's own (the
/// `vmbook` library and the chapter programs, which cargo rebuilds in the copy when the copy changes
/// them, writing some files in place) are copies, with their times. Only what differs from the
/// last run is copied again (size and time), in this process: the copy's programs keep their
/// inodes, so its `serve` reuses their outputs, as a writer's does after the first build.
fn seed_target(root: &Path, copy: &Path) {
    let from = root.join("target/debug");
    let to = copy.join("target/debug");
    let ours: Vec<String> = ["vmbook", "libvmbook"]
        .into_iter()
        .map(String::from)
        .chain(
            reader::program_chapters()
                .iter()
                .flat_map(|c| c.binaries())
                .chain(["claims".to_string()])
                .map(|b| b.replace('-', "_")),
        )
        .collect();
    let is_ours = |name: &str| {
        let stem = name.rsplit_once('-').map_or(name, |(stem, _)| stem);
        ours.iter().any(|o| o == stem)
    };
    for dir in ["deps", "build", ".fingerprint"] {
        let Ok(entries) = std::fs::read_dir(from.join(dir)) else {
            continue;
        };
        std::fs::create_dir_all(to.join(dir)).unwrap();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            seed(&entry.path(), &to.join(dir).join(&name), is_ours(&name));
        }
    }
}

/// Makes `to` hold `from` (a file, or a directory and everything in it): a copy with its time if
/// `copied`, else a hard link.
fn seed(from: &Path, to: &Path, copied: bool) {
    let Ok(meta) = std::fs::symlink_metadata(from) else {
        return; // removed meanwhile (cargo cleaning up after itself)
    };
    if meta.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap().flatten() {
            seed(&entry.path(), &to.join(entry.file_name()), copied);
        }
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let there = std::fs::symlink_metadata(to).ok();
    let same = there.as_ref().is_some_and(|t| {
        if copied {
            t.size() == meta.size()
                && t.mtime() == meta.mtime()
                && t.mtime_nsec() == meta.mtime_nsec()
        } else {
            t.ino() == meta.ino() && t.dev() == meta.dev()
        }
    });
    if same {
        return;
    }
    if there.is_some() {
        std::fs::remove_file(to).unwrap();
    }
    if copied {
        std::fs::copy(from, to)
            .and_then(|_| std::fs::File::options().write(true).open(to))
            .and_then(|file| file.set_modified(meta.modified()?))
            .unwrap_or_else(|e| panic!("seeding {} from {}: {e}", to.display(), from.display()));
    } else {
        std::fs::hard_link(from, to)
            .unwrap_or_else(|e| panic!("seeding {} from {}: {e}", to.display(), from.display()));
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `mdbook serve` on the copy, in its own process group, stopped (with whatever it started) on drop.
struct Serve {
    process: Running,
    log: PathBuf,
}

impl Serve {
    fn start(copy: &Path, tools: &Path, port: u16) -> Serve {
        let path = std::env::join_paths(std::iter::once(tools.to_path_buf()).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))
        .unwrap();
        let log = copy.join("../serve.log");
        let process = Running::start_logged(
            Command::new(copy.join("scripts/book.sh"))
                .args(["serve", "-n", "127.0.0.1", "-p", &port.to_string()])
                .current_dir(copy)
                .env("PATH", path)
                .env("VMBOOK_TOOLS", tools.parent().unwrap())
                .env("CARGO_TARGET_DIR", copy.join("target"))
                .env_remove("VMBOOK_BIN_DIR"),
            &log,
        )
        .expect("start scripts/book.sh serve");
        Serve { process, log }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
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
        if serve.process.exited() {
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

/// The body of `GET /page`, if the server answers 200 within 5 s.
fn get(port: u16, page: &str) -> Option<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    agent
        .get(&format!("http://127.0.0.1:{port}/{page}"))
        .call()
        .ok()?
        .body_mut()
        .read_to_string()
        .ok()
}
