//! A file (or memfd) mapped into memory, read and written one volatile byte at a time, and what
//! smaps and mincore say about it.

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
use std::num::NonZeroUsize;
use std::os::fd::AsFd;
use std::ptr::NonNull;

/// A file (or memfd) mapped with `mmap`, unmapped on drop.
pub struct FileMap {
    ptr: NonNull<u8>,
    len: usize,
}

impl FileMap {
    /// Maps `len` bytes of `fd` from offset 0 with `prot` and `flags` (MAP_SHARED or MAP_PRIVATE).
    pub fn new(fd: impl AsFd, len: usize, prot: ProtFlags, flags: MapFlags) -> Result<FileMap> {
        let size = NonZeroUsize::new(len).context("a mapping needs a non-zero length")?;
        // SAFETY: a new mapping at an address the kernel chooses overlaps nothing Rust uses; the
        // pointer is owned by the returned FileMap alone.
        let ptr = unsafe { mmap(None, size, prot, flags, fd, 0) }
            .with_context(|| format!("mmap({len} bytes, {flags:?})"))?;
        Ok(FileMap {
            ptr: ptr.cast(),
            len,
        })
    }

    pub fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The start of the mapping, for calls such as msync and madvise.
    pub fn as_non_null(&self) -> NonNull<std::ffi::c_void> {
        self.ptr.cast()
    }

    /// Reads byte `offset` with a volatile load: the access really happens, and faults if it must.
    pub fn read(&self, offset: usize) -> u8 {
        assert!(offset < self.len);
        // SAFETY: in bounds (checked); volatile, because another process or the kernel may change
        // the byte behind the compiler's back.
        unsafe { self.ptr.as_ptr().add(offset).read_volatile() }
    }

    /// Writes byte `offset` with a volatile store (the mapping must be writable).
    pub fn write(&self, offset: usize, value: u8) {
        assert!(offset < self.len);
        // SAFETY: in bounds (checked); callers map with PROT_WRITE before writing.
        unsafe { self.ptr.as_ptr().add(offset).write_volatile(value) }
    }

    /// Copies `bytes` into the mapping at `offset`.
    pub fn write_bytes(&self, offset: usize, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            self.write(offset + i, b);
        }
    }

    /// Reads `len` bytes at `offset`.
    pub fn read_bytes(&self, offset: usize, len: usize) -> Vec<u8> {
        (offset..offset + len).map(|i| self.read(i)).collect()
    }

    /// How many pages of the mapping `mincore(2)` reports resident: for a file mapping, whether
    /// each page is in the page cache, mapped by this process yet or not.
    pub fn resident_pages(&self) -> Result<usize> {
        let mut vector = vec![0u8; self.len.div_ceil(vmbook::procinfo::page_size())];
        // SAFETY: the range is this whole mapping; `vector` holds one byte per page of it.
        // (mincore has no wrapper in nix.)
        let rc = unsafe { libc::mincore(self.ptr.as_ptr().cast(), self.len, vector.as_mut_ptr()) };
        if rc != 0 {
            return Err(Errno::last()).context("mincore");
        }
        Ok(vector.iter().filter(|&&v| v & 1 == 1).count())
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        // SAFETY: exactly the range mmap returned; nothing borrows it past this point.
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}

/// The Shared_Dirty + Private_Dirty bytes smaps counts for the mapping holding `addr`.
/// ("Private" in smaps means mapped by this process only, not MAP_PRIVATE.)
pub fn dirty_bytes(addr: usize) -> Result<u64> {
    let smaps = vmbook::procinfo::smaps_of(addr)?;
    let get = |k: &str| smaps.get(k).copied().unwrap_or(0);
    Ok(get("Shared_Dirty") + get("Private_Dirty"))
}

/// A string's bytes as the reader would type them.
pub fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    format!("{:?}", String::from_utf8_lossy(&bytes[..end]))
}
