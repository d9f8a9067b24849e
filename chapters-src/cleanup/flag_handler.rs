//! A SIGINT handler that only sets a flag and wakes the main loop through a pipe.

use anyhow::{Context, Result};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

pub static STOP: AtomicBool = AtomicBool::new(false);
pub static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

// ANCHOR: flag_handler
/// The whole signal handler: set a flag, and wake the main loop through a pipe. Both are
/// async-signal-safe (an atomic store, and write(2), listed in signal-safety(7)).
extern "C" fn on_sigint(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the byte lives on the handler's own stack.
        unsafe { libc::write(fd, b"!".as_ptr().cast(), 1) };
    }
}

pub fn install_flag_handler() -> Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(on_sigint),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: on_sigint only makes async-signal-safe calls and touches only atomics.
    unsafe { sigaction(Signal::SIGINT, &action) }.context("sigaction(SIGINT)")?;
    Ok(())
}
// ANCHOR_END: flag_handler
