//! `--pause`, as a reader uses it: in a terminal, the program stops at each experiment, prints its
//! pid and what to look at, and really waits there, with the state it describes alive in
//! /proc/PID; Enter lets it go on, and it finishes normally. Without a terminal on stdin (the book
//! build, the tests, a pipe that never sends anything) it must never wait.
//!
//! The terminal is a pseudo-terminal from `openpty(3)`; no tmux or `script` needed.

mod reader;
mod support;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PROMPT: &str = "--- press Enter to go on";
const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn pause_waits_in_a_terminal_with_its_state_alive_and_enter_resumes() {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    // Other tests start processes at the same time: they must not inherit either end.
    for fd in [&pty.master, &pty.slave] {
        fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).expect("FD_CLOEXEC");
    }
    let tag = support::fresh_tag();
    let mut command = Command::new(support::binary("virtual-memory"));
    command
        .args(["maps", "--pause"])
        .current_dir(support::root().join("book"))
        .env("VMBOOK_RUN_TAG", &tag)
        .stdin(Stdio::from(pty.slave.try_clone().unwrap()))
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(Stdio::from(pty.slave));
    let mut child = command.spawn().expect("start virtual-memory");
    drop(command); // our copies of the terminal's slave end: only the child holds it now

    // Everything the terminal shows, collected by a reader thread.
    let screen = Arc::new(Mutex::new(String::new()));
    let mut master_out = std::fs::File::from(pty.master.try_clone().unwrap());
    let collected = Arc::clone(&screen);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        // Ends with EIO once the child and its slave end are gone.
        while let Ok(n) = master_out.read(&mut buf) {
            if n == 0 {
                break;
            }
            collected
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let mut keyboard = std::fs::File::from(pty.master);
    let shown = || screen.lock().unwrap().clone();

    let started = Instant::now();
    let mut pauses = 0;
    let status = loop {
        assert!(
            started.elapsed() < LIMIT,
            "no progress within {LIMIT:?}; the terminal shows:\n{}",
            shown()
        );
        if shown().matches(PROMPT).count() > pauses {
            pauses += 1;
            let text = shown();
            let pause = text.rsplit("--- paused").next().unwrap();
            // The pid it prints is its own, and the state it names is alive right now.
            let pid = child.id();
            assert!(
                pause.starts_with(&format!(" (pid {pid}):")),
                "pause {pauses} does not name the pid {pid}:\n{pause}"
            );
            assert!(
                pause.contains(&format!("/proc/{pid}/maps")),
                "pause {pauses} does not say where to look (/proc/{pid}/maps):\n{pause}"
            );
            let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
                .unwrap_or_else(|e| panic!("/proc/{pid}/maps during pause {pauses}: {e}"));
            assert!(
                maps.contains("[heap]") && maps.contains("[stack]"),
                "{maps}"
            );
            // It really waits: still there, and nothing new on the screen, a moment later.
            std::thread::sleep(Duration::from_millis(300));
            assert!(
                child.try_wait().unwrap().is_none(),
                "exited without Enter:\n{}",
                shown()
            );
            assert!(
                shown().trim_end().ends_with(PROMPT),
                "went on without Enter:\n{}",
                shown()
            );
            keyboard.write_all(b"\n").expect("press Enter");
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(200)); // the last output, still in the terminal
    let text = shown();
    assert!(status.success(), "exited with {status}:\n{text}");
    assert!(pauses >= 1, "never paused under a terminal:\n{text}");
    assert!(
        text.contains("$ cargo run --bin virtual-memory -- maps --pause")
            && text.contains("finding:"),
        "did not finish its experiment after Enter:\n{text}"
    );
    assert!(support::leftovers(&tag).is_empty());
    eprintln!(
        "paused {pauses} time(s), resumed with Enter, finished in {:.1?}",
        started.elapsed()
    );
}

/// The first directive of each chapter program, with `--pause` added, and stdin a pipe that stays
/// open but silent: it must run to the end as if `--pause` were not there.
#[test]
fn without_a_terminal_pause_never_waits() {
    let mut checked = Vec::new();
    let mut problems = Vec::new();
    for chapter in reader::program_chapters() {
        for bin in chapter.binaries() {
            let directive = chapter
                .directives
                .iter()
                .find(|d| d.parsed.as_ref().is_ok_and(|(b, _)| *b == bin))
                .unwrap();
            let (_, args) = directive.parsed.as_ref().unwrap();
            let tag = support::fresh_tag();
            let run = support::runner::run_with_silent_stdin(
                Command::new(support::binary(&bin))
                    .args(args)
                    .arg("--pause")
                    .current_dir(support::root().join("book"))
                    .env("VMBOOK_RUN_TAG", &tag),
                LIMIT,
            );
            let shown = format!("`{bin} {} --pause` (stdin a silent pipe)", args.join(" "));
            match run {
                Err(why) => problems.push(format!("{shown}: {why}")),
                Ok(run) if !run.status.success() => {
                    problems.push(format!("{shown}: exited with {}", run.status))
                }
                Ok(run) if run.stderr.contains(PROMPT) => {
                    problems.push(format!("{shown}: prompted without a terminal"))
                }
                Ok(run) => checked.push(format!("{shown}: {:.2?}", run.elapsed)),
            }
            if !support::leftovers(&tag).is_empty() {
                problems.push(format!("{shown}: left things in /dev/shm"));
            }
        }
    }
    eprintln!("{}", checked.join("\n"));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(!checked.is_empty(), "no chapter program found");
}
