//! Chapter 1, "Virtual memory": every address a program uses is virtual, private to its process,
//! and backed by RAM only where it has been touched.

mod aslr;
mod fork;
mod maps;
mod reserve;

use anyhow::Result;
use clap::{Parser, Subcommand};
use vmbook::banner;

/// Chapter 1 of the book, "Virtual memory": this process's own address space, one address holding
/// two values in two processes, address space reserved far beyond RAM, and ASLR.
#[derive(Parser)]
#[command(version)]
struct Options {
    #[command(subcommand)]
    experiment: Option<Experiment>,
    /// Stop at each experiment, print this process's pid and what to inspect, wait for Enter.
    #[arg(long, global = true)]
    pause: bool,
}

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
    /// (Used by `aslr`.) Print this process's stack, heap, mmap and code addresses, and exit.
    #[command(hide = true)]
    AslrProbe,
}

fn main() -> std::process::ExitCode {
    let options = Options::parse();
    vmbook::pause::enable(options.pause);
    vmbook::run(|| match options.experiment {
        Some(Experiment::AslrProbe) => aslr::aslr_probe(),
        Some(experiment) => {
            banner();
            run(experiment)
        }
        None => {
            banner();
            run(Experiment::Maps)?;
            run(Experiment::Fork)?;
            run(Experiment::Reserve {
                reserve_gib: 1024,
                touch_mib: 16,
            })?;
            run(Experiment::Aslr { runs: 4 })
        }
    })
}

fn run(experiment: Experiment) -> Result<()> {
    match experiment {
        Experiment::Maps => maps::where_things_live(),
        Experiment::Fork => fork::one_address_two_values(),
        Experiment::Reserve {
            reserve_gib,
            touch_mib,
        } => reserve::reserve_more_than_ram(reserve_gib, touch_mib),
        Experiment::Aslr { runs } => aslr::layout_moves_every_run(runs),
        Experiment::AslrProbe => aslr::aslr_probe(),
    }
}
