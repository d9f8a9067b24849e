//! munmap, close and shm_unlink in two orders: what each one frees.

use crate::object::create_and_map;
use anyhow::{Context, Result};
use nix::sys::mman::{munmap, shm_unlink};
use nix::sys::stat::fstat;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use vmbook::shm::unique_name;
use vmbook::{cleanup, finding, kb, section};

/// One row of the `order` table: what still refers to the object, and how much memory it holds.
struct Refs {
    named: bool,
    fd_open: bool,
    mapping: Option<String>,
    held: Option<u64>,
}

fn refs(name: &str, fd: Option<&OwnedFd>, addr: Option<usize>) -> Result<Refs> {
    let path = format!("/dev/shm{name}");
    let named = std::fs::metadata(&path).ok();
    let mapping = match addr {
        Some(a) => Some(vmbook::procinfo::smaps_of(a)?),
        None => None,
    };
    let line = match addr {
        Some(a) => vmbook::procinfo::maps()?
            .into_iter()
            .find(|m| (m.address.0..m.address.1).contains(&(a as u64)))
            .map(|m| format!("{:?}", m.pathname)),
        None => None,
    };
    // The object's memory, from whatever still refers to it: the name, the descriptor, the mapping.
    let held = if let Some(meta) = &named {
        Some(meta.blocks() * 512)
    } else if let Some(fd) = fd {
        Some(fstat(fd).context("fstat")?.st_blocks as u64 * 512)
    } else {
        mapping.as_ref().map(|m| m.get("Rss").copied().unwrap_or(0))
    };
    Ok(Refs {
        named: named.is_some(),
        fd_open: fd.is_some(),
        mapping: line.map(|l| {
            if l.contains("(deleted)") {
                "yes (deleted)".into()
            } else {
                "yes".into()
            }
        }),
        held,
    })
}

/// Prints one row of the table; with `--pause`, stops after it so that the reader can watch
/// /proc/meminfo follow the table.
fn print_refs(step: &str, r: &Refs) {
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!(
        "{:<26} {:<6} {:<5} {:<15} {}",
        step,
        yes(r.named),
        yes(r.fd_open),
        r.mapping.as_deref().unwrap_or("no"),
        r.held.map_or("freed: nothing refers to it".to_string(), kb)
    );
    vmbook::pause::here(
        &format!("the table's row \"{step}\" is the current state"),
        &[
            "grep Shmem: /proc/meminfo",
            "ls -l /dev/shm",
            "grep -F /dev/shm /proc/PID/maps",
        ],
    );
}

fn unmap(ptr: *mut u8, size: usize) -> Result<()> {
    // SAFETY: ptr/size are exactly what mmap returned, and nothing borrows the memory any more.
    unsafe { munmap(std::ptr::NonNull::new(ptr.cast()).context("null")?, size) }.context("munmap")
}

// ANCHOR: order
pub fn what_each_call_frees(size: u64) -> Result<()> {
    section("What munmap, close and shm_unlink each free");
    let size = size as usize;
    println!(
        "{:<26} {:<6} {:<5} {:<15} memory it holds",
        "step", "name", "fd", "mapping"
    );
    let mut held_after_munmap_close = 0;
    let mut held_by_mapping_alone = 0;
    for early in [false, true] {
        let name = unique_name();
        let slot = cleanup::track_path(&format!("/dev/shm{name}"));
        let (fd, ptr) = create_and_map(&name, size)?;
        // SAFETY: the mapping is `size` bytes; writing one byte per page makes each page resident.
        (0..size)
            .step_by(4096)
            .for_each(|i| unsafe { *ptr.add(i) = 1 });
        println!(
            "{}",
            if early {
                "-- unlink early: shm_unlink, close, munmap"
            } else {
                "-- seed 003's order: munmap, close, shm_unlink"
            }
        );
        print_refs(
            "created, mapped, written",
            &refs(&name, Some(&fd), Some(ptr as usize))?,
        );
        if !early {
            unmap(ptr, size)?;
            print_refs("munmap", &refs(&name, Some(&fd), None)?);
            drop(fd); // close(2)
            let r = refs(&name, None, None)?;
            held_after_munmap_close = r.held.unwrap_or(0);
            print_refs("close", &r);
            shm_unlink(name.as_str()).context("shm_unlink")?;
            print_refs("shm_unlink", &refs(&name, None, None)?);
        } else {
            shm_unlink(name.as_str()).context("shm_unlink")?;
            print_refs("shm_unlink", &refs(&name, Some(&fd), Some(ptr as usize))?);
            drop(fd);
            let r = refs(&name, None, Some(ptr as usize))?;
            held_by_mapping_alone = r.held.unwrap_or(0);
            print_refs("close", &r);
            unmap(ptr, size)?;
            print_refs("munmap", &refs(&name, None, None)?);
        }
        cleanup::untrack_path(slot);
    }
    // ANCHOR_END: order
    let size = size as u64;
    finding(
        "munmap and close free none of the object's memory while its name exists",
        held_after_munmap_close >= size,
        format!(
            "after munmap and close the object still holds {}",
            kb(held_after_munmap_close)
        ),
    );
    finding(
        "after shm_unlink and close, the mapping alone keeps the memory alive, shown as (deleted)",
        held_by_mapping_alone >= size * 9 / 10,
        format!(
            "Rss of the (deleted) mapping: {}",
            kb(held_by_mapping_alone)
        ),
    );
    Ok(())
}
