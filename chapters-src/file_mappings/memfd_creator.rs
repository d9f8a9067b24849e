//! The creator of the memfd experiment: a forked child that makes a memfd, fills it through a
//! mapping, seals it, and sends its descriptor over a Unix socket.

use crate::file_map::{text, FileMap};
use crate::memfd_receiver::MESSAGE;
use anyhow::{Context, Result};
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::mman::{MapFlags, ProtFlags};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use nix::unistd::ftruncate;
use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};

// ANCHOR: creator
/// The creator: a memfd, filled through a mapping, sealed, and its descriptor sent to the receiver.
/// Returns the memfd (the creator keeps it open) and the outcome of sealing it against writes
/// while the writable mapping existed.
pub fn create_seal_and_send(
    socket: &OwnedFd,
    name: &str,
    size: usize,
) -> Result<(OwnedFd, String)> {
    let fd = memfd_create(name, MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)
        .context("memfd_create")?;
    ftruncate(&fd, size as i64).context("ftruncate")?;
    let map = FileMap::new(
        &fd,
        size,
        ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
        MapFlags::MAP_SHARED,
    )?;
    map.write_bytes(0, MESSAGE);
    let while_mapped = fcntl(&fd, FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_WRITE));
    drop(map); // munmap: no writable shared mapping is left
    let seals = SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_WRITE;
    fcntl(&fd, FcntlArg::F_ADD_SEALS(seals)).context("fcntl(F_ADD_SEALS)")?;
    let refused = while_mapped
        .err()
        .map(|e| format!("{e:?}"))
        .unwrap_or("accepted".into());
    println!(
        "creator (pid {}): memfd_create({name:?}), stored {}",
        std::process::id(),
        text(MESSAGE)
    );
    println!("creator: F_SEAL_WRITE while its writable MAP_SHARED mapping exists: {refused}");
    println!("creator: after munmap, F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_WRITE: added; sending the descriptor");
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(b"memfd")],
        &cmsg,
        MsgFlags::empty(),
        None,
    )
    .context("sendmsg(SCM_RIGHTS)")?;
    Ok((fd, refused))
}
// ANCHOR_END: creator
