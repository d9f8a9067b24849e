//! Streaming a volume of bytes from a child to its parent through one transport, in chunks, every
//! chunk verified on arrival: its sequence number, and an XOR checksum over all its bytes.

use super::pair::{run_pair, Placement, STALL};
use super::ring::Ring;
use anyhow::{ensure, Context, Result};
use nix::fcntl::{fcntl, FcntlArg};
use nix::mqueue::{mq_open, mq_send, mq_timedreceive, mq_unlink, MQ_OFlag, MqAttr, MqdT};
use nix::sys::mman::MapFlags;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::stat::Mode;
use nix::unistd::{pipe, read, write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Instant;
use vmbook::Mapping;

/// The transports that carry a stream of bytes (`memcpy` is the ceiling they are measured against).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Transport {
    Pipe,
    Socket,
    Mqueue,
    Ring,
}

impl Transport {
    pub const ALL: [Transport; 4] = [
        Transport::Pipe,
        Transport::Socket,
        Transport::Mqueue,
        Transport::Ring,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Transport::Pipe => "pipe",
            Transport::Socket => "Unix socket",
            Transport::Mqueue => "POSIX mqueue",
            Transport::Ring => "shm ring",
        }
    }
}

/// One end of a channel. Channels are opened before `fork`, so that both processes inherit them;
/// each process then keeps only its own end.
enum End {
    /// A pipe's or a Unix stream socket's descriptor.
    Fd(OwnedFd),
    /// A message queue descriptor (the queue is already unlinked: it lives as long as its
    /// descriptors), and the message size: a larger chunk travels as several messages.
    Mqueue {
        q: OwnedFd,
        message: usize,
    },
    Ring(Rc<Ring>),
}

/// The buffer both the pipe and the ring get, so that neither wins by holding more bytes.
pub fn buffer_size(chunk: usize) -> usize {
    (4 * chunk).next_power_of_two().max(256 << 10)
}

