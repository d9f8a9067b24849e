//! What every experiment of the chapter reads and does to a region: advice, residency (mincore),
//! the swapped bit of pagemap, the smaps counters of one mapping, and whether swap is configured.

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::sys::mman::{madvise, mprotect, MmapAdvise, ProtFlags};
use nix::unistd::Pid;
use procfs::process::{PageInfo, Process};
use std::ptr::NonNull;
use vmbook::procinfo::{page_size, smaps_of};
use vmbook::Mapping;

/// Gives the kernel `advice` about `len` bytes at `start`. Returns the errno, so that a caller can
/// tell "not supported here" (EINVAL) from a failure.
///
/// # Safety
///
/// `start` is page-aligned and `start..start + len` lies inside a mapping this program owns. Advice
/// that keeps the contents (MADV_PAGEOUT) needs nothing more; after advice that may discard them
/// (MADV_FREE, MADV_DONTNEED on private anonymous memory), nothing may rely on the old contents:
/// the pages may read as zeros.
pub unsafe fn advise(start: *mut u8, len: usize, advice: MmapAdvise) -> Result<(), Errno> {
    let start = NonNull::new(start.cast()).ok_or(Errno::EINVAL)?;
    // SAFETY: the caller's promise above.
    unsafe { madvise(start, len, advice) }
}

/// This process pinned to the CPU it is running on, until dropped (the old affinity comes back).
///
/// The kernel moves pages between its LRU lists through small per-CPU batches: a page faulted in
/// waits in one before it reaches a list, and MADV_FREE passes each page through another before
/// it counts as LazyFree. A batch is flushed when it fills, or by a call that drains *this* CPU's
/// batches (MADV_FREE, MADV_COLD and MADV_PAGEOUT each begin with one). Pages left in a batch on
/// another CPU are not on a list, so madvise skips them: a process moved between the touch, the
/// MADV_FREE and the MADV_PAGEOUT keeps some pages resident or not lazily freed (a C program
/// that moved itself between the calls left up to 39 of 256). Pinned from the first touch to the
/// last madvise, every batch the pages pass through is drained by the next call.
pub struct OneCpu {
    before: Option<CpuSet>,
}

impl OneCpu {
    pub fn here() -> Result<OneCpu> {
        let before = sched_getaffinity(Pid::from_raw(0)).context("sched_getaffinity")?;
        // SAFETY: sched_getcpu has no preconditions; it returns -1 with errno on failure.
        let cpu = unsafe { libc::sched_getcpu() };
        if cpu < 0 {
            return Ok(OneCpu { before: None }); // no CPU number to pin to: run as we are
        }
        let mut one = CpuSet::new();
        one.set(cpu as usize).context("CpuSet::set")?;
        sched_setaffinity(Pid::from_raw(0), &one).context("sched_setaffinity")?;
        Ok(OneCpu {
            before: Some(before),
        })
    }
}

impl Drop for OneCpu {
    fn drop(&mut self) {
        if let Some(before) = &self.before {
            // Only this process's own affinity: nothing outside it to restore if this fails.
            let _ = sched_setaffinity(Pid::from_raw(0), before);
        }
    }
}

/// A private anonymous region on base pages, followed by one inaccessible guard page. The guard
/// keeps the region a mapping of its own: two neighboring regions with the same flags would
/// otherwise merge into one entry of /proc/PID/smaps, and its counters would mix them.
pub struct Region {
    map: Mapping,
    len: usize,
}

impl Region {
    pub fn new(len: usize) -> Result<Region> {
        let map = Mapping::private(len + page_size())?;
        // Base pages for the region (and the guard, which holds none), so that counts are per
        // page on any THP setting.
        map.base_pages_only()?;
        let guard = NonNull::new(map.as_ptr().wrapping_add(len).cast()).context("null mapping")?;
        // SAFETY: the last page of a mapping we own, never handed out as bytes.
        unsafe { mprotect(guard, page_size(), ProtFlags::PROT_NONE) }
            .context("mprotect(guard page, PROT_NONE)")?;
        Ok(Region { map, len })
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_ptr()
    }

    pub fn addr(&self) -> usize {
        self.map.addr()
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map.bytes()[..self.len]
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.map.bytes_mut()[..self.len]
    }
}

