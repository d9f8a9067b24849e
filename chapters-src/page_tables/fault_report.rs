//! Runs an access that may fault in a forked child, and reports how it ended: the signal, its
//! `si_code` and `si_addr`, as the child's SIGSEGV handler saw them.
//!
//! The handler runs in the middle of a faulting instruction, so it may only make
//! async-signal-safe calls (`signal-safety(7)`): it writes the three numbers into a pipe with
//! `write(2)` and leaves with `_exit(2)`, never returning to the instruction that faulted.

use anyhow::{Context, Result};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::WaitStatus;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use vmbook::process::{fork_child, wait_child};

/// How the child's access ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The handler caught `signal` with this `si_code` at `si_addr`.
    Fault { signal: i32, code: i32, addr: usize },
    /// The access completed: no signal.
    NoFault,
}

/// SIGSEGV's `si_code` values, from the kernel's include/uapi/asm-generic/siginfo.h (the libc
/// crate does not export them): no mapping at the address, or a mapping that forbids the access.
pub const SEGV_MAPERR: i32 = 1;
pub const SEGV_ACCERR: i32 = 2;

/// The write end of the child's report pipe, for the handler (a static: handlers take no context).
static REPORT_FD: AtomicI32 = AtomicI32::new(-1);

// ANCHOR: handler
extern "C" fn report(signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler; write and _exit are
    // async-signal-safe, and the record lives on this handler's stack.
    unsafe {
        let record = [
            signal as u64,
            (*info).si_code as u64,
            (*info).si_addr() as u64,
        ];
        libc::write(
            REPORT_FD.load(Ordering::Relaxed),
            record.as_ptr().cast(),
            std::mem::size_of_val(&record),
        );
        libc::_exit(0);
    }
}
// ANCHOR_END: handler

/// The name of a SIGSEGV `si_code`, as `sigaction(2)` lists them.
pub fn code_name(code: i32) -> String {
    match code {
        SEGV_MAPERR => "SEGV_MAPERR".into(),
        SEGV_ACCERR => "SEGV_ACCERR".into(),
        other => format!("si_code {other}"),
    }
}

/// Forks; the child installs the handler for SIGSEGV and SIGBUS, runs `access`, and reports.
pub fn in_child(access: impl FnOnce()) -> Result<Outcome> {
    let (from_child, to_parent) = nix::unistd::pipe().context("pipe")?;
    let child = fork_child(|| {
        REPORT_FD.store(to_parent.as_raw_fd(), Ordering::Relaxed);
        let action = SigAction::new(
            SigHandler::SigAction(report),
            SaFlags::SA_SIGINFO,
            SigSet::empty(),
        );
        for signal in [Signal::SIGSEGV, Signal::SIGBUS] {
            // SAFETY: `report` makes only async-signal-safe calls.
            if unsafe { sigaction(signal, &action) }.is_err() {
                return 2;
            }
        }
        access();
        // Still here: the access did not fault. A zero signal says so.
        let record = [0u64; 3];
        // SAFETY: writes 24 bytes from a live array into our own pipe.
        unsafe {
            libc::write(
                to_parent.as_raw_fd(),
                record.as_ptr().cast(),
                std::mem::size_of_val(&record),
            )
        };
        0
    })?;
    drop(to_parent);
    let mut bytes = [0u8; 24];
    let read = std::fs::File::from(from_child).read_exact(&mut bytes);
    let status = wait_child(child)?;
    anyhow::ensure!(
        read.is_ok() && status == WaitStatus::Exited(child, 0),
        "the child sent no report ({status:?})"
    );
    let field = |i: usize| u64::from_ne_bytes(bytes[8 * i..8 * i + 8].try_into().unwrap());
    Ok(match field(0) {
        0 => Outcome::NoFault,
        signal => Outcome::Fault {
            signal: signal as i32,
            code: field(1) as i32,
            addr: field(2) as usize,
        },
    })
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Outcome::NoFault => write!(f, "no signal"),
            Outcome::Fault { signal, code, addr } => {
                let name = Signal::try_from(signal).map_or("signal?", |s| s.as_str());
                write!(f, "{name}, {}, si_addr {addr:#x}", code_name(code))
            }
        }
    }
}
