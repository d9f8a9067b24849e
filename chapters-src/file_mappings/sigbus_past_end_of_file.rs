//! Past the end of the file: a mapped page with no file behind it raises SIGBUS, whether the file
//! was truncated under the mapping or the mapping was longer than the file from the start.

use crate::file_map::FileMap;
use crate::scratch::Scratch;
use anyhow::{Context, Result};
use nix::sys::mman::{MapFlags, ProtFlags};
use nix::sys::resource::{setrlimit, Resource};
use nix::sys::wait::WaitStatus;
use nix::unistd::{pipe, read, write};
use std::os::unix::fs::FileExt;
use vmbook::process::{fork_child, wait_child};
use vmbook::procinfo::page_size;
use vmbook::{finding, section};

// ANCHOR: touch_in_child
/// A forked child reads the byte at each offset in turn and sends it to the parent; returns the
/// bytes it got through and how the child ended.
fn touch_in_child(map: &FileMap, offsets: &[usize]) -> Result<(Vec<u8>, WaitStatus)> {
    let (from_child, to_parent) = pipe().context("pipe")?;
    let child = fork_child(|| {
        // A child killed by SIGBUS would dump core (into the current directory, on many
        // systems): this one is not dumpable, so it leaves no core file anywhere.
        let _ = nix::sys::prctl::set_dumpable(false);
        let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
        for &offset in offsets {
            let value = map.read(offset); // past the end of the file: SIGBUS, and no return
            let _ = write(&to_parent, &[value]);
        }
        0
    })?;
    drop(to_parent);
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while read(&from_child, &mut byte).context("read from the child")? == 1 {
        got.push(byte[0]);
    }
    Ok((got, wait_child(child)?))
}
// ANCHOR_END: touch_in_child

fn describe(status: &WaitStatus) -> String {
    match status {
        WaitStatus::Signaled(_, sig, _) => format!("killed by {}", sig.as_str()),
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        other => format!("{other:?}"),
    }
}

/// A byte the child read, or that it read none.
fn shown(byte: Option<&u8>) -> String {
    byte.map_or("nothing".into(), |&b| format!("{:?}", b as char))
}

fn killed_by_sigbus(status: &WaitStatus) -> bool {
    matches!(
        status,
        WaitStatus::Signaled(_, nix::sys::signal::Signal::SIGBUS, _)
    )
}

/// Prints what the child read at each offset, and where it died.
fn show(offsets: &[(usize, &str)], got: &[u8], status: &WaitStatus) {
    for (i, (offset, what)) in offsets.iter().enumerate() {
        match got.get(i) {
            Some(b) => println!("  offset {offset:>6} ({what}): read {}", shown(Some(b))),
            None => println!(
                "  offset {offset:>6} ({what}): the child was {}",
                describe(status)
            ),
        }
    }
}

pub fn sigbus_past_end_of_file(scratch: &Scratch) -> Result<()> {
    section("Past the end of the file: SIGBUS");
    println!("{}", scratch.describe());
    let page = page_size();
    let rw = ProtFlags::PROT_READ | ProtFlags::PROT_WRITE;
    // ANCHOR: truncated
    let file = scratch.unnamed_file()?;
    file.write_all_at(&vec![b'f'; 4 * page], 0)
        .context("write")?;
    let map = FileMap::new(&file, 4 * page, rw, MapFlags::MAP_SHARED)?;
    let new_len = page + 100;
    file.set_len(new_len as u64).context("ftruncate")?; // the mapping stays 4 pages long
    let offsets = [
        (0, "in the file"),
        (page + 200, "past the end, in its last page"),
        (2 * page, "a page past the end"),
    ];
    let (got, status) = touch_in_child(&map, &offsets.map(|(o, _)| o))?;
    // ANCHOR_END: truncated
    println!("a 4-page file, mapped, then truncated to {new_len} bytes; a child reads:");
    show(&offsets, &got, &status);
    // ANCHOR: longer
    let short = scratch.unnamed_file()?;
    short.write_all_at(&[b'f'; 100], 0).context("write")?;
    let long_map = FileMap::new(&short, 4 * page, rw, MapFlags::MAP_SHARED)?; // 4 pages of a 100-byte file
    let long_offsets = [
        (0, "in the file"),
        (200, "past the end, in its only page"),
        (page, "a page past the end"),
    ];
    let (long_got, long_status) = touch_in_child(&long_map, &long_offsets.map(|(o, _)| o))?;
    // ANCHOR_END: longer
    println!("a 100-byte file mapped 4 pages long; a child reads:");
    show(&long_offsets, &long_got, &long_status);
    vmbook::pause::here(
        "both mappings still span 4 pages; their files are shorter",
        &["grep vmbook-file-mappings /proc/PID/maps"],
    );
    finding(
        "after the file is truncated under a mapping, reading a page past its new end raises SIGBUS",
        got.len() == 2 && killed_by_sigbus(&status),
        format!("{} reads succeeded, then the child was {}", got.len(), describe(&status)),
    );
    finding(
        "a mapping longer than the file: reading a page past the end of the file raises SIGBUS",
        long_got.len() == 2 && killed_by_sigbus(&long_status),
        format!(
            "{} reads succeeded, then the child was {}",
            long_got.len(),
            describe(&long_status)
        ),
    );
    finding(
        "the rest of the file's last page reads as zeros, without a signal",
        got == [b'f', 0] && long_got == [b'f', 0],
        format!("read {} and {}", shown(got.get(1)), shown(long_got.get(1))),
    );
    Ok(())
}