/// How many of the pages at `start..start+len` are resident in RAM, as mincore(2) reports them
/// (for a file mapping: whether the page is in the page cache).
pub fn resident_pages(start: *const u8, len: usize) -> Result<usize> {
    let mut vector = vec![0u8; len.div_ceil(page_size())];
    // SAFETY: the range is part of a mapping we own, and `vector` holds one byte per page of it.
    // (mincore has no wrapper in nix.)
    let rc = unsafe { libc::mincore(start as *mut libc::c_void, len, vector.as_mut_ptr()) };
    if rc != 0 {
        return Err(Errno::last()).context("mincore");
    }
    Ok(vector.iter().filter(|&&v| v & 1 == 1).count())
}

/// How many pages of `start..start+len` this process's pagemap marks swapped (bit 62).
pub fn swapped_pages(start: *const u8, len: usize) -> Result<usize> {
    let first = start as usize / page_size();
    let entries = Process::myself()
        .and_then(|p| p.pagemap())
        .and_then(|mut map| map.get_range_info(first..first + len.div_ceil(page_size())))
        .context("read /proc/self/pagemap")?;
    Ok(entries
        .iter()
        .filter(|e| matches!(e, PageInfo::SwapPage(_)))
        .count())
}

/// One counter (bytes) of the smaps entry of the mapping holding `addr`: "Rss", "Swap",
/// "LazyFree", "Locked"; 0 when this kernel does not print it.
pub fn smaps_counter(addr: usize, key: &str) -> Result<u64> {
    Ok(smaps_of(addr)?.get(key).copied().unwrap_or(0))
}

/// The swap areas in /proc/swaps: how many, and their total size in bytes.
pub struct SwapAreas {
    pub count: usize,
    pub total: u64,
    pub used: u64,
}

impl SwapAreas {
    pub fn read() -> Result<SwapAreas> {
        let text = std::fs::read_to_string("/proc/swaps").context("read /proc/swaps")?;
        // "Filename Type Size Used Priority", sizes in kB; the first line is the header.
        let areas: Vec<(u64, u64)> = text
            .lines()
            .skip(1)
            .filter_map(|line| {
                let mut fields = line.split_whitespace().skip(2);
                Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
            })
            .collect();
        Ok(SwapAreas {
            count: areas.len(),
            total: areas.iter().map(|a| a.0).sum::<u64>() * 1024,
            used: areas.iter().map(|a| a.1).sum::<u64>() * 1024,
        })
    }

    pub fn free(&self) -> u64 {
        self.total.saturating_sub(self.used)
    }

    pub fn configured(&self) -> bool {
        self.count > 0
    }

    /// The line the experiments print, so the reader sees which case their machine is in.
    pub fn describe(&self) -> String {
        if self.configured() {
            format!(
                "swap: {} in {} area(s) (/proc/swaps)",
                vmbook::kb(self.total),
                self.count
            )
        } else {
            "swap: none (/proc/swaps lists no swap area)".to_string()
        }
    }
}

/// The byte every page `index` of a region is filled with: never 0, different for neighbors, so
/// that a page that came back from swap or disk can be checked, and none is a zero page.
pub fn pattern(index: usize, seed: u8) -> u8 {
    (index as u8).wrapping_mul(7).wrapping_add(seed) | 1
}

/// Fills every page of `bytes` with its pattern byte.
pub fn fill(bytes: &mut [u8], seed: u8) {
    for (index, page) in bytes.chunks_mut(page_size()).enumerate() {
        page.fill(pattern(index, seed));
    }
}

/// Reads every byte of `bytes` (each page read at least once, so each faults back in if it had
/// left) and counts the pages that no longer hold their pattern byte, and those that read as zero.
pub fn check(bytes: &[u8], seed: u8) -> (usize, usize) {
    let mut changed = 0;
    let mut zero = 0;
    for (index, page) in bytes.chunks(page_size()).enumerate() {
        // A volatile read of the first byte makes sure the page is really accessed.
        // SAFETY: `page` is a valid slice; reading its first byte is in bounds.
        let first = unsafe { std::ptr::read_volatile(page.as_ptr()) };
        let expected = pattern(index, seed);
        if first != expected || page.iter().any(|&b| b != expected) {
            changed += 1;
        }
        if first == 0 && page.iter().all(|&b| b == 0) {
            zero += 1;
        }
    }
    (changed, zero)
}

/// At least nine pages in ten of `pages` (a busy kernel may skip a page it cannot isolate).
pub fn most(count: usize, pages: usize) -> bool {
    count * 10 >= pages * 9
}

/// At most one page in ten of `pages`.
pub fn few(count: usize, pages: usize) -> bool {
    count * 10 <= pages
}
