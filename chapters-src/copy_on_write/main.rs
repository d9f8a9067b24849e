//! Chapter 4, "Copy-on-write": after `fork`, parent and child share every private page until one of
//! them writes it; the writer then takes a page fault and gets a copy of its own.

mod cow_fault_cost;
mod fork_cost_grows_with_memory;
mod frames_figure;
mod link;
mod one_byte_copies_a_page;
mod parent_never_sees_private_write;
mod region;
mod same_frame_after_fork;

use clap::Subcommand;
use cow_fault_cost::cow_fault_cost;
use fork_cost_grows_with_memory::fork_cost_grows_with_memory;
use one_byte_copies_a_page::one_byte_copies_a_page;
use parent_never_sees_private_write::parent_never_sees_private_write;
use same_frame_after_fork::same_frame_after_fork;
use std::process::ExitCode;

/// Chapter 4 of the book, "Copy-on-write": the frames parent and child share after fork, what a
/// write costs the writer, why one byte copies a page, and what fork itself costs.
#[derive(Subcommand)]
enum Experiment {
    /// Fork; show the frames (as root) and pagemap's exclusive bit on both sides, before and after
    /// the child writes.
    SameFrame {
        /// How many pages the region holds.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
        pages: u32,
    },
    /// Count and time the child's copy-on-write faults, next to first-touch faults.
    CowCost {
        /// How many pages the child writes (more pages: steadier times).
        #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1048576))]
        pages: u32,
    },
    /// The child writes N bytes into one page, then one byte into each of N pages.
    OneByte {
        /// N: bytes written into one page, and pages written one byte each.
        #[arg(long, default_value_t = 64, value_parser = one_byte_copies_a_page::count_within_a_page)]
        count: usize,
    },
    /// Seed 004 with MAP_PRIVATE: the child writes a string, the parent looks for it.
    PrivateWrite {
        /// What the child writes into the mapping.
        #[arg(long, default_value = "hello from the child")]
        text: String,
    },
    /// Time fork with a small and a big resident region.
    ForkCost {
        /// The small region, in MiB.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=16384))]
        small_mib: u64,
        /// The big region, in MiB (try 1024 for a gigabyte).
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=16384))]
        big_mib: u64,
    },
}

fn main() -> ExitCode {
    vmbook::chapter::main(|experiment: Experiment| match experiment {
        Experiment::SameFrame { pages } => same_frame_after_fork(pages as usize),
        Experiment::CowCost { pages } => cow_fault_cost(pages as usize),
        Experiment::OneByte { count } => one_byte_copies_a_page(count),
        Experiment::PrivateWrite { text } => parent_never_sees_private_write(&text),
        Experiment::ForkCost { small_mib, big_mib } => {
            fork_cost_grows_with_memory(small_mib, big_mib)
        }
    })
}
