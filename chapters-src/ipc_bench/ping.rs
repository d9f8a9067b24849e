//! Round trips of a small message: the parent sends a sequence number, the child sends it back,
//! the parent checks it and times the whole exchange.

use super::pair::{check_stall, run_pair, Placement, STALL};
use super::ring::{publish, wait_while};
use super::stream::{open_queue, receive, with_queue};
use anyhow::{ensure, Context, Result};
use nix::mqueue::mq_send;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::unistd::{getppid, pipe, read, write, Pid};
use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;
use vmbook::Mapping;

/// The ways to make one round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Ping {
    Pipe,
    Socket,
    Mqueue,
    /// A word in shared memory, the waiting side asleep in futex(FUTEX_WAIT).
    Futex,
    /// A word in shared memory, the waiting side spinning on it.
    Spin,
    /// Two POSIX semaphores (sem_init with pshared = 1) in shared memory.
    Semaphore,
    /// sigqueue(3) carrying the number, sigtimedwait(2) receiving it.
    Signal,
}

impl Ping {
    pub const ALL: [Ping; 7] = [
        Ping::Pipe,
        Ping::Socket,
        Ping::Mqueue,
        Ping::Futex,
        Ping::Spin,
        Ping::Semaphore,
        Ping::Signal,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Ping::Pipe => "pipe",
            Ping::Socket => "Unix socket",
            Ping::Mqueue => "POSIX mqueue",
            Ping::Futex => "shm + futex",
            Ping::Spin => "shm + spin",
            Ping::Semaphore => "shm + semaphore",
            Ping::Signal => "signals",
        }
    }
}

/// One side of a round-trip channel: how it receives a number and how it sends one.
enum Side {
    Fds {
        rx: OwnedFd,
        tx: OwnedFd,
    },
    Queues {
        rx: OwnedFd,
        tx: OwnedFd,
    },
    /// `mine` is the word this side sleeps on, at line `mine`; `theirs` the one it stores.
    Futex {
        map: Rc<Mapping>,
        mine: usize,
        theirs: usize,
    },
    /// `mine` is the word this side spins on, `theirs` the one it stores: both in one cache line
    /// of `map` (see [`spin_word`]), found once, when the channel opens.
    Spin {
        /// Keeps the mapping, and so the words, alive.
        _map: Rc<Mapping>,
        mine: NonNull<AtomicU32>,
        theirs: NonNull<AtomicU32>,
    },
    Semaphore {
        map: Rc<Mapping>,
        mine: usize,
        theirs: usize,
    },
    Signal {
        mine: Signal,
        theirs: Signal,
        peer: Option<Pid>,
    },
}

const LINE: usize = 64;

fn word(map: &Mapping, line: usize) -> &AtomicU32 {
    // SAFETY: line * 64 is inside the (page-sized, zeroed) mapping and 4-byte aligned; the other
    // process accesses it only through atomics.
    unsafe { &*(map.as_ptr().add(line * LINE) as *const AtomicU32) }
}

/// The spinning sides' words: the first two of the mapping, side by side in one cache line. A
/// round trip then moves that one line to the other core and back, instead of keeping two lines
/// (one per direction) moving between the caches; `scripts/spin_pingpong.c` times both layouts.
fn spin_word(map: &Mapping, index: usize) -> NonNull<AtomicU32> {
    assert!(
        index < 2 && map.len() >= 8,
        "two spin words in a mapping of 8 bytes or more"
    );
    // SAFETY: index is 0 or 1: inside the mapping (checked above), 4-byte aligned (the mapping is
    // page-aligned); the other process accesses the words only through atomics.
    unsafe { NonNull::new_unchecked(map.as_ptr().add(index * 4) as *mut AtomicU32) }
}

/// A spin word of a [`Side::Spin`].
fn spin_ref(word: &NonNull<AtomicU32>) -> &AtomicU32 {
    // SAFETY: the word lies in the mapping that the same `Side::Spin` holds (an `Rc`), so it
    // lives as long as the borrow of the side; it is only ever accessed through atomics.
    unsafe { word.as_ref() }
}

