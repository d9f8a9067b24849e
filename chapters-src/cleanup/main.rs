//! Chapter 10, "Cleanup": what a program leaves behind when it ends, on every path: a leak valgrind
//! cannot see, an orphan in /dev/shm after SIGKILL, which endings run Drop, signals handled safely,
//! zombies, and what munmap, close and shm_unlink each free.

mod child;
mod drop_table;
mod flag_handler;
mod object;
mod order_of_munmap_close_unlink;
mod orphan_outlives_its_creator;
mod signals_clean_up_on_main_path;
mod unlink_early_leaves_nothing;
mod valgrind_misses_mmap_leaks;
mod watch_leak_from_outside;
mod zombie_until_reaped;

use clap::Subcommand;
use drop_table::drop_table;
use order_of_munmap_close_unlink::order_of_munmap_close_unlink;
use orphan_outlives_its_creator::orphan_outlives_its_creator;
use signals_clean_up_on_main_path::signals_clean_up_on_main_path;
use std::process::ExitCode;
use unlink_early_leaves_nothing::unlink_early_leaves_nothing;
use valgrind_misses_mmap_leaks::{leak_probe, valgrind_misses_mmap_leaks};
use watch_leak_from_outside::watch_leak_from_outside;
use zombie_until_reaped::zombie_until_reaped;

/// Chapter 10 of the book, "Cleanup": leaks valgrind does not report, objects that outlive a
/// SIGKILLed creator, which endings run Drop, signal handlers that only set a flag, zombies, and what
/// munmap, close and shm_unlink each free.
#[derive(Subcommand)]
enum Experiment {
    /// Seed 000 under valgrind: an mmap'd region and a malloc'd block, both leaked; what it reports.
    Valgrind {
        /// The size of each leak (the mapping and the heap block), in KiB.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65536))]
        kib: u64,
        /// The valgrind program to run (a path, or a name looked up in PATH).
        #[arg(long, default_value = "valgrind")]
        valgrind: String,
    },
    /// A child leaks mappings one by one; watch them from outside in /proc/PID (pmap-style).
    WatchLeak {
        /// How many mappings the child leaks.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
        leaks: u32,
        /// The size of each leaked mapping, in MiB.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
        mib: u64,
    },
    /// The creator of a shm object is SIGKILLed before shm_unlink: the object stays in /dev/shm.
    Orphan {
        /// The size of the object, in KiB.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65536))]
        kib: u64,
    },
    /// Open the object in every process, unlink it at once: SIGKILL then leaves nothing behind.
    UnlinkEarly {
        /// The size of the object, in KiB.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65536))]
        kib: u64,
    },
    /// Seven ways for a child to end, and whether its Drop ran and its object stayed in /dev/shm.
    DropTable,
    /// A SIGINT handler that only sets a flag and writes to a pipe; cleanup on the main path.
    Signals,
    /// A child that exited but was not waited for: a zombie in /proc, until waitpid reaps it.
    Zombie {
        /// The exit status the child returns (read back by waitpid).
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(i32).range(0..=255))]
        exit_code: i32,
    },
    /// munmap, close and shm_unlink in two orders: what each one frees.
    Order {
        /// The size of the object, in MiB.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1024))]
        mib: u64,
    },
}

/// The roles this program is started again in (`cleanup child ROLE`).
#[derive(Subcommand)]
enum Role {
    /// (Run under valgrind by `valgrind`.) Seed 000: mmap, fork, _exit; then leak a heap block.
    LeakProbe {
        /// The size of each leak, in bytes.
        #[arg(long)]
        bytes: usize,
    },
}

fn main() -> ExitCode {
    vmbook::chapter::main_with_roles(
        |experiment: Experiment| match experiment {
            Experiment::Valgrind { kib, valgrind } => {
                valgrind_misses_mmap_leaks(kib << 10, &valgrind)
            }
            Experiment::WatchLeak { leaks, mib } => watch_leak_from_outside(leaks, mib << 20),
            Experiment::Orphan { kib } => orphan_outlives_its_creator(kib << 10),
            Experiment::UnlinkEarly { kib } => unlink_early_leaves_nothing(kib << 10),
            Experiment::DropTable => drop_table(),
            Experiment::Signals => signals_clean_up_on_main_path(),
            Experiment::Zombie { exit_code } => zombie_until_reaped(exit_code),
            Experiment::Order { mib } => order_of_munmap_close_unlink(mib << 20),
        },
        |role: Role| match role {
            Role::LeakProbe { bytes } => leak_probe(bytes),
        },
    )
}
