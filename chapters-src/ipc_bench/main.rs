//! Appendix A, "Measured IPC": seed 001's comparison table of IPC methods, measured. Throughput
//! of a pipe, a Unix socket, a POSIX message queue and a ring buffer in shared memory, against
//! memcpy as the ceiling; round trips of a small message through each, and through futexes,
//! semaphores and signals; both with the two processes on one core and on two.

mod chart;
mod pair;
mod ping;
mod ring;
mod round_trip_latency;
mod stream;
mod streaming_throughput;
mod units;
mod wanted;

use clap::{Subcommand, ValueEnum};
use ping::Ping;
use std::path::PathBuf;
use std::process::ExitCode;
use stream::Transport;
use units::parse_size;

/// Appendix A of the book, "Measured IPC": how fast pipes, Unix sockets, POSIX message queues,
/// a shared-memory ring, futexes, semaphores and signals move data between two processes on this
/// machine, with both processes on one CPU core and on two.
#[derive(Subcommand)]
enum Experiment {
    /// Stream bytes from a child to its parent through each transport; memcpy is the ceiling.
    Throughput {
        /// How much to send through each transport (K, M, G suffixes: 1G = 1 GiB).
        // 32M, not less: at several GB/s, 8 MiB is timed over about a millisecond, and one
        // slow stretch of a virtual CPU then decided the order of ring and pipe in about 1 run in 30.
        #[arg(long, default_value = "32M", value_parser = parse_size)]
        volume: usize,
        /// How much each send and each receive moves (a multiple of 8 bytes).
        #[arg(long, default_value = "64K", value_parser = parse_size)]
        chunk: usize,
        /// Measure only these transports (repeat the option; default: all).
        #[arg(long, value_enum)]
        transport: Vec<Transport>,
        /// Where the two processes run.
        #[arg(long, value_enum, default_value = "both")]
        placement: Where,
        /// Measure each transport this many times and keep the best (noise only slows runs down).
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
        runs: u32,
    },
    /// Measure throughput against chunk size and round trips, and draw both as SVG charts.
    Chart {
        /// The directory to write ipc-throughput.svg and ipc-latency.svg into (default:
        /// $VMBOOK_FIGURES, else the book's own charts directory, whatever the current directory).
        #[arg(long)]
        out: Option<PathBuf>,
        /// How much to send per transport, placement and chunk size.
        #[arg(long, default_value = "2M", value_parser = parse_size)]
        volume: usize,
        /// How many round trips to time per transport and placement.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
        iterations: u32,
    },
    /// Time round trips of a 4-byte message through each transport: median and 99th percentile.
    Latency {
        /// How many round trips to time per transport and placement.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
        iterations: u32,
        /// Measure only these transports (repeat the option; default: all).
        #[arg(long, value_enum)]
        transport: Vec<Ping>,
        /// Where the two processes run.
        #[arg(long, value_enum, default_value = "both")]
        placement: Where,
    },
}

/// Where the two processes run.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Where {
    OneCore,
    TwoCores,
    Both,
}

fn main() -> ExitCode {
    vmbook::chapter::main(|experiment: Experiment| match experiment {
        Experiment::Throughput {
            volume,
            chunk,
            transport,
            placement,
            runs,
        } => streaming_throughput::streaming_throughput(volume, chunk, &transport, placement, runs),
        Experiment::Chart {
            out,
            volume,
            iterations,
        } => chart::draw_charts(out.as_deref(), volume, iterations),
        Experiment::Latency {
            iterations,
            transport,
            placement,
        } => round_trip_latency::round_trip_latency(iterations, &transport, placement),
    })
}
