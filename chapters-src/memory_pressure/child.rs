//! A forked child that prepares something, reports one byte, and waits for the parent's word:
//! the parent looks at the child's /proc files while the child holds still.

use anyhow::{bail, Context, Result};
use nix::unistd::{pipe, Pid};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use vmbook::process::fork_child;

/// The parent's side of a waiting child.
pub struct Waiting {
    pub pid: Pid,
    /// What the child reported after its setup.
    pub report: u8,
    go: File,
}

/// Forks a child that runs `setup` and reports the byte it returns, then waits: if the parent
/// says go, it runs `work` and exits with its code; if the parent lets it go (or dies), it exits 0.
pub fn fork_waiting(setup: impl FnOnce() -> u8, work: impl FnOnce() -> i32) -> Result<Waiting> {
    let (ready_read, ready_write): (OwnedFd, OwnedFd) = pipe().context("pipe")?;
    let (go_read, go_write): (OwnedFd, OwnedFd) = pipe().context("pipe")?;
    let fds = [
        ready_read.as_raw_fd(),
        ready_write.as_raw_fd(),
        go_read.as_raw_fd(),
        go_write.as_raw_fd(),
    ];
    // The closure captures only the four numbers: the parent keeps owning its descriptors.
    let pid = fork_child(move || {
        let [ready_read, ready_write, go_read, go_write] = fds;
        // SAFETY: closing the parent's ends in the child: a read of `go` then sees end-of-file
        // when the parent closes its end or dies, instead of waiting forever.
        unsafe {
            libc::close(ready_read);
            libc::close(go_write);
        }
        let byte = [setup()];
        let mut word = [0u8];
        // SAFETY: both descriptors are this child's own open pipe ends; the buffers are valid.
        let said_go = unsafe {
            libc::write(ready_write, byte.as_ptr().cast(), 1);
            libc::read(go_read, word.as_mut_ptr().cast(), 1) == 1
        };
        if said_go {
            work()
        } else {
            0
        }
    })?;
    drop(ready_write);
    drop(go_read);
    let mut ready = File::from(ready_read);
    let mut report = [0u8];
    if ready.read(&mut report).context("read from the child")? != 1 {
        vmbook::process::wait_child(pid)?;
        bail!("child {pid} ended before it reported");
    }
    Ok(Waiting {
        pid,
        report: report[0],
        go: File::from(go_write),
    })
}

impl Waiting {
    /// Tells the child to run its work.
    pub fn go(&mut self) -> Result<()> {
        self.go.write_all(&[1]).context("write to the child")
    }

    /// Tells the child to run its work, and waits until it ends (exits or is killed).
    pub fn go_and_wait(mut self) -> Result<nix::sys::wait::WaitStatus> {
        self.go()?;
        vmbook::process::wait_child(self.pid)
    }

    /// Lets the child end without working, and reaps it.
    pub fn release(self) -> Result<()> {
        drop(self.go);
        vmbook::process::wait_exit_code(self.pid).map(|_| ())
    }
}
