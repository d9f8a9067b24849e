//! What the tests share: finding the book's directives, running them, redacting what varies.
#![allow(dead_code)]

pub mod environment;
pub mod procs;
pub mod redact;
pub mod runner;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The root of the project (where book.toml is).
///
/// `VMBOOK_ROOT` points elsewhere: `scripts/matrix.sh` runs the snapshot tests from a staged copy
/// that an unprivileged user can read.
pub fn root() -> PathBuf {
    std::env::var_os("VMBOOK_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// One `<!-- cmdrun ... -->` directive found in the book.
#[derive(Clone, Debug)]
pub struct Directive {
    /// The Markdown file, relative to the project root (`book/virtual-memory.md`).
    pub file: PathBuf,
    pub line: usize,
    /// Everything between `cmdrun ` and `-->`, trimmed.
    pub text: String,
    /// `Ok((binary, args))` for a directive of the one accepted form, else why not.
    pub parsed: Result<(String, Vec<String>), String>,
}

impl Directive {
    /// The chapter's slug: the Markdown file's name without `.md`.
    pub fn chapter(&self) -> String {
        self.file
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    /// A stable, readable snapshot name: chapter, binary and arguments (`pages__--pages-64`).
    pub fn snapshot_name(&self) -> String {
        let (bin, args) = self.parsed.as_ref().expect("a well-formed directive");
        vmbook::book::snapshot_name(&self.chapter(), bin, args)
    }

    pub fn location(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

/// Every directive in every Markdown file under `book/`, in file order (`vmbook::book::directives`).
pub fn directives() -> Vec<Directive> {
    vmbook::book::directives(&root())
        .unwrap_or_else(|e| panic!("reading the book: {e}"))
        .into_iter()
        .map(|d| Directive {
            parsed: d.run().map(|run| (run.bin, run.args)),
            file: d.file,
            line: d.line,
            text: d.text,
        })
        .collect()
}

/// The path of a chapter binary, built by `cargo test` next to the test executables.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/test-HASH -> target/debug/NAME
    exe.parent().unwrap().parent().unwrap().join(name)
}

/// A tag unique to one run, passed as VMBOOK_RUN_TAG so that its /dev/shm objects can be found.
pub fn fresh_tag() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// How long one run of a chapter program may take in a test: the book's runs take well under
/// two seconds each; this leaves room for a busy two-core machine.
pub const PROGRAM_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Runs a chapter binary as the book does: from the chapter's directory, stdin empty.
pub fn run(bin: &str, args: &[String], tag: &str) -> Result<runner::Finished, String> {
    runner::run(
        Command::new(binary(bin))
            .args(args)
            .current_dir(root().join("book"))
            .env("VMBOOK_RUN_TAG", tag),
        PROGRAM_LIMIT,
    )
    .map_err(|why| format!("{}: {why}", binary(bin).display()))
}

/// Entries in /dev/shm (including named semaphores, `sem.NAME`) created under `tag`.
pub fn leftovers(tag: &str) -> Vec<String> {
    let needle = format!("vmbook-{tag}-");
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(&needle))
                .collect()
        })
        .unwrap_or_default()
}

/// Builds the whole book in-process, with the pinned mdbook and mdbook-cmdrun as libraries, into
/// `target/DIR` (each test its own directory, so that two builds never race), and returns it.
///
/// The directives run through `scripts/cargo-shim`, as in `scripts/book.sh`: `cargo run -q --bin
/// NAME -- ARGS` runs the binary this `cargo test` built, and an output the same binary already
/// printed in this test run's environment, with the same arguments, is shown again (the shim's
/// cache, in `target/test-shim`): the book is built by several tests, and each program runs once.
pub fn build_book(dir: &str) -> PathBuf {
    let root = root();
    // mdbook-cmdrun reads ./book.toml to find the chapters' directory: build from the book root.
    std::env::set_current_dir(&root).unwrap();
    for (key, value) in shim_environment() {
        std::env::set_var(key, value);
    }
    let mut config = mdbook::Config::from_disk(root.join("book.toml")).unwrap();
    // Use the library's CmdRun, never whatever `mdbook-cmdrun` happens to be on PATH.
    if let Some(table) = config
        .get_mut("preprocessor")
        .and_then(|p| p.as_table_mut())
    {
        table.remove("cmdrun");
    }
    let out = root.join("target").join(dir);
    let _ = std::fs::remove_dir_all(&out);
    config.build.build_dir = out.clone();
    let mut book = mdbook::MDBook::load_with_config(&root, config).unwrap();
    book.with_preprocessor(mdbook_cmdrun::CmdRun);
    book.build().expect("mdbook build");
    out
}

/// Gives SIGINT, SIGQUIT, SIGTERM and SIGHUP back their default action in this test process, so
/// that the programs it starts inherit it. A shell starts background jobs (`cargo test &`, a CI
/// script) with SIGINT and SIGQUIT ignored, an ignored signal stays ignored across `execve`, and a
/// program interrupted before it installs its own handler would then not be interrupted at all:
/// the tests that send SIGINT would time out instead of testing anything.
pub fn signals_at_default() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    for sig in [
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTERM,
        Signal::SIGHUP,
    ] {
        // SAFETY: installing SIG_DFL runs no code of ours in a signal context.
        let _ = unsafe { signal(sig, SigHandler::SigDfl) };
    }
}

