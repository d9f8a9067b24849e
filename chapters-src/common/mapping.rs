//! An anonymous memory mapping that unmaps itself when dropped.

use anyhow::{Context, Result};
use nix::sys::mman::{madvise, mmap_anonymous, munmap, MapFlags, MmapAdvise, ProtFlags};
use std::num::NonZeroUsize;
use std::ptr::NonNull;

/// `len` bytes of anonymous memory from `mmap`, unmapped on drop.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// Maps `len` bytes, readable and writable, with `flags` (which must include MAP_PRIVATE or
    /// MAP_SHARED; MAP_ANONYMOUS is added). `what` names the mapping in an error message.
    pub fn anonymous(len: usize, flags: MapFlags, what: &str) -> Result<Self> {
        let size = NonZeroUsize::new(len).context("a mapping needs a non-zero length")?;
        // SAFETY: an anonymous mapping at an address the kernel chooses cannot overlap any memory
        // Rust already uses; the pointer is owned by the returned Mapping alone.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                size,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                flags,
            )
        }
        .with_context(|| format!("mmap({}, {what})", crate::output::bytes(len as u64)))?;
        Ok(Mapping {
            ptr: ptr.cast(),
            len,
        })
    }

    /// A private anonymous mapping: what `malloc` uses for large blocks.
    pub fn private(len: usize) -> Result<Self> {
        Self::anonymous(len, MapFlags::MAP_PRIVATE, "MAP_PRIVATE|MAP_ANONYMOUS")
    }

    /// A shared anonymous mapping: after `fork`, parent and child see the same pages.
    pub fn shared(len: usize) -> Result<Self> {
        Self::anonymous(len, MapFlags::MAP_SHARED, "MAP_SHARED|MAP_ANONYMOUS")
    }

    /// Keeps the whole mapping on base pages (madvise MADV_NOHUGEPAGE), so that an experiment
    /// counts one fault, one frame, one table entry per base page even where transparent huge
    /// pages are `always` on. The one place the chapters give this advice.
    pub fn base_pages_only(&self) -> Result<()> {
        // SAFETY: advice about exactly this mapping, which we own; MADV_NOHUGEPAGE changes no
        // contents, only how the kernel may back the range later.
        unsafe { madvise(self.ptr.cast(), self.len, MmapAdvise::MADV_NOHUGEPAGE) }
            .context("madvise(MADV_NOHUGEPAGE)")
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

    /// The mapping as bytes. Another process sharing it may write concurrently; chapters that race
    /// on purpose use volatile or atomic access through `as_ptr` instead.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and `&mut self` makes this the only reference from this process.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the range is exactly what mmap returned, and nothing borrows it any more.
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}