fn sem(map: &Mapping, line: usize) -> *mut libc::sem_t {
    // SAFETY: lines 0 and 1 hold sem_t (32 bytes, 64-aligned here) inside the mapping.
    unsafe { map.as_ptr().add(line * LINE) as *mut libc::sem_t }
}

fn slot(map: &Mapping, line: usize) -> &AtomicU64 {
    // SAFETY: lines 2 and 3 hold the numbers that travel with the semaphores.
    unsafe { &*(map.as_ptr().add((line + 2) * LINE) as *const AtomicU64) }
}

fn deadline() -> Result<libc::timespec> {
    Ok(*vmbook::clock::realtime_deadline(STALL).as_ref())
}

impl Side {
    /// Sends `value`. The spinning side's store is inlined into the caller: between two
    /// spinning cores, a call through the other transports' code would cost a visible part of the
    /// round trip, on both sides of it.
    #[inline(always)]
    fn send(&self, value: u32) -> Result<()> {
        match self {
            Side::Spin { theirs, .. } => {
                spin_ref(theirs).store(value, Ordering::Release);
                Ok(())
            }
            _ => self.send_through_kernel(value),
        }
    }

    /// Receives the next number; `last` is the previous one (the shared word still holds it).
    /// Spinning is inlined into the caller, as for [`Side::send`].
    #[inline(always)]
    fn recv(&self, last: u32) -> Result<u32> {
        match self {
            Side::Spin { mine, .. } => spin_while(spin_ref(mine), last),
            _ => self.recv_through_kernel(last),
        }
    }

    #[inline(never)]
    fn send_through_kernel(&self, value: u32) -> Result<()> {
        match self {
            Side::Fds { tx, .. } => {
                let n = write(tx, &value.to_ne_bytes()).context("write")?;
                ensure!(n == 4, "write: short write");
            }
            Side::Queues { tx, .. } => {
                with_queue(tx, |q| mq_send(q, &value.to_ne_bytes(), 0)).context("mq_send")?
            }
            Side::Futex { map, theirs, .. } => {
                publish(word(map, *theirs), value, word(map, theirs + 2), true)
            }
            Side::Spin { .. } => unreachable!("Side::send stores the spin word itself"),
            Side::Semaphore { map, theirs, .. } => {
                slot(map, *theirs).store(value.into(), Ordering::Relaxed);
                // SAFETY: an initialized process-shared semaphore (see `open`); sem_post
                // releases the store above to the side that sem_waits for it.
                let r = unsafe { libc::sem_post(sem(map, *theirs)) };
                ensure!(r == 0, "sem_post: {}", std::io::Error::last_os_error());
            }
            Side::Signal { theirs, peer, .. } => {
                let to = peer.unwrap_or_else(getppid);
                let val = libc::sigval {
                    sival_ptr: value as usize as *mut libc::c_void,
                };
                // SAFETY: sigqueue only reads its arguments; the number travels in sival_ptr.
                let r = unsafe { libc::sigqueue(to.as_raw(), *theirs as i32, val) };
                ensure!(r == 0, "sigqueue: {}", std::io::Error::last_os_error());
            }
        }
        Ok(())
    }

