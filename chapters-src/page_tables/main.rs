//! Chapter 3, "Page tables and the TLB": how the MMU translates an address level by level, what the
//! tables cost, how far the TLB reaches with base and huge pages, how the permissions in a page
//! table entry are enforced, and the two kinds of huge pages.

mod chase;
mod fault_report;
mod guard_page;
mod hugetlb_next_to_transparent;
mod layout;
mod no_execute;
mod page_tables_take_memory;
mod pool_reservation;
mod protection_faults;
mod settings;
mod tlb_reach;
mod walk_address_through_tables;

use clap::Subcommand;
use hugetlb_next_to_transparent::hugetlb_next_to_transparent;
use page_tables_take_memory::page_tables_take_memory;
use protection_faults::protection_faults;
use std::path::PathBuf;
use std::process::ExitCode;
use tlb_reach::tlb_reach;
use walk_address_through_tables::walk_address_through_tables;

/// Chapter 3 of the book, "Page tables and the TLB": an address taken apart level by level, the
/// memory page tables take (VmPTE), TLB reach with base and huge pages, SIGSEGV from the
/// permissions in the page table, and transparent huge pages next to hugetlbfs (MAP_HUGETLB).
#[derive(Subcommand)]
enum Experiment {
    /// Split one of the program's addresses into page-table indices and offset; the frame (as root).
    Walk,
    /// VmPTE before and after touching pages side by side, and one page per last-level table.
    TableMemory {
        /// How many pages to touch each way (one table each when spread out).
        #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=16384))]
        touches: u32,
    },
    /// Random dependent reads over growing regions, base pages against huge pages; draws a chart.
    Tlb {
        /// The largest region (K, M, G suffixes); regions grow by 4× from 4 pages up to it.
        #[arg(long, default_value = "64M", value_parser = chase::parse_size)]
        max_size: usize,
        /// How many reads to time per region and page kind, split over eight runs (the fastest counts).
        #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1000..=100_000_000))]
        reads: u32,
        /// The directory to write page-tables-tlb-reach.svg into (default: $VMBOOK_FIGURES, else
        /// the book's own charts directory, whatever the current directory).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Write a read-only page, touch an unmapped address, a guard page, jump into a non-executable
    /// page, each in a forked child: which SIGSEGV, with which si_code and si_addr.
    Protect,
    /// Transparent huge pages next to MAP_HUGETLB and the hugetlb pool (as root: a few pages
    /// reserved for the run and given back).
    Hugetlb {
        /// How many huge pages to reserve in /proc/sys/vm/nr_hugepages for the run (root only).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
        reserve: u32,
    },
}

fn main() -> ExitCode {
    vmbook::chapter::main(|experiment: Experiment| match experiment {
        Experiment::Walk => walk_address_through_tables(),
        Experiment::TableMemory { touches } => page_tables_take_memory(touches as usize),
        Experiment::Tlb {
            max_size,
            reads,
            out,
        } => tlb_reach(max_size, reads as usize, &out),
        Experiment::Protect => protection_faults(),
        Experiment::Hugetlb { reserve } => hugetlb_next_to_transparent(reserve),
    })
}
