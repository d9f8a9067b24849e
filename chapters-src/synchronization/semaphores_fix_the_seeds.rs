//! POSIX semaphores: seed 002's race, and seed 003's fix with a named and an unnamed semaphore.

use crate::children::fork_guarded;
use crate::shared::Shared;
use crate::timing::percent;
use anyhow::{ensure, Context, Result};
use nix::errno::Errno;
use std::cell::UnsafeCell;
use std::ffi::CString;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::time::{Duration, Instant};
use vmbook::clock::realtime_deadline;
use vmbook::process::wait_exit_code;
use vmbook::{cleanup, finding, section};

const GREETING: &[u8] = b"Hello, child process!";

#[repr(C)]
struct GreetingPage {
    sem: UnsafeCell<libc::sem_t>,
    started: AtomicU32,
    // Seed 002's buffer, as relaxed atomic bytes: the race stays, undefined behavior does not.
    text: [AtomicU8; 32],
}

// ANCHOR: named_semaphore
/// A named POSIX semaphore (`/dev/shm/sem.NAME`), closed and unlinked when dropped, and unlinked by
/// the cleanup handler if a signal ends the program first.
struct NamedSemaphore {
    sem: *mut libc::sem_t,
    name: CString,
    creator: u32,
    cleanup_slot: Option<usize>,
}

impl NamedSemaphore {
    fn create(value: u32) -> Result<Self> {
        let name = vmbook::shm::unique_name(); // "/vmbook-TAG-PID-N", as for shm objects
        let c_name = CString::new(name.clone())?;
        let dev_shm_path = format!("/dev/shm/sem.{}", &name[1..]);
        // Create and register for cleanup with no signal handled in between.
        let blocked = cleanup::block_signals();
        // SAFETY: c_name is a valid C string; O_CREAT takes two more arguments, mode and value.
        let sem = unsafe {
            libc::sem_open(
                c_name.as_ptr(),
                libc::O_CREAT | libc::O_EXCL,
                0o600 as libc::mode_t,
                value,
            )
        };
        if sem == libc::SEM_FAILED {
            return Err(Errno::last())
                .with_context(|| format!("sem_open({name}, O_CREAT|O_EXCL, 0600, {value})"));
        }
        let cleanup_slot = cleanup::track_path(&dev_shm_path);
        drop(blocked);
        Ok(NamedSemaphore {
            sem,
            name: c_name,
            creator: std::process::id(),
            cleanup_slot,
        })
    }
}

impl Drop for NamedSemaphore {
    fn drop(&mut self) {
        // SAFETY: sem came from sem_open and is closed once, here; the name is a valid C string.
        unsafe {
            libc::sem_close(self.sem);
            if self.creator == std::process::id() {
                libc::sem_unlink(self.name.as_ptr());
                cleanup::untrack_path(self.cleanup_slot.take());
            }
        }
    }
}
// ANCHOR_END: named_semaphore

/// sem_wait with a time limit, so that a dead partner cannot hang us.
///
/// # Safety
///
/// `sem` points to an initialized semaphore (sem_open, or sem_init in a shared mapping) that
/// stays open and mapped during the call.
unsafe fn sem_wait_for(sem: *mut libc::sem_t, timeout: Duration) -> Result<()> {
    let until = realtime_deadline(timeout);
    loop {
        // SAFETY: as the caller promises.
        if unsafe { libc::sem_timedwait(sem, until.as_ref()) } == 0 {
            return Ok(());
        }
        match Errno::last() {
            Errno::EINTR => continue,
            e => return Err(e).context("sem_timedwait"),
        }
    }
}

/// sem_post, its error as a `Result`.
///
/// # Safety
///
/// As for [`sem_wait_for`].
unsafe fn sem_post(sem: *mut libc::sem_t) -> Result<()> {
    // SAFETY: as the caller promises.
    if unsafe { libc::sem_post(sem) } == 0 {
        Ok(())
    } else {
        Err(Errno::last()).context("sem_post")
    }
}

/// 0: the child read the whole greeting; 1: an empty buffer; 2: part of it.
fn read_greeting(page: &GreetingPage) -> i32 {
    let mut got = [0u8; GREETING.len()];
    for (byte, cell) in got.iter_mut().zip(&page.text) {
        *byte = cell.load(Ordering::Relaxed);
    }
    if got == GREETING {
        0
    } else if got.iter().all(|&b| b == 0) {
        1
    } else {
        2
    }
}

