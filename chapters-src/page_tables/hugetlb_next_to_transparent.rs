//! Two kinds of huge pages: transparent huge pages, which the kernel hands out on a fault when it
//! can, and hugetlbfs pages (`MAP_HUGETLB`, seed 001's call), which come only from a pool that an
//! administrator filled in advance.

use crate::pool_reservation::{Reservation, NR_HUGEPAGES};
use crate::settings::{hugetlb_pool, read_number, thp_mode, Pool};
use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::mman::{madvise, MapFlags, MmapAdvise};
use vmbook::measure::measure;
use vmbook::procinfo::thp_size;
use vmbook::procinfo::{frames_visible, page_entry, page_size, smaps_of};
use vmbook::{bytes, finding, kb, not_checked, section, Mapping};

/// Huge pages of `len` bytes from the pool, mapped private: the mapping, or mmap's errno.
fn map_hugetlb(len: usize) -> Result<std::result::Result<Mapping, Errno>> {
    let flags = MapFlags::MAP_PRIVATE | MapFlags::MAP_HUGETLB;
    match Mapping::anonymous(len, flags, "MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB") {
        Ok(mapping) => Ok(Ok(mapping)),
        Err(e) => e.downcast_ref::<Errno>().map(|&errno| Err(errno)).ok_or(e),
    }
}

/// Writes one byte into every base page of `len` bytes at `start`; returns the faults it took.
///
/// # Safety
///
/// `[start, start + len)` is writable memory of a mapping the caller owns, and nothing else
/// relies on the bytes written.
unsafe fn touch(start: *mut u8, len: usize) -> Result<i64> {
    let (faults, _) = measure(|| {
        for offset in (0..len).step_by(page_size()) {
            // SAFETY: as the caller promises; volatile, so the write happens.
            unsafe { start.add(offset).write_volatile(1) };
        }
    })?;
    Ok(faults)
}

// ANCHOR: transparent
/// One huge-page-aligned stretch advised MADV_HUGEPAGE and touched: its AnonHugePages, and (with
/// CAP_SYS_ADMIN) the first frame, if all its base pages sit in consecutive frames from there.
fn transparent_huge_page(huge: usize) -> Result<(u64, Option<Option<u64>>)> {
    let page = page_size();
    let region = Mapping::private(2 * huge)?; // room for an aligned start
    let start = region.addr().next_multiple_of(huge);
    let ptr = std::ptr::NonNull::new(start as *mut std::ffi::c_void).context("null")?;
    // SAFETY: [start, start + huge) lies inside our mapping; the advice changes no contents.
    unsafe { madvise(ptr, huge, MmapAdvise::MADV_HUGEPAGE) }.context("madvise")?;
    // SAFETY: the same aligned stretch of our own mapping, nothing in it yet.
    unsafe { touch(start as *mut u8, huge) }?;
    let anon_huge = smaps_of(start)?.get("AnonHugePages").copied().unwrap_or(0);
    if !frames_visible() {
        return Ok((anon_huge, None));
    }
    let first = page_entry(start)?.pfn.unwrap_or(0);
    let mut consecutive = true;
    for i in 1..huge / page {
        consecutive &= page_entry(start + i * page)?.pfn == Some(first + i as u64);
    }
    Ok((anon_huge, Some(consecutive.then_some(first))))
}
// ANCHOR_END: transparent

fn transparent_side(at_start: Pool) -> Result<()> {
    let claims = [
        "a transparent huge page takes nothing from the hugetlb pool",
        "a transparent huge page is one run of consecutive frames, aligned to its size",
    ];
    let mode = thp_mode();
    let Some(huge) = thp_size().filter(|_| mode != "never") else {
        for claim in claims {
            not_checked(claim, format!("transparent huge pages are [{mode}]"));
        }
        return Ok(());
    };
    let (anon, frames) = transparent_huge_page(huge)?;
    let after = hugetlb_pool()?;
    println!(
        "THP [{mode}]: a {} region, advised and touched: AnonHugePages {}; pool now {after}",
        bytes(huge as u64),
        kb(anon)
    );
    if anon < huge as u64 {
        let why = "the kernel found no free huge page and fell back to base pages";
        claims.iter().for_each(|c| not_checked(c, why));
        return Ok(());
    }
    finding(
        claims[0],
        after == at_start,
        format!(
            "AnonHugePages {}; before: {at_start}; after: {after}",
            kb(anon)
        ),
    );
    let per_huge = (huge / page_size()) as u64;
    match frames {
        Some(first) => finding(
            claims[1],
            first.is_some_and(|f| f % per_huge == 0),
            match first {
                Some(f) => format!(
                    "{per_huge} consecutive frames from {f:#x}, {} multiple of {per_huge}",
                    if f % per_huge == 0 { "a" } else { "not a" }
                ),
                None => "the frames are not consecutive".to_string(),
            },
        ),
        None => not_checked(
            claims[1],
            "pagemap shows frame numbers only to CAP_SYS_ADMIN in the initial user namespace",
        ),
    }
    Ok(())
}

const ENOMEM_CLAIM: &str =
    "with no free page in the hugetlb pool, mmap(MAP_HUGETLB) fails with ENOMEM";
