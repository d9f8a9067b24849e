//! Seven ways for a child to end: whether its Drop ran, and whether its object stayed in /dev/shm.

use crate::child::{describe_status, sleep_forever, wait_for};
use crate::flag_handler::{install_flag_handler, STOP};
use crate::object::{create_and_map, Guard};
use anyhow::{Context, Result};
use nix::sys::mman::shm_unlink;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{pipe, write};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use vmbook::process::{fork_child, wait_child};
use vmbook::shm::unique_name;
use vmbook::{cleanup, finding, section, Mapping};

/// The ways a child ends in `drop_table`.
#[derive(Clone, Copy, PartialEq)]
enum Ending {
    Return,
    Panic,
    ProcessExit,
    SigintFlagHandler,
    SigintCleanupHandler,
    SigintNoHandler,
    Sigkill,
}

impl Ending {
    fn label(self) -> &'static str {
        match self {
            Ending::Return => "returns normally",
            Ending::Panic => "panics (unwinds)",
            Ending::ProcessExit => "calls process::exit(3)",
            Ending::SigintFlagHandler => "SIGINT, handler sets a flag",
            Ending::SigintCleanupHandler => "SIGINT, vmbook's handler",
            Ending::SigintNoHandler => "SIGINT, no handler",
            Ending::Sigkill => "SIGKILL",
        }
    }
}

// ANCHOR: ending_child
/// The child: create an object, guard it, tell the parent, then end the way `ending` says.
fn end_child(ending: Ending, name: &str, dropped: &AtomicU8, ready: &OwnedFd) -> i32 {
    let Ok((_fd, _)) = create_and_map(name, 4096) else {
        return 1;
    };
    let _guard = Guard { name, dropped };
    match ending {
        Ending::SigintFlagHandler if install_flag_handler().is_err() => return 1,
        Ending::SigintCleanupHandler => {
            cleanup::track_path(&format!("/dev/shm{name}"));
        }
        Ending::SigintNoHandler => cleanup::disable_signal_cleanup(),
        _ => {}
    }
    let _ = write(ready, b"!");
    match ending {
        Ending::Return => 0,
        Ending::Panic => {
            std::panic::set_hook(Box::new(|_| {})); // quiet: the table tells the story
            panic!("on purpose")
        }
        Ending::ProcessExit => std::process::exit(3),
        Ending::SigintFlagHandler => {
            while !STOP.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            130 // back on the main path: returning drops the guard
        }
        _ => sleep_forever(),
    }
}
// ANCHOR_END: ending_child

/// `cleanup drop-table`: one row per ending; which endings run Drop.
pub fn drop_table() -> Result<()> {
    section("Which endings run Drop, and what they leave in /dev/shm");
    let endings = [
        Ending::Return,
        Ending::Panic,
        Ending::ProcessExit,
        Ending::SigintFlagHandler,
        Ending::SigintCleanupHandler,
        Ending::SigintNoHandler,
        Ending::Sigkill,
    ];
    // One byte per child, in memory both sides share: the guard's Drop sets it.
    let flags = Mapping::shared(4096)?;
    // SAFETY: the mapping is 4096 bytes, and u8 and AtomicU8 have the same layout.
    let dropped: &[AtomicU8] =
        unsafe { std::slice::from_raw_parts(flags.as_ptr().cast::<AtomicU8>(), endings.len()) };
    println!(
        "{:<30} {:<26} {:<9} left in /dev/shm",
        "the child", "waitpid says", "Drop ran"
    );
    let mut rows = Vec::new();
    for (i, &ending) in endings.iter().enumerate() {
        let name = unique_name();
        let path = format!("/dev/shm{name}");
        let slot = cleanup::track_path(&path);
        let (ready_r, ready_w) = pipe().context("pipe")?;
        let child = fork_child(|| end_child(ending, &name, &dropped[i], &ready_w))?;
        drop(ready_w);
        wait_for(&ready_r, "creating its object")?;
        match ending {
            Ending::Sigkill => kill(child, Signal::SIGKILL).context("kill(SIGKILL)")?,
            e if e != Ending::Return && e != Ending::Panic && e != Ending::ProcessExit => {
                kill(child, Signal::SIGINT).context("kill(SIGINT)")?
            }
            _ => {}
        }
        let status = wait_child(child)?;
        let ran = dropped[i].load(Ordering::SeqCst) == 1;
        let left = std::fs::metadata(&path).is_ok();
        if left {
            shm_unlink(name.as_str()).with_context(|| format!("shm_unlink({name})"))?;
        }
        cleanup::untrack_path(slot);
        println!(
            "{:<30} {:<26} {:<9} {}",
            ending.label(),
            describe_status(status),
            if ran { "yes" } else { "no" },
            if left {
                "yes (removed by the parent)"
            } else {
                "no"
            }
        );
        rows.push((ending, ran, left));
    }
    let list = |pick: &dyn Fn(&(Ending, bool, bool)) -> bool| {
        let v: Vec<&str> = rows
            .iter()
            .filter(|r| pick(r))
            .map(|r| r.0.label())
            .collect();
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let ran = list(&|r| r.1);
    let left = list(&|r| r.2);
    finding(
        "Drop runs only when the program gets back to its own code: return, unwinding panic, a flag handler",
        ran == "returns normally, panics (unwinds), SIGINT, handler sets a flag",
        format!("Drop ran: {ran}"),
    );
    finding(
        "process::exit, SIGKILL and an unhandled SIGINT leave the object behind; a cleanup handler does not",
        left == "calls process::exit(3), SIGINT, no handler, SIGKILL",
        format!("left behind: {left}"),
    );
    Ok(())
}
