//! Sleeping until a 32-bit word in shared memory changes: the Linux futex, process-shared.
//!
//! A futex is an ordinary aligned `u32` in memory plus two system calls (see `futex(2)`):
//! [`wait`] sleeps in the kernel *only if* the word still holds the value the caller expects (the
//! check and the sleep are one atomic step, so a wake-up cannot slip in between), and [`wake`]
//! wakes up to `n` sleepers on that word. Neither call uses `FUTEX_PRIVATE_FLAG`, so the futex is
//! shared: the kernel finds its wait queue by what backs the word, the memory object (the inode of a
//! file or `tmpfs` object, the shmem object of a `MAP_SHARED|MAP_ANONYMOUS` mapping) and the
//! offset in it, not by the virtual address. A wake in one process therefore reaches a waiter in
//! another that maps the same memory at another address. (A private futex is keyed by the address
//! space and the virtual address, which is cheaper and works only within one process.)
//!
//! The word itself is only a hint about whether to sleep; what it means is up to the caller, who
//! changes it with atomic operations *before* calling [`wake`].

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// How a [`wait`] ended. None of these says the condition the caller waits for now holds: check
/// the word again (wake-ups may be spurious, and a signal interrupts the sleep).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// A [`wake`] woke us, or the sleep ended for another reason (EINTR: a signal).
    Woken,
    /// The word did not hold `expected` when the kernel checked it (EAGAIN): no sleep at all.
    Changed,
    /// The timeout passed (ETIMEDOUT).
    TimedOut,
}

/// Sleeps while `word` holds `expected`, at most `timeout` (forever with `None`):
/// `futex(word, FUTEX_WAIT, expected, timeout)`.
pub fn wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> Wait {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let ts_ptr = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call (the kernel only reads
    // it); `ts_ptr` is null or points to a timespec that outlives the call (a relative timeout
    // for FUTEX_WAIT). The remaining arguments are ignored by FUTEX_WAIT.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            ts_ptr,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if r == 0 {
        return Wait::Woken;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) => Wait::Changed,
        Some(libc::ETIMEDOUT) => Wait::TimedOut,
        // EINTR, or anything else: the caller re-checks the word, as after any wake-up.
        _ => Wait::Woken,
    }
}

/// Wakes at most `n` processes (or threads) sleeping in [`wait`] on `word`; returns how many were
/// woken: `futex(word, FUTEX_WAKE, n)`.
pub fn wake(word: &AtomicU32, n: u32) -> usize {
    let n = n.min(i32::MAX as u32);
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE neither reads nor writes it, it only
    // uses its address to find the wait queue. The remaining arguments are ignored.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    r.max(0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    #[test]
    fn wait_returns_at_once_when_the_word_differs() {
        let word = AtomicU32::new(1);
        assert_eq!(wait(&word, 0, Some(Duration::from_secs(5))), Wait::Changed);
    }

    #[test]
    fn wait_times_out() {
        let word = AtomicU32::new(0);
        let start = std::time::Instant::now();
        assert_eq!(
            wait(&word, 0, Some(Duration::from_millis(20))),
            Wait::TimedOut
        );
        assert!(start.elapsed() >= Duration::from_millis(20));
    }

    #[test]
    fn wake_reaches_a_sleeper() {
        let word = Arc::new(AtomicU32::new(0));
        let sleeper = {
            let word = Arc::clone(&word);
            std::thread::spawn(move || {
                while word.load(Ordering::Acquire) == 0 {
                    wait(&word, 0, Some(Duration::from_secs(5)));
                }
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        word.store(1, Ordering::Release);
        wake(&word, 1);
        sleeper.join().unwrap();
        assert_eq!(wake(&word, 1), 0, "nobody is left to wake");
    }
}
