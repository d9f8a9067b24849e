//! mlock(2) pins pages in RAM: reclaim never takes them, and MADV_PAGEOUT refuses them outright.
//! How much an ordinary process may lock is RLIMIT_MEMLOCK; CAP_IPC_LOCK lifts the limit.

use crate::child::fork_waiting;
use crate::memory::{
    advise, few, fill, resident_pages, smaps_counter, swapped_pages, OneCpu, Region, SwapAreas,
};
use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::mman::{mlock, MmapAdvise};
use nix::sys::resource::{getrlimit, Resource, RLIM_INFINITY};
use std::ptr::NonNull;
use vmbook::procinfo::page_size;
use vmbook::{bytes, finding, kb, not_checked, section, Mapping};

const CAP_IPC_LOCK: u32 = 14;

/// Drops CAP_IPC_LOCK from this process's effective set (in a forked child: nothing else changes).
fn drop_cap_ipc_lock() -> bool {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3: two Data entries
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget/capset with a version-3 header and two data entries, as capget(2) says;
    // both structs are laid out like the kernel's.
    unsafe {
        if libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) != 0 {
            return false;
        }
        data[0].effective &= !(1 << CAP_IPC_LOCK);
        libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) == 0
    }
}

/// Tries to lock `len` bytes at the start of `region`; the errno if the kernel refuses.
fn lock(region: *mut u8, len: usize) -> Result<(), Errno> {
    let start = NonNull::new(region.cast()).ok_or(Errno::EINVAL)?;
    // SAFETY: the range lies inside a mapping this program owns; locking changes no contents.
    unsafe { mlock(start, len) }
}

pub fn mlock_keeps_pages_in_ram(pages: usize) -> Result<()> {
    let len = pages * page_size();
    section(&format!(
        "mlock: {} locked beside {} unlocked, then MADV_PAGEOUT on both",
        bytes(len as u64),
        bytes(len as u64)
    ));
    let swap = SwapAreas::read()?;
    println!("{}", swap.describe());
    let claims = [
        "MADV_PAGEOUT refuses a locked range (EINVAL), and every locked page stays resident",
        "with swap, the unlocked pages leave while the locked ones stay",
    ];
    // From the first touch to the madvise on one CPU: see OneCpu.
    let pinned = OneCpu::here()?;
    // ANCHOR: mlock_keeps_pages_in_ram
    let mut locked = Region::new(len)?;
    let mut unlocked = Region::new(len)?;
    fill(locked.bytes_mut(), 11);
    fill(unlocked.bytes_mut(), 13);
    if let Err(e) = lock(locked.as_ptr(), len) {
        let why = format!("mlock({}): {e}", bytes(len as u64));
        claims.iter().for_each(|claim| not_checked(claim, &why));
        return rlimit_memlock_bounds_locking();
    }
    let counted = smaps_counter(locked.addr(), "Locked")?;
    // SAFETY: two regions of our own; MADV_PAGEOUT keeps the contents.
    let refused = unsafe { advise(locked.as_ptr(), len, MmapAdvise::MADV_PAGEOUT) };
    let unlocked_out = unsafe { advise(unlocked.as_ptr(), len, MmapAdvise::MADV_PAGEOUT) };
    let resident_locked = resident_pages(locked.as_ptr(), len)?;
    let resident_unlocked = resident_pages(unlocked.as_ptr(), len)?;
    let swapped_unlocked = swapped_pages(unlocked.as_ptr(), len)?;
    drop(pinned);
    // ANCHOR_END: mlock_keeps_pages_in_ram
    vmbook::pause::here(
        "one region locked, one not, both advised MADV_PAGEOUT",
        &[
            "grep -E 'VmLck|VmSwap' /proc/PID/status",
            "grep -E '^Locked: +[1-9]' /proc/PID/smaps",
        ],
    );
    let page = page_size() as u64;
    let result = |r: &Result<(), Errno>| match r {
        Ok(()) => "done".to_string(),
        Err(e) => e.to_string(),
    };
    println!(
        "locked:   smaps Locked {}; MADV_PAGEOUT: {}; resident {}",
        kb(counted),
        result(&refused),
        kb(resident_locked as u64 * page)
    );
    println!(
        "unlocked: MADV_PAGEOUT: {}; resident {}, swapped {}",
        result(&unlocked_out),
        kb(resident_unlocked as u64 * page),
        kb(swapped_unlocked as u64 * page)
    );
    if unlocked_out == Err(Errno::EINVAL) {
        let why = "madvise(MADV_PAGEOUT): EINVAL on an unlocked range: this kernel lacks it";
        claims.iter().for_each(|claim| not_checked(claim, why));
        return rlimit_memlock_bounds_locking();
    }
    finding(
        claims[0],
        refused == Err(Errno::EINVAL) && resident_locked == pages,
        format!(
            "MADV_PAGEOUT: {}; resident {} of {}",
            result(&refused),
            kb(resident_locked as u64 * page),
            bytes(len as u64)
        ),
    );
    if swap.configured() {
        finding(
            claims[1],
            few(resident_unlocked, pages) && resident_locked == pages,
            format!(
                "unlocked resident {}, locked resident {}",
                kb(resident_unlocked as u64 * page),
                kb(resident_locked as u64 * page)
            ),
        );
    } else {
        not_checked(
            claims[1],
            "no swap configured: unlocked anonymous pages cannot leave either",
        );
    }
    drop(locked); // munmap unlocks
    rlimit_memlock_bounds_locking()
}

