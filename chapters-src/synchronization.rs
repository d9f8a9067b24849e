//! Chapter 6, "Synchronization": the races of seeds 001-003 made visible, then fixed with atomics,
//! a process-shared mutex, a futex, POSIX semaphores and a robust mutex, with their costs measured.

use anyhow::{bail, ensure, Context, Result};
use clap::{Parser, Subcommand};
use nix::errno::Errno;
use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::time::{clock_gettime, ClockId};
use nix::unistd::Pid;
use std::cell::UnsafeCell;
use std::ffi::CString;
use std::io::Write;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};
use vmbook::numbers::{sum_slot_line, LineSlot, DONE, EMPTY, READY};
use vmbook::process::{fork_child, wait_child, wait_exit_code};
use vmbook::{banner, cleanup, finding, futex, section, Mapping, ShmObject};

/// Chapter 6 of the book, "Synchronization": races between processes that share memory, and fixes.
///
/// Each subcommand runs one experiment of the chapter: it makes a race of the seeds happen (lost
/// updates, a flag the optimizer hides, a greeting read too early, a mutex whose owner died) and
/// measures the fixes (atomics, a process-shared mutex, futex wait/wake, POSIX semaphores, a robust
/// mutex). Every wait has a time limit, and nothing is left in /dev/shm, even after Ctrl-C.
#[derive(Parser)]
#[command(version, subcommand_required = true)]
struct Options {
    #[command(subcommand)]
    experiment: Experiment,
    /// Stop at each experiment, print this process's pid and what to inspect, wait for Enter.
    #[arg(long, global = true)]
    pause: bool,
}

#[derive(Subcommand)]
enum Experiment {
    /// Two processes increment one shared counter: plain, AtomicU64::fetch_add, pthread mutex.
    LostUpdates {
        /// Increments per process (more makes the lost updates and the costs steadier).
        #[arg(long, default_value_t = 5_000_000, value_parser = clap::value_parser!(u64).range(1000..=1_000_000_000))]
        increments: u64,
    },
    /// A child waits for a flag set by its parent: plain load, volatile load, Acquire load.
    Flag {
        /// How long the parent lets a waiting child spin before it kills it, in milliseconds.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(10..=10_000))]
        timeout_ms: u64,
    },
    /// Waiting for another process: usleep(1000) polling vs spinning vs futex wait/wake.
    Waiting {
        /// How long the waiter waits each round, in milliseconds.
        #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        wait_ms: u64,
        /// Rounds per method (the medians are reported).
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=1000))]
        rounds: u32,
    },
    /// Seed 002's race and seed 003's fix: a named and an unnamed POSIX semaphore.
    Semaphores {
        /// How many times to fork a reader for each variant.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        runs: u32,
        /// Write the greeting as soon as fork returns, as seed 002 does, instead of waiting until
        /// the child is running: the race is then lost only now and then.
        #[arg(long)]
        natural: bool,
    },
    /// Seed 001's numbers pipeline: the 0/1/2 usleep protocol vs a futex ring of slots.
    Pipeline {
        /// How many lines the parent sends.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        lines: u64,
        /// Slots in the futex ring.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
        slots: u32,
    },
    /// A mutex owner is SIGKILLed: a robust mutex reports EOWNERDEAD, a plain one never frees.
    Robust {
        /// How long the next locker of the plain mutex waits before it gives up, in milliseconds.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        timeout_ms: u64,
    },
}

