//! Unlink early: once every process has the object open, its name can go; SIGKILL then leaves
//! nothing behind.

use crate::child::{describe_status, sleep_forever, wait_for};
use crate::object::create_and_map;
use anyhow::{Context, Result};
use nix::sys::mman::shm_unlink;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{pipe, read, write};
use procfs::process::{MMapPath, Process};
use vmbook::process::{fork_child, wait_child};
use vmbook::shm::unique_name;
use vmbook::{cleanup, finding, section};

// ANCHOR: unlink_early
pub fn unlink_early_leaves_nothing(size: u64) -> Result<()> {
    section("Unlink early: every process opens the object, then its name goes at once");
    let name = unique_name();
    let path = format!("/dev/shm{name}");
    let slot = cleanup::track_path(&path);
    let (created_r, created_w) = pipe().context("pipe")?;
    let (opened_r, opened_w) = pipe().context("pipe")?;
    let (unlinked_r, unlinked_w) = pipe().context("pipe")?;
    let child = fork_child(|| {
        let Ok((_fd, ptr)) = create_and_map(&name, size as usize) else {
            return 1;
        };
        let _ = write(&created_w, b"!");
        let mut byte = [0u8; 1];
        let _ = read(&opened_r, &mut byte); // every party has it open now
        let _ = shm_unlink(name.as_str());
        let text = b"written after the unlink";
        // SAFETY: the mapping is `size` >= 1024 bytes long; the parent only reads it.
        unsafe { ptr.copy_from_nonoverlapping(text.as_ptr(), text.len()) };
        let _ = write(&unlinked_w, b"!");
        sleep_forever()
    })?;
    drop((created_w, unlinked_w));
    wait_for(&created_r, "creating the object")?;
    let other = vmbook::ShmObject::open(&name)?; // the second party
    write(&opened_w, b"!").context("write to the child")?;
    wait_for(&unlinked_r, "unlinking")?;
    let named_while_alive = std::fs::metadata(&path).is_ok();
    let maps_line = Process::new(child.as_raw())
        .and_then(|p| p.maps())
        .ok()
        .and_then(|maps| {
            maps.into_iter().find_map(|m| match m.pathname {
                MMapPath::Path(p) if p.to_string_lossy().contains(&name) => {
                    Some(p.to_string_lossy().into_owned())
                }
                _ => None,
            })
        });
    kill(child, Signal::SIGKILL).context("kill(SIGKILL)")?;
    let status = wait_child(child)?;
    // SAFETY: the object is `size` >= 1024 bytes long and the writer is dead.
    let seen = unsafe { std::slice::from_raw_parts(other.as_ptr(), 24) };
    let text = String::from_utf8_lossy(seen).into_owned();
    drop(other);
    let left_after = std::fs::metadata(&path).is_ok();
    // ANCHOR_END: unlink_early
    cleanup::untrack_path(slot);
    let deleted = maps_line
        .as_deref()
        .is_some_and(|l| l.contains("(deleted)"));
    println!(
        "while the creator lives: {} in /dev/shm; its /proc/PID/maps lists {}",
        if named_while_alive {
            "the name is"
        } else {
            "no name"
        },
        maps_line.as_deref().unwrap_or("no such mapping")
    );
    println!("the creator (pid {child}): {}", describe_status(status));
    println!("the other process reads, through its mapping: {text:?}");
    println!(
        "after SIGKILL: {}",
        if left_after {
            "the object is in /dev/shm"
        } else {
            "nothing in /dev/shm"
        }
    );
    finding(
        "after an early shm_unlink the memory is still shared: the other process read the text written after it",
        text == "written after the unlink",
        format!("read {text:?}"),
    );
    finding(
        "an object unlinked at once leaves nothing in /dev/shm, even when its creator is SIGKILLed",
        !named_while_alive && deleted && !left_after,
        format!(
            "{}; its mapping was listed as {}; afterwards {}",
            describe_status(status),
            maps_line.as_deref().unwrap_or("nothing"),
            if left_after {
                "the name was in /dev/shm"
            } else {
                "no name in /dev/shm"
            }
        ),
    );
    Ok(())
}
