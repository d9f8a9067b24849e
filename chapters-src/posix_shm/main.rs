//! Chapter 7, "POSIX shared memory": an object with a name in /dev/shm, opened again by a fork+exec'd
//! child at another address; the RAII guard of the library (seed 003's class, done right); offsets
//! instead of pointers; and seed 001's numbers pipeline with its 0/1/2 flag protocol.

mod bad_input_demo;
mod children;
mod exec_child_maps_elsewhere;
mod guard_unlinks_on_every_exit;
mod names;
mod numbers_pipeline;
mod object_lives_in_dev_shm;
mod offsets_survive_pointers_break;
mod pipeline_child;

use anyhow::Result;
use bad_input_demo::bad_input_demo;
use clap::Subcommand;
use exec_child_maps_elsewhere::{exec_child, exec_child_maps_elsewhere};
use guard_unlinks_on_every_exit::guard_unlinks_on_every_exit;
use numbers_pipeline::numbers_pipeline;
use object_lives_in_dev_shm::object_lives_in_dev_shm;
use offsets_survive_pointers_break::{offsets_survive_pointers_break, walk_child};
use pipeline_child::pipeline_child;
use std::path::PathBuf;
use std::process::ExitCode;
use vmbook::numbers::SLOT_CAPACITY;

/// Chapter 7 of the book, "POSIX shared memory": shm_open/ftruncate/mmap and the object in
/// /dev/shm, a fork+exec'd child that opens it by name, the RAII guard, offsets instead of
/// pointers, and seed 001's numbers pipeline.
#[derive(Subcommand)]
enum Experiment {
    /// Create an object, look at it in /dev/shm, unlink it while it stays mapped.
    Object {
        /// The object's size in bytes (ftruncate).
        #[arg(long, default_value_t = 65_536, value_parser = clap::value_parser!(u64).range(1..=1 << 32))]
        size: u64,
    },
    /// Start a child with fork+exec that opens the object by name: where does it map it?
    Exec,
    /// The guard unlinks the name on every way out of a scope: end, `?`, panic.
    Guard,
    /// A list linked by offsets and one linked by pointers, walked by a forked and an exec'd child.
    Pointers,
    /// Seed 001: lines of numbers → shared memory → an exec'd child sums each line into a file.
    Pipeline {
        /// Read lines from this file instead of stdin.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Write the sums here (kept); by default to a temporary file without a name, shown, then gone.
        #[arg(long)]
        output: Option<PathBuf>,
        /// The longest line accepted, in bytes (at most the slot's 4072).
        #[arg(long, default_value_t = SLOT_CAPACITY as u64, value_parser = clap::value_parser!(u64).range(1..=SLOT_CAPACITY as u64))]
        max_line: u64,
        /// How long each side sleeps between looks at the flag (seed 001: 1000 µs).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        poll_us: u64,
    },
    /// Run `pipeline` on a file with bad lines and show its stdout, stderr and exit status.
    BadInputDemo {
        /// The input file, relative to the project root.
        #[arg(long, default_value = "book/data/numbers-bad.txt")]
        input: PathBuf,
    },
}

/// The roles this program is started again in (`posix-shm child ROLE`).
#[derive(Subcommand)]
enum Role {
    /// (Used by `exec`.) Open the object by name and report where it is mapped.
    Exec { name: String },
    /// (Used by `pointers`.) Open the object by name and walk both lists.
    Walk { name: String },
    /// (Used by `pipeline`.) Take lines from the slot, sum them, write the output file.
    Pipeline {
        name: String,
        output: PathBuf,
        max_line: usize,
        poll_us: u64,
    },
}

fn main() -> ExitCode {
    // `pipeline` exits with 2 when some input was bad; the others succeed or fail.
    let done = |result: Result<()>| result.map(|()| ExitCode::SUCCESS);
    vmbook::chapter::main_with_roles(
        |experiment: Experiment| match experiment {
            Experiment::Object { size } => done(object_lives_in_dev_shm(size as usize)),
            Experiment::Exec => done(exec_child_maps_elsewhere()),
            Experiment::Guard => done(guard_unlinks_on_every_exit()),
            Experiment::Pointers => done(offsets_survive_pointers_break()),
            Experiment::Pipeline {
                input,
                output,
                max_line,
                poll_us,
            } => numbers_pipeline(input, output, max_line as usize, poll_us),
            Experiment::BadInputDemo { input } => done(bad_input_demo(&input)),
        },
        |role: Role| match role {
            Role::Exec { name } => exec_child(&name),
            Role::Walk { name } => walk_child(&name),
            Role::Pipeline {
                name,
                output,
                max_line,
                poll_us,
            } => pipeline_child(&name, &output, max_line, poll_us),
        },
    )
}