fn main() -> std::process::ExitCode {
    let options = Options::parse();
    vmbook::pause::enable(options.pause);
    vmbook::run(|| {
        banner();
        match options.experiment {
            Experiment::LostUpdates { increments } => lost_updates(increments),
            Experiment::Flag { timeout_ms } => plain_flag_is_not_enough(timeout_ms),
            Experiment::Waiting { wait_ms, rounds } => cost_of_waiting(wait_ms, rounds),
            Experiment::Semaphores { runs, natural } => semaphores_fix_the_seeds(runs, natural),
            Experiment::Pipeline { lines, slots } => pipeline_fixed(lines, slots),
            Experiment::Robust { timeout_ms } => robust_mutex(timeout_ms),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Small tools: a typed view of a shared mapping, clocks, formatting, pthread error codes.

/// A `T` at the start of a fresh `MAP_SHARED | MAP_ANONYMOUS` mapping, visible to forked children.
struct Shared<T> {
    map: Mapping,
    _t: PhantomData<T>,
}

impl<T> Shared<T> {
    /// Maps zeroed shared memory for a `T`. Only used with `repr(C)` types made of atomics,
    /// integers and libc's pthread/semaphore types, for which all-zero bytes are a valid value.
    fn new() -> Result<Self> {
        let len = std::mem::size_of::<T>().max(vmbook::procinfo::page_size());
        Ok(Shared {
            map: Mapping::shared(len)?,
            _t: PhantomData,
        })
    }
}

impl<T> std::ops::Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the mapping is page-aligned, at least size_of::<T>() long, lives as long as self,
        // and holds a valid T (zeroed; see `new`). Processes share it only through atomics,
        // pthread/semaphore calls, or the deliberately racy volatile accesses the chapter shows.
        unsafe { &*(self.map.as_ptr() as *const T) }
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the same clock in every process, so a timestamp taken in one
/// process can be compared with one taken in another.
fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC exists on Linux");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// CPU time (user + system) this process has used so far, from getrusage(RUSAGE_SELF).
fn cpu_ns() -> u64 {
    let usage = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage(RUSAGE_SELF) cannot fail");
    let ns =
        |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000_000 + t.tv_usec() as u64 * 1000;
    ns(usage.user_time()) + ns(usage.system_time())
}

/// A time in the unit that suits it: `850 ns`, `12.3 µs`, `4.56 ms`.
fn time(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

fn ratio(a: f64, b: f64) -> String {
    format!("{:.1}×", a / b.max(1.0))
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// pthread functions return an error number instead of setting errno.
fn check(rc: libc::c_int, call: &str) -> Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::from_raw(rc)).context(call.to_string())
    }
}

/// An absolute CLOCK_REALTIME deadline `d` from now, as sem_timedwait and pthread_mutex_timedlock
/// want it.
fn deadline(d: Duration) -> libc::timespec {
    let now = clock_gettime(ClockId::CLOCK_REALTIME).expect("CLOCK_REALTIME exists on Linux");
    let ns = now.tv_nsec() as u64 + d.subsec_nanos() as u64;
    libc::timespec {
        tv_sec: now.tv_sec() + d.as_secs() as libc::time_t + (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    }
}

/// Waits up to `timeout` for a child to exit; kills (SIGKILL) and reaps it if it has not.
/// Returns how it ended by itself, or `None` when it had to be killed.
fn wait_or_kill(pid: Pid, timeout: Duration) -> Result<Option<WaitStatus>> {
    let start = Instant::now();
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)).with_context(|| format!("waitpid({pid})"))? {
            WaitStatus::StillAlive => {}
            status => {
                cleanup::untrack_child(pid.as_raw());
                return Ok(Some(status));
            }
        }
        if start.elapsed() >= timeout {
            kill(pid, Signal::SIGKILL).with_context(|| format!("kill({pid}, SIGKILL)"))?;
            wait_child(pid)?;
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs `f` with SIGINT, SIGTERM, SIGHUP and SIGQUIT held back, so that the cleanup handler never
/// runs between creating something (a child, a named semaphore) and registering it for cleanup;
/// a signal that arrives meanwhile is delivered when `f` returns.
fn signals_held<T>(f: impl FnOnce() -> T) -> Result<T> {
    let mut held = SigSet::empty();
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        held.add(sig);
    }
    let old = held
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .context("sigprocmask")?;
    let result = f();
    old.thread_set_mask().context("sigprocmask")?;
    Ok(result)
}

/// fork_child, registered for cleanup before any signal can be handled, and a child that dies
/// with its parent (PR_SET_PDEATHSIG) even if the parent is killed with SIGKILL.
fn fork_guarded(child: impl FnOnce() -> i32) -> Result<Pid> {
    let parent = nix::unistd::getpid();
    signals_held(|| {
        fork_child(|| {
            let _ = SigSet::empty().thread_set_mask();
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            if nix::unistd::getppid() != parent {
                return 1; // the parent died before the line above
            }
            child()
        })
    })?
}

/// Reaps every child in `children`, in the order they end; once one has failed, kills the others
/// (they might wait for it), reaps them too, then reports the failure.
fn wait_all(children: &[Pid]) -> Result<()> {
    let mut running = children.to_vec();
    let mut failed = None;
    while !running.is_empty() {
        let status = waitpid(Pid::from_raw(-1), None).context("waitpid")?;
        if let Some(pid) = status.pid() {
            cleanup::untrack_child(pid.as_raw());
            running.retain(|&p| p != pid);
        }
        if failed.is_none() && !matches!(status, WaitStatus::Exited(_, 0)) {
            failed = Some(status);
            for &other in &running {
                let _ = kill(other, Signal::SIGKILL);
            }
        }
    }
    match failed {
        None => Ok(()),
        Some(WaitStatus::Signaled(_, sig, _)) => bail!("a child was killed by {sig}"),
        Some(other) => bail!("a child failed: {other:?}"),
    }
}

/// Waits (sleeping briefly) until a child has set `word`; an error if the child ended first, or
/// took more than 5 seconds.
fn until_set(word: &AtomicU32, child: Pid) -> Result<()> {
    let start = Instant::now();
    while word.load(Ordering::Acquire) == 0 {
        ensure!(
            !exited(child) && start.elapsed() < Duration::from_secs(5),
            "the child stopped before it was ready"
        );
        std::thread::sleep(Duration::from_micros(50));
    }
    Ok(())
}

/// Process-shared pthread mutexes in shared memory.
fn init_mutex(mutex: *mut libc::pthread_mutex_t, robust: bool) -> Result<()> {
    // SAFETY: `attr` is initialized by pthread_mutexattr_init before any other use and destroyed
    // at the end; `mutex` points into a live shared mapping that no process uses yet.
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

// ---------------------------------------------------------------------------------------------
// Lost updates.

// ANCHOR: counter_page
#[repr(C)]
struct CounterPage {
    count: AtomicU64,
    mutex: UnsafeCell<libc::pthread_mutex_t>,
    ready: AtomicU32, // children at the starting line
    go: AtomicU32,    // the parent's starting shot
    added: [AtomicU64; 2],
    loop_ns: [AtomicU64; 2],
}

#[derive(Clone, Copy, PartialEq)]
enum Increment {
    Plain,
    FetchAdd,
    Mutex,
}

fn add_one(page: &CounterPage, how: Increment) {
    let count = page.count.as_ptr();
    match how {
        // SAFETY (all three): `count` and `mutex` point into the shared page, valid while `page`
        // lives. The plain case races on purpose: that is the experiment.
        Increment::Plain => unsafe { count.write_volatile(count.read_volatile() + 1) },
        Increment::FetchAdd => {
            page.count.fetch_add(1, Ordering::Relaxed);
        }
        Increment::Mutex => unsafe {
            libc::pthread_mutex_lock(page.mutex.get());
            count.write_volatile(count.read_volatile() + 1);
            libc::pthread_mutex_unlock(page.mutex.get());
        },
    }
}
// ANCHOR_END: counter_page

// ANCHOR: overlap
/// Child `me` adds 1 at least `n` times, and goes on until the other child has added `n / 2`: on a
/// busy machine one child could otherwise finish before the other was even scheduled.
fn increment_while_the_other_does(page: &CounterPage, how: Increment, n: u64, me: usize) {
    let start = Instant::now();
    let mut added = 0;
    while added < n || page.added[1 - me].load(Ordering::Relaxed) < n / 2 {
        for _ in 0..1000 {
            add_one(page, how);
        }
        added += 1000;
        page.added[me].store(added, Ordering::Relaxed);
        if start.elapsed() > Duration::from_secs(5) {
            break; // the other child is gone: stop anyway
        }
    }
}
// ANCHOR_END: overlap

/// Two children increment at once; returns (final count, increments made, ns per increment).
fn race_two_children(how: Increment, n: u64) -> Result<(u64, u64, f64)> {
    let page = Shared::<CounterPage>::new()?;
    init_mutex(page.mutex.get(), false)?;
    let mut children = Vec::new();
    for me in 0..2 {
        let page = &page;
        children.push(fork_guarded(move || {
            page.ready.fetch_add(1, Ordering::AcqRel);
            while page.go.load(Ordering::Acquire) == 0 {
                std::hint::spin_loop();
            }
            let start = now_ns();
            increment_while_the_other_does(page, how, n, me);
            page.loop_ns[me].store(now_ns() - start, Ordering::Release);
            0
        })?);
    }
    // Both children at the starting line, then go.
    let started = Instant::now();
    while page.ready.load(Ordering::Acquire) < 2 && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_micros(100));
    }
    page.go.store(1, Ordering::Release);
    wait_all(&children)?;
    let added: Vec<u64> = page
        .added
        .iter()
        .map(|a| a.load(Ordering::Acquire))
        .collect();
    let ns: Vec<u64> = page
        .loop_ns
        .iter()
        .map(|t| t.load(Ordering::Acquire))
        .collect();
    // Each child's time per increment, averaged over the two.
    let per_increment = (ns[0] as f64 / added[0] as f64 + ns[1] as f64 / added[1] as f64) / 2.0;
    // SAFETY: both children have exited; nobody holds the mutex.
    unsafe { libc::pthread_mutex_destroy(page.mutex.get()) };
    Ok((
        page.count.load(Ordering::Acquire),
        added[0] + added[1],
        per_increment,
    ))
}

fn lost_updates(n: u64) -> Result<()> {
    section("Two processes, one counter in a MAP_SHARED page, each adding 1");
    println!(
        "each process adds 1 at least {n} times, and until the other has added {}",
        n / 2
    );
    let mut results = Vec::new();
    for (how, label) in [
        (Increment::Plain, "plain read + write (volatile)"),
        (Increment::FetchAdd, "AtomicU64::fetch_add"),
        (Increment::Mutex, "pthread mutex (process-shared)"),
    ] {
        let (got, made, ns) = race_two_children(how, n)?;
        results.push((got, made, ns));
        // Values that vary are never padded: the redacted output must not depend on their width.
        println!(
            "{label:<32} {} of ~{made} increments counted, {} per increment ({} the plain one)",
            if got == made {
                "all".to_string()
            } else {
                format!("~{got}")
            },
            time(ns),
            ratio(ns, results[0].2)
        );
    }
    vmbook::pause::here(
        "the three races are over; the counters are gone",
        &["cat /proc/PID/maps"],
    );
    let (plain, atomic, mutex) = (results[0], results[1], results[2]);
    finding(
        "plain increments from two processes lose updates",
        plain.0 < plain.1,
        format!(
            "~{} of ~{} increments lost",
            plain.1 - plain.0.min(plain.1),
            plain.1
        ),
    );
    finding(
        "fetch_add loses none",
        atomic.0 == atomic.1,
        format!("{} lost", atomic.1 - atomic.0.min(atomic.1)),
    );
    finding(
        "a process-shared pthread mutex loses none",
        mutex.0 == mutex.1,
        format!("{} lost", mutex.1 - mutex.0.min(mutex.1)),
    );
    finding(
        "the mutex costs more per increment than fetch_add",
        mutex.2 > atomic.2,
        format!("{} vs {}", time(mutex.2), time(atomic.2)),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Why a plain flag is not enough.

#[repr(C)]
struct FlagPage {
    flag: AtomicU32,
    waiting: AtomicU32,
    data: AtomicU64,
}

// ANCHOR: wait_plain
/// Seed 001's loop, `while (shared->data_ready == 0) ;`, as an ordinary (non-atomic) load.
/// Another process writes the flag, which is a data race: undefined behavior in C and in Rust. The
/// optimizer assumes nobody else writes it, so it may load it once, before the loop.
#[inline(never)]
fn wait_plain(flag: *const u32) {
    // SAFETY: not sound, deliberately: this is the bug the experiment shows.
    while unsafe { flag.read() } == 0 {}
}

/// The same loop with a volatile load: the compiler must load the flag every time round.
#[inline(never)]
fn wait_volatile(flag: *const u32) {
    // SAFETY: `flag` points into the shared page; a volatile load is still a race, but the compiler
    // keeps it.
    while unsafe { flag.read_volatile() } == 0 {}
}

/// The fix: an atomic load with Acquire ordering, paired with the writer's Release store.
#[inline(never)]
fn wait_acquire(flag: &AtomicU32) {
    while flag.load(Ordering::Acquire) == 0 {}
}
// ANCHOR_END: wait_plain

#[derive(Clone, Copy, PartialEq)]
enum Load {
    Plain,
    Volatile,
    Acquire,
}

/// Forks a child that waits for the flag with `load`, then checks the data published with it.
/// Returns whether the child saw the flag (and the right data) before the timeout.
fn one_flag_run(load: Load, timeout: Duration) -> Result<(bool, bool)> {
    let page = Shared::<FlagPage>::new()?;
    let child = fork_guarded(|| {
        page.waiting.store(1, Ordering::Release);
        match load {
            Load::Plain => wait_plain(page.flag.as_ptr()),
            Load::Volatile => wait_volatile(page.flag.as_ptr()),
            Load::Acquire => wait_acquire(&page.flag),
        }
        // Exit code 0: the data written before the flag was there when the flag was seen.
        i32::from(page.data.load(Ordering::Acquire) != 42)
    })?;
    // ANCHOR: publish
    until_set(&page.waiting, child)?;
    std::thread::sleep(Duration::from_millis(5)); // the child is in its loop by now

    // The payload, then the flag that publishes it: whoever sees the 1 with an Acquire load
    // also sees everything this process wrote before its Release store.
    page.data.store(42, Ordering::Relaxed);
    page.flag.store(1, Ordering::Release);
    // ANCHOR_END: publish
    if load == Load::Plain {
        vmbook::pause::here(
            "the flag is 1 in shared memory, yet the child still spins (state R, CPU time growing)",
            &["ps -o pid,stat,time,cmd --ppid PID"],
        );
    }
    Ok(match wait_or_kill(child, timeout)? {
        Some(WaitStatus::Exited(_, code)) => (true, code == 0),
        Some(WaitStatus::Signaled(_, sig, _)) => bail!("the waiting child was killed by {sig}"),
        Some(other) => bail!("the waiting child ended unexpectedly: {other:?}"),
        None => (false, false),
    })
}

fn plain_flag_is_not_enough(timeout_ms: u64) -> Result<()> {
    section("A child spins until its parent sets a flag in shared memory");
    let timeout = Duration::from_millis(timeout_ms);
    println!("the parent sets the flag 5 ms after the child starts waiting, and kills the child");
    println!("if it is still spinning {timeout_ms} ms later");
    let mut seen = Vec::new();
    for (load, label) in [
        (Load::Plain, "plain load (seed 001's int flag)"),
        (Load::Volatile, "volatile load (seed 001's advice)"),
        (Load::Acquire, "atomic Acquire load"),
    ] {
        let (saw, data_ok) = one_flag_run(load, timeout)?;
        let outcome = match (saw, data_ok) {
            (false, _) => format!("still spinning after {timeout_ms} ms: killed"),
            (true, true) => "saw the flag, and the data written before it".to_string(),
            (true, false) => "saw the flag, but NOT the data written before it".to_string(),
        };
        println!("{label:<36} {outcome}");
        seen.push((saw, data_ok));
    }
    finding(
        "with a plain load the optimizer hoists the flag out of the loop: the waiter never sees it change",
        !seen[0].0,
        format!("plain-load waiter still spinning after {timeout_ms} ms"),
    );
    finding(
        "a volatile load sees the flag change",
        seen[1].0,
        "the volatile-load waiter exited",
    );
    finding(
        "an Acquire load sees the flag and the data the Release store published",
        seen[2] == (true, true),
        "the Acquire waiter exited and read 42",
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The cost of waiting.

#[repr(C)]
struct WaitPage {
    flag: AtomicU32,
    waiting: AtomicU32,
    set_at: AtomicU64,
    seen_at: AtomicU64,
    waited_ns: AtomicU64,
    cpu_ns: AtomicU64,
}

#[derive(Clone, Copy, PartialEq)]
enum Waiter {
    Poll,
    Spin,
    Futex,
}

// ANCHOR: waiters
/// Waits until `flag` is 1 (giving up after `limit`); the three ways of the chapter.
fn wait_for(flag: &AtomicU32, how: Waiter, limit: Duration) -> bool {
    let start = Instant::now();
    while flag.load(Ordering::Acquire) == 0 {
        if start.elapsed() > limit {
            return false;
        }
        match how {
            // Seed 001: check, sleep 1 ms, check again.
            Waiter::Poll => std::thread::sleep(Duration::from_micros(1000)),
            // Check again at once: the core never rests.
            Waiter::Spin => std::hint::spin_loop(),
            // Sleep in the kernel until someone calls futex::wake on this word, but only if it
            // still holds 0 (checked atomically by the kernel, so no wake-up can be missed).
            Waiter::Futex => {
                futex::wait(flag, 0, Some(limit));
            }
        }
    }
    true
}

/// The other side: publish with a Release store; only a futex waiter needs a wake-up call.
fn set_flag(flag: &AtomicU32, how: Waiter) {
    flag.store(1, Ordering::Release);
    if how == Waiter::Futex {
        futex::wake(flag, 1);
    }
}
// ANCHOR_END: waiters

/// One round: a child waits `wait` for the parent's flag; returns (latency, waited, cpu) in ns.
fn one_wait(how: Waiter, wait: Duration) -> Result<(u64, u64, u64)> {
    let page = Shared::<WaitPage>::new()?;
    let limit = wait + Duration::from_secs(2);
    let child = fork_guarded(|| {
        // Take the copy-on-write faults of a fresh child (its stack) before measuring.
        std::hint::black_box([1u8; 16 << 10]);
        let cpu0 = cpu_ns();
        let t0 = now_ns();
        page.waiting.store(1, Ordering::Release);
        if !wait_for(&page.flag, how, limit) {
            return 1;
        }
        let seen = now_ns();
        page.seen_at.store(seen, Ordering::Relaxed);
        page.waited_ns.store(seen - t0, Ordering::Relaxed);
        page.cpu_ns.store(cpu_ns() - cpu0, Ordering::Release);
        0
    })?;
    until_set(&page.waiting, child)?;
    std::thread::sleep(wait);
    page.set_at.store(now_ns(), Ordering::Relaxed);
    set_flag(&page.flag, how);
    ensure!(wait_exit_code(child)? == 0, "the waiting child gave up");
    let latency = page
        .seen_at
        .load(Ordering::Acquire)
        .saturating_sub(page.set_at.load(Ordering::Acquire));
    Ok((
        latency,
        page.waited_ns.load(Ordering::Acquire),
        page.cpu_ns.load(Ordering::Acquire),
    ))
}

fn cost_of_waiting(wait_ms: u64, rounds: u32) -> Result<()> {
    section("A child waits for its parent's flag: three ways to wait");
    let wait = Duration::from_millis(wait_ms);
    println!("the parent sets the flag {wait_ms} ms after the child starts waiting; {rounds} rounds each, medians");
    let mut rows = Vec::new();
    for (how, label) in [
        (Waiter::Poll, "usleep(1000) polling"),
        (Waiter::Spin, "spinning"),
        (Waiter::Futex, "futex wait/wake"),
    ] {
        let mut samples = Vec::new();
        for _ in 0..rounds {
            samples.push(one_wait(how, wait)?);
        }
        let latency = median(samples.iter().map(|s| s.0).collect());
        let cpu = median(samples.iter().map(|s| s.2).collect());
        let waited = median(samples.iter().map(|s| s.1).collect());
        let per_second = cpu as f64 / waited.max(1) as f64 * 1e9;
        println!(
            "{label:<22} woke up {} after the flag was set; burned {} of CPU ({} per second of waiting)",
            time(latency as f64),
            time(cpu as f64),
            time(per_second)
        );
        rows.push((latency, cpu, waited));
    }
    let (poll, spin, fx) = (rows[0], rows[1], rows[2]);
    println!(
        "in this run: polling woke up after {} the futex's time and burned {} its CPU; spinning burned {} the CPU of polling",
        ratio(poll.0 as f64, fx.0 as f64),
        ratio(poll.1 as f64, fx.1 as f64),
        ratio(spin.1 as f64, poll.1 as f64),
    );
    // Wake-up times are printed, not claimed: when other programs keep both cores busy, every
    // waiter waits for a core after its wake-up, and that wait swamps the difference. CPU time is
    // what the waiter itself used, and keeps its order on a busy machine.
    finding(
        "a spinner burns the most CPU while it waits, a 1 ms poller less, a futex waiter the least",
        fx.1 < poll.1 && poll.1 * 5 < spin.1,
        format!(
            "{} < {} < {}",
            time(fx.1 as f64),
            time(poll.1 as f64),
            time(spin.1 as f64)
        ),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// POSIX semaphores: seed 002's race, seed 003's fix.

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
        let (sem, cleanup_slot) = signals_held(|| {
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
                return Err(Errno::last());
            }
            Ok((sem, cleanup::track_path(&dev_shm_path)))
        })?
        .with_context(|| format!("sem_open({name}, O_CREAT|O_EXCL, 0600, {value})"))?;
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
fn sem_wait_for(sem: *mut libc::sem_t, timeout: Duration) -> Result<()> {
    let until = deadline(timeout);
    loop {
        // SAFETY: sem points to an initialized semaphore (sem_open, or sem_init in a live mapping).
        if unsafe { libc::sem_timedwait(sem, &until) } == 0 {
            return Ok(());
        }
        match Errno::last() {
            Errno::EINTR => continue,
            e => return Err(e).context("sem_timedwait"),
        }
    }
}

fn sem_post(sem: *mut libc::sem_t) -> Result<()> {
    // SAFETY: as in sem_wait_for.
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
fn greeting_run(page: &GreetingPage, sem: Option<*mut libc::sem_t>, natural: bool) -> Result<i32> {
    let child = fork_guarded(|| {
        if !natural {
            std::hint::black_box(read_greeting(page)); // a dry run: take its page faults now
        }
        page.started.store(1, Ordering::Release);
        if let Some(sem) = sem {
            if sem_wait_for(sem, Duration::from_secs(5)).is_err() {
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
        sem_post(sem)?; // sem_post releases: what we wrote is visible after the child's sem_wait
    }
    wait_exit_code(child)
}
// ANCHOR_END: greeting_run

fn semaphores_fix_the_seeds(runs: u32, natural: bool) -> Result<()> {
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
            let code = greeting_run(&page, sem, natural)?;
            ensure!(code <= 2, "a child timed out waiting on its semaphore");
            c[code as usize] += 1;
        }
        println!(
            "child waits on {label:<37} whole greeting ~{}, empty ~{}, partial ~{}",
            c[0], c[1], c[2]
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
            "~{} of {runs} read no greeting or part of it",
            runs - counts[0][0]
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

// ---------------------------------------------------------------------------------------------
// The numbers pipeline, fixed.

/// The page before the slots: when the line in each slot was ready to send, what the child measured.
#[repr(C)]
struct PipeHeader {
    ready_at: [AtomicU64; 64],
    median_latency: AtomicU64,
    child_cpu: AtomicU64,
}

/// Line `i` of the input the parent sends: numbers, and now and then a bad or an empty line.
fn input_line(i: u64) -> String {
    if i % 25 == 0 {
        format!("{i} x {i}")
    } else if i % 40 == 0 {
        String::new()
    } else {
        (i..i + i % 7 + 1)
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn slots_of(shm: &ShmObject, slots: usize) -> Result<(&PipeHeader, Vec<&LineSlot>)> {
    // SAFETY: the object is (1 + slots) pages long and lives as long as `shm`; the header page is
    // all atomics, and every process uses the slots through LineSlot only.
    let header = unsafe { &*(shm.as_ptr() as *const PipeHeader) };
    let mut v = Vec::new();
    for i in 0..slots {
        // SAFETY: as above; page i + 1 of the object.
        v.push(unsafe { LineSlot::at(shm.as_ptr().add(4096 * (i + 1)), 4096)? });
    }
    Ok((header, v))
}

/// Wait until `cond(word)` holds: seed 001's way (usleep 1 ms) or with the futex on that word.
fn wait_until(
    word: &AtomicU32,
    futex_wait: bool,
    partner: Option<Pid>,
    cond: impl Fn(u32) -> bool,
) -> Result<u32> {
    let start = Instant::now();
    let mut checked = Instant::now();
    loop {
        let now = word.load(Ordering::Acquire);
        if cond(now) {
            return Ok(now);
        }
        // Every 20 ms, make sure the other side still exists (a child can be SIGKILLed).
        if checked.elapsed() > Duration::from_millis(20) {
            checked = Instant::now();
            ensure!(
                start.elapsed() < Duration::from_secs(5) && !partner.is_some_and(exited),
                "the other side of the pipeline stopped"
            );
        }
        if futex_wait {
            futex::wait(word, now, Some(Duration::from_millis(20)));
        } else {
            std::thread::sleep(Duration::from_micros(1000));
        }
    }
}

/// Whether a child has ended, without reaping it (waitid with WNOWAIT).
fn exited(pid: Pid) -> bool {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    matches!(
        waitid(Id::Pid(pid), flags),
        Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..))
    )
}

// ANCHOR: ring
/// The parent's side: each line goes into the next slot of the ring once the child has emptied it.
fn send_lines(
    slots: &[&LineSlot],
    header: &PipeHeader,
    lines: u64,
    futex_wait: bool,
    child: Pid,
) -> Result<()> {
    for i in 1..=lines {
        let line = input_line(i);
        let ready_at = now_ns(); // the line is ready; its latency starts now
        let slot = slots[(i as usize - 1) % slots.len()];
        wait_until(&slot.state, futex_wait, Some(child), |s| s == EMPTY)?;
        slot.put(i, line.as_bytes(), line.len());
        header.ready_at[(i as usize - 1) % slots.len()].store(ready_at, Ordering::Relaxed);
        slot.state.store(READY, Ordering::Release); // publish the line ...
        if futex_wait {
            futex::wake(&slot.state, 1); // ... and wake the child if it sleeps on this slot
        }
    }
    let last = slots[lines as usize % slots.len()];
    wait_until(&last.state, futex_wait, Some(child), |s| s == EMPTY)?;
    last.state.store(DONE, Ordering::Release);
    if futex_wait {
        futex::wake(&last.state, 1);
    }
    Ok(())
}

/// The child's side: take each line from the next slot, hand the slot back, then sum the line.
fn sum_lines(
    slots: &[&LineSlot],
    header: &PipeHeader,
    futex_wait: bool,
    out: &mut impl Write,
) -> Result<Vec<u64>> {
    let mut latencies = Vec::new();
    let mut text = Vec::new();
    for i in 0.. {
        let slot = slots[i % slots.len()];
        if wait_until(&slot.state, futex_wait, None, |s| s != EMPTY)? == DONE {
            break;
        }
        let (line_no, len) = slot.take(&mut text);
        latencies.push(
            now_ns().saturating_sub(header.ready_at[i % slots.len()].load(Ordering::Relaxed)),
        );
        slot.state.store(EMPTY, Ordering::Release); // the slot is free again ...
        if futex_wait {
            futex::wake(&slot.state, 1); // ... tell the parent, if it waits for it
        }
        match sum_slot_line(&text, len, 1024) {
            Ok(s) => writeln!(out, "line {line_no}: sum {} of {} numbers", s.sum, s.count)?,
            Err(e) => writeln!(out, "line {line_no}: bad line: {e}")?,
        }
    }
    Ok(latencies)
}
// ANCHOR_END: ring

/// Runs the pipeline once; returns (results file, wall ns, CPU ns of both sides, median latency).
fn run_pipeline(lines: u64, slots: usize, futex_wait: bool) -> Result<(Vec<u8>, u64, u64, u64)> {
    let shm = ShmObject::create(4096 * (1 + slots))?;
    let (header, ring) = slots_of(&shm, slots)?;
    let path = std::env::temp_dir().join(format!("{}.txt", &vmbook::shm::unique_name()[1..]));
    let slot = cleanup::track_path(&path.to_string_lossy());
    vmbook::pause::here(
        "the pipeline's shared-memory object exists; the child is not forked yet",
        &["ls -l /dev/shm", "grep vmbook /proc/PID/maps"],
    );
    let start = (now_ns(), cpu_ns());
    let child = fork_guarded(|| {
        let cpu0 = cpu_ns();
        let run = || -> Result<Vec<u64>> {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
            let latencies = sum_lines(&ring, header, futex_wait, &mut out)?;
            out.flush()?;
            Ok(latencies)
        };
        match run() {
            Ok(latencies) if !latencies.is_empty() => {
                header
                    .median_latency
                    .store(median(latencies), Ordering::Relaxed);
                header.child_cpu.store(cpu_ns() - cpu0, Ordering::Release);
                0
            }
            _ => 1,
        }
    })?;
    let sent = send_lines(&ring, header, lines, futex_wait, child);
    let ended = wait_child(child);
    let (wall, parent_cpu) = (now_ns() - start.0, cpu_ns() - start.1);
    let results = std::fs::read(&path).with_context(|| format!("read {}", path.display()));
    let _ = std::fs::remove_file(&path);
    cleanup::untrack_path(slot);
    match ended? {
        WaitStatus::Exited(_, 0) => sent?,
        WaitStatus::Signaled(_, sig, _) => bail!("the summing child was killed by {sig}"),
        other => bail!("the summing child failed: {other:?}"),
    }
    let cpu = parent_cpu + header.child_cpu.load(Ordering::Acquire);
    Ok((
        results?,
        wall,
        cpu,
        header.median_latency.load(Ordering::Acquire),
    ))
}

fn pipeline_fixed(lines: u64, slots: u32) -> Result<()> {
    section("Seed 001's numbers pipeline: the parent sends lines, the child sums each one");
    let slots = slots as usize;
    println!(
        "{lines} lines through POSIX shared memory; the child writes one result per line to a file"
    );
    let (poll_out, poll_wall, poll_cpu, poll_lat) = run_pipeline(lines, 1, false)?;
    let (fx_out, fx_wall, fx_cpu, fx_lat) = run_pipeline(lines, slots, true)?;
    println!(
        "{:<44} total {}, CPU {}, line latency {} (median)",
        "one slot, 0/1/2 flag, usleep(1000) polling",
        time(poll_wall as f64),
        time(poll_cpu as f64),
        time(poll_lat as f64)
    );
    println!(
        "{:<44} total {}, CPU {}, line latency {} (median)",
        format!("ring of {slots} slots, futex wait/wake"),
        time(fx_wall as f64),
        time(fx_cpu as f64),
        time(fx_lat as f64)
    );
    println!(
        "the futex ring is {} faster, uses {} less CPU time, and a line reaches the child {} sooner",
        ratio(poll_wall as f64, fx_wall as f64),
        ratio(poll_cpu as f64, fx_cpu as f64),
        ratio(poll_lat as f64, fx_lat as f64)
    );
    let text = String::from_utf8_lossy(&fx_out);
    println!("the results file begins:");
    for line in text.lines().take(3) {
        println!("    {line}");
    }
    let bad = text.lines().filter(|l| l.contains("bad line")).count();
    finding(
        "both handshakes write the same results file, one line per input line",
        poll_out == fx_out && text.lines().count() as u64 == lines,
        format!(
            "{} lines, {bad} of them bad input, identical",
            text.lines().count()
        ),
    );
    finding(
        "with the futex ring a line reaches the child far sooner than with 1 ms polling",
        fx_lat * 3 < poll_lat,
        format!(
            "median {} vs {}",
            time(fx_lat as f64),
            time(poll_lat as f64)
        ),
    );
    finding(
        "the futex ring needs less CPU time for the same lines",
        fx_cpu < poll_cpu,
        format!("{} vs {}", time(fx_cpu as f64), time(poll_cpu as f64)),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// A robust mutex.

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
    init_mutex(account.mutex.get(), robust)?;
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

fn timed_lock(mutex: *mut libc::pthread_mutex_t, timeout: Duration) -> libc::c_int {
    let until = deadline(timeout);
    // SAFETY: mutex points to an initialized mutex in a live mapping.
    unsafe { libc::pthread_mutex_timedlock(mutex, &until) }
}

fn errno_name(rc: libc::c_int) -> String {
    if rc == 0 {
        "0 (locked)".into()
    } else {
        format!("{:?}", Errno::from_raw(rc))
    }
}

fn robust_mutex(timeout_ms: u64) -> Result<()> {
    section("The owner of a mutex is killed while it holds it");
    let timeout = Duration::from_millis(timeout_ms);

    let account = owner_dies_holding(true)?;
    vmbook::pause::here(
        "the mutex's owner was killed and reaped; the mutex still holds its thread id",
        &["ps -o pid,stat,cmd --ppid PID"],
    );
    // ANCHOR: recover
    let m = account.mutex.get();
    let rc = timed_lock(m, timeout);
    println!(
        "robust mutex: the next pthread_mutex_lock returns {}",
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
    let again = timed_lock(m, timeout);
    println!(
        "  the next pthread_mutex_lock returns {}",
        errno_name(again)
    );
    if again == 0 {
        // SAFETY: we hold the mutex.
        unsafe { libc::pthread_mutex_unlock(m) };
    }
    // ANCHOR_END: recover

    let forgotten = owner_dies_holding(true)?;
    let fm = forgotten.mutex.get();
    let first = timed_lock(fm, timeout);
    if first == libc::EOWNERDEAD {
        // SAFETY: we hold it; unlocking without pthread_mutex_consistent is the mistake shown.
        unsafe { libc::pthread_mutex_unlock(fm) };
    }
    let dead = timed_lock(fm, timeout);
    println!(
        "robust mutex, unlocked without pthread_mutex_consistent: the next lock returns {}",
        errno_name(dead)
    );

    let plain = owner_dies_holding(false)?;
    let started = Instant::now();
    let rc_plain = timed_lock(plain.mutex.get(), timeout);
    let waited = started.elapsed();
    println!(
        "plain (non-robust) mutex: pthread_mutex_timedlock returns {} after {}",
        errno_name(rc_plain),
        time(waited.as_nanos() as f64)
    );
    finding(
        "after its owner dies, the next locker of a robust mutex gets EOWNERDEAD",
        rc == libc::EOWNERDEAD,
        format!("pthread_mutex_lock returned {}", errno_name(rc)),
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
