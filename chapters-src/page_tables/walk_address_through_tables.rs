//! One of the program's own addresses, split the way the MMU walks it: one index per level of the
//! page table, then the offset inside the page; with CAP_SYS_ADMIN, the frame it lands in.

use crate::layout::{Layout, ENTRY_BYTES};
use crate::settings::cpu_flag;
use anyhow::Result;
use vmbook::procinfo::thp_size;
use vmbook::procinfo::{frames_visible, page_entry};
use vmbook::{bytes, finding, not_checked, section};

/// The "System RAM" ranges of /proc/iomem (all zeros unless the reader has CAP_SYS_ADMIN).
fn system_ram() -> Vec<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/iomem").unwrap_or_default();
    text.lines()
        .filter(|line| line.ends_with(": System RAM"))
        .filter_map(|line| {
            let (start, end) = line.trim().split(' ').next()?.split_once('-')?;
            Some((
                u64::from_str_radix(start, 16).ok()?,
                u64::from_str_radix(end, 16).ok()?,
            ))
        })
        .filter(|&(start, end)| end > start)
        .collect()
}

/// The huge page sizes in /sys/kernel/mm/hugepages (`hugepages-2048kB` ...), in bytes, ascending.
fn hugetlb_sizes() -> Vec<u64> {
    let mut sizes: Vec<u64> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let kb = name.strip_prefix("hugepages-")?.strip_suffix("kB")?;
                    Some(kb.parse::<u64>().ok()? * 1024)
                })
                .collect()
        })
        .unwrap_or_default();
    sizes.sort();
    sizes
}

// ANCHOR: walk_address_through_tables
pub fn walk_address_through_tables() -> Result<()> {
    section("One address of this process, taken apart");
    let layout = Layout::detect()?;
    let entries = layout.entries();
    println!(
        "page size {}: {} bits of page offset",
        bytes(layout.page as u64),
        layout.offset_bits
    );
    println!(
        "a table is one page of {ENTRY_BYTES}-byte entries: {entries} entries, {} bits of index",
        layout.index_bits
    );
    println!(
        "user addresses have {} bits (the highest hint mmap honours); the tables translate {} bits",
        layout.user_bits, layout.translated_bits
    );
    if std::env::consts::ARCH == "x86_64" {
        let la57 = if cpu_flag("la57") { "has" } else { "lacks" };
        println!("the CPU {la57} la57 (five-level paging) in /proc/cpuinfo");
    }
    println!(
        "so a walk has {} levels: ({} - {}) / {} rounded up",
        layout.levels, layout.translated_bits, layout.offset_bits, layout.index_bits
    );
    let variable = Box::new(42u64);
    let addr = &*variable as *const u64 as usize;
    println!("\nthe walk for a Box<u64> at {addr:#x}:");
    for level in (1..=layout.levels).rev() {
        let (high, low) = layout.bits(level);
        println!(
            "  bits {high:>2}..{low:<2} index into the {}: {:#x} (its entry maps {})",
            layout.name(level),
            layout.index(addr, level),
            bytes(layout.span(level))
        );
    }
    let offset = addr & (layout.page - 1);
    println!(
        "  bits {:>2}..0  offset in the page: {offset:#x}",
        layout.offset_bits - 1
    );
    let entry = page_entry(addr)?;
    // ANCHOR_END: walk_address_through_tables
    let sizes: Vec<String> = hugetlb_sizes()
        .into_iter()
        .map(
            |size| match (1..=layout.levels).find(|&l| layout.span(l) == size) {
                Some(level) => format!("{} (one {} entry)", bytes(size), layout.name(level)),
                None => format!("{} (several entries)", bytes(size)),
            },
        )
        .collect();
    println!(
        "hugetlb page sizes offered by this kernel: {}",
        sizes.join(", ")
    );
    vmbook::pause::here(
        "the Box is allocated and touched",
        &["grep -E 'VmPTE|VmRSS' /proc/PID/status"],
    );
    let claim = "one entry of the table above the last maps exactly one transparent huge page";
    match thp_size() {
        Some(thp) => finding(
            claim,
            layout.span(2) == thp as u64,
            format!(
                "{entries} entries × {} = {}; hpage_pmd_size {}",
                bytes(layout.page as u64),
                bytes(layout.span(2)),
                bytes(thp as u64)
            ),
        ),
        None => not_checked(claim, "this kernel has no transparent huge pages"),
    }
    let claim = "the Box's physical address (frame × page size + offset) lies in System RAM";
    match entry.pfn.filter(|_| frames_visible()) {
        Some(pfn) => {
            let physical = pfn * layout.page as u64 + offset as u64;
            println!("pagemap: frame {pfn:#x}, so physical address {physical:#x}");
            let range = system_ram()
                .into_iter()
                .find(|&(s, e)| s <= physical && physical <= e);
            finding(
                claim,
                range.is_some(),
                match range {
                    Some((s, e)) => format!("System RAM {s:#x}-{e:#x} in /proc/iomem"),
                    None => format!("{physical:#x} is in no System RAM range of /proc/iomem"),
                },
            );
        }
        None => {
            println!("pagemap: the frame number is hidden from this process");
            not_checked(
                claim,
                "pagemap shows frame numbers only to CAP_SYS_ADMIN in the initial user namespace",
            )
        }
    }
    std::hint::black_box(&variable);
    Ok(())
}
