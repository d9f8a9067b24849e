//! Throughput: bytes streamed from a child to its parent through each transport, against memcpy
//! as the ceiling.

use crate::pair::Placement;
use crate::ping::{self, Ping};
use crate::stream::{self, Transport};
use crate::units::{gbps, percentiles};
use crate::wanted::{mqueue_works, no_second_cpu, placements};
use crate::Where;
use anyhow::{ensure, Result};
use std::collections::HashMap;
use vmbook::measure::time;
use vmbook::{bytes, finding, not_checked, section};

/// Round trips timed for the line above: enough for a stable median, well under a millisecond.
const LINE_TRIPS: u32 = 1024;

const ONE_CORE: &str = "the shm ring moves data faster than a pipe, one core";
const TWO_CORES: &str =
    "the shm ring keeps up with a pipe on two cores (at least four fifths of its rate)";

// ANCHOR: streaming_throughput
pub fn streaming_throughput(
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
        let (Some(&ring), Some(&pipe)) = (
            best.get(&(Transport::Ring, p)),
            best.get(&(Transport::Pipe, p)),
        ) else {
            continue;
        };
        let evidence = format!(
            "ring {}, pipe {}: {:.1}×",
            gbps(ring),
            gbps(pipe),
            ring / pipe
        );
        match p {
            Placement::OneCore => finding(ONE_CORE, ring > pipe, evidence),
            // On two CPUs both transports may be held to the speed at which cache lines travel
            // between them (see the prose): then they tie, and only a real loss is a refutation.
            Placement::TwoCores => finding(TWO_CORES, ring * 5.0 >= pipe * 4.0, evidence),
        }
    }
    if let Some(why) = no_second_cpu(placement)? {
        if best.contains_key(&(Transport::Ring, Placement::OneCore)) {
            not_checked(TWO_CORES, why);
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
    if placements.contains(&Placement::TwoCores) {
        // What every byte crossing between the two CPUs pays: a cache line's trip from one
        // core's cache to the other's and back, timed by two processes spinning on one word.
        let mut trips = ping::round_trips(Ping::Spin, Placement::TwoCores, LINE_TRIPS)?;
        let (median, _) = percentiles(&mut trips);
        println!(
            "a cache line's round trip between the two CPUs (spinning, median of {LINE_TRIPS}): {}",
            time(median)
        );
    }
    Ok(())
}
