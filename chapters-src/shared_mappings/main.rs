//! Chapter 5, "Anonymous shared mappings": MAP_SHARED and MAP_PRIVATE side by side across fork
//! (seed 004, without its bugs), the frames behind them after both sides wrote, and the race hidden
//! in seed 002.

mod compare_shared_with_private;
mod frames_stay_shared_after_writes;
mod race_child_can_read_first;

use clap::Subcommand;
use compare_shared_with_private::compare_shared_with_private;
use frames_stay_shared_after_writes::frames_stay_shared_after_writes;
use race_child_can_read_first::{race_child_can_read_first, seed_002_child};
use std::process::ExitCode;

/// Chapter 5 of the book, "Anonymous shared mappings": what a child's writes do to MAP_SHARED and
/// MAP_PRIVATE memory, the physical frames behind both, and the race in seed 002.
#[derive(Subcommand)]
enum Experiment {
    /// Seed 004: map a region shared, then private; a child writes a string; the parent reads.
    Compare {
        /// Size of each region in pages.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1 << 24))]
        pages: u64,
        /// The string the child writes.
        #[arg(long, default_value = "written by the child", conflicts_with = "stdin")]
        text: String,
        /// Read the string from one line of stdin instead (at most one page is kept).
        #[arg(long)]
        stdin: bool,
    },
    /// Both sides write every page; compare their physical frames (pagemap) and smaps counters.
    Frames {
        /// Size of each region in pages.
        #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=65_536))]
        pages: u64,
    },
    /// Seed 002 run many times: how often does the child read before the parent wrote?
    Race {
        /// Runs per row.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        runs: u32,
        /// How long the parent sleeps: before fork in the second row, after it in the fourth.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        sleep_us: u64,
    },
}

/// The roles this program is started again in (`shared-mappings child ROLE`).
#[derive(Subcommand)]
enum Role {
    /// (Used by `race`.) Seed 002 once, in this new process: print what the child read.
    #[command(name = "seed-002")]
    Seed002 {
        /// Sleep this long first, just before the seed maps and forks.
        #[arg(long, default_value_t = 0)]
        nap_us: u64,
    },
}

fn main() -> ExitCode {
    vmbook::chapter::main_with_roles(
        |experiment: Experiment| match experiment {
            Experiment::Compare { pages, text, stdin } => {
                compare_shared_with_private(pages as usize, text, stdin)
            }
            Experiment::Frames { pages } => frames_stay_shared_after_writes(pages as usize),
            Experiment::Race { runs, sleep_us } => race_child_can_read_first(runs, sleep_us),
        },
        |role: Role| match role {
            Role::Seed002 { nap_us } => seed_002_child(nap_us),
        },
    )
}
