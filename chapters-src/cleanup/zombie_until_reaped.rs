//! A child that exited but was not waited for: a zombie, until waitpid reaps it.

use crate::child::describe_status;
use anyhow::Result;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use procfs::process::Process;
use std::time::{Duration, Instant};
use vmbook::process::{fork_child, wait_child};
use vmbook::{finding, section};

/// The state letter in /proc/PID/stat (R, S, Z, ...), or None once the process is gone.
fn state_of(pid: Pid) -> Option<char> {
    Process::new(pid.as_raw())
        .and_then(|p| p.stat())
        .ok()
        .map(|s| s.state)
}

// ANCHOR: zombie
pub fn zombie_until_reaped(exit_code: i32) -> Result<()> {
    section("A child that exited but was not waited for");
    let child = fork_child(|| exit_code)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while state_of(child) != Some('Z') && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let before = state_of(child);
    let status_file = std::fs::read_to_string(format!("/proc/{child}/status")).unwrap_or_default();
    let holds_memory = status_file.lines().any(|l| l.starts_with("VmSize"));
    vmbook::pause::here(
        "the child is a zombie now",
        &["ps -o pid,stat,cmd --ppid PID"],
    );
    let status = wait_child(child)?; // waitpid(pid, &status, 0): read the status, free the entry
    let after = state_of(child);
    // ANCHOR_END: zombie
    let show = |s: Option<char>| {
        s.map_or("gone (no /proc entry)".to_string(), |c| {
            format!("state {c}")
        })
    };
    println!(
        "child (pid {child}) has exited, not yet waited for: /proc/PID/stat {}",
        show(before)
    );
    println!(
        "its /proc/PID/status {}",
        if holds_memory {
            "still has a VmSize line"
        } else {
            "has no VmSize line: no address space"
        }
    );
    println!("waitpid: {}", describe_status(status));
    println!("after waitpid: /proc/PID/stat {}", show(after));
    finding(
        "a child that exited but was not waited for is a zombie (state Z) that holds no memory",
        before == Some('Z') && !holds_memory,
        format!("{}, VmSize line: {holds_memory}", show(before)),
    );
    finding(
        "waitpid returns the child's exit status and the zombie disappears",
        matches!(status, WaitStatus::Exited(_, c) if c == exit_code) && after.is_none(),
        format!("{}, then {}", describe_status(status), show(after)),
    );
    Ok(())
}