const POOL_CLAIMS: [&str; 3] = [
    "mmap(MAP_HUGETLB) reserves a page of the pool (HugePages_Rsvd), the first touch takes it (HugePages_Free)",
    "one page fault maps a whole hugetlb page",
    "munmap puts the page back into the pool",
];

// ANCHOR: hugetlb_side
fn hugetlb_side(at_start: Pool, reserve: u32) -> Result<()> {
    let overcommit = read_number("/proc/sys/vm/nr_overcommit_hugepages")?;
    if overcommit > 0 {
        let why = format!("nr_overcommit_hugepages is {overcommit}: the pool grows on demand");
        not_checked(ENOMEM_CLAIM, &why);
        POOL_CLAIMS.iter().for_each(|c| not_checked(c, &why));
        return Ok(());
    }
    let len = at_start.page as usize;
    let empty = at_start.free == at_start.reserved;
    let first_try = map_hugetlb(len)?;
    let shown = |r: &std::result::Result<Mapping, Errno>| match r {
        Ok(_) => "mapped".to_string(),
        Err(e) => format!("failed, {e}"),
    };
    println!(
        "mmap(MAP_HUGETLB) of {}, pool as it was: {}",
        bytes(len as u64),
        shown(&first_try)
    );
    if empty {
        finding(
            ENOMEM_CLAIM,
            matches!(first_try, Err(Errno::ENOMEM)),
            shown(&first_try),
        );
    } else {
        not_checked(
            ENOMEM_CLAIM,
            format!("{} free pages in the pool", at_start.free),
        );
    }
    drop(first_try);
    // An empty pool: raise it for this run only (root), through a guardian that puts it back.
    let mut reservation = None;
    if empty {
        let why = match Reservation::new(u64::from(reserve))? {
            Ok(r) if r.during > r.before => {
                println!(
                    "{NR_HUGEPAGES}: {} raised to {} for this run \
                     (should this program and its guardian both be SIGKILLed: write {} back)",
                    r.before, r.during, r.before
                );
                reservation = Some(r);
                None
            }
            Ok(r) => Some(format!(
                "{NR_HUGEPAGES} stayed at {}: no free memory",
                r.during
            )),
            Err(why) => Some(format!("cannot raise {NR_HUGEPAGES}: {why}")),
        };
        if let Some(why) = why {
            POOL_CLAIMS.iter().for_each(|c| not_checked(c, &why));
            return Ok(());
        }
    }
    let ready = hugetlb_pool()?;
    let region = map_hugetlb(len)?.with_context(|| format!("mmap(MAP_HUGETLB) with {ready}"))?;
    let mapped = hugetlb_pool()?;
    // SAFETY: the whole of our own new hugetlb mapping.
    let faults = unsafe { touch(region.as_ptr(), len) }?;
    let touched = hugetlb_pool()?;
    vmbook::pause::here(
        "a hugetlb page is mapped and touched",
        &[
            "grep -E '^HugePages_' /proc/meminfo",
            "grep -E 'KernelPageSize|Hugetlb' /proc/PID/smaps",
        ],
    );
    drop(region);
    let unmapped = hugetlb_pool()?;
    if let Some(mut r) = reservation {
        r.give_back()?;
    }
    // ANCHOR_END: hugetlb_side
    for (what, pool) in [
        ("pool ready:", ready),
        ("after mmap:", mapped),
        ("after touching it:", touched),
        ("after munmap:", unmapped),
    ] {
        println!("{what:<19} {pool}");
    }
    let fault_s = if faults == 1 { "fault" } else { "faults" };
    println!(
        "touching each {} of the page took {faults} {fault_s}",
        bytes(page_size() as u64)
    );
    finding(
        POOL_CLAIMS[0],
        mapped.reserved == ready.reserved + 1
            && mapped.free == ready.free
            && touched.free + 1 == ready.free
            && touched.reserved == ready.reserved,
        format!(
            "Rsvd {} → {} → {}, Free {} → {} → {}",
            ready.reserved,
            mapped.reserved,
            touched.reserved,
            ready.free,
            mapped.free,
            touched.free
        ),
    );
    finding(POOL_CLAIMS[1], faults <= 2, format!("{faults} {fault_s}"));
    finding(
        POOL_CLAIMS[2],
        unmapped == ready,
        format!(
            "Free {} after munmap, {} before mmap",
            unmapped.free, ready.free
        ),
    );
    Ok(())
}

// ANCHOR: hugetlb_next_to_transparent
pub fn hugetlb_next_to_transparent(reserve: u32) -> Result<()> {
    section("Transparent huge pages, and hugetlbfs pages from the pool (MAP_HUGETLB)");
    let at_start = hugetlb_pool()?;
    println!("hugetlb pool at the start: {at_start}");
    transparent_side(at_start)?;
    hugetlb_side(at_start, reserve)?;
    let at_end = hugetlb_pool()?;
    println!("hugetlb pool at the end:   {at_end}");
    finding(
        "the hugetlb pool ends the run as it began",
        at_end == at_start,
        format!(
            "HugePages_Total {} → {}, HugePages_Free {} → {}",
            at_start.total, at_end.total, at_start.free, at_end.free
        ),
    );
    Ok(())
}
// ANCHOR_END: hugetlb_next_to_transparent
