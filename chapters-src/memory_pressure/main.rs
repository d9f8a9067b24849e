//! Chapter 8, "Memory pressure": what a process really costs (RSS vs PSS), how pages leave RAM
//! (file pages to their file, anonymous pages to swap), MADV_FREE vs MADV_DONTNEED, overcommit,
//! the OOM killer contained in a cgroup, and mlock.

mod cgroup;
mod child;
mod free_keeps_data_dontneed_zeroes;
mod memory;
mod mlock_keeps_pages_in_ram;
mod oom_killer_in_a_cgroup;
mod overcommit_refuses_one_big_allocation;
mod pageout_anon_needs_swap;
mod pageout_file_pages_come_back;
mod rss_counts_pss_splits_shared_pages;

use clap::Subcommand;
use free_keeps_data_dontneed_zeroes::free_keeps_data_dontneed_zeroes;
use mlock_keeps_pages_in_ram::mlock_keeps_pages_in_ram;
use oom_killer_in_a_cgroup::oom_killer_in_a_cgroup;
use overcommit_refuses_one_big_allocation::overcommit_refuses_one_big_allocation;
use pageout_anon_needs_swap::pageout_anon_needs_swap;
use pageout_file_pages_come_back::pageout_file_pages_come_back;
use rss_counts_pss_splits_shared_pages::rss_counts_pss_splits_shared_pages;
use std::path::PathBuf;
use std::process::ExitCode;
use vmbook::chapter::pages_up_to;

/// At most 256 Ki pages (1 GiB with 4 KiB pages) in a region.
const MAX_PAGES: usize = 1 << 18;

/// Chapter 8 of the book, "Memory pressure": RSS vs PSS, MADV_PAGEOUT of file and anonymous
/// pages (swap), MADV_FREE vs MADV_DONTNEED, overcommit, the OOM killer in a memory cgroup, mlock.
#[derive(Subcommand)]
enum Experiment {
    /// Parent and child share a region: VmRSS, Pss and Private_* of each, and their sums.
    RssPss {
        /// How many pages the shared region holds.
        #[arg(long, default_value_t = 1024, value_parser = pages_up_to(MAX_PAGES))]
        pages: usize,
    },
    /// A clean file mapping: MADV_PAGEOUT drops its pages; reading them again takes major faults.
    PageoutFile {
        /// How many pages the file holds.
        #[arg(long, default_value_t = 256, value_parser = pages_up_to(MAX_PAGES))]
        pages: usize,
        /// Where to create the (immediately unlinked) file: a disk-backed filesystem, not tmpfs.
        /// Default: $TMPDIR or /tmp, else /var/tmp.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Anonymous pages and MADV_PAGEOUT: to swap if there is swap (pagemap bit 62, VmSwap), else
    /// nowhere.
    PageoutAnon {
        /// How many pages to write and page out.
        #[arg(long, default_value_t = 1024, value_parser = pages_up_to(MAX_PAGES))]
        pages: usize,
    },
    /// MADV_FREE keeps data and RSS until reclaim; MADV_DONTNEED drops both at once.
    Free {
        /// How many pages each region holds.
        #[arg(long, default_value_t = 256, value_parser = pages_up_to(MAX_PAGES))]
        pages: usize,
    },
    /// One mapping far beyond RAM + swap against many smaller ones that add up to it.
    Overcommit {
        /// Into how many pieces the big request is cut.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(2..=64))]
        pieces: u32,
    },
    /// oom_score_adj, and a child killed by the OOM killer inside a small memory cgroup (cgroup v2,
    /// memory controller available to this program's cgroup).
    Oom {
        /// memory.max of the child cgroup, in MiB.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(4..=1024))]
        max_mib: u64,
    },
    /// Locked pages stay in RAM (MADV_PAGEOUT refuses them); RLIMIT_MEMLOCK bounds what may be
    /// locked without CAP_IPC_LOCK.
    Mlock {
        /// How many pages to lock (and how many to leave unlocked beside them).
        #[arg(long, default_value_t = 16, value_parser = pages_up_to(MAX_PAGES))]
        pages: usize,
    },
}

fn main() -> ExitCode {
    vmbook::chapter::main(|experiment: Experiment| match experiment {
        Experiment::RssPss { pages } => rss_counts_pss_splits_shared_pages(pages),
        Experiment::PageoutFile { pages, dir } => pageout_file_pages_come_back(pages, dir),
        Experiment::PageoutAnon { pages } => pageout_anon_needs_swap(pages),
        Experiment::Free { pages } => free_keeps_data_dontneed_zeroes(pages),
        Experiment::Overcommit { pieces } => overcommit_refuses_one_big_allocation(pieces as u64),
        Experiment::Oom { max_mib } => oom_killer_in_a_cgroup(max_mib),
        Experiment::Mlock { pages } => mlock_keeps_pages_in_ram(pages),
    })
}
