//! Process-shared pthread mutexes, and the way pthread functions report errors.

use anyhow::{Context, Result};
use nix::errno::Errno;

/// pthread functions return an error number instead of setting errno.
pub fn check(rc: libc::c_int, call: &str) -> Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw(rc)).context(call.to_string())
    }
}

/// Process-shared pthread mutexes in shared memory.
///
/// # Safety
///
/// `mutex` points to memory for a `pthread_mutex_t`, writable, in a shared mapping that outlives
/// every use of the mutex, and no process uses that mutex yet.
pub unsafe fn init_mutex(mutex: *mut libc::pthread_mutex_t, robust: bool) -> Result<()> {
    // SAFETY: `attr` is initialized by pthread_mutexattr_init before any other use and destroyed
    // at the end; `mutex` is as the caller promises.
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
        check(
            libc::pthread_mutexattr_init(&mut attr),
            "pthread_mutexattr_init",
        )?;
        check(
            libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED),
            "pthread_mutexattr_setpshared(PTHREAD_PROCESS_SHARED)",
        )?;
        if robust {
            check(
                libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST),
                "pthread_mutexattr_setrobust(PTHREAD_MUTEX_ROBUST)",
            )?;
        }
        let rc = libc::pthread_mutex_init(mutex, &attr);
        libc::pthread_mutexattr_destroy(&mut attr);
        check(rc, "pthread_mutex_init")
    }
}
