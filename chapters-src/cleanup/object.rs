//! The shared-memory objects the experiments create: made and mapped in one call, removed by a
//! guard's Drop.

use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::sys::mman::{mmap, shm_open, shm_unlink, MapFlags, ProtFlags};
use nix::sys::stat::Mode;
use nix::unistd::ftruncate;
use std::num::NonZeroUsize;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU8, Ordering};

/// Creates the object `name` (O_CREAT | O_EXCL, mode 0600) of `size` bytes and maps it.
pub fn create_and_map(name: &str, size: usize) -> Result<(OwnedFd, *mut u8)> {
    let fd = shm_open(
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
        Mode::S_IRUSR | Mode::S_IWUSR,
    )
    .with_context(|| format!("shm_open({name}, O_CREAT|O_EXCL|O_RDWR, 0600)"))?;
    ftruncate(&fd, size as i64).with_context(|| format!("ftruncate({name})"))?;
    let ptr = map(&fd, size)?;
    Ok((fd, ptr))
}

fn map(fd: &OwnedFd, size: usize) -> Result<*mut u8> {
    let len = NonZeroUsize::new(size).context("size 0")?;
    // SAFETY: a new shared mapping at an address the kernel picks overlaps nothing Rust owns; the
    // object is at least `size` bytes long.
    let ptr = unsafe {
        mmap(
            None,
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
            fd,
            0,
        )
    }
    .context("mmap(MAP_SHARED)")?;
    Ok(ptr.as_ptr().cast())
}

// ANCHOR: guard
/// Removes its object when dropped, and says so in memory the parent shares.
pub struct Guard<'a> {
    pub name: &'a str,
    pub dropped: &'a AtomicU8,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.dropped.store(1, Ordering::SeqCst);
        let _ = shm_unlink(self.name);
    }
}
// ANCHOR_END: guard
