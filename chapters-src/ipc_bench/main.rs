//! Appendix A, "Measured IPC": seed 001's comparison table of IPC methods, measured. Throughput
//! of a pipe, a Unix socket, a POSIX message queue and a ring buffer in shared memory, against
//! memcpy as the ceiling; round trips of a small message through each, and through futexes,
//! semaphores and signals; both with the two processes on one core and on two.

mod chart;
mod pair;
mod ping;
mod ring;
mod stream;
mod units;

use anyhow::{ensure, Result};
use clap::{Parser, Subcommand, ValueEnum};
use pair::{cpu_pair, Placement};
use ping::Ping;
use std::collections::HashMap;
use std::path::PathBuf;
use stream::Transport;
use units::{gbps, parse_size, percentiles};
use vmbook::measure::time;
use vmbook::{banner, bytes, finding, not_checked, section};

/// Appendix A of the book, "Measured IPC": how fast pipes, Unix sockets, POSIX message queues,
/// a shared-memory ring, futexes, semaphores and signals move data between two processes on this
/// machine, with both processes on one CPU core and on two.
#[derive(Parser)]
#[command(version, long_about = None)]
struct Options {
    #[command(subcommand)]
    experiment: Experiment,
    /// In `throughput`: stop while the ring is mapped in both processes, print what to inspect, and
    /// wait for Enter.
    #[arg(long, global = true)]
    pause: bool,
}

