//! What the experiments do with their children: wait for a sign of life, let them wait to be
//! killed, and say how they ended.

use anyhow::{ensure, Context, Result};
use nix::sys::wait::WaitStatus;
use nix::unistd::read;
use std::os::fd::OwnedFd;
use std::time::Duration;

pub fn describe_status(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, sig, _) => format!("killed by {}", sig.as_str()),
        other => format!("{other:?}"),
    }
}

/// Blocks until the child writes one byte; an error naming `what` if it died first.
pub fn wait_for(pipe: &OwnedFd, what: &str) -> Result<()> {
    let mut byte = [0u8; 1];
    ensure!(
        read(pipe, &mut byte).context("read from the child")? == 1,
        "the child ended before {what}"
    );
    Ok(())
}

/// A child's loop while it waits to be killed.
pub fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_millis(50));
    }
}