/// The environment under which `cargo run -q --bin NAME -- ARGS` (a directive, or `claims`, which
/// runs them) runs the binaries this `cargo test` built, through `scripts/cargo-shim`, sharing
/// outputs within this test run.
pub fn shim_environment() -> Vec<(&'static str, std::ffi::OsString)> {
    let root = root();
    let state = root.join("target/test-shim");
    let bin = state.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // Outputs of binaries that no longer exist are of no use after a while.
    static PRUNE: std::sync::Once = std::sync::Once::new();
    PRUNE.call_once(|| {
        let day_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(24 * 3600);
        for entry in std::fs::read_dir(state.join("cache"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < day_ago)
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    });
    let link = bin.join("cargo");
    if std::fs::read_link(&link).ok() != Some(root.join("scripts/cargo-shim")) {
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(root.join("scripts/cargo-shim"), &link).unwrap();
    }
    let real_cargo = std::env::var_os("VMBOOK_CARGO")
        .or_else(|| std::env::var_os("CARGO"))
        .unwrap_or_else(|| "cargo".into());
    let path = std::env::var_os("PATH").unwrap_or_default();
    // Without the shim already first (a second call in this process), put it first.
    let path = if std::env::split_paths(&path).next().as_deref() == Some(bin.as_path()) {
        path
    } else {
        std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(&path)))
            .unwrap()
    };
    vec![
        ("PATH", path),
        ("VMBOOK_CARGO", real_cargo),
        ("VMBOOK_ROOT", root.into_os_string()),
        ("VMBOOK_SHIM_STATE", state.into_os_string()),
        ("VMBOOK_BIN_DIR", binary("claims").parent().unwrap().into()),
        ("VMBOOK_CACHE", "1".into()),
    ]
}

/// How the tests drop to an ordinary user: `setpriv` to `nobody`, no groups. Changing the uid from
/// 0 drops every capability, so the program sees what an ordinary user sees.
pub const DROP_TO_NOBODY: [&str; 4] = ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"];

/// `program`, to be run as user `nobody` (see [`cannot_run_as_nobody`] first).
pub fn as_nobody(program: &Path) -> Command {
    let mut command = Command::new("setpriv");
    command.args(DROP_TO_NOBODY).arg(program);
    command
}

/// Why this test process cannot run programs as `nobody`, if it cannot: it is not root, setpriv is
/// missing or refused, or `nobody` cannot reach the chapter binaries (every directory on the way to
/// target/ must be searchable by others; a clone under /root, mode 700, is not).
pub fn cannot_run_as_nobody() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("the test does not run as root, so it cannot switch to user nobody".into());
    }
    match runner::run(&mut as_nobody(Path::new("true")), PROGRAM_LIMIT) {
        Err(e) => {
            return Some(format!(
                "setpriv cannot be started ({e}); it is in util-linux"
            ))
        }
        Ok(out) if !out.status.success() => {
            return Some(format!(
                "`setpriv {} true` failed: {}",
                DROP_TO_NOBODY.join(" "),
                out.stderr.trim()
            ))
        }
        Ok(_) => {}
    }
    let path = binary("claims");
    let reachable = runner::run(
        as_nobody(Path::new("test")).arg("-x").arg(&path),
        PROGRAM_LIMIT,
    )
    .is_ok_and(|run| run.status.success());
    (!reachable).then(|| {
        format!(
            "user nobody cannot execute {}: a directory on the way is not searchable by others",
            path.display()
        )
    })
}
