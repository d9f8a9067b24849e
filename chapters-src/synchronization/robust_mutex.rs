//! A robust mutex: its owner is SIGKILLed while holding it; what the next locker gets.

use crate::children::fork_guarded;
use crate::pthread::{check, init_mutex};
use crate::shared::Shared;
use anyhow::{ensure, Context, Result};
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::WaitStatus;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use vmbook::clock::realtime_deadline;
use vmbook::measure::duration;
use vmbook::process::wait_child;
use vmbook::{finding, section};

#[repr(C)]
struct Account {
    mutex: UnsafeCell<libc::pthread_mutex_t>,
    holding: AtomicU32,
    // The invariant the mutex protects: debit == credit.
    debit: AtomicU64,
    credit: AtomicU64,
}

// ANCHOR: owner_dies
/// A child locks the mutex, breaks the invariant half-way through an update, and is SIGKILLed.
fn owner_dies_holding(robust: bool) -> Result<Shared<Account>> {
    let account = Shared::<Account>::new()?;
    // SAFETY: the mutex lives in the new shared page, returned to the caller; no one uses it yet.
    unsafe { init_mutex(account.mutex.get(), robust) }?;
    let child = fork_guarded(|| {
        // SAFETY: the mutex was initialized before fork and lives in the shared mapping.
        unsafe { libc::pthread_mutex_lock(account.mutex.get()) };
        account.debit.fetch_add(100, Ordering::Relaxed); // ... credit is never updated
        account.holding.store(1, Ordering::Release);
        std::thread::sleep(Duration::from_secs(10)); // killed long before this ends
        1
    })?;
    let start = Instant::now();
    while account.holding.load(Ordering::Acquire) == 0 && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_micros(100));
    }
    kill(child, Signal::SIGKILL).context("kill(SIGKILL)")?;
    ensure!(
        matches!(
            wait_child(child)?,
            WaitStatus::Signaled(_, Signal::SIGKILL, _)
        ),
        "the owner was not killed by SIGKILL"
    );
    Ok(account)
}
// ANCHOR_END: owner_dies

/// pthread_mutex_timedlock with a deadline `timeout` from now; returns its error number.
///
/// # Safety
///
/// `mutex` points to an initialized mutex in a mapping that stays mapped during the call.
unsafe fn timed_lock(mutex: *mut libc::pthread_mutex_t, timeout: Duration) -> libc::c_int {
    let until = realtime_deadline(timeout);
    // SAFETY: as the caller promises.
    unsafe { libc::pthread_mutex_timedlock(mutex, until.as_ref()) }
}

fn errno_name(rc: libc::c_int) -> String {
    if rc == 0 {
        "0 (locked)".into()
    } else {
        format!("{:?}", Errno::from_raw(rc))
    }
}

pub fn robust_mutex(timeout_ms: u64) -> Result<()> {
    section("The owner of a mutex is killed while it holds it");
    let timeout = Duration::from_millis(timeout_ms);

    let account = owner_dies_holding(true)?;
    vmbook::pause::here(
        "the mutex's owner was killed and reaped; the mutex still holds its thread id",
        &["ps -o pid,stat,cmd --ppid PID"],
    );
    // ANCHOR: recover
    let m = account.mutex.get();
    // SAFETY (every timed_lock below): each mutex was initialized in a shared page we still hold.
    let rc = unsafe { timed_lock(m, timeout) };
    println!(
        "robust mutex: the next lock (pthread_mutex_timedlock) returns {}",
        errno_name(rc)
    );
    let (debit, credit) = (
        account.debit.load(Ordering::Relaxed),
        account.credit.load(Ordering::Relaxed),
    );
    println!("  the state it protects: debit {debit}, credit {credit} (half-updated)");
    if rc == libc::EOWNERDEAD {
        // Repair: finish the dead owner's update.
        account.credit.store(debit, Ordering::Relaxed);
        // SAFETY: we hold the mutex (EOWNERDEAD means the lock was acquired).
        check(
            unsafe { libc::pthread_mutex_consistent(m) },
            "pthread_mutex_consistent",
        )?;
        // SAFETY: still ours, now consistent.
        check(
            unsafe { libc::pthread_mutex_unlock(m) },
            "pthread_mutex_unlock",
        )?;
        println!("  repaired: credit {debit}; pthread_mutex_consistent, pthread_mutex_unlock");
    }
    let again = unsafe { timed_lock(m, timeout) };
    println!(
        "  the next lock (pthread_mutex_timedlock) returns {}",
        errno_name(again)
    );
    if again == 0 {
        // SAFETY: we hold the mutex.
        unsafe { libc::pthread_mutex_unlock(m) };
    }
    // ANCHOR_END: recover

    let forgotten = owner_dies_holding(true)?;
    let fm = forgotten.mutex.get();
    let first = unsafe { timed_lock(fm, timeout) };
    if first == libc::EOWNERDEAD {
        // SAFETY: we hold it; unlocking without pthread_mutex_consistent is the mistake shown.
        unsafe { libc::pthread_mutex_unlock(fm) };
    }
    let dead = unsafe { timed_lock(fm, timeout) };
    println!(
        "robust mutex, unlocked without pthread_mutex_consistent: the next lock returns {}",
        errno_name(dead)
    );

    let plain = owner_dies_holding(false)?;
    let started = Instant::now();
    let rc_plain = unsafe { timed_lock(plain.mutex.get(), timeout) };
    let waited = started.elapsed();
    println!(
        "plain (non-robust) mutex: pthread_mutex_timedlock returns {} after {}",
        errno_name(rc_plain),
        duration(waited)
    );
    finding(
        "after its owner dies, the next locker of a robust mutex gets EOWNERDEAD",
        rc == libc::EOWNERDEAD,
        format!("pthread_mutex_timedlock returned {}", errno_name(rc)),
    );
    finding(
        "repaired and marked consistent, the mutex works again",
        again == 0,
        format!("the next lock returned {}", errno_name(again)),
    );
    finding(
        "unlocked without pthread_mutex_consistent, it is unusable for good",
        dead == libc::ENOTRECOVERABLE,
        format!("the next lock returned {}", errno_name(dead)),
    );
    finding(
        "a non-robust mutex stays locked by the dead owner: a plain lock would wait forever",
        rc_plain == libc::ETIMEDOUT && waited >= timeout,
        format!(
            "pthread_mutex_timedlock gave up with {} after {timeout_ms} ms",
            errno_name(rc_plain)
        ),
    );
    Ok(())
}
