//! The receiver of the memfd experiment: a new program (fork + exec) whose standard input is one
//! end of a Unix socket. It takes the descriptor out of a message, maps it, tries to change it,
//! and reports to the parent through the same socket.

use crate::file_map::{text, FileMap};
use anyhow::{bail, ensure, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::mman::{MapFlags, ProtFlags};
use nix::sys::socket::{recv, recvmsg, send, ControlMessageOwned, MsgFlags};
use nix::sys::uio::pwrite;
use nix::unistd::ftruncate;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::ExitCode;

/// What the creator stores, and the receiver looks for.
pub const MESSAGE: &[u8] = b"stored by the creator";

/// One message from the socket, as text; an error if the other side is gone.
pub fn receive_line(socket: &impl AsFd) -> Result<String> {
    let mut buf = [0u8; 4096];
    let n = recv(socket.as_fd().as_raw_fd(), &mut buf, MsgFlags::empty()).context("recv")?;
    ensure!(
        n > 0,
        "the other process closed the socket before it answered"
    );
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn errno_of(result: Result<(), Errno>) -> String {
    match result {
        Ok(()) => "allowed".into(),
        Err(e) => format!("{e:?}"), // the errno's name: EPERM
    }
}

/// The seals as the reader would write them.
fn seal_names(seals: SealFlag) -> String {
    let names: Vec<String> = seals
        .iter_names()
        .map(|(name, _)| name.to_string())
        .collect();
    names.join("|")
}

// ANCHOR: receiver
pub fn memfd_receiver() -> Result<ExitCode> {
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let socket: RawFd = 0; // standard input
    let mut byte = [0u8; 16];
    let mut space = nix::cmsg_space!(RawFd);
    let mut iov = [IoSliceMut::new(&mut byte)];
    let message = recvmsg::<()>(
        socket,
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .context("recvmsg")?;
    let Some(ControlMessageOwned::ScmRights(fds)) = message.cmsgs().context("cmsgs")?.next() else {
        bail!("the message carried no descriptor");
    };
    // SAFETY: SCM_RIGHTS installed this descriptor in our table just now; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    let link =
        std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).context("readlink")?;
    let size = nix::sys::stat::fstat(&fd).context("fstat")?.st_size as usize;
    let seals =
        SealFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GET_SEALS).context("F_GET_SEALS")?);
    let map = FileMap::new(&fd, size, ProtFlags::PROT_READ, MapFlags::MAP_SHARED)?;
    let read = text(&map.read_bytes(0, MESSAGE.len()));
    let shrink = errno_of(ftruncate(&fd, 0));
    let write = errno_of(pwrite(&fd, b"!", 0).map(drop));
    let writable = FileMap::new(
        &fd,
        size,
        ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
        MapFlags::MAP_SHARED,
    );
    let mmap = match writable {
        Ok(_) => "allowed".to_string(),
        Err(e) => e
            .downcast_ref::<Errno>()
            .map_or(e.to_string(), |e| format!("{e:?}")),
    };
    // ANCHOR_END: receiver
    println!(
        "receiver (pid {}, a new program): got a descriptor over the socket: {}",
        std::process::id(),
        link.display()
    );
    println!(
        "receiver: {}, seals {}; its MAP_SHARED mapping reads {read}",
        vmbook::bytes(size as u64),
        seal_names(seals)
    );
    println!("receiver: ftruncate(fd, 0) {shrink}, write(2) {write}, mmap(PROT_WRITE, MAP_SHARED) {mmap}");
    let report = format!(
        "read={read}\tftruncate={shrink}\twrite={write}\tmmap={mmap}\tlink={}",
        link.display()
    );
    send(socket, report.as_bytes(), MsgFlags::empty()).context("send")?;
    // Wait for the parent: it kills the creator, then asks again.
    if receive_line(&std::io::stdin()).is_ok() {
        let read = text(&map.read_bytes(0, MESSAGE.len()));
        println!("receiver: with its creator dead, the mapping still reads {read}");
        send(socket, format!("read={read}").as_bytes(), MsgFlags::empty()).context("send")?;
    }
    let _ = receive_line(&std::io::stdin()); // the parent closes the socket: time to go
    Ok(ExitCode::SUCCESS)
}