/// The largest message size the kernel allows for message queues (8 KiB by default).
fn mqueue_limit() -> usize {
    std::fs::read_to_string("/proc/sys/fs/mqueue/msgsize_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(8192)
}

/// A fresh message queue, unlinked at once: nothing stays behind in the queue namespace, whatever
/// happens to this process afterwards.
pub fn open_queue(messages: usize, message: usize) -> Result<OwnedFd> {
    let name = vmbook::shm::unique_name();
    let attr = MqAttr::new(0, messages as _, message as _, 0);
    let q = mq_open(
        name.as_str(),
        MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_RDWR,
        Mode::S_IRUSR | Mode::S_IWUSR,
        Some(&attr),
    )
    .with_context(|| format!("mq_open({name}, msgsize {message})"))?;
    let _ = mq_unlink(name.as_str());
    // SAFETY: on Linux a message queue descriptor is a file descriptor, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(q.into_raw_fd()) })
}

/// How many messages a queue may hold (`msg_max`, 10 by default).
pub fn queue_depth() -> usize {
    std::fs::read_to_string("/proc/sys/fs/mqueue/msg_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(10usize)
        .min(64)
}

/// Runs `f` on the queue behind `fd`.
pub fn with_queue<T>(fd: &OwnedFd, f: impl FnOnce(&MqdT) -> T) -> T {
    // SAFETY: the MqdT borrows a descriptor that `fd` owns and keeps open during `f`; MqdT has no
    // destructor, so it does not close it.
    let q = unsafe { MqdT::from_raw_fd(fd.as_raw_fd()) };
    f(&q)
}

/// mq_timedreceive with a deadline [`STALL`] from now.
pub fn receive(fd: &OwnedFd, buf: &mut [u8]) -> Result<usize> {
    let deadline = vmbook::clock::realtime_deadline(STALL);
    with_queue(fd, |q| mq_timedreceive(q, buf, &mut 0, &deadline)).context("mq_timedreceive")
}

/// Opens a channel: (the sender's end, the receiver's end).
fn channel(transport: Transport, chunk: usize, spins: u32) -> Result<(End, End)> {
    Ok(match transport {
        Transport::Pipe => {
            let (rx, tx) = pipe().context("pipe")?;
            // A bigger pipe means fewer sleeps; unprivileged users may go up to pipe-max-size.
            let want = buffer_size(chunk) as i32;
            if fcntl(&tx, FcntlArg::F_SETPIPE_SZ(want)).is_err() {
                fcntl(&tx, FcntlArg::F_SETPIPE_SZ(1 << 20)).context("fcntl(F_SETPIPE_SZ)")?;
            }
            (End::Fd(tx), End::Fd(rx))
        }
        Transport::Socket => {
            let (tx, rx) = socketpair(
                AddressFamily::Unix,
                SockType::Stream,
                None,
                SockFlag::empty(),
            )
            .context("socketpair(AF_UNIX, SOCK_STREAM)")?;
            (End::Fd(tx), End::Fd(rx))
        }
        Transport::Mqueue => {
            // The largest message size that divides the chunk: each message is received straight
            // into the chunk buffer, and a receive buffer must hold a whole message.
            let limit = mqueue_limit().min(chunk);
            let message = (1..=limit).rev().find(|m| chunk % m == 0).unwrap_or(1);
            let rx = open_queue(queue_depth(), message)?;
            let tx = rx.try_clone().context("dup(mqueue)")?;
            (
                End::Mqueue { q: tx, message },
                End::Mqueue { q: rx, message },
            )
        }
        Transport::Ring => {
            let ring = Rc::new(Ring::new(buffer_size(chunk), spins)?);
            (End::Ring(ring.clone()), End::Ring(ring))
        }
    })
}

impl End {
    fn send(&self, bytes: &[u8]) -> Result<()> {
        match self {
            End::Fd(tx) => {
                let mut rest = bytes;
                while !rest.is_empty() {
                    let n = write(tx, rest).context("write")?;
                    rest = &rest[n..];
                }
                Ok(())
            }
            End::Mqueue { q, message } => {
                for piece in bytes.chunks(*message) {
                    with_queue(q, |q| mq_send(q, piece, 0)).context("mq_send")?;
                }
                Ok(())
            }
            End::Ring(ring) => ring.send(bytes),
        }
    }

    /// At the end of a stream: the ring holds back wake-ups for a batch, and must release them.
    fn flush(&self) {
        if let End::Ring(ring) = self {
            ring.flush();
        }
    }

    fn recv(&self, buf: &mut [u8]) -> Result<()> {
        match self {
            End::Fd(rx) => {
                let mut at = 0;
                while at < buf.len() {
                    let n = read(rx, &mut buf[at..]).context("read")?;
                    ensure!(n > 0, "read: end of file: the sender stopped");
                    at += n;
                }
                Ok(())
            }
            End::Mqueue { q, message } => {
                for piece in buf.chunks_mut(*message) {
                    let n = receive(q, piece)?;
                    ensure!(n == piece.len(), "mq_timedreceive: a short message");
                }
                Ok(())
            }
            End::Ring(ring) => ring.recv(buf),
        }
    }
}

/// Pseudo-random bytes (xorshift64), so that a transport that loses, repeats or reorders any part
/// of a chunk fails the checksum.
fn fill(buf: &mut [u8]) {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for word in buf.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        word.copy_from_slice(&x.to_ne_bytes());
    }
}

fn xor_words(buf: &[u8]) -> u64 {
    buf.chunks_exact(8)
        .fold(0, |acc, w| acc ^ u64::from_ne_bytes(w.try_into().unwrap()))
}

// ANCHOR: stream
/// Streams `count` chunks of `chunk` bytes from a child to this process and returns the rate in
/// bytes per second, timed from the first chunk's arrival to the last (so that starting the
/// child is not counted). Every chunk carries its sequence number in its first 8 bytes.
pub fn stream(transport: Transport, placement: Placement, chunk: usize, count: u64) -> Result<f64> {
    ensure!(count >= 2, "stream: need at least two chunks");
    let spins = match placement {
        Placement::OneCore => 0, // the other side cannot run while we spin: sleep at once
        Placement::TwoCores => SPINS,
    };
    let (tx, rx) = channel(transport, chunk, spins)?;
    let mut src = Mapping::private(chunk)?; // page-aligned, like `dst`
    fill(src.bytes_mut());
    let rest = xor_words(&src.bytes()[8..]); // checksum of all but the sequence number
    let mut dst = Mapping::private(chunk)?;
    dst.bytes_mut().fill(0); // fault the pages in now, not while timing
    run_pair(
        placement,
        move || {
            for seq in 0..count {
                src.bytes_mut()[..8].copy_from_slice(&seq.to_ne_bytes());
                tx.send(src.bytes())?;
            }
            tx.flush();
            Ok(())
        },
        |_child| {
            if transport == Transport::Ring {
                vmbook::pause::here(
                    "parent and child both map the ring (a MAP_SHARED mapping of /dev/zero)",
                    &[
                        "grep zero /proc/PID/maps",
                        "ps -o pid,psr,stat,cmd --pid PID --ppid PID",
                    ],
                );
            }
            let mut start = Instant::now();
            for seq in 0..count {
                rx.recv(dst.bytes_mut())?;
                let got = dst.bytes();
                ensure!(
                    got[..8] == seq.to_ne_bytes() && xor_words(got) == rest ^ seq,
                    "{}: chunk {seq} arrived wrong (sequence or checksum)",
                    transport.label()
                );
                if seq == 0 {
                    start = Instant::now();
                }
            }
            Ok((count - 1) as f64 * chunk as f64 / start.elapsed().as_secs_f64())
        },
    )
}
// ANCHOR_END: stream

/// How many times a waiting side checks before it sleeps, when the other side has its own CPU:
/// about as long as a cross-core wake-up would take.
pub const SPINS: u32 = 2000;

/// memcpy (`copy_from_slice`) of `count` chunks between two page-aligned buffers, in bytes per
/// second: the ceiling for moving a chunk that sits in the cache.
pub fn memcpy(chunk: usize, count: u64) -> Result<f64> {
    let mut src = Mapping::private(chunk)?;
    fill(src.bytes_mut());
    let mut dst = Mapping::private(chunk)?;
    dst.bytes_mut().fill(0);
    let start = Instant::now();
    for _ in 0..count {
        dst.bytes_mut()
            .copy_from_slice(std::hint::black_box(src.bytes()));
        std::hint::black_box(dst.bytes());
    }
    let secs = start.elapsed().as_secs_f64();
    ensure!(dst.bytes() == src.bytes(), "memcpy: the copy differs");
    Ok(count as f64 * chunk as f64 / secs)
}

/// memcpy between two `size`-byte buffers, far larger than the caches: the bandwidth of RAM
/// itself (best of two copies), in bytes per second.
pub fn memcpy_ram(size: usize) -> Result<f64> {
    let flags = MapFlags::MAP_PRIVATE | MapFlags::MAP_POPULATE;
    let mut src = Mapping::anonymous(size, flags, "MAP_PRIVATE|MAP_POPULATE")?;
    fill(src.bytes_mut());
    let mut dst = Mapping::anonymous(size, flags, "MAP_PRIVATE|MAP_POPULATE")?;
    let mut best = f64::MAX;
    for _ in 0..2 {
        let start = Instant::now();
        dst.bytes_mut()
            .copy_from_slice(std::hint::black_box(src.bytes()));
        std::hint::black_box(dst.bytes());
        best = best.min(start.elapsed().as_secs_f64());
    }
    ensure!(
        xor_words(dst.bytes()) == xor_words(src.bytes()),
        "memcpy: the copy differs"
    );
    Ok(size as f64 / best)
}
