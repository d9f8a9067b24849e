//! A write through a MAP_SHARED mapping of a file is in the file at once: another process's
//! read(2) returns it, with no msync, and (as root) its own mapping uses the same frame.

use crate::file_map::{text, FileMap};
use crate::scratch::Scratch;
use anyhow::{ensure, Context, Result};
use nix::sys::mman::{MapFlags, ProtFlags};
use nix::sys::uio::pread;
use std::collections::HashMap;
use std::process::{ExitCode, Stdio};
use vmbook::procinfo::{frames_visible, page_entry, page_size, FRAMES_HIDDEN};
use vmbook::{finding, not_checked, section};

const MESSAGE: &[u8] = b"written through the mapping";

// ANCHOR: shared_stores_seen_by_read
pub fn shared_stores_seen_by_read(scratch: &Scratch, pages: usize) -> Result<()> {
    section("A file mapped MAP_SHARED: a store into memory, read(2) by another process");
    println!("{}", scratch.describe());
    let len = pages * page_size();
    let file = scratch.unnamed_file()?;
    file.set_len(len as u64).context("ftruncate")?;
    let map = FileMap::new(
        &file,
        len,
        ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
        MapFlags::MAP_SHARED,
    )?;
    let last = len - page_size(); // the start of the last page
    map.write_bytes(0, MESSAGE); // plain stores into memory: no write(2), no msync
    map.write_bytes(last, MESSAGE);
    println!(
        "this process stored {} at offsets 0 and {last}",
        text(MESSAGE)
    );
    let frame = page_entry(map.addr())?.pfn;
    // The child is a new program (fork + exec); its standard input is the file.
    let mut command = vmbook::chapter::child_command("read", &[&len.to_string()])?;
    command
        .stdin(Stdio::from(file.try_clone().context("dup")?))
        .stdout(Stdio::piped());
    let child = vmbook::process::spawn_tracked(&mut command)?;
    let output = vmbook::process::wait_spawned(child)?;
    ensure!(
        output.status.success(),
        "the reading child failed: {}",
        output.status
    );
    // ANCHOR_END: shared_stores_seen_by_read
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    let fields: HashMap<&str, &str> = report
        .lines()
        .filter_map(|line| line.split_once('='))
        .collect();
    let field = |k: &str| fields.get(k).copied().unwrap_or("");
    println!("child:  read(2) at offset 0 returns {}", field("first"));
    println!("child:  read(2) at offset {last} returns {}", field("last"));
    println!(
        "child:  its own mapping of the file reads {}",
        field("mapped")
    );
    vmbook::pause::here(
        "the file is mapped here (the child has exited)",
        &[
            "grep -A8 vmbook-file-mappings /proc/PID/smaps",
            "ls -l /proc/PID/fd",
        ],
    );
    let want = text(MESSAGE);
    finding(
        "another process's read(2) returns what was stored through the mapping, without msync",
        field("first") == want && field("last") == want,
        format!(
            "offset 0: {}, offset {last}: {}",
            field("first"),
            field("last")
        ),
    );
    finding(
        "another process that maps the file reads the same bytes",
        field("mapped") == want,
        format!("it read {}", field("mapped")),
    );
    let claim = "the other process's mapping uses the same physical frame: the page-cache page";
    let child_frame = u64::from_str_radix(field("frame").trim_start_matches("0x"), 16).ok();
    match (frame, child_frame) {
        (Some(mine), Some(theirs)) if frames_visible() && theirs != 0 => finding(
            claim,
            mine == theirs,
            format!("frame {mine:#x} here, {theirs:#x} in the child"),
        ),
        _ => not_checked(claim, FRAMES_HIDDEN),
    }
    Ok(())
}

// ANCHOR: read_child
/// The child: reads the file (its stdin) with pread, then maps it and reads the mapping.
pub fn read_child(len: usize) -> Result<ExitCode> {
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let stdin = std::io::stdin();
    let last = len - page_size();
    let mut buf = [0u8; 64];
    let n = pread(&stdin, &mut buf, 0).context("pread at 0")?;
    println!("first={}", text(&buf[..n]));
    let n = pread(&stdin, &mut buf, last as i64).context("pread at the last page")?;
    println!("last={}", text(&buf[..n]));
    let map = FileMap::new(&stdin, len, ProtFlags::PROT_READ, MapFlags::MAP_SHARED)?;
    println!("mapped={}", text(&map.read_bytes(0, MESSAGE.len())));
    let frame = page_entry(map.addr())?.pfn.unwrap_or(0);
    println!("frame={frame:#x}");
    Ok(ExitCode::SUCCESS)
}
// ANCHOR_END: read_child
