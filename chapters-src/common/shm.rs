//! A POSIX shared-memory object that cleans up after itself: seed 003's C++ `shared_memory` class,
//! done the Rust way.
//!
//! The guard owns the name: the process that created the object unlinks it when the guard is
//! dropped, or when a signal interrupts the program (see `cleanup`). Every name is unique per run
//! (`/vmbook-TAG-PID-N`), created with `O_CREAT | O_EXCL` so that an existing object is never reused
//! by accident, with mode 0600 so that no other user can open it.

use crate::cleanup;
use anyhow::{Context, Result};
use nix::fcntl::OFlag;
use nix::sys::mman::{mmap, munmap, shm_open, shm_unlink, MapFlags, ProtFlags};
use nix::sys::stat::Mode;
use nix::unistd::ftruncate;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// A name for a shared-memory object or named semaphore, unique to this run: `/vmbook-TAG-PID-N`.
///
/// TAG comes from the `VMBOOK_RUN_TAG` environment variable (letters, digits, `_` kept; default
/// `run`), so that tests can tell the objects of their own runs from everything else in /dev/shm.
pub fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}{n}", name_prefix(std::process::id()))
}

/// How every name that [`unique_name`] gives in process `pid` begins: `/vmbook-TAG-PID-`. With it,
/// a parent can find what a child killed by a signal left in /dev/shm (as `vmbook-TAG-PID-…`, or
/// `sem.vmbook-TAG-PID-…` for a named semaphore).
pub fn name_prefix(pid: u32) -> String {
    let tag: String = std::env::var("VMBOOK_RUN_TAG")
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(32)
        .collect();
    let tag = if tag.is_empty() { "run".into() } else { tag };
    format!("/vmbook-{tag}-{pid}-")
}

// ANCHOR: guard
/// A mapped POSIX shared-memory object. Dropping it unmaps it, closes the descriptor and, in the
/// process that created it, unlinks the name.
pub struct ShmObject {
    name: String,
    fd: OwnedFd,
    ptr: NonNull<u8>,
    len: usize,
    /// The pid that created the object and must unlink it; `None` for an object opened by name.
    creator: Option<u32>,
    cleanup_slot: Option<usize>,
}

impl ShmObject {
    /// shm_open(O_CREAT | O_EXCL, 0600) → ftruncate(len) → mmap(MAP_SHARED), under a fresh name.
    pub fn create(len: usize) -> Result<Self> {
        let name = unique_name();
        // Record the name before it exists, so that no signal can arrive between creating and
        // recording it. (Unlinking a name not yet created is harmless: it fails with ENOENT.)
        let cleanup_slot = cleanup::track_path(&format!("/dev/shm{name}"));
        let fd = shm_open(
            name.as_str(),
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
            Mode::S_IRUSR | Mode::S_IWUSR,
        )
        .with_context(|| format!("shm_open({name}, O_CREAT|O_EXCL|O_RDWR, 0600)"))
        .inspect_err(|_| cleanup::untrack_path(cleanup_slot))?;
        let unlink_on_error = |e: anyhow::Error| {
            let _ = shm_unlink(name.as_str());
            cleanup::untrack_path(cleanup_slot);
            e
        };
        ftruncate(&fd, len as i64)
            .with_context(|| format!("ftruncate({name}, {len})"))
            .map_err(unlink_on_error)?;
        let ptr = map_shared(&fd, len, &name).map_err(unlink_on_error)?;
        Ok(ShmObject {
            name,
            fd,
            ptr,
            len,
            creator: Some(std::process::id()),
            cleanup_slot,
        })
    }

    /// Opens an existing object by name and maps all of it; this side never unlinks it.
    pub fn open(name: &str) -> Result<Self> {
        let fd = shm_open(name, OFlag::O_RDWR, Mode::empty())
            .with_context(|| format!("shm_open({name}, O_RDWR)"))?;
        let len = nix::sys::stat::fstat(&fd)
            .with_context(|| format!("fstat({name})"))?
            .st_size as usize;
        let ptr = map_shared(&fd, len, name)?;
        Ok(ShmObject {
            name: name.to_string(),
            fd,
            ptr,
            len,
            creator: None,
            cleanup_slot: None,
        })
    }

    /// Removes the name now. The mapping stays usable, and the memory lives until the last
    /// mapping and descriptor are gone; nobody can open the object by name any more.
    pub fn unlink(&mut self) -> Result<()> {
        if self.creator.take().is_some() {
            shm_unlink(self.name.as_str()).with_context(|| format!("shm_unlink({})", self.name))?;
            cleanup::untrack_path(self.cleanup_slot.take());
        }
        Ok(())
    }
    // ANCHOR_END: guard

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

// ANCHOR: drop
impl Drop for ShmObject {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned, and no reference into it outlives self.
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
        // The descriptor closes when `fd` (an OwnedFd) drops, right after this function.
        // Only the creating process unlinks: a forked child that drops a copy must not.
        if self.creator == Some(std::process::id()) {
            let _ = shm_unlink(self.name.as_str());
            cleanup::untrack_path(self.cleanup_slot.take());
        }
    }
}
// ANCHOR_END: drop

fn map_shared(fd: &OwnedFd, len: usize, name: &str) -> Result<NonNull<u8>> {
    let size = NonZeroUsize::new(len).with_context(|| format!("{name} has size 0"))?;
    // SAFETY: a fresh MAP_SHARED mapping at an address the kernel chooses overlaps nothing Rust
    // owns; the object is at least `len` bytes long (ftruncate or fstat said so).
    let ptr = unsafe {
        mmap(
            None,
            size,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
            fd,
            0,
        )
    }
    .with_context(|| format!("mmap({name}, {len} bytes, MAP_SHARED)"))?;
    Ok(ptr.cast())
}
