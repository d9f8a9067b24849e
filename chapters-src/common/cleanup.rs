//! Leave nothing behind, even when interrupted.
//!
//! A shared-memory object or a named semaphore lives in `/dev/shm` until someone unlinks it, and a
//! child lives until someone kills and reaps it. Drop handles the normal path; this module handles
//! SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGPIPE, which would otherwise end the program without
//! running Drop (SIGKILL cannot be caught: see the Cleanup chapter).
//!
//! It also writes back a system setting a program changed for one run (see [`track_restore`]).
//!
//! The handler only makes async-signal-safe calls (`kill`, `waitpid`, `unlink`, `open`, `write`,
//! `close`, `signal`, `raise`:
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
/// Directories to remove with rmdir (a cgroup the program created), after its children are gone.
static DIRS: [AtomicPtr<c_char>; 8] = [const { AtomicPtr::new(null_mut()) }; 8];
static DIR_OWNERS: [AtomicI32; 8] = [const { AtomicI32::new(0) }; 8];
/// Children to kill and reap, with the pid of the parent that started each.
static CHILDREN: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];
static CHILD_PARENTS: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];
/// The signal that ends each child: SIGKILL, or SIGTERM for a child that must clean up itself.
static CHILD_SIGNALS: [AtomicI32; SLOTS] = [const { AtomicI32::new(libc::SIGKILL) }; SLOTS];

/// Files to write a saved value back into (a `/proc/sys` setting changed for one run), and the
/// value, as C strings, owned by the process whose pid is in the matching slot.
static RESTORE_PATHS: [AtomicPtr<c_char>; 4] = [const { AtomicPtr::new(null_mut()) }; 4];
static RESTORE_VALUES: [AtomicPtr<c_char>; 4] = [const { AtomicPtr::new(null_mut()) }; 4];
static RESTORE_OWNERS: [AtomicI32; 4] = [const { AtomicI32::new(0) }; 4];

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

/// Remembers a setting file (`/proc/sys/vm/nr_hugepages`) and the value it held before this run,
/// so that an interrupting signal writes the value back (after ending the tracked children).
/// Returns the slot, for [`untrack_restore`] once the normal path has restored it.
pub fn track_restore(path: &str, value: &str) -> Option<usize> {
    install();
    let path = CString::new(path).ok()?;
    let value = CString::new(value).ok()?;
    for (slot, owner) in RESTORE_OWNERS.iter().enumerate() {
        if owner
            .compare_exchange(0, -1, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            RESTORE_PATHS[slot].store(path.into_raw(), Ordering::SeqCst);
            RESTORE_VALUES[slot].store(value.into_raw(), Ordering::SeqCst);
            owner.store(std::process::id() as i32, Ordering::SeqCst);
            return Some(slot);
        }
    }
    None
}

/// Forgets a setting once the normal path has written its value back.
pub fn untrack_restore(slot: Option<usize>) {
    let Some(slot) = slot else { return };
    if RESTORE_OWNERS[slot].swap(-1, Ordering::SeqCst) <= 0 {
        return;
    }
    for cell in [&RESTORE_PATHS[slot], &RESTORE_VALUES[slot]] {
        let old = cell.swap(null_mut(), Ordering::SeqCst);
        if !old.is_null() {
            // SAFETY: every non-null pointer here came from `CString::into_raw` in track_restore,
            // and the swap above removed it, so nobody else frees it.
            drop(unsafe { CString::from_raw(old) });
        }
    }
    RESTORE_OWNERS[slot].store(0, Ordering::SeqCst);
}

/// Remembers a directory (a cgroup this program created) so that an interrupting signal removes
/// it, once the children have been killed and reaped (a cgroup with a process in it cannot go).
pub fn track_dir(path: &str) -> Option<usize> {
    install();
    let c = CString::new(path).ok()?.into_raw();
    for (slot, cell) in DIRS.iter().enumerate() {
        if cell
            .compare_exchange(null_mut(), c, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            DIR_OWNERS[slot].store(std::process::id() as i32, Ordering::SeqCst);
            return Some(slot);
        }
    }
    // SAFETY: `c` came from `into_raw` above and was not stored anywhere.
    drop(unsafe { CString::from_raw(c) });
    None
}

/// Forgets a directory once it has been removed on the normal path.
pub fn untrack_dir(slot: Option<usize>) {
    if let Some(slot) = slot {
        let old = DIRS[slot].swap(null_mut(), Ordering::SeqCst);
        if !old.is_null() {
            // SAFETY: every non-null pointer in DIRS came from `CString::into_raw` in track_dir,
            // and the swap above removed it, so nobody else frees it.
            drop(unsafe { CString::from_raw(old) });
        }
    }
}

/// Removes an empty directory, retrying for up to about 100 ms while it is busy: a cgroup whose
/// last process was just reaped can stay busy for a moment. Async-signal-safe.
///
/// # Safety
/// `path` must be a valid NUL-terminated C string.
pub unsafe fn rmdir_patiently(path: *const c_char) -> bool {
    for _ in 0..100 {
        // SAFETY: the caller passes a valid C string; rmdir and nanosleep are async-signal-safe.
        unsafe {
            if libc::rmdir(path) == 0 {
                return true;
            }
            if *libc::__errno_location() != libc::EBUSY {
                return false;
            }
            let pause = libc::timespec {
                tv_sec: 0,
                tv_nsec: 1_000_000,
            };
            libc::nanosleep(&pause, null_mut());
        }
    }
    false
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

/// Turns the handler off for programs that demonstrate what happens *without* it (the Cleanup chapter).
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

/// Writes back the settings recorded with [`track_restore`] by process `me`; async-signal-safe
/// (open, write and close are on the list of `signal-safety(7)`).
fn write_back_settings(me: libc::pid_t) {
    // SAFETY: the pointers are C strings leaked by track_restore, freed only after being swapped
    // out of their slot; open, write and close are async-signal-safe.
    unsafe {
        for (slot, owner) in RESTORE_OWNERS.iter().enumerate() {
            let path = RESTORE_PATHS[slot].load(Ordering::SeqCst);
            let value = RESTORE_VALUES[slot].load(Ordering::SeqCst);
            if owner.load(Ordering::SeqCst) == me && !path.is_null() && !value.is_null() {
                let fd = libc::open(path, libc::O_WRONLY);
                if fd >= 0 {
                    let len = std::ffi::CStr::from_ptr(value).to_bytes().len();
                    libc::write(fd, value.cast(), len);
                    libc::close(fd);
                }
            }
        }
    }
}

// ANCHOR: handler
/// Kills and reaps this process's children, unlinks its paths and writes back the settings it
/// changed; async-signal-safe.
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
        for (slot, cell) in DIRS.iter().enumerate() {
            let path = cell.load(Ordering::SeqCst);
            if !path.is_null() && DIR_OWNERS[slot].load(Ordering::SeqCst) == me {
                rmdir_patiently(path);
            }
        }
        write_back_settings(me);
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
