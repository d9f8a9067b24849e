//! MAP_PRIVATE of a file: reads use the page cache's pages; the first store copies the page
//! (copy-on-write again), and the file never sees it.

use crate::file_map::{text, FileMap};
use crate::scratch::Scratch;
use anyhow::{Context, Result};
use nix::sys::mman::{MapFlags, ProtFlags};
use nix::sys::uio::{pread, pwrite};
use std::os::unix::fs::FileExt;
use vmbook::procinfo::{frames_visible, page_entry, page_size, smaps_of, FRAMES_HIDDEN};
use vmbook::{finding, kb, not_checked, section};

const FROM_FILE: &[u8; 13] = b"from the file";
const COPY: &[u8; 13] = b"private copy!";
const LATER: &[u8; 13] = b"changed later";

/// How many pages of `private` are backed by the same frame as in `shared` (0 if frames are hidden).
fn same_frames(private: &FileMap, shared: &FileMap, pages: usize) -> Result<usize> {
    let mut same = 0;
    for offset in (0..pages * page_size()).step_by(page_size()) {
        let (a, b) = (
            page_entry(private.addr() + offset)?,
            page_entry(shared.addr() + offset)?,
        );
        same += usize::from(a.pfn.is_some() && a.pfn == b.pfn);
    }
    Ok(same)
}

/// smaps `Anonymous` of the mapping holding `addr`: pages that belong to no file.
fn anonymous(addr: usize) -> Result<u64> {
    Ok(smaps_of(addr)?.get("Anonymous").copied().unwrap_or(0))
}

pub fn private_mapping_copies_on_write(scratch: &Scratch, pages: usize) -> Result<()> {
    section("A file mapped MAP_PRIVATE: reads share the page cache, a store copies the page");
    println!("{}", scratch.describe());
    let page = page_size();
    let len = pages * page;
    let file = scratch.unnamed_file()?;
    for offset in (0..len).step_by(page) {
        file.write_all_at(FROM_FILE, offset as u64)
            .context("pwrite")?;
    }
    file.set_len(len as u64).context("ftruncate")?;
    // ANCHOR: private_mapping_copies_on_write
    let shared = FileMap::new(&file, len, ProtFlags::PROT_READ, MapFlags::MAP_SHARED)?;
    let private = FileMap::new(
        &file,
        len,
        ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
        MapFlags::MAP_PRIVATE,
    )?;
    for offset in (0..len).step_by(page) {
        shared.read(offset); // read every page of both
        private.read(offset);
    }
    let same_before = same_frames(&private, &shared, pages)?;
    let (anon_before, file_page_before) = (
        anonymous(private.addr())?,
        page_entry(private.addr())?.file_or_shared,
    );
    private.write_bytes(0, COPY); // one store, into page 0 only
    let same_after = same_frames(&private, &shared, pages)?;
    let (anon_after, file_page_after) = (
        anonymous(private.addr())?,
        page_entry(private.addr())?.file_or_shared,
    );
    let mut in_file = [0u8; 13];
    pread(&file, &mut in_file, 0).context("pread")?; // what the file holds now
    let in_shared = shared.read_bytes(0, 13);
    // Then the file changes under both mappings, in every page.
    for offset in (0..len).step_by(page) {
        pwrite(&file, LATER, offset as i64).context("pwrite")?;
    }
    let private0 = private.read_bytes(0, 13);
    let private_last = private.read_bytes(len - page, 13);
    // ANCHOR_END: private_mapping_copies_on_write
    println!(
        "smaps Anonymous of the private mapping: {} before the store, {} after",
        kb(anon_before),
        kb(anon_after)
    );
    println!(
        "pagemap of its page 0: {} before the store, {} after",
        if file_page_before {
            "file page"
        } else {
            "anonymous page"
        },
        if file_page_after {
            "file page"
        } else {
            "anonymous page"
        }
    );
    println!(
        "after the store, read(2) of the file at offset 0: {}; the shared mapping: {}",
        text(&in_file),
        text(&in_shared)
    );
    println!(
        "after the file changed: private page 0 reads {}, its last page {}",
        text(&private0),
        text(&private_last)
    );
    vmbook::pause::here(
        "both mappings of the file exist; page 0 of the private one is a copy",
        &["grep -A22 vmbook-file-mappings /proc/PID/smaps"],
    );
    let claims = [
        "before any store, every page of the MAP_PRIVATE mapping is the page-cache frame MAP_SHARED uses",
        "after the store, page 0 of the private mapping has a frame of its own; the others still share",
    ];
    if frames_visible() {
        finding(
            claims[0],
            same_before == pages,
            format!("{same_before} of {pages} pages share a frame"),
        );
        finding(
            claims[1],
            same_after == pages - 1,
            format!("{same_after} of {pages} pages share a frame"),
        );
    } else {
        for claim in claims {
            not_checked(claim, FRAMES_HIDDEN);
        }
    }
    finding(
        "the store turned one page of the private mapping into an anonymous copy (smaps, pagemap)",
        anon_before == 0 && anon_after == page as u64 && file_page_before && !file_page_after,
        format!("Anonymous {} → {}", kb(anon_before), kb(anon_after)),
    );
    finding(
        "the file is unchanged: read(2) and the MAP_SHARED mapping return the file's bytes",
        &in_file == FROM_FILE && in_shared == FROM_FILE,
        format!(
            "read(2) {}, MAP_SHARED {}",
            text(&in_file),
            text(&in_shared)
        ),
    );
    if pages < 2 {
        not_checked(
            "a private page never stored into follows later changes to the file; the copied one does not",
            "--pages 1 leaves no page that was not stored into",
        );
        return Ok(());
    }
    finding(
        "a private page never stored into follows later changes to the file; the copied one does not",
        private0 == COPY && private_last == LATER,
        format!("page 0 {}, last page {}", text(&private0), text(&private_last)),
    );
    Ok(())
}
