//! Dependent random reads: one pointer in every page of a region, linked into one cycle in random
//! order. Each read needs the address the previous one returned, so the CPU cannot overlap them:
//! the time per read is the whole latency of one load, its translation included.

use nix::time::{clock_gettime, ClockId};
use std::time::Duration;

/// The CPU time this thread has run: unlike the wall clock, it stops while another process has the
/// CPU, so a run that the scheduler interrupts is not charged for the wait.
fn thread_cpu_time() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

/// `--max-size`: a size with an optional K, M or G suffix (powers of 1024), at most 16 GiB.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" => 0,
        "K" | "KIB" => 10,
        "M" | "MIB" => 20,
        "G" | "GIB" => 30,
        _ => return Err(format!("`{text}`: unknown unit (use K, M or G)")),
    };
    let n: usize = number
        .parse()
        .map_err(|_| format!("`{text}`: not a size such as 64M or 1G"))?;
    n.checked_mul(1 << shift)
        .filter(|&n| n > 0 && n <= 16 << 30)
        .ok_or_else(|| format!("`{text}`: must be between 1 byte and 16G"))
}

/// A small, fast pseudo-random generator (xorshift64*): the order only has to defeat prefetchers.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as usize % n
    }
}

/// Which cache line of page `i` holds its pointer: a hash of `i`, so that the pointers spread over
/// every set of the caches. (`i % lines` would not: in a physically contiguous huge page, page i's
/// line `i % 64` falls into only 64 of an L2 cache's sets, and the reads would miss the cache for
/// want of room, not of a translation.)
fn line_of(i: usize, lines: usize) -> usize {
    (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) % lines
}

// ANCHOR: ring
/// Links the first `pages` pages at `base` into one cycle in random order (Sattolo's shuffle) and
/// returns where it starts. The pointer in page i sits at a cache line picked by a hash of i, so
/// that the pointers spread over the caches' sets instead of all landing in the same few.
///
/// # Safety
/// `base` must be the start of at least `pages * page` writable bytes that nothing else uses.
pub unsafe fn ring(base: *mut u8, pages: usize, page: usize) -> *const usize {
    let lines = page / 64;
    let slot = |i: usize| base.add(i * page + line_of(i, lines) * 64) as *mut usize;
    let mut next: Vec<usize> = (0..pages).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ pages as u64);
    for i in (1..pages).rev() {
        next.swap(i, rng.below(i)); // j < i: the result is one cycle through every page
    }
    for (i, &j) in next.iter().enumerate() {
        slot(i).write(slot(j) as usize);
    }
    slot(0)
}

/// Follows the cycle for `reads` steps from `start` and returns the CPU time that took.
///
/// # Safety
/// `start` must come from [`ring`], over memory that is still mapped.
pub unsafe fn chase(start: *const usize, reads: usize) -> Duration {
    let mut p = start;
    let began = thread_cpu_time();
    for _ in 0..reads {
        p = std::ptr::read_volatile(p) as *const usize; // the next address is what this read returns
    }
    let took = thread_cpu_time() - began;
    std::hint::black_box(p);
    took
}
// ANCHOR_END: ring

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_visits_every_page_once() {
        let (pages, page) = (37, vmbook::procinfo::page_size());
        let mut memory = vec![0u8; pages * page + 64];
        let base = memory
            .as_mut_ptr()
            .wrapping_add(memory.as_ptr().align_offset(64));
        // SAFETY: `memory` holds pages * page bytes from `base` on.
        let start = unsafe { ring(base, pages, page) };
        let mut seen = std::collections::HashSet::new();
        let mut p = start;
        for _ in 0..pages {
            assert!(seen.insert(p as usize));
            // SAFETY: every pointer in the ring points at a slot inside `memory`.
            p = unsafe { *p } as *const usize;
        }
        assert_eq!(p, start);
        assert_eq!(seen.len(), pages);
    }

    #[test]
    fn sizes_take_suffixes() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("16k"), Ok(16 << 10));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1T").is_err());
        assert!(parse_size("17G").is_err());
    }
}
