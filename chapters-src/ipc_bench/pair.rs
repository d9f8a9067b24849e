//! Two processes, placed on CPUs: every measurement of the appendix runs a forked child (the
//! sender, or the side that answers) against its parent (the side that times and verifies).

use anyhow::{bail, ensure, Context, Result};
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use std::time::{Duration, Instant};
use vmbook::process::{fork_child, wait_child};

/// How long any wait may go without progress before the run gives up: the other process died.
pub const STALL: Duration = Duration::from_secs(5);

/// Where the two processes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Placement {
    /// Both pinned to the same CPU: they take turns, and every hand-over is a context switch.
    OneCore,
    /// Pinned to two different CPUs: both run at once, and data crosses between their caches.
    TwoCores,
}

impl Placement {
    pub fn label(self) -> &'static str {
        match self {
            Placement::OneCore => "one core",
            Placement::TwoCores => "two cores",
        }
    }
}

/// The first two CPUs this process may run on (the second is `None` on a one-CPU machine).
pub fn usable_cpus() -> Result<(usize, Option<usize>)> {
    let set = sched_getaffinity(Pid::from_raw(0)).context("sched_getaffinity")?;
    let mut cpus = (0..CpuSet::count()).filter(|&c| set.is_set(c).unwrap_or(false));
    let first = cpus.next().context("sched_getaffinity: no CPU allowed")?;
    Ok((first, cpus.next()))
}

fn pin(cpu: usize) -> Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu)
        .with_context(|| format!("CpuSet::set({cpu})"))?;
    sched_setaffinity(Pid::from_raw(0), &set)
        .with_context(|| format!("sched_setaffinity(cpu {cpu})"))
}

// ANCHOR: run_pair
/// Pins this process, forks a child pinned by `placement`, runs `child` there and `parent` here,
/// and reaps the child. A child that fails makes the run fail; so does a parent that fails (the
/// child is killed then). The parent's CPU mask is restored afterwards.
pub fn run_pair<T>(
    placement: Placement,
    child: impl FnOnce() -> Result<()>,
    parent: impl FnOnce(Pid) -> Result<T>,
) -> Result<T> {
    let (first, second) = usable_cpus()?;
    let child_cpu = match placement {
        Placement::OneCore => first,
        Placement::TwoCores => second.context("two cores: this process may use only one CPU")?,
    };
    let saved = sched_getaffinity(Pid::from_raw(0)).context("sched_getaffinity")?;
    pin(first)?;
    let pid = fork_child(|| {
        // If the parent dies (even by SIGKILL), the kernel kills this child too: no orphan.
        let setup = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
            .context("prctl(PR_SET_PDEATHSIG)")
            .and_then(|()| pin(child_cpu));
        match setup.and_then(|()| child()) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("ipc-bench: child: {e:#}");
                1
            }
        }
    });
    let pid = match pid {
        Ok(pid) => pid,
        Err(e) => {
            let _ = sched_setaffinity(Pid::from_raw(0), &saved);
            return Err(e);
        }
    };
    let result = parent(pid);
    if result.is_err() {
        let _ = kill(pid, Signal::SIGKILL);
    }
    let status = wait_child(pid);
    let restored =
        sched_setaffinity(Pid::from_raw(0), &saved).context("sched_setaffinity(restore)");
    let value = result?;
    restored?;
    match status? {
        WaitStatus::Exited(_, 0) => Ok(value),
        other => bail!("the child process failed: {other:?}"),
    }
}
// ANCHOR_END: run_pair

/// Gives up when `since` lies more than [`STALL`] in the past; `what` names the wait.
pub fn check_stall(since: Instant, what: &str) -> Result<()> {
    ensure!(
        since.elapsed() < STALL,
        "{what}: no progress for {} s: the other process stopped",
        STALL.as_secs()
    );
    Ok(())
}
