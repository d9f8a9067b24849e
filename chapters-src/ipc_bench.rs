//! Appendix A, "Measured IPC": seed 001's comparison table of IPC methods, measured. Throughput
//! of a pipe, a Unix socket, a POSIX message queue and a ring buffer in shared memory, against
//! memcpy as the ceiling; round trips of a small message through each, and through futexes,
//! semaphores and signals; both with the two processes on one core and on two.

#[path = "ipc_bench/chart.rs"]
mod chart;
#[path = "ipc_bench/pair.rs"]
mod pair;
#[path = "ipc_bench/ping.rs"]
mod ping;
#[path = "ipc_bench/ring.rs"]
mod ring;
#[path = "ipc_bench/stream.rs"]
mod stream;

use anyhow::{ensure, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use pair::{usable_cpus, Placement};
use ping::Ping;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use stream::Transport;
use vmbook::{banner, bytes, finding, section};

/// Appendix A of the book, "Measured IPC": how fast pipes, Unix sockets, POSIX message queues,
/// a shared-memory ring, futexes, semaphores and signals move data between two processes on this
/// machine, with both processes on one CPU core and on two.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Options {
    #[command(subcommand)]
    experiment: Experiment,
    /// Stop while the two processes and their channel exist, print what to inspect, wait for Enter.
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
        /// The directory to write ipc-throughput.svg and ipc-latency.svg into.
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

/// Parses `4096`, `64K`, `8M`, `1G` (binary units; `KiB`, `MiB`, `GiB` work too).
fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => return Err(format!("`{text}`: unknown unit (use K, M or G)")),
    };
    let n: usize = number
        .parse()
        .map_err(|_| format!("`{text}`: not a size such as 4096, 64K or 1G"))?;
    n.checked_mul(1 << shift)
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("`{text}`: must be between 1 byte and the address space"))
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
            } => draw_charts(&out, volume, iterations),
        }
    })
}

/// The placements asked for; two cores only where this process may use two CPUs.
fn placements(wanted: Where) -> Result<Vec<Placement>> {
    let (_, second) = usable_cpus()?;
    let mut list = Vec::new();
    if wanted != Where::TwoCores {
        list.push(Placement::OneCore);
    }
    if wanted != Where::OneCore {
        if second.is_some() {
            list.push(Placement::TwoCores);
        } else {
            println!("note: this process may run on one CPU only: no two-core measurements");
        }
    }
    Ok(list)
}

