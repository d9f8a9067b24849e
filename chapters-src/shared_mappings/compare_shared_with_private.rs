//! Seed 004 without its bugs: a child writes a string into a MAP_SHARED and a MAP_PRIVATE region;
//! what does the parent read?

use anyhow::{ensure, Context, Result};
use nix::sys::mman::MapFlags;
use vmbook::process::{fork_child, wait_exit_code};
use vmbook::procinfo::page_size;
use vmbook::{bytes, finding, section, Mapping};

// ANCHOR: compare_shared_with_private
pub fn compare_shared_with_private(pages: usize, text: String, from_stdin: bool) -> Result<()> {
    section("A child writes a string; what does the parent see?");
    let len = pages * page_size();
    let text = if from_stdin {
        // Never `gets`: keep at most one page of the line, whatever its length.
        let mut line = Vec::new();
        let stdin = &mut std::io::stdin().lock();
        vmbook::numbers::read_line_bounded(stdin, page_size() - 1, &mut line)
            .context("read a line from stdin")?;
        String::from_utf8_lossy(&line).into_owned()
    } else {
        text
    };
    ensure!(!text.is_empty(), "the string to write is empty");
    ensure!(
        text.len() < len,
        "the string does not fit in {}",
        bytes(len as u64)
    );
    let mut seen = Vec::new();
    for (flag, what) in [
        (MapFlags::MAP_SHARED, "MAP_SHARED|MAP_ANONYMOUS"),
        (MapFlags::MAP_PRIVATE, "MAP_PRIVATE|MAP_ANONYMOUS"),
    ] {
        // An error, never a pointer to compare with NULL: mmap failing is MAP_FAILED, not NULL.
        let mut region = Mapping::anonymous(len, flag, what)?;
        let child = fork_child(|| {
            region.bytes_mut()[..text.len()].copy_from_slice(text.as_bytes());
            0
        })?;
        ensure!(wait_exit_code(child)? == 0, "the child failed");
        let after = &region.bytes()[..text.len()];
        // ANCHOR_END: compare_shared_with_private
        let shown = String::from_utf8_lossy(after).replace('\0', "");
        let zeros = after.iter().filter(|&&b| b == 0).count();
        println!(
            "{what:<26} {}: the parent reads {shown:?} ({zeros} of {} bytes are zero)",
            bytes(len as u64),
            text.len()
        );
        let matching = after
            .iter()
            .zip(text.as_bytes())
            .filter(|(a, b)| a == b)
            .count();
        seen.push((matching, zeros));
    }
    finding(
        "with MAP_SHARED, the parent sees what the child wrote",
        seen[0].0 == text.len(),
        format!(
            "{} of {} bytes in the parent match the child's",
            seen[0].0,
            text.len()
        ),
    );
    finding(
        "with MAP_PRIVATE, the parent sees only zeros: the child wrote to its own copy",
        seen[1].1 == text.len(),
        format!("{} of {} bytes zero in the parent", seen[1].1, text.len()),
    );
    Ok(())
}