    #[inline(never)]
    fn recv_through_kernel(&self, last: u32) -> Result<u32> {
        Ok(match self {
            Side::Fds { rx, .. } => {
                let mut buf = [0u8; 4];
                let n = read(rx, &mut buf).context("read")?;
                ensure!(
                    n == 4,
                    "read: got {n} of 4 bytes: the other process stopped"
                );
                u32::from_ne_bytes(buf)
            }
            Side::Queues { rx, .. } => {
                let mut buf = [0u8; 4];
                ensure!(
                    receive(rx, &mut buf)? == 4,
                    "mq_timedreceive: a short message"
                );
                u32::from_ne_bytes(buf)
            }
            Side::Futex { map, mine, .. } => {
                wait_while(word(map, *mine), last, word(map, mine + 2), 0)?
            }
            Side::Spin { .. } => unreachable!("Side::recv spins itself"),
            Side::Semaphore { map, mine, .. } => {
                let until = deadline()?;
                // SAFETY: an initialized process-shared semaphore; `until` outlives the call.
                let r = unsafe { libc::sem_timedwait(sem(map, *mine), &until) };
                ensure!(r == 0, "sem_timedwait: {}", std::io::Error::last_os_error());
                slot(map, *mine).load(Ordering::Relaxed) as u32
            }
            Side::Signal { mine, .. } => {
                let set = SigSet::from(*mine);
                let timeout: libc::timespec = *nix::sys::time::TimeSpec::from(STALL).as_ref();
                // SAFETY: zeroed siginfo_t is a valid output buffer for sigtimedwait.
                let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                // SAFETY: set, info and timeout are valid for the call; the signal is blocked,
                // so it waits here instead of running a handler.
                let r = unsafe { libc::sigtimedwait(set.as_ref(), &mut info, &timeout) };
                ensure!(
                    r == *mine as i32,
                    "sigtimedwait: {}",
                    std::io::Error::last_os_error()
                );
                // SAFETY: a signal sent by sigqueue carries si_value.
                unsafe { info.si_value().sival_ptr as usize as u32 }
            }
        })
    }
}

/// Spins on `word` until it changes; gives up only when the other side has stopped. The clock is
/// read only once the first thousand looks have failed: a read can cost a sizable part of a round
/// trip between two spinning cores.
#[inline(always)]
fn spin_while(word: &AtomicU32, seen: u32) -> Result<u32> {
    let mut since = None;
    loop {
        for _ in 0..1024 {
            let now = word.load(Ordering::Acquire);
            if now != seen {
                return Ok(now);
            }
            std::hint::spin_loop();
        }
        check_stall(*since.get_or_insert_with(Instant::now), "spin")?;
    }
}

/// Opens a round-trip channel: (the parent's side, the child's side).
fn open(kind: Ping) -> Result<(Side, Side)> {
    let fds = |(a_rx, a_tx): (OwnedFd, OwnedFd), (b_rx, b_tx): (OwnedFd, OwnedFd)| {
        (
            Side::Fds { rx: b_rx, tx: a_tx },
            Side::Fds { rx: a_rx, tx: b_tx },
        )
    };
    Ok(match kind {
        Ping::Pipe => fds(pipe().context("pipe")?, pipe().context("pipe")?),
        Ping::Socket => {
            let (a, b) = socketpair(
                AddressFamily::Unix,
                SockType::Stream,
                None,
                SockFlag::empty(),
            )
            .context("socketpair(AF_UNIX, SOCK_STREAM)")?;
            let (a2, b2) = (a.try_clone().context("dup")?, b.try_clone().context("dup")?);
            (Side::Fds { rx: a, tx: a2 }, Side::Fds { rx: b, tx: b2 })
        }
        Ping::Mqueue => {
            let (down, up) = (open_queue(1, 4)?, open_queue(1, 4)?);
            let (down2, up2) = (
                down.try_clone().context("dup")?,
                up.try_clone().context("dup")?,
            );
            (
                Side::Queues { rx: up, tx: down },
                Side::Queues { rx: down2, tx: up2 },
            )
        }
        Ping::Futex => {
            let map = Rc::new(Mapping::shared(4096)?);
            (
                Side::Futex {
                    map: map.clone(),
                    mine: 1,
                    theirs: 0,
                },
                Side::Futex {
                    map,
                    mine: 0,
                    theirs: 1,
                },
            )
        }
        Ping::Spin => {
            let map = Rc::new(Mapping::shared(4096)?);
            let (to_child, to_parent) = (spin_word(&map, 0), spin_word(&map, 1));
            (
                Side::Spin {
                    _map: map.clone(),
                    mine: to_parent,
                    theirs: to_child,
                },
                Side::Spin {
                    _map: map,
                    mine: to_child,
                    theirs: to_parent,
                },
            )
        }
        Ping::Semaphore => {
            let map = Rc::new(Mapping::shared(4096)?);
            for line in 0..2 {
                // SAFETY: the sem_t lies in a shared mapping both processes will see at the same
                // address; pshared = 1 makes it usable across processes.
                let r = unsafe { libc::sem_init(sem(&map, line), 1, 0) };
                ensure!(r == 0, "sem_init: {}", std::io::Error::last_os_error());
            }
            (
                Side::Semaphore {
                    map: map.clone(),
                    mine: 1,
                    theirs: 0,
                },
                Side::Semaphore {
                    map,
                    mine: 0,
                    theirs: 1,
                },
            )
        }
        Ping::Signal => (
            Side::Signal {
                mine: Signal::SIGUSR2,
                theirs: Signal::SIGUSR1,
                peer: None,
            },
            Side::Signal {
                mine: Signal::SIGUSR1,
                theirs: Signal::SIGUSR2,
                peer: None,
            },
        ),
    })
}

