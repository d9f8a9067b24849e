//! Seed 000 under valgrind: a leaked mapping and a leaked heap block of the same size, and which of
//! the two valgrind reports.

use anyhow::{bail, Result};
use std::process::{Command, Stdio};
use std::time::Instant;
use vmbook::chapter::{child_args, this_program};
use vmbook::process::{fork_child, spawn_tracked, wait_child, wait_spawned};
use vmbook::{bytes, finding, not_checked, section, Mapping};

// ANCHOR: leak_probe
/// Seed 000 in Rust: map memory, fork, let the child `_exit`, and never unmap. Then leak a heap
/// block of the same size, the kind of leak valgrind is built to find.
pub fn leak_probe(size: usize) -> Result<()> {
    let mut region = Mapping::private(size)?;
    region.bytes_mut()[..18].copy_from_slice(b"Temporary message\n");
    let child = fork_child(|| 0)?; // the child leaves with _exit(0): nothing is cleaned up
    wait_child(child)?;
    std::mem::forget(region); // never unmapped
    leak_heap_block(size);
    println!("{} {}", std::process::id(), child);
    Ok(())
}

#[inline(never)]
fn leak_heap_block(size: usize) {
    let block = vec![0xA5u8; size].into_boxed_slice(); // malloc
    std::mem::forget(std::hint::black_box(block)); // never freed, and no pointer to it is kept
}
// ANCHOR_END: leak_probe

/// valgrind's "definitely lost" line for each process it watched: (pid, bytes, the line).
fn definitely_lost(log: &str) -> Vec<(i32, u64, String)> {
    let mut seen = Vec::new();
    for line in log.lines() {
        // "==4186==    definitely lost: 65,536 bytes in 1 blocks"
        let mut parts = line.splitn(3, "==");
        let (Some(""), Some(pid), Some(text)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(pid), text) = (pid.parse::<i32>(), text.trim()) else {
            continue;
        };
        if let Some(n) = text.strip_prefix("definitely lost: ") {
            let n = n.split(' ').next().unwrap_or("").replace(',', "");
            if let Ok(n) = n.parse() {
                seen.push((pid, n, text.to_string()));
            }
        } else if text.starts_with("All heap blocks were freed") {
            seen.push((pid, 0, text.to_string()));
        }
    }
    seen
}

// ANCHOR: valgrind
pub fn valgrind_misses_mmap_leaks(size: u64, valgrind: &str) -> Result<()> {
    section("Seed 000 under valgrind: two leaks of the same size");
    let exe = this_program()?;
    let size_arg = size.to_string();
    let probe = child_args("leak-probe", &["--bytes", &size_arg]);
    println!("$ valgrind --leak-check=full cleanup {}", probe.join(" "));
    println!(
        "  leaks {} with mmap (then fork, child _exit(0)) and {} with malloc",
        bytes(size),
        bytes(size)
    );
    let started = Instant::now();
    let mut command = Command::new(valgrind);
    command
        .args(["--leak-check=full", "--error-exitcode=0"])
        .arg(&exe)
        .args(probe)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Started and recorded with the cleanup signals held back: a SIGINT kills and reaps valgrind too.
    let child = match spawn_tracked(&mut command) {
        Ok(child) => child,
        Err(e) if is_not_found(&e) => {
            println!("valgrind was not found (`{valgrind}`): install it to run this experiment");
            for claim in [
                "valgrind reports the malloc'd block as definitely lost",
                "valgrind reports nothing for the mmap'd region, in the parent or in the child",
            ] {
                not_checked(claim, format!("no program `{valgrind}` found to run"));
            }
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let out = wait_spawned(child)?;
    // ANCHOR_END: valgrind
    let took = started.elapsed();
    let log = String::from_utf8_lossy(&out.stderr);
    let pids: Vec<i32> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    let lost = definitely_lost(&log);
    let (&[parent, child], true) = (pids.as_slice(), out.status.success()) else {
        bail!(
            "valgrind ({}) did not run the probe: {}",
            out.status,
            log.lines().last().unwrap_or("no output")
        );
    };
    let lost_by = |pid: i32| lost.iter().find(|(p, _, _)| *p == pid);
    let (Some((_, parent_lost, parent_line)), Some((_, child_lost, child_line))) =
        (lost_by(parent), lost_by(child))
    else {
        bail!("no leak summary for pid {parent} and pid {child} in valgrind's output");
    };
    let (parent_lost, child_lost) = (*parent_lost, *child_lost);
    println!("valgrind's LEAK SUMMARY for the parent (pid {parent}): {parent_line}");
    println!("valgrind's LEAK SUMMARY for the child  (pid {child}): {child_line}");
    println!("valgrind's run took {}", vmbook::measure::duration(took));
    finding(
        "valgrind reports the malloc'd block as definitely lost",
        parent_lost >= size,
        format!("parent: {parent_lost} bytes definitely lost"),
    );
    finding(
        "valgrind reports nothing for the mmap'd region, in the parent or in the child",
        parent_lost < 2 * size && child_lost < size,
        format!(
            "{} mapped and never unmapped in each; reported: parent {parent_lost} bytes, child {child_lost} bytes",
            bytes(size)
        ),
    );
    Ok(())
}

/// Whether starting a program failed because there is no such program.
fn is_not_found(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}
