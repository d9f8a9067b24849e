//! Chapter 9, "Synchronization": the races of seeds 001-003 made visible, then fixed with atomics,
//! a process-shared mutex, a futex, POSIX semaphores and a robust mutex, with their costs measured.

mod children;
mod cost_of_waiting;
mod lost_updates;
mod pipeline_fixed;
mod plain_flag_is_not_enough;
mod pthread;
mod robust_mutex;
mod semaphores_fix_the_seeds;
mod shared;
mod timing;

use clap::Subcommand;
use cost_of_waiting::cost_of_waiting;
use lost_updates::lost_updates;
use pipeline_fixed::pipeline_fixed;
use plain_flag_is_not_enough::plain_flag_is_not_enough;
use robust_mutex::robust_mutex;
use semaphores_fix_the_seeds::semaphores_fix_the_seeds;
use std::process::ExitCode;

/// Chapter 9 of the book, "Synchronization": races between processes that share memory, and fixes.
///
/// Each subcommand runs one experiment of the chapter: it makes a race of the seeds happen (lost
/// updates, a flag the optimizer hides, a greeting read too early, a mutex whose owner died) and
/// measures the fixes (atomics, a process-shared mutex, futex wait/wake, POSIX semaphores, a robust
/// mutex). Every wait has a time limit, and nothing is left in /dev/shm, even after Ctrl-C.
/// Without a subcommand, every experiment runs, in the chapter's order.
#[derive(Subcommand)]
enum Experiment {
    /// Two processes increment one shared counter: plain, AtomicU64::fetch_add, pthread mutex.
    LostUpdates {
        /// Increments per process (more makes the lost updates and the costs steadier).
        #[arg(long, default_value_t = 5_000_000, value_parser = clap::value_parser!(u64).range(1000..=1_000_000_000))]
        increments: u64,
    },
    /// A child waits for a flag set by its parent: plain load, volatile load, Acquire load.
    Flag {
        /// How long the parent lets a waiting child spin before it kills it, in milliseconds.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(10..=10_000))]
        timeout_ms: u64,
    },
    /// Waiting for another process: usleep(1000) polling vs spinning vs futex wait/wake.
    Waiting {
        /// How long the waiter waits each round, in milliseconds.
        #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        wait_ms: u64,
        /// Rounds per method (the medians are reported).
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=1000))]
        rounds: u32,
    },
    /// Seed 002's race and seed 003's fix: a named and an unnamed POSIX semaphore.
    Semaphores {
        /// How many times to fork a reader for each variant.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        runs: u32,
        /// Write the greeting as soon as fork returns, as seed 002 does, instead of waiting until
        /// the child is running: the race is then lost only now and then.
        #[arg(long)]
        natural: bool,
    },
    /// Seed 001's numbers pipeline: the 0/1/2 usleep protocol vs a futex ring of slots.
    Pipeline {
        /// How many lines the parent sends.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        lines: u64,
        /// Slots in the futex ring.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
        slots: u32,
    },
    /// A mutex owner is SIGKILLed: a robust mutex reports EOWNERDEAD, a plain one never frees.
    Robust {
        /// How long the next locker of the plain mutex waits before it gives up, in milliseconds.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        timeout_ms: u64,
    },
}

fn main() -> ExitCode {
    vmbook::chapter::main(|experiment: Experiment| match experiment {
        Experiment::LostUpdates { increments } => lost_updates(increments),
        Experiment::Flag { timeout_ms } => plain_flag_is_not_enough(timeout_ms),
        Experiment::Waiting { wait_ms, rounds } => cost_of_waiting(wait_ms, rounds),
        Experiment::Semaphores { runs, natural } => semaphores_fix_the_seeds(runs, natural),
        Experiment::Pipeline { lines, slots } => pipeline_fixed(lines, slots),
        Experiment::Robust { timeout_ms } => robust_mutex(timeout_ms),
    })
}
