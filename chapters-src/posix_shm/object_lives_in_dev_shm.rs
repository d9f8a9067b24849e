//! shm_open → ftruncate → mmap: the object and its name in /dev/shm, O_EXCL, and shm_unlink while
//! the object stays mapped.

use crate::names::in_dev_shm;
use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::sys::mman::shm_open;
use nix::sys::stat::Mode;
use std::os::unix::fs::MetadataExt;
use vmbook::{bytes, finding, section, ShmObject};

/// `-rw-------` from a mode's permission bits.
fn mode_string(mode: u32) -> String {
    let mut s = String::from("-");
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

// ANCHOR: object_lives_in_dev_shm
pub fn object_lives_in_dev_shm(size: usize) -> Result<()> {
    section("shm_open → ftruncate → mmap, and the object in /dev/shm");
    let mut object = ShmObject::create(size)?; // O_CREAT|O_EXCL|O_RDWR, 0600, a fresh name
    let name = object.name().to_string();
    println!(
        "created {name} ({}), mapped at {:#x}",
        bytes(size as u64),
        object.addr()
    );
    let meta = std::fs::metadata(in_dev_shm(&name)).context("stat the object in /dev/shm")?;
    println!(
        "/dev/shm{name}: {} {}, owned by this process's user: {}",
        mode_string(meta.mode()),
        bytes(meta.len()),
        meta.uid() == nix::unistd::geteuid().as_raw()
    );
    // A second O_EXCL create of the same name must fail: nobody reuses a stale object by accident.
    let again = shm_open(
        name.as_str(),
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
        Mode::S_IRUSR | Mode::S_IWUSR,
    )
    .map(drop)
    .map_err(|errno| errno.to_string());
    println!(
        "shm_open({name}, O_CREAT|O_EXCL) again: {}",
        outcome(again.clone())
    );
    vmbook::pause::here(
        "the object exists under its name",
        &["ls -l /dev/shm", "grep vmbook /proc/PID/maps"],
    );
    // SAFETY: the mapping is `size` bytes long and lives as long as `object`; nobody else maps it.
    let memory = unsafe { std::slice::from_raw_parts_mut(object.as_ptr(), size) };
    memory[..13].copy_from_slice(b"still mapped!");
    object.unlink()?; // shm_unlink: the name goes, the memory stays while mapped
    let listed = in_dev_shm(&name).exists();
    let reopen = ShmObject::open(&name)
        .map(drop)
        .map_err(|e| e.root_cause().to_string());
    println!(
        "after shm_unlink: in /dev/shm: {listed}; shm_open({name}) again: {}",
        outcome(reopen.clone())
    );
    memory[13] = b'!'; // still usable: read and write
    let kept = String::from_utf8_lossy(&memory[..14]).into_owned();
    println!("after shm_unlink the mapping still reads {kept:?}");
    // ANCHOR_END: object_lives_in_dev_shm
    finding(
        "the object appears in /dev/shm with the size given to ftruncate and mode 0600",
        meta.len() == size as u64 && meta.mode() & 0o777 == 0o600,
        format!("{} {}", mode_string(meta.mode()), bytes(meta.len())),
    );
    finding(
        "O_EXCL refuses to create a name that exists (EEXIST)",
        again.as_ref().is_err_and(|e| e.starts_with("EEXIST")),
        outcome(again.clone()),
    );
    finding(
        "after shm_unlink the name is gone: not in /dev/shm, and shm_open fails with ENOENT",
        !listed && reopen.as_ref().is_err_and(|e| e.starts_with("ENOENT")),
        outcome(reopen.clone()),
    );
    finding(
        "after shm_unlink the mapping stays usable",
        kept == "still mapped!!",
        format!("read back {kept:?}"),
    );
    Ok(())
}

/// "ok", or why a call failed.
fn outcome(result: std::result::Result<(), String>) -> String {
    result.err().unwrap_or_else(|| "ok".to_string())
}