/// A child without CAP_IPC_LOCK tries to lock one page, then more than RLIMIT_MEMLOCK.
fn rlimit_memlock_bounds_locking() -> Result<()> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_MEMLOCK).context("getrlimit(RLIMIT_MEMLOCK)")?;
    let show = |v: u64| {
        if v == RLIM_INFINITY {
            "unlimited".to_string()
        } else {
            kb(v)
        }
    };
    println!("RLIMIT_MEMLOCK: soft {}, hard {}", show(soft), show(hard));
    let claim = "without CAP_IPC_LOCK, one page can be locked but not more than RLIMIT_MEMLOCK \
                 (ENOMEM)";
    if soft == RLIM_INFINITY || soft > 1 << 40 {
        not_checked(claim, "RLIMIT_MEMLOCK is unlimited here");
        return Ok(());
    }
    // ANCHOR: rlimit_memlock
    let over = (soft as usize / page_size() + 1) * page_size();
    let child = fork_waiting(
        || {
            if !drop_cap_ipc_lock() {
                return 9;
            }
            // Reserved, never touched: mlock checks the limit before it brings anything in.
            let Ok(region) = Mapping::anonymous(
                over,
                nix::sys::mman::MapFlags::MAP_PRIVATE | nix::sys::mman::MapFlags::MAP_NORESERVE,
                "MAP_NORESERVE",
            ) else {
                return 8;
            };
            let one_page = lock(region.as_ptr(), page_size()).is_ok() as u8;
            let code = match lock(region.as_ptr(), over) {
                Ok(()) => 0,
                Err(Errno::ENOMEM) => 1,
                Err(Errno::EPERM) => 2,
                Err(_) => 3,
            };
            one_page << 4 | code
        },
        || 0,
    )?;
    // ANCHOR_END: rlimit_memlock
    let report = child.report;
    child.release()?;
    let (one_page, over_limit) = (report >> 4 == 1, report & 0xf);
    let outcome = match over_limit {
        0 => "locked",
        1 => "ENOMEM",
        2 => "EPERM",
        8 => "could not map it",
        9 => "could not drop CAP_IPC_LOCK",
        _ => "another error",
    };
    println!(
        "a child without CAP_IPC_LOCK: mlock of one page {}; mlock of {} (the limit plus one page) {}",
        if one_page { "succeeded" } else { "FAILED" },
        kb(over as u64),
        outcome
    );
    finding(
        claim,
        one_page && over_limit == 1,
        format!(
            "one page: {}, limit plus one page: {outcome}",
            if one_page { "locked" } else { "refused" }
        ),
    );
    Ok(())
}
