//! Forking the experiments' children, and watching them without reaping them.

use anyhow::{ensure, Result};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use vmbook::process::fork_child;

/// Every fork in this program goes through here: the library's fork_child (which holds Ctrl-C back
/// until the child is registered for cleanup), and PR_SET_PDEATHSIG set in the child, so that no
/// child outlives its parent, even a parent killed with SIGKILL.
pub fn fork_guarded(child: impl FnOnce() -> i32) -> Result<Pid> {
    let parent = nix::unistd::getpid();
    fork_child(|| {
        // Kept here: some children spin or sleep until told to stop, and no handler runs on SIGKILL.
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
        if nix::unistd::getppid() != parent {
            return 1; // the parent died before the line above
        }
        child()
    })
}

/// Waits (sleeping briefly) until a child has set `word`; an error if the child ended first, or
/// took more than 5 seconds.
pub fn until_set(word: &AtomicU32, child: Pid) -> Result<()> {
    let start = Instant::now();
    while word.load(Ordering::Acquire) == 0 {
        ensure!(
            !exited(child) && start.elapsed() < Duration::from_secs(5),
            "the child stopped before it was ready"
        );
        std::thread::sleep(Duration::from_micros(50));
    }
    Ok(())
}

/// Whether a child has ended, without reaping it (waitid with WNOWAIT).
pub fn exited(pid: Pid) -> bool {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    matches!(
        waitid(Id::Pid(pid), flags),
        Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..))
    )
}
