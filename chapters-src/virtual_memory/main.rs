//! Chapter 1, "Virtual memory": every address a program uses is virtual, private to its process,
//! and backed by RAM only where it has been touched.

mod address_space_figure;
mod aslr_layout_moves_every_run;
mod fork_one_address_two_values;
mod maps_where_things_live;
mod reserve_more_than_ram;

use aslr_layout_moves_every_run::{aslr_layout_moves_every_run, aslr_probe};
use clap::Subcommand;
use fork_one_address_two_values::fork_one_address_two_values;
use maps_where_things_live::maps_where_things_live;
use reserve_more_than_ram::reserve_more_than_ram;
use std::process::ExitCode;

/// Chapter 1 of the book, "Virtual memory": this process's own address space, one address holding
/// two values in two processes, address space reserved far beyond RAM, and ASLR.
#[derive(Subcommand)]
enum Experiment {
    /// List /proc/self/maps and find the mapping that holds each kind of variable.
    Maps,
    /// Fork; the child writes a variable; both print what they see at its address.
    Fork,
    /// Reserve address space with MAP_NORESERVE, then touch part of it: VmSize vs VmRSS.
    Reserve {
        /// How much address space to reserve, in GiB.
        #[arg(long, default_value_t = 1024)]
        reserve_gib: u64,
        /// How much of it to touch afterwards, in MiB.
        #[arg(long, default_value_t = 16)]
        touch_mib: u64,
    },
    /// Start this program again a few times and compare where stack, heap and mappings land.
    Aslr {
        /// How many fresh processes to start.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(2..=100))]
        runs: u32,
    },
}

/// The roles this program is started again in (`virtual-memory child ROLE`).
#[derive(Subcommand)]
enum Role {
    /// (Used by `aslr`.) Print this process's stack, heap, mmap and code addresses, and exit.
    AslrProbe,
}

fn main() -> ExitCode {
    vmbook::chapter::main_with_roles(
        |experiment: Experiment| match experiment {
            Experiment::Maps => maps_where_things_live(),
            Experiment::Fork => fork_one_address_two_values(),
            Experiment::Reserve {
                reserve_gib,
                touch_mib,
            } => reserve_more_than_ram(reserve_gib, touch_mib),
            Experiment::Aslr { runs } => aslr_layout_moves_every_run(runs),
        },
        |role: Role| match role {
            Role::AslrProbe => aslr_probe(),
        },
    )
}
