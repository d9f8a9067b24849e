//! A signal handler that only sets a flag; the cleanup happens on the main path.

use crate::child::{describe_status, wait_for};
use crate::flag_handler::{install_flag_handler, STOP, WAKE_FD};
use crate::object::{create_and_map, Guard};
use anyhow::{Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::mman::shm_unlink;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::WaitStatus;
use nix::unistd::{pipe, write};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicU8, Ordering};
use vmbook::process::{fork_child, wait_child};
use vmbook::shm::unique_name;
use vmbook::{cleanup, finding, section};

// ANCHOR: signals
pub fn signals_clean_up_on_main_path() -> Result<()> {
    section("A signal handler that only sets a flag; the cleanup on the main path");
    let name = unique_name();
    let path = format!("/dev/shm{name}");
    let slot = cleanup::track_path(&path);
    let (ready_r, ready_w) = pipe().context("pipe")?;
    let (input_r, _input_w) = pipe().context("pipe")?; // the child's "input": never written
    let dropped = AtomicU8::new(0);
    let child = fork_child(|| {
        let Ok((wake_r, wake_w)) = pipe() else {
            return 1;
        };
        WAKE_FD.store(wake_w.as_raw_fd(), Ordering::SeqCst);
        if install_flag_handler().is_err() {
            return 1;
        }
        let Ok((_fd, _)) = create_and_map(&name, 4096) else {
            return 1;
        };
        let guard = Guard {
            name: &name,
            dropped: &dropped,
        };
        let _ = write(&ready_w, b"!");
        // The main loop waits for input or for the handler's byte, whichever comes first.
        let mut fds = [
            PollFd::new(input_r.as_fd(), PollFlags::POLLIN),
            PollFd::new(wake_r.as_fd(), PollFlags::POLLIN),
        ];
        while !STOP.load(Ordering::SeqCst) {
            let _ = poll(&mut fds, PollTimeout::NONE); // EINTR or the wake byte: check the flag
        }
        println!("child: SIGINT seen on the main path; cleaning up there");
        drop(guard); // shm_unlink, in ordinary code where anything may be called
        println!("child: object removed; exiting with status 130 (128 + SIGINT)");
        130
    })?;
    drop(ready_w);
    wait_for(&ready_r, "installing its handler")?;
    kill(child, Signal::SIGINT).context("kill(SIGINT)")?;
    let status = wait_child(child)?;
    // ANCHOR_END: signals
    let left = std::fs::metadata(&path).is_ok();
    if left {
        shm_unlink(name.as_str()).with_context(|| format!("shm_unlink({name})"))?;
    }
    cleanup::untrack_path(slot);
    println!("parent: the child {}", describe_status(status));
    finding(
        "a handler that only sets a flag lets the main path clean up and exit on its own terms",
        matches!(status, WaitStatus::Exited(_, 130)) && !left,
        format!(
            "{}; object {}",
            describe_status(status),
            if left { "left in /dev/shm" } else { "removed" }
        ),
    );
    Ok(())
}
