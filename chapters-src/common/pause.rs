//! `--pause`: stop at each experiment so that a reader can look at the live processes.
//!
//! Every chapter program accepts `--pause`. At each point where the state the chapter describes
//! exists (a mapping made, a child forked, an object in /dev/shm), the program calls [`here`]: it
//! prints its pid and what to look at from another terminal, and waits for Enter. Without a terminal
//! on stdin (the book build, the tests, a pipe) it never waits, so nothing can hang.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns pausing on (from the program's `--pause` option).
pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether a pause would wait: `--pause` was given and stdin is a terminal.
pub fn active() -> bool {
    ENABLED.load(Ordering::Relaxed) && std::io::stdin().is_terminal()
}

/// Pauses here if `--pause` is on: prints what state exists now and commands to inspect it (`PID`
/// in a command is replaced by this process's pid), then waits for Enter. The text goes to stderr,
/// so the program's output stays the same with and without `--pause`.
pub fn here(state: &str, commands: &[&str]) {
    if !active() {
        return;
    }
    let pid = std::process::id().to_string();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "\n--- paused (pid {pid}): {state}");
    let _ = writeln!(err, "--- look from another terminal:");
    for command in commands {
        let _ = writeln!(err, "      {}", command.replace("PID", &pid));
    }
    let _ = write!(err, "--- press Enter to go on ");
    let _ = err.flush();
    drop(err);
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}