fn gbps(bytes_per_second: f64) -> String {
    format!("{:.2} GB/s", bytes_per_second / 1e9)
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
    println!(
        "{:<14} {:<11} {:>11} {:>10} {:>9}",
        "transport", "placement", "rate", "of memcpy", "vs pipe"
    );
    println!(
        "{:<14} {:<11} {:>11} {:>10}",
        "memcpy",
        "one process",
        gbps(memcpy),
        "100%"
    );
    println!(
        "{:<14} {:<11} {:>11} {:>10}",
        "memcpy 64 MiB",
        "one process",
        gbps(ram),
        format!("{:.0}%", 100.0 * ram / memcpy)
    );
    for &p in &placements {
        for &t in &transports {
            let rate = best[&(t, p)];
            let vs_pipe = best
                .get(&(Transport::Pipe, p))
                .map_or(String::new(), |pipe| format!("{:.1}×", rate / pipe));
            println!(
                "{:<14} {:<11} {:>11} {:>10} {:>9}",
                t.label(),
                p.label(),
                gbps(rate),
                format!("{:.0}%", 100.0 * rate / memcpy),
                vs_pipe
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

/// Median and 99th percentile (nearest rank) of nanosecond samples.
fn percentiles(samples: &mut [f64]) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at =
        |q: f64| samples[((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1];
    (at(0.5), at(0.99))
}

/// A time in the unit that suits it: `850 ns`, `6.1 µs`, `2.3 ms`.
fn time(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{:.1} ms", ns / 1e6)
    }
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
        "{:<16} {:<10} {:>9} {:>9} {:>11}",
        "transport", "placement", "median", "p99", "vs fastest"
    );
    for (k, p, trips, median, p99) in rows {
        let note = if trips < iterations {
            format!("  ({trips} round trips only)")
        } else {
            String::new()
        };
        println!(
            "{:<16} {:<10} {:>9} {:>9} {:>11}{note}",
            k.label(),
            p.label(),
            time(median),
            time(p99),
            format!("{:.1}×", median / fastest)
        );
    }
    let get = |k, p| medians.get(&(k, p)).copied();
    let others = |skip: (Ping, Placement)| {
        medians
            .iter()
            .filter(move |(key, _)| **key != skip)
            .map(|(_, &v)| v)
    };
    if let Some(spin) = get(Ping::Spin, Placement::TwoCores) {
        let next = others((Ping::Spin, Placement::TwoCores)).fold(f64::MAX, f64::min);
        finding(
            "spinning on a shared word, two cores, is the fastest round trip",
            spin < next,
            format!("{} against the next best {}", time(spin), time(next)),
        );
    }
    if let Some(spin) = get(Ping::Spin, Placement::OneCore) {
        let worst = others((Ping::Spin, Placement::OneCore)).fold(0f64, f64::max);
        finding(
            "spinning on a shared word, one core, is the slowest round trip",
            spin > worst,
            format!("{} against the next worst {}", time(spin), time(worst)),
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

/// The chunk sizes of the throughput chart.
const CHART_CHUNKS: [usize; 5] = [1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10];
/// How many times the chart measures each point (it keeps the best).
const CHART_RUNS: u32 = 2;

/// `path` relative to the project, when it lies inside it (as the book's charts do).
fn shown(path: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

// ANCHOR: draw_charts
fn draw_charts(out: &Path, volume: usize, iterations: u32) -> Result<()> {
    let placements = placements(Where::Both)?;
    let mut transports = Transport::ALL.to_vec();
    let mut kinds = Ping::ALL.to_vec();
    if mqueue_works().is_err() {
        transports.retain(|t| *t != Transport::Mqueue);
        kinds.retain(|k| *k != Ping::Mqueue);
    }
    section(&format!(
        "Throughput against chunk size: {} per point, best of {CHART_RUNS}",
        bytes(volume as u64)
    ));
    let count = |chunk: usize| (volume / chunk).max(2) as u64;
    let mut memcpy = chart::Series {
        label: "memcpy".into(),
        points: Vec::new(),
    };
    for &chunk in &CHART_CHUNKS {
        let best = stream::memcpy(chunk, count(chunk))?.max(stream::memcpy(chunk, count(chunk))?);
        memcpy.points.push((chunk as f64 / 1024.0, best / 1e9));
    }
    // Best of CHART_RUNS, the runs of all points alternating.
    let mut best: HashMap<(Placement, Transport, usize), f64> = HashMap::new();
    for _ in 0..CHART_RUNS {
        for &p in &placements {
            for &t in &transports {
                for &chunk in &CHART_CHUNKS {
                    let rate = stream::stream(t, p, chunk, count(chunk))?;
                    let slot = best.entry((p, t, chunk)).or_insert(0.0);
                    *slot = slot.max(rate);
                }
            }
        }
    }
    let mut panels = Vec::new();
    for &p in &placements {
        let mut series = vec![chart::Series {
            label: memcpy.label.clone(),
            points: memcpy.points.clone(),
        }];
        for &t in &transports {
            let points = CHART_CHUNKS
                .iter()
                .map(|&chunk| (chunk as f64 / 1024.0, best[&(p, t, chunk)] / 1e9))
                .collect();
            series.push(chart::Series {
                label: t.label().into(),
                points,
            });
        }
        panels.push((format!("Throughput, {}", p.label()), series));
    }
    let mut bars = Vec::new();
    for &k in &kinds {
        let mut medians = Vec::new();
        for &p in &placements {
            let trips = if k == Ping::Spin && p == Placement::OneCore {
                iterations.min(SPIN_ONE_CORE_TRIPS)
            } else {
                iterations
            };
            let (median, _) = percentiles(&mut ping::round_trips(k, p, trips)?);
            medians.push(Some(median / 1e3));
        }
        bars.push((k.label().to_string(), medians));
    }
    let labels: Vec<&str> = placements.iter().map(|p| p.label()).collect();
    std::fs::create_dir_all(out).with_context(|| format!("mkdir -p {}", out.display()))?;
    let files = [
        ("ipc-throughput.svg", chart::throughput_svg(&panels)?),
        ("ipc-latency.svg", chart::latency_svg(&labels, &bars)?),
    ];
    // ANCHOR_END: draw_charts
    print!("{:<14} {:<10}", "transport", "placement");
    for chunk in CHART_CHUNKS {
        print!(" {:>10}", bytes(chunk as u64));
    }
    println!();
    for ((title, series), p) in panels.iter().zip(&placements) {
        let _ = title;
        for s in series.iter().skip(1) {
            print!("{:<14} {:<10}", s.label, p.label());
            for (_, gb) in &s.points {
                print!(" {:>10}", gbps(gb * 1e9));
            }
            println!();
        }
    }
    print!("{:<14} {:<10}", "memcpy", "");
    for (_, gb) in &memcpy.points {
        print!(" {:>10}", gbps(gb * 1e9));
    }
    println!();
    for (name, svg) in files {
        let path = out.join(name);
        std::fs::write(&path, &svg).with_context(|| format!("write {}", path.display()))?;
        println!(
            "wrote {} ({} series)",
            shown(&path),
            svg.matches("<polyline").count()
        );
    }
    for (title, series) in &panels {
        if let Some(pipe) = series.iter().find(|s| s.label == Transport::Pipe.label()) {
            let (small, large) = (pipe.points[0].1, pipe.points[CHART_CHUNKS.len() - 1].1);
            finding(
                &format!(
                    "a pipe moves {} chunks faster than {} chunks ({})",
                    bytes(CHART_CHUNKS[CHART_CHUNKS.len() - 1] as u64),
                    bytes(CHART_CHUNKS[0] as u64),
                    title.trim_start_matches("Throughput, ")
                ),
                large > small,
                format!("{:.1}×", large / small),
            );
        }
    }
    Ok(())
}
