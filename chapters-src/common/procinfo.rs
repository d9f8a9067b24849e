//! Readers for what the chapters look at in `/proc/self`, built on the `procfs` crate.
//!
//! See `proc(5)`: `/proc/PID/maps`, `status` (VmSize, VmRSS), `smaps` (per-mapping counters such as
//! Rss, Shared_Dirty, Private_Dirty, AnonHugePages) and `pagemap` (one 64-bit entry per virtual page).

use anyhow::{Context, Result};
use procfs::process::{MMapPath, MemoryMap, MemoryPageFlags, PageInfo, Process};
use std::collections::HashMap;

/// The size of a page on this machine, from `sysconf(_SC_PAGESIZE)`.
pub fn page_size() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map(|n| n as usize)
        // POSIX requires _SC_PAGESIZE and Linux always answers it: a guess here would put a wrong
        // size behind every figure, so a failure stops the program instead.
        .expect("sysconf(_SC_PAGESIZE) answered nothing")
}

/// The size of a transparent huge page: what one page-table entry a level above the last maps
/// (a PMD), from `/sys/kernel/mm/transparent_hugepage/hpage_pmd_size` (2 MiB on x86-64, 32 MiB or
/// 512 MiB on arm64 with 16 KiB or 64 KiB pages). `None` on a kernel without THP.
pub fn thp_size() -> Option<usize> {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A transparent huge page setting (`enabled`, `defrag`): the word in brackets in
/// `/sys/kernel/mm/transparent_hugepage/FILE` (`always [madvise] never`), or `unavailable`.
pub fn thp_setting(file: &str) -> String {
    std::fs::read_to_string(format!("/sys/kernel/mm/transparent_hugepage/{file}"))
        .ok()
        .and_then(|text| {
            let start = text.find('[')?;
            let end = text[start..].find(']')?;
            Some(text[start + 1..start + end].to_string())
        })
        .unwrap_or_else(|| "unavailable".to_string())
}

/// This process's mappings, one entry per line of `/proc/self/maps`.
pub fn maps() -> Result<Vec<MemoryMap>> {
    Ok(Process::myself()
        .and_then(|p| p.maps())
        .context("read /proc/self/maps")?
        .0)
}

/// A short, stable description of what a mapping holds: a file name, `[heap]`, `[stack]`, `[anon]`.
pub fn describe(path: &MMapPath) -> String {
    match path {
        MMapPath::Path(p) => p
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.display().to_string()),
        MMapPath::Heap => "[heap]".into(),
        MMapPath::Stack => "[stack]".into(),
        MMapPath::TStack(_) => "[thread stack]".into(),
        MMapPath::Vdso => "[vdso]".into(),
        MMapPath::Vvar => "[vvar]".into(),
        MMapPath::Vsyscall => "[vsyscall]".into(),
        MMapPath::Anonymous => "[anon]".into(),
        MMapPath::Other(s) => format!("[{s}]"),
        other => format!("{other:?}"),
    }
}

/// VmSize (address space reserved) and VmRSS (resident in RAM), in bytes, from `/proc/self/status`.
#[derive(Clone, Copy, Debug)]
pub struct VmCounters {
    pub size: u64,
    pub rss: u64,
}

pub fn vm_counters() -> Result<VmCounters> {
    let status = Process::myself()
        .and_then(|p| p.status())
        .context("read /proc/self/status")?;
    Ok(VmCounters {
        size: status.vmsize.context("VmSize missing")? * 1024,
        rss: status.vmrss.context("VmRSS missing")? * 1024,
    })
}

/// The `smaps` counters (in bytes) of the mapping of this process that contains `addr`.
pub fn smaps_of(addr: usize) -> Result<HashMap<String, u64>> {
    smaps_of_pid(std::process::id() as i32, addr)
}

/// The `smaps` counters (in bytes) of the mapping of process `pid` that contains `addr`.
pub fn smaps_of_pid(pid: i32, addr: usize) -> Result<HashMap<String, u64>> {
    let maps = Process::new(pid)
        .and_then(|p| p.smaps())
        .with_context(|| format!("read /proc/{pid}/smaps"))?;
    let addr = addr as u64;
    maps.into_iter()
        .find(|m| m.address.0 <= addr && addr < m.address.1)
        .map(|m| m.extension.map)
        .with_context(|| format!("no mapping contains {addr:#x} in /proc/{pid}/smaps"))
}

/// One page's entry in `/proc/PID/pagemap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageEntry {
    /// The page is in RAM (bit 63).
    pub present: bool,
    /// The page is swapped out (bit 62).
    pub swapped: bool,
    /// The physical frame number, or `None` when the kernel hides it (reads as 0 without
    /// CAP_SYS_ADMIN, since Linux 4.2) or the page is not present.
    pub pfn: Option<u64>,
    /// Only this process maps the page (bit 56, since Linux 4.2).
    pub exclusive: bool,
    /// The page is file-backed or shared anonymous (bit 61).
    pub file_or_shared: bool,
}

/// Reads the pagemap entry of the page holding `addr` in this process.
pub fn page_entry(addr: usize) -> Result<PageEntry> {
    page_entry_of_pid(std::process::id() as i32, addr)
}

/// Reads the pagemap entry of the page holding `addr` in process `pid` (needs ptrace access).
pub fn page_entry_of_pid(pid: i32, addr: usize) -> Result<PageEntry> {
    let info = Process::new(pid)
        .and_then(|p| p.pagemap())
        .and_then(|mut map| map.get_info(addr / page_size()))
        .with_context(|| format!("read /proc/{pid}/pagemap at {addr:#x}"))?;
    Ok(match info {
        PageInfo::MemoryPage(flags) => {
            let present = flags.contains(MemoryPageFlags::PRESENT);
            let pfn = flags.get_page_frame_number().0;
            PageEntry {
                present,
                swapped: false,
                pfn: (present && pfn != 0).then_some(pfn),
                exclusive: flags.contains(MemoryPageFlags::MMAP_EXCLUSIVE),
                file_or_shared: flags.contains(MemoryPageFlags::FILE),
            }
        }
        PageInfo::SwapPage(_) => PageEntry {
            present: false,
            swapped: true,
            pfn: None,
            exclusive: false,
            file_or_shared: false,
        },
    })
}

/// Whether this process can see physical frame numbers in pagemap.
///
/// The kernel shows them only to a reader with CAP_SYS_ADMIN in the initial user namespace (checked
/// when pagemap is opened, since Linux 4.2): not to an ordinary user, nor to root in a container or
/// with the capability dropped. Measured, not assumed: a present page we just touched that reads
/// as frame 0 means hidden.
pub fn frames_visible() -> bool {
    let probe = Box::new(1u64);
    let addr = &*probe as *const u64 as usize;
    std::hint::black_box(&probe);
    matches!(page_entry(addr), Ok(PageEntry { pfn: Some(_), .. }))
}

/// Why a frame finding is `not checked`, when [`frames_visible`] found them hidden.
pub const FRAMES_HIDDEN: &str = "a present page reads as frame 0 in pagemap: frame numbers need \
    CAP_SYS_ADMIN in the initial user namespace (Linux 4.2 and later)";

/// Minor and major page faults this process has taken so far (`getrusage(RUSAGE_SELF)`).
pub fn page_faults() -> Result<(i64, i64)> {
    use nix::sys::resource::{getrusage, UsageWho};
    let usage = getrusage(UsageWho::RUSAGE_SELF).context("getrusage")?;
    Ok((usage.minor_page_faults(), usage.major_page_faults()))
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}
