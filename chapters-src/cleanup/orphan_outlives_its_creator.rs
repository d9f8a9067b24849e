//! A shm object whose creator is SIGKILLed before shm_unlink stays in /dev/shm.

use crate::child::{describe_status, sleep_forever, wait_for};
use crate::object::create_and_map;
use anyhow::{Context, Result};
use nix::sys::mman::shm_unlink;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{pipe, write};
use std::os::unix::fs::PermissionsExt;
use vmbook::process::{fork_child, wait_child};
use vmbook::shm::unique_name;
use vmbook::{bytes, cleanup, finding, section};

// ANCHOR: orphan
pub fn orphan_outlives_its_creator(size: u64) -> Result<()> {
    section("A shm object whose creator was SIGKILLed before shm_unlink");
    let name = unique_name(); // chosen here, so that this process can remove it on any path
    let path = format!("/dev/shm{name}");
    let slot = cleanup::track_path(&path);
    let (ready_r, ready_w) = pipe().context("pipe")?;
    let child = fork_child(|| {
        let Ok((_fd, ptr)) = create_and_map(&name, size as usize) else {
            return 1;
        };
        let text = b"written by the creator";
        // SAFETY: the mapping is `size` >= 1024 bytes long and only this process writes it.
        unsafe { ptr.copy_from_nonoverlapping(text.as_ptr(), text.len()) };
        let _ = write(&ready_w, b"!");
        sleep_forever() // shm_unlink would come later: it never does
    })?;
    drop(ready_w);
    wait_for(&ready_r, "creating the object")?;
    kill(child, Signal::SIGKILL).context("kill(SIGKILL)")?;
    let status = wait_child(child)?;
    let survived = std::fs::metadata(&path);
    // ANCHOR_END: orphan
    println!("the creator (pid {child}): {}", describe_status(status));
    let (left, left_size, mode) = match &survived {
        Ok(meta) => (true, meta.len(), meta.permissions().mode() & 0o777),
        Err(_) => (false, 0, 0),
    };
    let contents = std::fs::read(&path).unwrap_or_default();
    let text = String::from_utf8_lossy(&contents[..22.min(contents.len())]).into_owned();
    if left {
        println!(
            "still in /dev/shm: {path}  size {}  mode {mode:o}  starts with {text:?}",
            bytes(left_size)
        );
    } else {
        println!("nothing in /dev/shm");
    }
    vmbook::pause::here(
        "the orphaned object is still in /dev/shm",
        &["ls -l /dev/shm"],
    );
    // ANCHOR: remove_orphan
    if left {
        shm_unlink(name.as_str()).with_context(|| format!("shm_unlink({name})"))?;
    }
    cleanup::untrack_path(slot);
    let gone = std::fs::metadata(&path).is_err();
    // ANCHOR_END: remove_orphan
    println!(
        "after this process called shm_unlink: {}",
        if gone {
            "gone from /dev/shm"
        } else {
            "still there"
        }
    );
    finding(
        "an object whose creator is SIGKILLed before shm_unlink stays in /dev/shm, data and all",
        left && left_size == size && text == "written by the creator",
        format!(
            "{}, {}",
            describe_status(status),
            if left {
                "object found"
            } else {
                "object not found"
            }
        ),
    );
    finding(
        "any process with permission can remove the orphan with shm_unlink",
        left && gone,
        match (left, gone) {
            (false, _) => "there was no orphan to remove",
            (true, true) => "gone after shm_unlink",
            (true, false) => "still there after shm_unlink",
        },
    );
    Ok(())
}
