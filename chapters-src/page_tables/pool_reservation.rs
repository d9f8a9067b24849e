//! Huge pages reserved in the hugetlb pool for one run, and given back however the run ends.
//!
//! Writing /proc/sys/vm/nr_hugepages changes the whole machine, and nothing in the kernel undoes it
//! when the writer dies. So the change is made by a small **guardian** child whose only job is to
//! undo it: it raises the pool, reports, and waits. It puts the old value back when either
//!
//! - the program closes its end of a pipe: on the normal path (Drop), but also when the kernel
//!   closes it because the program died, even by SIGKILL; or
//! - it receives SIGTERM: the program's signal cleanup (`vmbook::cleanup`) ends it that way and
//!   waits for it, on SIGINT, SIGTERM, SIGHUP or SIGQUIT.
//!
//! The guardian ignores the terminal's signals and runs in a process group of its own, so a Ctrl-C
//! or a `kill -9` of the program's group does not reach it. If the guardian itself is SIGKILLed,
//! the program notices when it reaps it and puts the value back itself. Only a SIGKILL of both at
//! once leaves the pool raised: the output prints the value to write back.

use anyhow::{bail, Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{signal, SigHandler, SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use vmbook::cleanup::{
    block_signals, track_child_ending_with, track_restore, untrack_child, untrack_restore,
};
use vmbook::process::{fork_child, wait_child};

pub const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

/// `extra` more huge pages in the pool while this lives (and not a moment longer).
pub struct Reservation {
    guardian: Pid,
    lifeline: Option<OwnedFd>,
    /// The slot of the signal cleanup that writes `before` back should the guardian be gone.
    restore: Option<usize>,
    /// nr_hugepages before the run, and while the reservation holds.
    pub before: u64,
    pub during: u64,
}

fn write_number(path: &str, value: u64) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(format!("{value}\n").as_bytes())
}

// ANCHOR: guardian
/// The guardian: raise the pool, report "before during" (or the error), wait, put it back.
fn guardian(extra: u64, report: OwnedFd, lifeline: OwnedFd) -> i32 {
    let mut report = std::fs::File::from(report);
    for sig in [
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGPIPE,
    ] {
        // SAFETY: ignoring a signal installs no handler.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
    let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
    let mut term = SigSet::empty();
    term.add(Signal::SIGTERM);
    let Ok(sigterm) = term.thread_block().and_then(|_| SignalFd::new(&term)) else {
        return 3;
    };
    let before = match crate::settings::read_number(NR_HUGEPAGES) {
        Ok(n) => n,
        Err(e) => return say(report, &format!("error {e:#}")),
    };
    if let Err(e) = write_number(NR_HUGEPAGES, before + extra) {
        return say(report, &format!("error write {NR_HUGEPAGES}: {e}"));
    }
    // From here on the pool is raised: every way out goes through the restore below.
    let during = crate::settings::read_number(NR_HUGEPAGES).unwrap_or(before);
    let _ = report.write_all(format!("ok {before} {during}").as_bytes());
    drop(report);
    let mut fds = [
        PollFd::new(lifeline.as_fd(), PollFlags::POLLIN),
        PollFd::new(sigterm.as_fd(), PollFlags::POLLIN),
    ];
    // Readable means EOF on the lifeline (nothing is ever written to it) or a pending SIGTERM.
    while let Err(nix::errno::Errno::EINTR) = poll(&mut fds, PollTimeout::NONE) {}
    match write_number(NR_HUGEPAGES, before) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}
// ANCHOR_END: guardian

/// Tells the program why the pool was not raised; the guardian has nothing to undo.
fn say(mut report: std::fs::File, line: &str) -> i32 {
    let _ = report.write_all(line.as_bytes());
    0
}

impl Reservation {
    /// Raises the pool by `extra` pages through a guardian; `Ok(Err(why))` when it cannot.
    pub fn new(extra: u64) -> Result<std::result::Result<Reservation, String>> {
        let (from_guardian, report) = nix::unistd::pipe().context("pipe")?;
        let (lifeline, to_guardian) = nix::unistd::pipe().context("pipe")?;
        // No signal may land between the fork and the next line: the cleanup handler would end
        // the guardian with SIGKILL, the default, instead of SIGTERM.
        let blocked = block_signals();
        let parent_ends = [from_guardian.as_raw_fd(), to_guardian.as_raw_fd()];
        // The closure owns the guardian's ends: the parent's copies close when fork_child drops it.
        let guardian_pid = fork_child(move || {
            for fd in parent_ends {
                // SAFETY: the child's copies of the parent's ends; nothing in the child uses them.
                unsafe { libc::close(fd) };
            }
            guardian(extra, report, lifeline)
        })?;
        // On SIGINT and the like, the cleanup handler sends it SIGTERM and waits for it.
        untrack_child(guardian_pid.as_raw());
        track_child_ending_with(guardian_pid.as_raw(), libc::SIGTERM);
        drop(blocked);
        let mut line = String::new();
        std::fs::File::from(from_guardian)
            .read_to_string(&mut line)
            .context("read the guardian's report")?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut reservation = Reservation {
            guardian: guardian_pid,
            lifeline: Some(to_guardian),
            restore: None,
            before: 0,
            during: 0,
        };
        match words.as_slice() {
            ["ok", before, during] => {
                reservation.before = before.parse().context("guardian's report")?;
                reservation.during = during.parse().context("guardian's report")?;
                // Should the guardian die first, the signal cleanup restores the value itself.
                reservation.restore = track_restore(NR_HUGEPAGES, before);
                Ok(Ok(reservation))
            }
            _ => {
                let why = line.trim().trim_start_matches("error ").to_string();
                reservation.give_back()?;
                Ok(Err(why))
            }
        }
    }

    /// Ends the reservation: closes the lifeline and waits for the guardian to put the pool back.
    pub fn give_back(&mut self) -> Result<()> {
        let Some(lifeline) = self.lifeline.take() else {
            return Ok(());
        };
        drop(lifeline);
        let status = wait_child(self.guardian);
        let restored = self.check(status?);
        untrack_restore(self.restore.take());
        restored
    }

    /// What to do once the guardian has ended with `status`.
    fn check(&self, status: WaitStatus) -> Result<()> {
        match status {
            WaitStatus::Exited(_, 0) => Ok(()),
            status => {
                // The guardian did not restore (killed, or its write failed): do it here.
                if self.during != self.before {
                    write_number(NR_HUGEPAGES, self.before)
                        .with_context(|| format!("write {NR_HUGEPAGES}"))?;
                }
                if matches!(status, WaitStatus::Exited(_, _)) {
                    bail!("the guardian could not restore {NR_HUGEPAGES}: {status:?}");
                }
                Ok(())
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Err(e) = self.give_back() {
            eprintln!("{}: error: {e:#}", vmbook::output::program_name());
        }
    }
}
