//! Chapter 2, "Pages": memory is mapped one page at a time, and a page costs RAM (and a page fault)
//! only when it is first touched.

mod advice;
mod dontneed_gives_pages_back;
mod first_touch_faults;
mod huge_page_faults;
mod page_sizes;
mod populate_moves_the_faults;
mod residency;

use clap::Subcommand;
use dontneed_gives_pages_back::dontneed_gives_pages_back;
use first_touch_faults::first_touch_faults;
use huge_page_faults::huge_page_faults;
use page_sizes::page_sizes;
use populate_moves_the_faults::populate_moves_the_faults;
use std::process::ExitCode;
use vmbook::chapter::pages_up_to;

/// At most 1 Mi pages in a region.
const MAX_PAGES: usize = 1 << 20;

/// Chapter 2 of the book, "Pages": the page size, page faults on first touch (counted and timed),
/// residency with mincore, MAP_POPULATE, MADV_DONTNEED and transparent huge pages.
#[derive(Subcommand)]
enum Experiment {
    /// Print the page size, the huge page size and the transparent huge page mode.
    Sizes,
    /// Map pages, write one byte into each, then do it again: faults, residency, time per page.
    Touch {
        /// How many pages to map and touch (more pages: steadier times, longer run).
        #[arg(long, default_value_t = 1024, value_parser = pages_up_to(MAX_PAGES))]
        pages: usize,
    },
    /// Map with and without MAP_POPULATE: where the page faults happen.
    Populate {
        /// How many pages to map, each way.
        #[arg(long, default_value_t = 1024, value_parser = pages_up_to(MAX_PAGES))]
        pages: usize,
    },
    /// Touch pages, give them back with madvise(MADV_DONTNEED), then read them again.
    Dontneed {
        /// How many pages to touch and give back.
        #[arg(long, default_value_t = 1024, value_parser = pages_up_to(MAX_PAGES))]
        pages: usize,
    },
    /// Touch a region with and without madvise(MADV_HUGEPAGE): faults per huge page.
    Huge {
        /// How many huge pages (of the size in
        /// /sys/kernel/mm/transparent_hugepage/hpage_pmd_size) the region spans.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=512))]
        huge_pages: u32,
    },
}

fn main() -> ExitCode {
    vmbook::chapter::main(|experiment: Experiment| match experiment {
        Experiment::Sizes => page_sizes(),
        Experiment::Touch { pages } => first_touch_faults(pages),
        Experiment::Populate { pages } => populate_moves_the_faults(pages),
        Experiment::Dontneed { pages } => dontneed_gives_pages_back(pages),
        Experiment::Huge { huge_pages } => huge_page_faults(huge_pages as usize),
    })
}
