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

/// The CPUs this process may run on (its affinity mask), in order.
fn allowed_cpus() -> Result<Vec<usize>> {
    let set = sched_getaffinity(Pid::from_raw(0)).context("sched_getaffinity")?;
    let cpus: Vec<usize> = (0..CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .collect();
    ensure!(!cpus.is_empty(), "sched_getaffinity: no CPU allowed");
    Ok(cpus)
}

/// The hardware threads that share `cpu`'s core (SMT siblings, `cpu` included), from
/// `/sys/devices/system/cpu/cpuN/topology/thread_siblings_list` ("0-1", "0,8"); just `cpu` where
/// the file cannot be read.
fn smt_siblings(cpu: usize) -> Vec<usize> {
    let path = format!("/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list");
    let Ok(list) = std::fs::read_to_string(path) else {
        return vec![cpu];
    };
    let mut cpus = Vec::new();
    for part in list.trim().split(',') {
        let mut ends = part.split('-').map(|n| n.trim().parse::<usize>());
        match (ends.next(), ends.next()) {
            (Some(Ok(a)), Some(Ok(b))) => cpus.extend(a..=b),
            (Some(Ok(a)), None) => cpus.push(a),
            _ => {}
        }
    }
    if cpus.is_empty() {
        vec![cpu]
    } else {
        cpus
    }
}

/// The two CPUs of the two-core placement, and what they are.
pub struct CpuPair {
    pub first: usize,
    /// `None` when this process may run on one CPU only.
    pub second: Option<usize>,
    /// The two are SMT siblings: hardware threads of one core, sharing its L1 and L2 caches,
    /// because the affinity mask holds no CPU of another core.
    pub siblings: bool,
}

impl CpuPair {
    /// What the two-core measurements use, in words; `None` when there are two separate cores,
    /// the case the book describes.
    pub fn caveat(&self) -> Option<String> {
        match self.second {
            None => Some(format!(
                "this process may run on CPU {} only (its affinity mask): no two-core measurement",
                self.first
            )),
            Some(second) if self.siblings => Some(format!(
                "CPU {} and CPU {second}, the only pair allowed, are SMT siblings of one core: \
                 the two-core figures share one core's caches",
                self.first
            )),
            Some(_) => None,
        }
    }
}

/// Chooses the two CPUs: the first allowed CPU, and the first allowed CPU on another core (not
/// one of its SMT siblings); if every other allowed CPU is a sibling, the first of them.
pub fn cpu_pair() -> Result<CpuPair> {
    let cpus = allowed_cpus()?;
    let first = cpus[0];
    let siblings = smt_siblings(first);
    let other_core = cpus[1..].iter().copied().find(|c| !siblings.contains(c));
    Ok(match (other_core, cpus.get(1)) {
        (Some(second), _) => CpuPair {
            first,
            second: Some(second),
            siblings: false,
        },
        (None, second) => CpuPair {
            first,
            second: second.copied(),
            siblings: second.is_some(),
        },
    })
}

/// The two CPUs the processes are pinned to (the second is `None` on a one-CPU mask): see
/// [`cpu_pair`].
pub fn usable_cpus() -> Result<(usize, Option<usize>)> {
    let pair = cpu_pair()?;
    Ok((pair.first, pair.second))
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
    let parent_pid = nix::unistd::getpid();
    let pid = fork_child(|| {
        // If the parent dies (even by SIGKILL), the kernel kills this child too: no orphan. A
        // parent that died before the prctl took effect sent no signal: then the child has been
        // reparented already, which getppid shows.
        let setup = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
            .context("prctl(PR_SET_PDEATHSIG)")
            .and_then(|()| {
                ensure!(
                    nix::unistd::getppid() == parent_pid,
                    "the parent died before the child started"
                );
                Ok(())
            })
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
