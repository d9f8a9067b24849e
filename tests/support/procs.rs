//! The processes on this machine, as the tests that look for leftovers see them, read through the
//! `procfs` crate: who is whose child, in which state, and which carry a run's tag.
#![allow(dead_code)]

/// One process, as `/proc/PID/stat` describes it.
#[derive(Clone, Debug)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    /// `R`, `S`, `Z` ...
    pub state: char,
    /// Start time in clock ticks after boot: with the pid, tells a process from a later one that
    /// reused its pid.
    pub start: u64,
    pub comm: String,
}

fn read(pid: i32) -> Option<Proc> {
    let stat = procfs::process::Process::new(pid).ok()?.stat().ok()?;
    Some(Proc {
        pid: stat.pid,
        ppid: stat.ppid,
        state: stat.state,
        start: stat.starttime,
        comm: stat.comm,
    })
}

/// Every descendant of `root` (children, their children ...), read down from `root` through
/// `/proc/PID/task/TID/children`: a few files per process of the run instead of one per process
/// of the machine, so that a test watching a run every few milliseconds does not take a CPU from
/// the program it watches. Where the kernel has no such files (CONFIG_PROC_CHILDREN), from every
/// process's parent.
pub fn descendants(root: i32) -> Vec<Proc> {
    static HAS_CHILDREN_FILES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let me = std::process::id();
    if !*HAS_CHILDREN_FILES
        .get_or_init(|| std::path::Path::new(&format!("/proc/{me}/task/{me}/children")).exists())
    {
        return descendants_of(root, &all());
    }
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        let Ok(tasks) = procfs::process::Process::new(parent).and_then(|p| p.tasks()) else {
            continue;
        };
        for task in tasks.flatten() {
            for child in task.children().unwrap_or_default() {
                if let Some(p) = read(child as i32) {
                    frontier.push(p.pid);
                    found.push(p);
                }
            }
        }
    }
    found
}

/// Every process that still exists when its turn to be read comes.
pub fn all() -> Vec<Proc> {
    let Ok(processes) = procfs::process::all_processes() else {
        return Vec::new();
    };
    processes
        .filter_map(|p| p.ok()?.stat().ok())
        .map(|stat| Proc {
            pid: stat.pid,
            ppid: stat.ppid,
            state: stat.state,
            start: stat.starttime,
            comm: stat.comm,
        })
        .collect()
}

/// The state of process `pid` (`R`, `S`, `Z` ...), or `None` if it is gone.
pub fn state(pid: i32) -> Option<char> {
    Some(procfs::process::Process::new(pid).ok()?.stat().ok()?.state)
}

/// `PID "COMMAND LINE": State ...; Sig...`, for a message about a process that hung.
pub fn describe(pid: i32) -> String {
    let Ok(process) = procfs::process::Process::new(pid) else {
        return format!("{pid}: gone");
    };
    let cmdline = process.cmdline().unwrap_or_default().join(" ");
    let status = process.status().map_or_else(
        |e| format!("no status: {e}"),
        |s| {
            format!(
                "State {}; SigBlk {:x}; SigIgn {:x}; SigCgt {:x}",
                s.state, s.sigblk, s.sigign, s.sigcgt
            )
        },
    );
    format!("{pid} {cmdline:?}: {status}")
}

/// The children of `parent`.
pub fn children_of(parent: i32) -> Vec<Proc> {
    all().into_iter().filter(|p| p.ppid == parent).collect()
}

/// Every descendant of `root` in `procs` (children, their children ...).
pub fn descendants_of(root: i32, procs: &[Proc]) -> Vec<Proc> {
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for p in procs.iter().filter(|p| p.ppid == parent) {
            frontier.push(p.pid);
            found.push(p.clone());
        }
    }
    found
}

/// Whether process `pid`'s environment holds `VMBOOK_RUN_TAG=tag` (what every run the tests
/// start, and everything it starts, carries).
pub fn has_tag(pid: i32, tag: &str) -> bool {
    procfs::process::Process::new(pid)
        .and_then(|p| p.environ())
        .is_ok_and(|env| env.get(std::ffi::OsStr::new("VMBOOK_RUN_TAG")) == Some(&tag.into()))
}

/// The processes in `procs` that carry `tag`.
pub fn tagged(tag: &str, procs: &[Proc]) -> Vec<Proc> {
    procs
        .iter()
        .filter(|p| has_tag(p.pid, tag))
        .cloned()
        .collect()
}