/// Warm-up exchanges, not timed: the child starts, pins itself and faults its pages in.
pub const WARMUP: u32 = 10;

/// How many round trips spinning on two cores times together, as one sample: reading the clock can
/// cost a sizable part of one such round trip, so a clock read around every one would measure the
/// clock too.
pub const SPIN_BATCH: u32 = 16;

/// How many round trips one sample of `kind` on `placement` times together.
pub fn trips_per_sample(kind: Ping, placement: Placement) -> u32 {
    if kind == Ping::Spin && placement == Placement::TwoCores {
        SPIN_BATCH
    } else {
        1
    }
}

/// One round trip from the parent's side: sends `n`, waits for it to come back. Inlined into the
/// timing loop, as the spinning itself is (see [`Side::send`]).
#[inline(always)]
fn exchange(parent: &Side, kind: Ping, n: u32) -> Result<()> {
    parent.send(n)?;
    let got = parent.recv(n - 1)?;
    ensure!(got == n, "{}: sent {n}, got back {got}", kind.label());
    Ok(())
}

/// How many groups `count` round trips are timed in, at most `batch` in each.
pub fn groups(count: u32, batch: u32) -> u32 {
    count.div_ceil(batch)
}

// ANCHOR: round_trips
/// Times `count` round trips between this process and a child, in [`groups`] of at most
/// [`trips_per_sample`] whose sizes differ by one at most (each shares the cost of reading the
/// clock alike); returns each group's time divided by its size, in nanoseconds.
pub fn round_trips(kind: Ping, placement: Placement, count: u32) -> Result<Vec<f64>> {
    let (mut parent, child) = open(kind)?;
    // Signals wait blocked, so that sigtimedwait takes them; block before fork, so that the
    // child inherits the mask and no signal can arrive before it is ready.
    let signals = SigSet::from_iter([Signal::SIGUSR1, Signal::SIGUSR2]);
    let old_mask = signals
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .context("sigprocmask")?;
    let warmup = if kind == Ping::Spin && placement == Placement::OneCore {
        1
    } else {
        WARMUP
    };
    let batch = trips_per_sample(kind, placement);
    let total = warmup + count;
    let result = run_pair(
        placement,
        move || {
            for n in 1..=total {
                let got = child.recv(n - 1)?;
                ensure!(got == n, "the child expected {n} and got {got}");
                child.send(n)?;
            }
            Ok(())
        },
        |pid| {
            if let Side::Signal { peer, .. } = &mut parent {
                *peer = Some(pid);
            }
            let exchange = |n| exchange(&parent, kind, n);
            for n in 1..=warmup {
                exchange(n)?;
            }
            let groups = groups(count, batch);
            let mut times = Vec::with_capacity(groups as usize);
            let mut n = warmup;
            for g in 0..groups {
                // Sizes differ by one at most: the first `count % groups` hold one more.
                let size = count / groups + u32::from(g < count % groups);
                let start = Instant::now();
                for _ in 0..size {
                    n += 1;
                    exchange(n)?;
                }
                times.push(start.elapsed().as_nanos() as f64 / f64::from(size));
            }
            Ok(times)
        },
    );
    // ANCHOR_END: round_trips
    if let Side::Semaphore { map, .. } = &parent {
        for line in 0..2 {
            // SAFETY: the child has exited, so nobody waits on the semaphores any more.
            unsafe { libc::sem_destroy(sem(map, line)) };
        }
    }
    old_mask.thread_set_mask().context("sigprocmask(restore)")?;
    result
}
