//! mmap promises memory it has not got: how much it may promise is the overcommit policy in
//! /proc/sys/vm/overcommit_memory. Nothing here touches the memory it maps.

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::mman::{mmap_anonymous, munmap, MapFlags, ProtFlags};
use nix::sys::resource::{getrlimit, Resource, RLIM_INFINITY};
use procfs::{Current, Meminfo};
use std::num::NonZeroUsize;
use std::ptr::NonNull;
use vmbook::procinfo::page_size;
use vmbook::{finding, kb, not_checked, section};

// ANCHOR: reserve
/// Maps `len` bytes, private, anonymous and writable, without touching them: what malloc does
/// for a big block. Returns the address, or the errno when the kernel refuses.
fn reserve(len: usize) -> Result<NonNull<libc::c_void>, Errno> {
    let size = NonZeroUsize::new(len).ok_or(Errno::EINVAL)?;
    // SAFETY: a new mapping at an address the kernel chooses overlaps nothing Rust uses; it is
    // unmapped by `release` and never read or written.
    unsafe {
        mmap_anonymous(
            None,
            size,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_PRIVATE,
        )
    }
}
// ANCHOR_END: reserve

fn release(ptr: NonNull<libc::c_void>, len: usize) {
    // SAFETY: exactly a range `reserve` returned, never handed out.
    let _ = unsafe { munmap(ptr, len) };
}

fn read_setting(name: &str) -> Result<String> {
    let path = format!("/proc/sys/vm/{name}");
    Ok(std::fs::read_to_string(&path)
        .with_context(|| format!("read {path}"))?
        .trim()
        .to_string())
}

pub fn overcommit_refuses_one_big_allocation(pieces: u64) -> Result<()> {
    section("Overcommit: one huge mapping, and the same size in pieces");
    let mode = read_setting("overcommit_memory")?;
    let meminfo = Meminfo::current().context("read /proc/meminfo")?;
    let (ram, swap) = (meminfo.mem_total, meminfo.swap_total);
    let limit = meminfo.commit_limit.unwrap_or(0);
    let page = page_size() as u64;
    // Twice RAM + swap, cut into `pieces` equal pieces of whole pages.
    let piece = (2 * (ram + swap)).div_ceil(pieces).div_ceil(page) * page;
    let big = piece * pieces;
    println!(
        "overcommit_memory = {mode}; MemTotal {} + SwapTotal {}; CommitLimit {}, Committed_AS {}",
        kb(ram),
        kb(swap),
        kb(limit),
        kb(meminfo.committed_as)
    );
    let address_space = getrlimit(Resource::RLIMIT_AS)
        .context("getrlimit(RLIMIT_AS)")?
        .0;
    if address_space != RLIM_INFINITY && address_space < 2 * big {
        not_checked(
            "the kernel's overcommit policy decides which of these mappings succeed",
            format!("RLIMIT_AS ({}) refuses them first", kb(address_space)),
        );
        return Ok(());
    }
    // ANCHOR: overcommit
    let one = reserve(big as usize);
    if let Ok(ptr) = one {
        release(ptr, big as usize);
    }
    let mut granted = Vec::new();
    let mut refused = 0;
    for _ in 0..pieces {
        match reserve(piece as usize) {
            Ok(ptr) => granted.push(ptr),
            Err(_) => refused += 1,
        }
    }
    let committed = Meminfo::current()
        .context("read /proc/meminfo")?
        .committed_as;
    // ANCHOR_END: overcommit
    vmbook::pause::here(
        "the pieces that were granted are mapped (never touched)",
        &[
            "grep -E 'VmSize|VmRSS' /proc/PID/status",
            "grep -i commit /proc/meminfo",
        ],
    );
    for ptr in &granted {
        release(*ptr, piece as usize);
    }
    let outcome = |r: &Result<_, Errno>| match r {
        Ok(_) => "granted".to_string(),
        Err(e) => format!("refused ({e})"),
    };
    println!(
        "one mapping of {} (twice RAM + swap): {}",
        kb(big),
        outcome(&one)
    );
    println!(
        "{pieces} mappings of {} each: {} granted, {refused} refused; Committed_AS then {}",
        kb(piece),
        granted.len(),
        kb(committed)
    );
    let heuristic = [
        "in heuristic mode (0), one mapping larger than RAM + swap is refused (ENOMEM)",
        "in heuristic mode, pieces adding up to the same size are all granted: each request is \
         judged alone",
        "in heuristic mode, Committed_AS may pass CommitLimit: the limit is not enforced",
    ];
    let always = "in mode 1 (always), even the one huge mapping is granted";
    let strict =
        "in mode 2 (strict), the pieces are refused once Committed_AS would pass CommitLimit";
    let not_this_mode = |claim: &str| not_checked(claim, format!("overcommit_memory is {mode}"));
    if mode == "0" {
        finding(heuristic[0], one == Err(Errno::ENOMEM), outcome(&one));
        finding(
            heuristic[1],
            refused == 0,
            format!("{} of {pieces} granted", granted.len()),
        );
        finding(
            heuristic[2],
            refused == 0 && committed > limit,
            format!(
                "Committed_AS {} against CommitLimit {}",
                kb(committed),
                kb(limit)
            ),
        );
    } else {
        heuristic.iter().for_each(|claim| not_this_mode(claim));
    }
    if mode == "1" {
        finding(always, one.is_ok(), outcome(&one));
    } else {
        not_this_mode(always);
    }
    if mode == "2" {
        finding(
            strict,
            one.is_err() && refused >= 1,
            format!("{refused} of {pieces} refused, CommitLimit {}", kb(limit)),
        );
    } else {
        not_this_mode(strict);
    }
    Ok(())
}
