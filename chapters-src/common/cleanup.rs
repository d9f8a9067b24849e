//! Leave nothing behind, even when interrupted.
//!
//! A shared-memory object or a named semaphore lives in `/dev/shm` until someone unlinks it, and a
//! child lives until someone kills and reaps it. Drop handles the normal path; this module handles
//! SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGPIPE, which would otherwise end the program without
//! running Drop (SIGKILL cannot be caught: see chapter 7).
//!
//! The handler only makes async-signal-safe calls (`kill`, `waitpid`, `unlink`, `signal`, `raise`:
//! see `signal-safety(7)`): no allocation, no locks, no printing. Everything it needs was prepared on
//! the normal path: paths as C strings, pids as integers, stored in fixed slots of atomics. After it
//! has cleaned up, it restores the default action and re-raises the signal, so the parent shell
//! sees the program end "killed by SIGINT", as it would have without us.

use std::ffi::{c_char, CString};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, Ordering};
use std::sync::Once;

const SLOTS: usize = 64;

/// `/dev/shm/...` paths to unlink, owned by the process whose pid is in the matching slot.
static PATHS: [AtomicPtr<c_char>; SLOTS] = [const { AtomicPtr::new(null_mut()) }; SLOTS];
static PATH_OWNERS: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];
/// Children to kill and reap, with the pid of the parent that started each.
static CHILDREN: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];
static CHILD_PARENTS: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];
/// The signal that ends each child: SIGKILL, or SIGTERM for a child that must clean up itself.
static CHILD_SIGNALS: [AtomicI32; SLOTS] = [const { AtomicI32::new(libc::SIGKILL) }; SLOTS];

static INSTALL: Once = Once::new();
static DISABLED: AtomicBool = AtomicBool::new(false);

/// The signals that end a program by default and can be caught. SIGPIPE is among them: Rust
/// ignores it, which turns `program | head` into a panic in `println!`; here it ends the program
/// quietly, as it ends a C program, after cleaning up.
const SIGNALS: [libc::c_int; 5] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGPIPE,
];

/// Remembers an object in `/dev/shm` (its name as given to `shm_open`, e.g. `/vmbook-x`; a named
/// semaphore is `/dev/shm/sem.NAME`) so that an interrupting signal unlinks it. Returns the slot.
pub fn track_path(dev_shm_path: &str) -> Option<usize> {
    install();
    let c = CString::new(dev_shm_path).ok()?.into_raw();
    for (slot, cell) in PATHS.iter().enumerate() {
        if cell
            .compare_exchange(null_mut(), c, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            PATH_OWNERS[slot].store(std::process::id() as i32, Ordering::SeqCst);
            return Some(slot);
        }
    }
    // SAFETY: `c` came from `into_raw` above and was not stored anywhere.
    drop(unsafe { CString::from_raw(c) });
    None
}

/// Forgets a path once it has been unlinked on the normal path.
pub fn untrack_path(slot: Option<usize>) {
    if let Some(slot) = slot {
        let old = PATHS[slot].swap(null_mut(), Ordering::SeqCst);
        if !old.is_null() {
            // SAFETY: every non-null pointer in PATHS came from `CString::into_raw` in track_path,
            // and the swap above removed it, so nobody else frees it.
            drop(unsafe { CString::from_raw(old) });
        }
    }
}

/// Remembers a child so that an interrupting signal kills (SIGKILL) and reaps it.
pub fn track_child(pid: i32) {
    track_child_ending_with(pid, libc::SIGKILL);
}

/// Remembers a child that an interrupting signal ends with `signal` and reaps. SIGTERM is for a
/// child that owns objects of its own (a chapter program run as a child): its own handler unlinks
/// them before it dies, which SIGKILL would not let it do.
///
/// Call it with the cleanup signals blocked (as [`crate::process`] does), so that no handler can
/// run between the moment the child exists and the moment both its pid and its signal are here.
pub fn track_child_ending_with(pid: i32, signal: libc::c_int) {
    install();
    for (slot, cell) in CHILDREN.iter().enumerate() {
        if cell
            .compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            CHILD_SIGNALS[slot].store(signal, Ordering::SeqCst);
            CHILD_PARENTS[slot].store(std::process::id() as i32, Ordering::SeqCst);
            return;
        }
    }
}

