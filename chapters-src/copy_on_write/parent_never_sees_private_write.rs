//! Seed 004 with MAP_PRIVATE: the child's write never reaches the parent.

use anyhow::{bail, Result};
use vmbook::process::{fork_child, wait_exit_code};
use vmbook::procinfo::page_size;
use vmbook::{finding, section, Mapping};

// ANCHOR: parent_never_sees_private_write
pub fn parent_never_sees_private_write(text: &str) -> Result<()> {
    section("Seed 004 with MAP_PRIVATE instead of MAP_SHARED");
    const NUM_TARGET_PAGES: usize = 10_000; // as in the seed
    let mut buffer = Mapping::private(NUM_TARGET_PAGES * page_size())?;
    if text.len() >= buffer.len() {
        bail!("--text: {} bytes do not fit into the mapping", text.len());
    }
    let child = fork_child(|| {
        let buffer = &mut buffer.bytes_mut()[..text.len() + 1];
        buffer[..text.len()].copy_from_slice(text.as_bytes()); // the C string and its NUL
        buffer[text.len()] = 0;
        println!("child:  wrote {:?} into the buffer", text);
        0
    })?;
    wait_exit_code(child)?;
    let end = buffer.bytes().iter().position(|&b| b == 0).unwrap_or(0);
    let seen = String::from_utf8_lossy(&buffer.bytes()[..end]);
    println!("parent: after wait, the buffer holds {seen:?}");
    // ANCHOR_END: parent_never_sees_private_write
    finding(
        "with MAP_PRIVATE, the parent never sees the child's write",
        seen.is_empty(),
        format!("the parent read {} bytes before the first NUL", seen.len()),
    );
    Ok(())
}
