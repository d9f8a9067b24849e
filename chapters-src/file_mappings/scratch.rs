//! Where the chapter's files live: a directory on a disk if there is one, and files without a name.
//!
//! Every file the chapter makes is unnamed from the moment it exists: `O_TMPFILE` creates it
//! without a directory entry, or (where the file system lacks `O_TMPFILE`) it is created under a
//! fresh private directory and unlinked at once. Its blocks belong to the open descriptor and are
//! freed when the last descriptor and mapping go, so not even SIGKILL can leave a file behind.

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::sys::statfs::{
    FsType, BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, F2FS_SUPER_MAGIC, FUSE_SUPER_MAGIC,
    NFS_SUPER_MAGIC, OVERLAYFS_SUPER_MAGIC, TMPFS_MAGIC, XFS_SUPER_MAGIC,
};
use nix::unistd::{mkdtemp, unlink};
use std::fs::File;
use std::path::{Path, PathBuf};
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

/// ramfs's magic number (linux/magic.h), which nix lacks.
const RAMFS_MAGIC: FsType = FsType(0x8584_58f6);

/// A file system's name from its `statfs` magic number (see `statfs(2)`).
fn fs_name(magic: FsType) -> String {
    let known = [
        (EXT4_SUPER_MAGIC, "ext2/ext3/ext4"), // the three share one magic number
        (XFS_SUPER_MAGIC, "xfs"),
        (BTRFS_SUPER_MAGIC, "btrfs"),
        (F2FS_SUPER_MAGIC, "f2fs"),
        (TMPFS_MAGIC, "tmpfs"),
        (RAMFS_MAGIC, "ramfs"),
        (OVERLAYFS_SUPER_MAGIC, "overlayfs"),
        (NFS_SUPER_MAGIC, "nfs"),
        (FUSE_SUPER_MAGIC, "fuse"),
    ];
    known
        .iter()
        .find(|(m, _)| *m == magic)
        .map(|(_, name)| name.to_string())
        .unwrap_or_else(|| format!("file system with magic {:#x}", magic.0))
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
            let magic = fs.filesystem_type();
            let disk = magic != TMPFS_MAGIC && magic != RAMFS_MAGIC;
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
            (None, Some(dir)) => bail!(
                "--dir {}: not a directory this user may write",
                dir.display()
            ),
            (None, None) => {
                bail!("none of $TMPDIR, /var/tmp, /tmp is a directory this user may write")
            }
        }
    }

    /// One line for the output: where the files go and what holds them.
    pub fn describe(&self) -> String {
        let backing = if self.disk {
            "a disk behind it"
        } else {
            "memory only, no disk"
        };
        format!(
            "files: unnamed, in {} ({}: {backing})",
            self.dir.display(),
            self.fs
        )
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