/// Forgets a child once it has been reaped.
pub fn untrack_child(pid: i32) {
    for cell in CHILDREN.iter() {
        let _ = cell.compare_exchange(pid, 0, Ordering::SeqCst, Ordering::SeqCst);
    }
}

/// Turns the handler off for programs that demonstrate what happens *without* it (chapter 7).
pub fn disable_signal_cleanup() {
    DISABLED.store(true, Ordering::SeqCst);
    for sig in SIGNALS {
        // SAFETY: restoring the default action is always sound.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// Blocks the cleanup signals until the returned guard is dropped.
///
/// Between `fork` and `track_child` (or `shm_open` and `track_path`) a signal would find the new
/// child or object not yet recorded, and the handler would leave it behind. Blocking the signals
/// for those few instructions makes creating and recording one step: a signal that arrives
/// meanwhile waits, and is handled once the guard drops, with everything recorded.
pub fn block_signals() -> SignalsBlocked {
    // SAFETY: sigset_t is plain data; sigprocmask only changes this thread's signal mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in SIGNALS {
            libc::sigaddset(&mut set, sig);
        }
        libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old);
        SignalsBlocked { old }
    }
}

/// Restores the signal mask that [`block_signals`] replaced.
pub struct SignalsBlocked {
    old: libc::sigset_t,
}

impl SignalsBlocked {
    /// Restores the old mask now; async-signal-safe, so a forked child may call it before `exec`.
    pub fn restore(&self) {
        // SAFETY: sets the mask back to the value sigprocmask reported.
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &self.old, std::ptr::null_mut()) };
    }
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        self.restore();
    }
}

/// Installs the cleanup handler now (the chapter programs' `vmbook::run` does, at start).
pub fn install() {
    if DISABLED.load(Ordering::SeqCst) {
        return;
    }
    INSTALL.call_once(|| {
        for sig in SIGNALS {
            // SAFETY: `on_signal` only makes async-signal-safe calls and touches only atomics.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as *const () as usize;
                libc::sigemptyset(&mut action.sa_mask);
                // Keep the other cleanup signals blocked while one is being handled.
                for other in SIGNALS {
                    libc::sigaddset(&mut action.sa_mask, other);
                }
                libc::sigaction(sig, &action, std::ptr::null_mut());
            }
        }
    });
}

// ANCHOR: handler
/// Unlinks this process's paths and kills and reaps its children; async-signal-safe.
pub fn cleanup_now() {
    // SAFETY: getpid, kill, waitpid and unlink are async-signal-safe; the pointers are C strings
    // leaked by track_path and freed only after being swapped out of their slot.
    unsafe {
        let me = libc::getpid();
        for (slot, cell) in CHILDREN.iter().enumerate() {
            let pid = cell.load(Ordering::SeqCst);
            if pid > 0 && CHILD_PARENTS[slot].load(Ordering::SeqCst) == me {
                libc::kill(pid, CHILD_SIGNALS[slot].load(Ordering::SeqCst));
                libc::waitpid(pid, std::ptr::null_mut(), 0);
                cell.store(0, Ordering::SeqCst);
            }
        }
        for (slot, cell) in PATHS.iter().enumerate() {
            let path = cell.load(Ordering::SeqCst);
            if !path.is_null() && PATH_OWNERS[slot].load(Ordering::SeqCst) == me {
                libc::unlink(path);
            }
        }
    }
}

extern "C" fn on_signal(sig: libc::c_int) {
    cleanup_now();
    // SAFETY: signal and raise are async-signal-safe; re-raising with the default action ends the
    // process the way the signal would have.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}
// ANCHOR_END: handler
