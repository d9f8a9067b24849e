//! A single-producer, single-consumer ring buffer in a shared mapping: the shared-memory transport
//! of the appendix. Two counters say everything: `head`, the bytes written so far (stored only by
//! the producer), and `tail`, the bytes read so far (stored only by the consumer). Both run freely
//! and wrap at 2^32; `head - tail` is what waits in the ring.

use super::pair::{check_stall, STALL};
use anyhow::{ensure, Result};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;
use vmbook::{futex, Mapping};

/// One counter per 128 bytes, so that the producer's stores to `head` and the consumer's stores to
/// `tail` do not fight over one cache line ("false sharing"): a line is 64 bytes on most CPUs and
/// 128 on some (Apple's, several POWER and ARM server chips), and x86's adjacent-line prefetcher
/// fetches lines in pairs.
#[repr(C, align(128))]
struct Line(AtomicU32);

#[repr(C)]
struct Header {
    head: Line,
    tail: Line,
    /// 1 while the consumer sleeps (or is about to) on `head`; the producer then must wake it.
    consumer_sleeping: Line,
    /// 1 while the producer sleeps on `tail`, waiting for space.
    producer_sleeping: Line,
}

// ANCHOR: wait
/// Waits until `word` no longer holds `seen` and returns its new value: first `spins` quick
/// checks (worth it only while the other process runs on another CPU), then sleeps in the kernel.
pub fn wait_while(word: &AtomicU32, seen: u32, sleeping: &AtomicU32, spins: u32) -> Result<u32> {
    for _ in 0..spins {
        let now = word.load(Ordering::Acquire);
        if now != seen {
            return Ok(now);
        }
        std::hint::spin_loop();
    }
    let since = Instant::now();
    loop {
        // Announce the sleep, then look again: either we see the new value, or the other side
        // (which stores the word *before* it reads the flag) sees the flag and wakes us. SeqCst
        // puts both pairs of accesses in one order, so both cannot miss.
        sleeping.store(1, Ordering::SeqCst);
        let now = word.load(Ordering::SeqCst);
        if now != seen {
            sleeping.store(0, Ordering::Relaxed);
            return Ok(now);
        }
        // Sleeps only if the word still holds `seen` when the kernel looks: no lost wake-up.
        futex::wait(word, seen, Some(STALL));
        check_stall(since, "futex wait")?;
    }
}

/// Stores `value` into `word` (releasing everything written before it) and, if `wake` is set,
/// wakes the other side if it sleeps on the word.
pub fn publish(word: &AtomicU32, value: u32, sleeping: &AtomicU32, wake: bool) {
    word.store(value, Ordering::SeqCst);
    if wake && sleeping.load(Ordering::SeqCst) != 0 {
        futex::wake(word, 1);
    }
}
// ANCHOR_END: wait

/// The ring: a header page, then `capacity` bytes of data, in one `MAP_SHARED` anonymous mapping
/// that a forked child shares with its parent.
pub struct Ring {
    map: Mapping,
    capacity: u32,
    spins: u32,
}

const HEADER: usize = 4096;

impl Ring {
    /// `capacity` must be a power of two (so that it divides 2^32 and the counters wrap cleanly).
    pub fn new(capacity: usize, spins: u32) -> Result<Ring> {
        ensure!(
            capacity.is_power_of_two() && capacity <= 1 << 30,
            "ring capacity {capacity}: not a power of two up to 1 GiB"
        );
        let map = Mapping::shared(HEADER + capacity)?; // zero-filled: head = tail = 0
        Ok(Ring {
            map,
            capacity: capacity as u32,
            spins,
        })
    }

    fn header(&self) -> &Header {
        // SAFETY: the mapping starts page-aligned with HEADER bytes reserved for the header, which
        // holds only atomics (valid when zero); the other process touches it only through atomics.
        unsafe { &*(self.map.as_ptr() as *const Header) }
    }

    fn data(&self) -> *mut u8 {
        // SAFETY: HEADER is inside the mapping (HEADER + capacity bytes long).
        unsafe { self.map.as_ptr().add(HEADER) }
    }

    // ANCHOR: send
    /// Producer: copies all of `bytes` into the ring, waiting for space when it is full.
    pub fn send(&self, mut bytes: &[u8]) -> Result<()> {
        let h = self.header();
        let mut head = h.head.0.load(Ordering::Relaxed); // only we store it
        while !bytes.is_empty() {
            let mut tail = h.tail.0.load(Ordering::Acquire);
            if head.wrapping_sub(tail) == self.capacity {
                tail = wait_while(&h.tail.0, tail, &h.producer_sleeping.0, self.spins)?;
            }
            let free = self.capacity - head.wrapping_sub(tail);
            let at = head % self.capacity;
            let n = (free.min(self.capacity - at) as usize).min(bytes.len());
            // SAFETY: [at, at + n) lies inside the data area, and the consumer reads no byte of
            // it before the store of the new head below publishes it (Release).
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.data().add(at as usize), n)
            };
            head = head.wrapping_add(n as u32);
            // A sleeping consumer is woken for a batch (half the ring), not for every chunk:
            // each wake-up costs two context switches. `flush` wakes it for the rest.
            let batch = head.wrapping_sub(tail) >= self.capacity / 2;
            publish(&h.head.0, head, &h.consumer_sleeping.0, batch);
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Producer: wakes the consumer if it sleeps, whatever the ring holds (at the end of a stream).
    pub fn flush(&self) {
        let h = self.header();
        publish(
            &h.head.0,
            h.head.0.load(Ordering::Relaxed),
            &h.consumer_sleeping.0,
            true,
        );
    }
    // ANCHOR_END: send

    /// Consumer: fills all of `buf` from the ring, waiting for data when it is empty.
    pub fn recv(&self, mut buf: &mut [u8]) -> Result<()> {
        let h = self.header();
        let mut tail = h.tail.0.load(Ordering::Relaxed); // only we store it
        while !buf.is_empty() {
            let mut head = h.head.0.load(Ordering::Acquire);
            if head == tail {
                head = wait_while(&h.head.0, head, &h.consumer_sleeping.0, self.spins)?;
            }
            let at = tail % self.capacity;
            let n = (head.wrapping_sub(tail).min(self.capacity - at) as usize).min(buf.len());
            // SAFETY: the Acquire load of head made the producer's bytes in [at, at + n) visible,
            // and the producer does not write them again before our store of the new tail.
            unsafe {
                std::ptr::copy_nonoverlapping(self.data().add(at as usize), buf.as_mut_ptr(), n)
            };
            tail = tail.wrapping_add(n as u32);
            // The producer sleeps only on a full ring: wake it once half of it is free again.
            let batch = head.wrapping_sub(tail) <= self.capacity / 2;
            publish(&h.tail.0, tail, &h.producer_sleeping.0, batch);
            buf = &mut buf[n..];
        }
        Ok(())
    }
}
