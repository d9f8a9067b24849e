//! Forking from a chapter program, safely.
//!
//! `fork` copies only the calling thread. In a multi-threaded process another thread may hold a lock
//! (the allocator's, stdout's) at that instant, and the child would wait on it forever; so
//! [`fork_child`] first checks that this process has exactly one thread. The child runs a closure
//! and leaves with `_exit`, which runs no destructors and flushes nothing that belongs to the parent.

use crate::cleanup;
use anyhow::{bail, Context, Result};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output};

/// The number of threads in this process, from /proc/self/task.
pub fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(0)
}

// ANCHOR: fork_and_spawn
/// Forks; the child runs `child` and exits with the code it returns (101 if it panics).
/// The parent gets the child's pid and must reap it with [`wait_child`].
pub fn fork_child(child: impl FnOnce() -> i32) -> Result<Pid> {
    let threads = thread_count();
    if threads != 1 {
        bail!("fork refused: this process has {threads} threads, and fork copies only one");
    }
    // Anything still buffered would be written twice: once by each process.
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let blocked = cleanup::block_signals();
    // SAFETY: the process is single-threaded (checked above), so no lock can be held by a thread
    // that does not exist in the child.
    match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            drop(blocked);
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
            let _ = std::io::stdout().flush();
            // SAFETY: _exit ends the child at once, without running the parent's destructors twice
            // (they would unmap, unlink and flush what the parent still owns).
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            cleanup::track_child(child.as_raw());
            drop(blocked);
            Ok(child)
        }
    }
}

/// Starts `command` (fork + exec) and records the child, so that an interrupting signal kills and
/// reaps it; pair with [`wait_spawned`] or `untrack_child` once it has been waited for.
pub fn spawn_tracked(command: &mut Command) -> Result<Child> {
    spawn_tracked_ending_with(command, libc::SIGKILL)
}

/// [`spawn_tracked`] for a child that an interrupting signal ends with `signal` (SIGTERM: a
/// chapter program run as a child, which cleans up after itself). The pid and the signal are
/// recorded together while the cleanup signals are still blocked: a Ctrl-C that arrives during the
/// spawn is handled only once both are known, so it never SIGKILLs a child that must get SIGTERM.
pub fn spawn_tracked_ending_with(command: &mut Command, signal: libc::c_int) -> Result<Child> {
    let blocked = cleanup::block_signals();
    // SAFETY: the hook runs in the child between fork and exec, and only calls sigprocmask,
    // which is async-signal-safe. std passes the blocked mask on to the child; undo that.
    let child = unsafe {
        command.pre_exec(|| {
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            Ok(())
        })
    }
    .spawn()
    .with_context(|| format!("spawn {:?}", command.get_program()))?;
    cleanup::track_child_ending_with(child.id() as i32, signal);
    drop(blocked);
    Ok(child)
}
// ANCHOR_END: fork_and_spawn

/// Waits for a child from [`spawn_tracked`], collecting its output, and forgets it.
pub fn wait_spawned(child: Child) -> Result<Output> {
    let pid = child.id() as i32;
    let output = child.wait_with_output().context("wait for a child")?;
    cleanup::untrack_child(pid);
    Ok(output)
}

/// Waits for a child started by [`fork_child`] and returns how it ended.
pub fn wait_child(pid: Pid) -> Result<WaitStatus> {
    let status = waitpid(pid, None).with_context(|| format!("waitpid({pid})"))?;
    cleanup::untrack_child(pid.as_raw());
    Ok(status)
}

/// Waits for a child and returns its exit code; an error if a signal killed it.
pub fn wait_exit_code(pid: Pid) -> Result<i32> {
    match wait_child(pid)? {
        WaitStatus::Exited(_, code) => Ok(code),
        WaitStatus::Signaled(_, sig, _) => bail!("child {pid} was killed by {sig}"),
        other => bail!("child {pid} ended unexpectedly: {other:?}"),
    }
}