#[derive(Subcommand)]
enum Experiment {
    /// Stream bytes from a child to its parent through each transport; memcpy is the ceiling.
    Throughput {
        /// How much to send through each transport (K, M, G suffixes: 1G = 1 GiB).
        #[arg(long, default_value = "8M", value_parser = parse_size)]
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
    /// Measure throughput against chunk size and round trips, and draw both as SVG charts.
    Chart {
        /// The directory to write ipc-throughput.svg and ipc-latency.svg into (by default the
        /// book's own charts directory, whatever the current directory).
        #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/book/charts"))]
        out: PathBuf,
        /// How much to send per transport, placement and chunk size.
        #[arg(long, default_value = "2M", value_parser = parse_size)]
        volume: usize,
        /// How many round trips to time per transport and placement.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
        iterations: u32,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Where {
    OneCore,
    TwoCores,
    Both,
}

fn main() -> std::process::ExitCode {
    let options = Options::parse();
    vmbook::pause::enable(options.pause);
    vmbook::run(|| {
        banner();
        match options.experiment {
            Experiment::Throughput {
                volume,
                chunk,
                transport,
                placement,
                runs,
            } => streaming_throughput(volume, chunk, &transport, placement, runs),
            Experiment::Latency {
                iterations,
                transport,
                placement,
            } => round_trip_latency(iterations, &transport, placement),
            Experiment::Chart {
                out,
                volume,
                iterations,
            } => chart::draw_charts(&out, volume, iterations),
        }
    })
}

/// The placements asked for; two cores only where this process may use two CPUs.
fn placements(wanted: Where) -> Result<Vec<Placement>> {
    let pair = cpu_pair()?;
    let mut list = Vec::new();
    if wanted != Where::TwoCores {
        list.push(Placement::OneCore);
    }
    if wanted != Where::OneCore {
        if pair.second.is_some() {
            list.push(Placement::TwoCores);
        }
        if let Some(caveat) = pair.caveat() {
            println!("note: {caveat}");
        }
    }
    Ok(list)
}

/// Why the two-core findings cannot be checked here: `Some` when two cores were asked for and this
/// process may run on one CPU only.
fn no_second_cpu(wanted: Where) -> Result<Option<String>> {
    let pair = cpu_pair()?;
    Ok(match (wanted, pair.second) {
        (Where::OneCore, _) | (_, Some(_)) => None,
        _ => pair.caveat(),
    })
}

/// Whether this machine lets us create message queues (some containers forbid them).
fn mqueue_works() -> Result<(), String> {
    stream::open_queue(1, 8)
        .map(drop)
        .map_err(|e| format!("{e:#}"))
}

// ANCHOR: streaming_throughput
fn streaming_throughput(
    volume: usize,
    chunk: usize,
    wanted: &[Transport],
    placement: Where,
    runs: u32,
) -> Result<()> {
    ensure!(
        chunk % 8 == 0 && chunk <= 256 << 20,
        "--chunk {chunk}: must be a multiple of 8 bytes, at most 256M"
    );
    ensure!(volume >= 2 * chunk, "--volume must be at least two --chunk");
    let count = (volume / chunk) as u64;
    let volume = count as usize * chunk;
    let mut transports: Vec<Transport> = if wanted.is_empty() {
        Transport::ALL.to_vec()
    } else {
        wanted.to_vec()
    };
    let placements = placements(placement)?;
    section(&format!(
        "Throughput: {} in {} chunks from a child to its parent, best of {runs}",
        bytes(volume as u64),
        bytes(chunk as u64)
    ));
    println!(
        "pipe and ring buffer: {} each; every chunk checked (sequence number, checksum)",
        bytes(stream::buffer_size(chunk) as u64)
    );
    if transports.contains(&Transport::Mqueue) {
        if let Err(why) = mqueue_works() {
            println!("note: POSIX message queues skipped: {why}");
            transports.retain(|t| *t != Transport::Mqueue);
        }
    }
    // The ceilings: one copy of a chunk between two cached buffers, and one copy of 64 MiB.
    let mut memcpy = 0f64;
    for _ in 0..runs {
        memcpy = memcpy.max(stream::memcpy(chunk, count)?);
    }
    let ram = stream::memcpy_ram(64 << 20)?;
    // Runs of all transports alternate, so that a burst of load elsewhere hurts one run of
    // each rather than every run of one.
    let mut best: HashMap<(Transport, Placement), f64> = HashMap::new();
    for _ in 0..runs {
        for &p in &placements {
            for &t in &transports {
                let rate = stream::stream(t, p, chunk, count)?;
                let slot = best.entry((t, p)).or_insert(0.0);
                *slot = slot.max(rate);
            }
        }
    }
    // ANCHOR_END: streaming_throughput
    // Varying values go last on each line, unpadded, so that only they change from run to run.
    println!(
        "{:<14} {:<12} rate, share of memcpy, ratio to the pipe",
        "transport", "placement"
    );
    println!("{:<14} {:<12} {}", "memcpy", "one process", gbps(memcpy));
    let share = |rate: f64| format!("{:.0}%", 100.0 * rate / memcpy);
    println!(
        "{:<14} {:<12} {}, {}",
        "memcpy 64 MiB",
        "one process",
        gbps(ram),
        share(ram)
    );
    for &p in &placements {
        for &t in &transports {
            let rate = best[&(t, p)];
            let vs_pipe = best
                .get(&(Transport::Pipe, p))
                .map_or(String::new(), |pipe| format!(", {:.1}×", rate / pipe));
            println!(
                "{:<14} {:<12} {}, {}{vs_pipe}",
                t.label(),
                p.label(),
                gbps(rate),
                share(rate)
            );
        }
    }
    let fastest = best.values().fold(0f64, |a, &b| a.max(b));
    finding(
        "no transport between two processes reaches the memcpy ceiling",
        fastest < memcpy,
        format!("fastest {}, memcpy {}", gbps(fastest), gbps(memcpy)),
    );
    for &p in &placements {
        let (Some(ring), Some(pipe)) = (
            best.get(&(Transport::Ring, p)),
            best.get(&(Transport::Pipe, p)),
        ) else {
            continue;
        };
        finding(
            &format!("the shm ring moves data faster than a pipe, {}", p.label()),
            ring > pipe,
            format!(
                "ring {}, pipe {}: {:.1}×",
                gbps(*ring),
                gbps(*pipe),
                ring / pipe
            ),
        );
    }
    if let Some(why) = no_second_cpu(placement)? {
        if best.contains_key(&(Transport::Ring, Placement::OneCore)) {
            not_checked("the shm ring moves data faster than a pipe, two cores", why);
        }
    }
    if let (Some(one), Some(two)) = (
        best.get(&(Transport::Ring, Placement::OneCore)),
        best.get(&(Transport::Ring, Placement::TwoCores)),
    ) {
        println!(
            "shm ring: {:.0}% of memcpy on one core, {:.0}% on two; {:.0}% and {:.0}% of 64 MiB memcpy",
            100.0 * one / memcpy,
            100.0 * two / memcpy,
            100.0 * one / ram,
            100.0 * two / ram
        );
    }
    Ok(())
}

/// Spinning on one core waits for the scheduler to preempt the spinner at every hand-over (a
/// few milliseconds each): a handful of round trips shows it.
const SPIN_ONE_CORE_TRIPS: u32 = 8;

// ANCHOR: round_trip_latency
fn round_trip_latency(iterations: u32, wanted: &[Ping], placement: Where) -> Result<()> {
    let mut kinds: Vec<Ping> = if wanted.is_empty() {
        Ping::ALL.to_vec()
    } else {
        wanted.to_vec()
    };
    let placements = placements(placement)?;
    section(&format!(
        "Round trip of a 4-byte number, {iterations} times (after {} untimed), every reply checked",
        ping::WARMUP
    ));
    if kinds.contains(&Ping::Mqueue) {
        if let Err(why) = mqueue_works() {
            println!("note: POSIX message queues skipped: {why}");
            kinds.retain(|k| *k != Ping::Mqueue);
        }
    }
    let mut medians: HashMap<(Ping, Placement), f64> = HashMap::new();
    let mut rows = Vec::new();
    for &p in &placements {
        for &k in &kinds {
            let trips = if k == Ping::Spin && p == Placement::OneCore {
                iterations.min(SPIN_ONE_CORE_TRIPS)
            } else {
                iterations
            };
            let mut samples = ping::round_trips(k, p, trips)?;
            let (median, p99) = percentiles(&mut samples);
            medians.insert((k, p), median);
            rows.push((k, p, trips, median, p99));
        }
    }
    // ANCHOR_END: round_trip_latency
    let fastest = medians.values().fold(f64::MAX, |a, &b| a.min(b));
    println!(
        "{:<16} {:<10} median, 99th percentile, ratio to the fastest median",
        "transport", "placement"
    );
    for (k, p, trips, median, p99) in rows {
        let note = if trips < iterations {
            format!(" ({trips} round trips only)")
        } else {
            String::new()
        };
        println!(
            "{:<16} {:<10} {}, {}, {:.1}×{note}",
            k.label(),
            p.label(),
            time(median),
            time(p99),
            median / fastest
        );
    }
    let get = |k, p| medians.get(&(k, p)).copied();
    let others = |skip: (Ping, Placement)| {
        medians
            .iter()
            .filter(move |(key, _)| **key != skip)
            .map(|(_, &v)| v)
    };
    if let Some(why) = no_second_cpu(placement)? {
        for (k, claim) in [
            (
                Ping::Spin,
                "spinning on a shared word, two cores, is the fastest round trip",
            ),
            (
                Ping::Spin,
                "spinning on a shared word is at least ten times slower on one core than on two",
            ),
            (
                Ping::Pipe,
                "a pipe round trip is faster on one core than on two",
            ),
            (
                Ping::Futex,
                "a shm + futex round trip is faster on one core than on two",
            ),
        ] {
            if get(k, Placement::OneCore).is_some() {
                not_checked(claim, &why);
            }
        }
    }
    if let Some(spin) = get(Ping::Spin, Placement::TwoCores) {
        let next = others((Ping::Spin, Placement::TwoCores)).fold(f64::MAX, f64::min);
        finding(
            "spinning on a shared word, two cores, is the fastest round trip",
            spin < next,
            format!("{} against the next best {}", time(spin), time(next)),
        );
    }
    if let (Some(one), Some(two)) = (
        get(Ping::Spin, Placement::OneCore),
        get(Ping::Spin, Placement::TwoCores),
    ) {
        finding(
            "spinning on a shared word is at least ten times slower on one core than on two",
            one > 10.0 * two,
            format!("{} against {}: {:.0}×", time(one), time(two), one / two),
        );
    }
    for k in [Ping::Pipe, Ping::Futex] {
        if let (Some(one), Some(two)) = (get(k, Placement::OneCore), get(k, Placement::TwoCores)) {
            finding(
                &format!(
                    "a {} round trip is faster on one core than on two",
                    k.label()
                ),
                one < two,
                format!("{} against {}", time(one), time(two)),
            );
        }
    }
    Ok(())
}