// ANCHOR: greeting_run
/// Seed 002: fork, the parent writes the greeting, the child prints it. With `sem`, the child
/// first waits for the parent's sem_post (seed 003's fix). The child reports what it read.
///
/// # Safety
///
/// `sem`, if any, is a semaphore as [`sem_wait_for`] needs, shared with the child (named, or
/// in a shared mapping), and open until the call returns.
unsafe fn greeting_run(
    page: &GreetingPage,
    sem: Option<*mut libc::sem_t>,
    natural: bool,
) -> Result<i32> {
    let child = fork_guarded(|| {
        if !natural {
            std::hint::black_box(read_greeting(page)); // a dry run: take its page faults now
        }
        page.started.store(1, Ordering::Release);
        if let Some(sem) = sem {
            // SAFETY: as greeting_run's caller promises.
            if unsafe { sem_wait_for(sem, Duration::from_secs(5)) }.is_err() {
                return 3;
            }
        }
        read_greeting(page)
    })?;
    // The worst case for seed 002: the child already runs when the parent writes.
    let start = Instant::now();
    while !natural && page.started.load(Ordering::Acquire) == 0 && start.elapsed().as_secs() < 5 {
        std::thread::sleep(Duration::from_micros(20));
    }
    for (cell, &byte) in page.text.iter().zip(GREETING) {
        cell.store(byte, Ordering::Relaxed);
    }
    if let Some(sem) = sem {
        // SAFETY: as greeting_run's caller promises. sem_post releases: what we wrote is
        // visible after the child's sem_wait.
        unsafe { sem_post(sem) }?;
    }
    wait_exit_code(child)
}
// ANCHOR_END: greeting_run

pub fn semaphores_fix_the_seeds(runs: u32, natural: bool) -> Result<()> {
    section("Seed 002: the child prints the greeting its parent writes after fork");
    let page = Shared::<GreetingPage>::new()?;
    let named = NamedSemaphore::create(0)?;
    // SAFETY: the semaphore lives in a shared mapping, initialized once before any fork;
    // pshared = 1 makes it usable from every process that maps the page.
    if unsafe { libc::sem_init(page.sem.get(), 1, 0) } != 0 {
        return Err(Errno::last()).context("sem_init(pshared=1)");
    }
    vmbook::pause::here(
        "the named semaphore exists in /dev/shm; the unnamed one is inside the mapping",
        &["ls -l /dev/shm", "grep -F /dev/zero /proc/PID/maps"],
    );
    if natural {
        println!("{runs} forks per variant; the parent writes as soon as fork returns");
    } else {
        println!("{runs} forks per variant; the parent writes once the child is running");
    }
    let mut counts = Vec::new();
    for (sem, label) in [
        (None, "nothing (seed 002)"),
        (Some(named.sem), "a named semaphore (seed 003's fix)"),
        (Some(page.sem.get()), "an unnamed semaphore in the mapping"),
    ] {
        let mut c = [0u32; 4];
        for _ in 0..runs {
            for cell in &page.text {
                cell.store(0, Ordering::Relaxed);
            }
            page.started.store(0, Ordering::Relaxed);
            // SAFETY: both semaphores were initialized above and live until this function returns.
            let code = unsafe { greeting_run(&page, sem, natural) }?;
            ensure!(code <= 2, "a child timed out waiting on its semaphore");
            c[code as usize] += 1;
        }
        println!(
            "child waits on {label:<37} whole greeting {}, empty {}, partial {}",
            percent(c[0].into(), runs.into()),
            percent(c[1].into(), runs.into()),
            percent(c[2].into(), runs.into())
        );
        counts.push(c);
    }
    // SAFETY: every child has exited; nobody uses the semaphore any more.
    unsafe { libc::sem_destroy(page.sem.get()) };
    drop(named);
    finding(
        "without synchronization, some children read the buffer before the parent wrote it",
        counts[0][0] < runs,
        format!(
            "{} of the {runs} children read no greeting or only part of it",
            percent((runs - counts[0][0]).into(), runs.into())
        ),
    );
    finding(
        "with a named semaphore every child reads the whole greeting",
        counts[1][0] == runs,
        format!("{} of {runs}", counts[1][0]),
    );
    finding(
        "with an unnamed semaphore in the shared mapping every child reads the whole greeting",
        counts[2][0] == runs,
        format!("{} of {runs}", counts[2][0]),
    );
    Ok(())
}
