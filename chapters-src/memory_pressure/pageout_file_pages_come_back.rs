//! A clean file page can leave RAM at any time: its data is still in the file. MADV_PAGEOUT makes
//! reclaim take it now; reading it again is a major fault, served from the disk.

use crate::memory::{advise, check, fill, most, resident_pages, OneCpu};
use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::mman::{mmap, munmap, MapFlags, MmapAdvise, ProtFlags};
use nix::sys::statfs::{statfs, FsType, TMPFS_MAGIC};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::num::NonZeroUsize;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::ptr::NonNull;
use vmbook::procinfo::{page_faults, page_size};
use vmbook::{bytes, finding, kb, not_checked, section};

/// A read-only MAP_SHARED mapping of a whole file, unmapped on drop.
struct FileMapping {
    ptr: NonNull<libc::c_void>,
    len: usize,
}

impl FileMapping {
    fn new(file: &File, len: usize) -> Result<FileMapping> {
        let size = NonZeroUsize::new(len).context("empty file")?;
        // SAFETY: a new mapping at an address the kernel chooses overlaps nothing Rust uses; the
        // file is ours alone (created with O_EXCL and unlinked), so nobody truncates it under us.
        let ptr = unsafe {
            mmap(
                None,
                size,
                ProtFlags::PROT_READ,
                MapFlags::MAP_SHARED,
                file,
                0,
            )
        }
        .context("mmap(file, MAP_SHARED)")?;
        Ok(FileMapping { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast(), self.len) }
    }
}

impl Drop for FileMapping {
    fn drop(&mut self) {
        // SAFETY: exactly the range mmap returned; nothing borrows it any more.
        let _ = unsafe { munmap(self.ptr, self.len) };
    }
}

/// Creates an unlinked file in a disk-backed directory: tmpfs keeps its pages in RAM (or swap),
/// so dropping them would lose the data and the kernel never does. Returns the file and the
/// filesystem's statfs magic number, or why no directory would do.
fn file_on_disk(dir: Option<PathBuf>) -> Result<(File, i64), String> {
    let candidates = match dir {
        Some(dir) => vec![dir],
        None => vec![std::env::temp_dir(), PathBuf::from("/var/tmp")],
    };
    let mut reasons = Vec::new();
    for dir in candidates {
        let kind = match statfs(&dir) {
            Ok(fs) => fs.filesystem_type(),
            Err(e) => {
                reasons.push(format!("statfs({}): {e}", dir.display()));
                continue;
            }
        };
        // ramfs has no magic constant in nix: 0x858458f6 (linux/magic.h).
        if kind == TMPFS_MAGIC || kind == FsType(0x8584_58f6) {
            reasons.push(format!("{} is in RAM (tmpfs)", dir.display()));
            continue;
        }
        let path = dir.join(format!("vmbook-pageout-{}", std::process::id()));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => {
                // Unlinked at once: nothing is left behind on any path, even SIGKILL; the open
                // descriptor (and then the mapping) keeps the file alive until we are done.
                let _ = std::fs::remove_file(&path);
                return Ok((file, kind.0 as i64));
            }
            Err(e) => reasons.push(format!("create in {}: {e}", dir.display())),
        }
    }
    Err(reasons.join("; "))
}

pub fn pageout_file_pages_come_back(pages: usize, dir: Option<PathBuf>) -> Result<()> {
    let len = pages * page_size();
    section(&format!(
        "A clean file mapping of {}: MADV_PAGEOUT, then reading it again",
        bytes(len as u64)
    ));
    let claims = [
        "MADV_PAGEOUT drops clean file pages from RAM (at least nine in ten)",
        "the first reading takes no major fault; reading again after MADV_PAGEOUT does: the \
         kernel reads the pages back from the file",
        "the data read back is what was written, and the pages are resident again",
    ];
    let (mut file, magic) = match file_on_disk(dir) {
        Ok(found) => found,
        Err(why) => {
            claims.iter().for_each(|claim| not_checked(claim, &why));
            return Ok(());
        }
    };
    // From the first touch to the madvise on one CPU: see OneCpu.
    let pinned = OneCpu::here()?;
    // ANCHOR: pageout_file_pages_come_back
    let mut contents = vec![0u8; len];
    fill(&mut contents, 3);
    // One page per write: the page cache then holds one small folio per page. (One big write
    // may give it large folios, which MADV_PAGEOUT here sometimes left in place, all of them.)
    for page in contents.chunks(page_size()) {
        file.write_all(page).context("write the file")?;
    }
    // Written back to the disk: the pages in the page cache are clean, so they may simply go.
    nix::unistd::fdatasync(&file).context("fdatasync")?;
    let mapping = FileMapping::new(&file, len)?;
    let start = mapping.ptr.as_ptr() as *mut u8;

    let before = page_faults()?;
    let (changed_first, _) = check(mapping.bytes(), 3);
    let first = page_faults()?;
    let resident_mapped = resident_pages(start, len)?;

    // SAFETY: the whole of our own file mapping; MADV_PAGEOUT keeps the contents.
    if let Err(Errno::EINVAL) = unsafe { advise(start, len, MmapAdvise::MADV_PAGEOUT) } {
        claims.iter().for_each(|claim| {
            not_checked(
                claim,
                "madvise(MADV_PAGEOUT): EINVAL: this kernel lacks it (Linux 5.4+)",
            )
        });
        return Ok(());
    }
    let resident_out = resident_pages(start, len)?;
    drop(pinned);
    vmbook::pause::here(
        "the file's pages have been paged out; the mapping is still there",
        &["grep -A 3 vmbook-pageout /proc/PID/smaps"],
    );
    let (changed, _) = check(mapping.bytes(), 3);
    let second = page_faults()?;
    let resident_back = resident_pages(start, len)?;
    // ANCHOR_END: pageout_file_pages_come_back

    let page = page_size() as u64;
    println!(
        "file written and flushed (fdatasync) on a disk-backed filesystem (statfs f_type {magic:#x})"
    );
    println!(
        "first read through the mapping:  {} minor faults, {} major faults; resident {}",
        first.0 - before.0,
        first.1 - before.1,
        kb(resident_mapped as u64 * page)
    );
    println!(
        "after MADV_PAGEOUT:              resident {}",
        kb(resident_out as u64 * page)
    );
    let (minor, major) = (second.0 - first.0, second.1 - first.1);
    println!(
        "reading again:                   {minor} minor faults, {major} major faults; resident {}",
        kb(resident_back as u64 * page)
    );
    finding(
        claims[0],
        most(resident_mapped, pages) && resident_out * 10 <= pages,
        format!(
            "resident before {}, after {}",
            kb(resident_mapped as u64 * page),
            kb(resident_out as u64 * page)
        ),
    );
    finding(
        claims[1],
        major >= 1 && first.1 == before.1,
        format!("{major} major faults reading again, none the first time"),
    );
    finding(
        claims[2],
        changed == 0 && changed_first == 0 && most(resident_back, pages),
        format!(
            "{changed} pages differ; resident {}",
            kb(resident_back as u64 * page)
        ),
    );
    Ok(())
}
