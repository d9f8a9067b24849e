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

/// The system's shared memory (`Shmem:` in /proc/meminfo), in bytes, and whether the per-CPU
/// counter deltas were folded in first. The kernel batches counter updates per CPU; as root,
/// writing /proc/sys/vm/stat_refresh folds them into the totals (`proc(5)`), so the reading is
/// exact. Without it, up to a few hundred pages per CPU may still be in flight.
fn shmem() -> Result<(u64, bool)> {
    let refreshed = std::fs::write("/proc/sys/vm/stat_refresh", "1").is_ok();
    let meminfo = std::fs::read_to_string("/proc/meminfo").context("read /proc/meminfo")?;
    let kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("Shmem:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no Shmem: line in /proc/meminfo")?;
    Ok((kb * 1024, refreshed))
}

/// Runs `call` (the step that drops the last reference) and returns by how much the system's
/// Shmem fell across it, and whether both readings were exact.
fn shmem_drop(call: impl FnOnce() -> Result<()>) -> Result<(u64, bool)> {
    let (before, exact_before) = shmem()?;
    call()?;
    let (after, exact_after) = shmem()?;
    Ok((before.saturating_sub(after), exact_before && exact_after))
}

/// Prints one row of the `order` table; with `--pause`, stops after it so that the reader can watch
/// /proc/meminfo follow the table.
fn print_refs(step: &str, r: &Refs, freed: Option<u64>) {
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!(
        "{:<26} {:<6} {:<5} {:<15} {}",
        step,
        yes(r.named),
        yes(r.fd_open),
        r.mapping.as_deref().unwrap_or("no"),
        match (r.held, freed) {
            (Some(held), _) => kb(held),
            (None, Some(fell)) => format!("none left; the system's Shmem fell by {}", kb(fell)),
            (None, None) => "none left".to_string(),
        }
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

/// munmap, its error as a `Result`.
///
/// # Safety
///
/// `ptr` and `size` are exactly what mmap returned, not unmapped yet, and nothing uses the memory
/// any more.
unsafe fn unmap(ptr: *mut u8, size: usize) -> Result<()> {
    // SAFETY: as the caller promises.
    unsafe { munmap(std::ptr::NonNull::new(ptr.cast()).context("null")?, size) }.context("munmap")
}

// ANCHOR: order
pub fn order_of_munmap_close_unlink(size: u64) -> Result<()> {
    section("What munmap, close and shm_unlink each free");
    let size = size as usize;
    println!(
        "{:<26} {:<6} {:<5} {:<15} memory it holds",
        "step", "name", "fd", "mapping"
    );
    let mut held_after_munmap_close = 0;
    let mut held_by_mapping_alone = 0;
    let mut freed_at_last_step = Vec::new(); // (step, Shmem drop, exact reading)
    for early in [false, true] {
        let name = unique_name();
        let slot = cleanup::track_path(&format!("/dev/shm{name}"));
        let (fd, ptr) = create_and_map(&name, size)?;
        // SAFETY: the mapping is `size` bytes; writing one byte per page makes each page resident.
        (0..size)
            .step_by(vmbook::procinfo::page_size())
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
            None,
        );
        if !early {
            // SAFETY: the mapping create_and_map made; from here on only its address is used.
            unsafe { unmap(ptr, size) }?;
            print_refs("munmap", &refs(&name, Some(&fd), None)?, None);
            drop(fd); // close(2)
            let r = refs(&name, None, None)?;
            held_after_munmap_close = r.held.unwrap_or(0);
            print_refs("close", &r, None);
            let (fell, exact) = shmem_drop(|| shm_unlink(name.as_str()).context("shm_unlink"))?;
            freed_at_last_step.push(("shm_unlink", fell, exact));
            print_refs("shm_unlink", &refs(&name, None, None)?, Some(fell));
        } else {
            shm_unlink(name.as_str()).context("shm_unlink")?;
            print_refs(
                "shm_unlink",
                &refs(&name, Some(&fd), Some(ptr as usize))?,
                None,
            );
            drop(fd);
            let r = refs(&name, None, Some(ptr as usize))?;
            held_by_mapping_alone = r.held.unwrap_or(0);
            print_refs("close", &r, None);
            // SAFETY: as above.
            let (fell, exact) = shmem_drop(|| unsafe { unmap(ptr, size) })?;
            freed_at_last_step.push(("munmap", fell, exact));
            print_refs("munmap", &refs(&name, None, None)?, Some(fell));
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
    report_freed(&freed_at_last_step, size);
    Ok(())
}

/// The finding on the last step of each order: did the system's shared memory fall by the
/// object's size right there?
fn report_freed(steps: &[(&str, u64, bool)], size: u64) {
    let claim = "the call that drops the last reference frees the memory: Shmem falls by the \
                 object's size across it";
    let exact = steps.iter().all(|s| s.2);
    // Per-CPU counter batching: without stat_refresh, up to 125 pages per CPU may be unfolded.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let slack = if exact {
        0
    } else {
        cpus * 125 * vmbook::procinfo::page_size() as u64
    };
    let evidence = steps
        .iter()
        .map(|(step, fell, _)| format!("{step} {}", kb(*fell)))
        .collect::<Vec<_>>()
        .join(", ");
    if slack * 2 > size {
        vmbook::not_checked(
            claim,
            format!(
                "the object is small next to what {cpus} CPUs' counters may hold back \
                 (/proc/sys/vm/stat_refresh needs root); Shmem fell by {evidence}"
            ),
        );
    } else {
        finding(
            claim,
            steps
                .iter()
                .all(|(_, fell, _)| *fell + size / 10 + slack >= size),
            format!("Shmem fell by {evidence}, for a {} object", kb(size)),
        );
    }
}
