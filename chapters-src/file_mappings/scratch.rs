//! Where the chapter's files live, and a mapping of a file that unmaps itself.
//!
//! Every file the chapter makes is unnamed from the moment it exists: `O_TMPFILE` creates it
//! without a directory entry, or (where the file system lacks `O_TMPFILE`) it is created under a
//! fresh private directory and unlinked at once. Its blocks belong to the open descriptor and are
//! freed when the last descriptor and mapping go, so not even SIGKILL can leave a file behind.

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::mman::{mmap, munmap, MapFlags, ProtFlags};
use nix::sys::stat::Mode;
use nix::unistd::{mkdtemp, unlink};
use std::fs::File;
use std::num::NonZeroUsize;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use vmbook::cleanup;

/// The directory the chapter's files are made in, and what kind of file system holds it.
pub struct Scratch {
    pub dir: PathBuf,
    /// The file system's name, from the magic number `statfs(2)` reports.
    pub fs: String,
    /// Whether a disk (or anything with writeback) is behind it: false for tmpfs and ramfs,
    /// whose pages live only in memory.
    pub disk: bool,
}

/// ramfs's magic number (linux/magic.h), which the libc crate lacks.
const RAMFS_MAGIC: i64 = 0x8584_58f6;

/// A file system's name from its `statfs` magic number (see `statfs(2)`).
fn fs_name(magic: i64) -> String {
    let known: &[(i64, &str)] = &[
        (libc::EXT4_SUPER_MAGIC as i64, "ext2/ext3/ext4"),
        (libc::XFS_SUPER_MAGIC as i64, "xfs"),
        (libc::BTRFS_SUPER_MAGIC as i64, "btrfs"),
        (libc::TMPFS_MAGIC as i64, "tmpfs"),
        (RAMFS_MAGIC, "ramfs"),
        (libc::OVERLAYFS_SUPER_MAGIC as i64, "overlayfs"),
        (libc::NFS_SUPER_MAGIC as i64, "nfs"),
        (0xF2F5_2010, "f2fs"),
        (0x2FC1_2FC1, "zfs"),
    ];
    known
        .iter()
        .find(|(m, _)| *m == magic)
        .map(|(_, name)| name.to_string())
        .unwrap_or_else(|| format!("file system with magic {magic:#x}"))
}

impl Scratch {
    /// Picks the directory: `--dir` if given; otherwise the first of $TMPDIR, /var/tmp, /tmp that
    /// this process may write and that a disk backs, or failing that the first it may write.
    pub fn choose(wanted: Option<&Path>) -> Result<Scratch> {
        let candidates: Vec<PathBuf> = match wanted {
            Some(dir) => vec![dir.to_path_buf()],
            None => std::env::var_os("TMPDIR")
                .map(PathBuf::from)
                .into_iter()
                .chain(["/var/tmp".into(), "/tmp".into()])
                .collect(),
        };
        let mut usable = Vec::new();
        for dir in candidates {
            let Ok(fs) = nix::sys::statfs::statfs(&dir) else {
                continue;
            };
            let magic = fs.filesystem_type().0 as i64;
            let disk = magic != libc::TMPFS_MAGIC as i64 && magic != RAMFS_MAGIC;
            let scratch = Scratch {
                fs: fs_name(magic),
                dir,
                disk,
            };
            if nix::unistd::access(&scratch.dir, nix::unistd::AccessFlags::W_OK).is_ok() {
                if disk {
                    return Ok(scratch);
                }
                usable.push(scratch);
            }
        }
        match (usable.into_iter().next(), wanted) {
            (Some(scratch), _) => Ok(scratch),
            (None, Some(dir)) => bail!("--dir {}: not a directory this user may write", dir.display()),
            (None, None) => bail!("none of $TMPDIR, /var/tmp, /tmp is a directory this user may write"),
        }
    }

    /// One line for the output: where the files go and what holds them.
    pub fn describe(&self) -> String {
        let backing = if self.disk { "a disk behind it" } else { "memory only, no disk" };
        format!("files: unnamed, in {} ({}: {backing})", self.dir.display(), self.fs)
    }

    // ANCHOR: unnamed_file
    /// A new, empty file with no name, readable and writable, mode 0600.
    pub fn unnamed_file(&self) -> Result<File> {
        let rw = OFlag::O_RDWR | OFlag::O_CLOEXEC;
        let mode = Mode::S_IRUSR | Mode::S_IWUSR;
        // A fresh private directory keeps the name we may need apart from everyone else's.
        // SIGINT and friends wait until it is gone again: nothing named exists in between.
        let _blocked = cleanup::block_signals();
        let dir = mkdtemp(&self.dir.join("vmbook-file-mappings-XXXXXX"))
            .with_context(|| format!("mkdtemp in {}", self.dir.display()))?;
        let file = match open(&dir, rw | OFlag::O_TMPFILE, mode) {
            Ok(fd) => Ok(fd),
            // No O_TMPFILE on this file system: create a name, and remove it at once.
            Err(Errno::EOPNOTSUPP | Errno::EISDIR | Errno::EINVAL) => {
                let path = dir.join("file");
                open(&path, rw | OFlag::O_CREAT | OFlag::O_EXCL, mode).inspect(|_| {
                    let _ = unlink(&path);
                })
            }
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_dir(&dir);
        Ok(File::from(file.context("open(O_TMPFILE)")?))
    }
    // ANCHOR_END: unnamed_file
}

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
        Ok(FileMap { ptr: ptr.cast(), len })
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
