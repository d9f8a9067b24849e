//! Latency: round trips of a small message through each transport, on one core and on two.

use crate::pair::Placement;
use crate::ping::{self, Ping};
use crate::units::percentiles;
use crate::wanted::{mqueue_works, no_second_cpu, placements};
use crate::Where;
use anyhow::Result;
use std::collections::HashMap;
use std::time::Instant;
use vmbook::measure::time;
use vmbook::{finding, not_checked, section};

/// Spinning on one core waits for the scheduler to preempt the spinner at every hand-over (a
/// few milliseconds each): a handful of round trips shows it.
pub const SPIN_ONE_CORE_TRIPS: u32 = 8;

/// How many times [`clock_read`] reads the clock.
const CLOCK_SAMPLES: usize = 1000;

/// What one read of the clock the round trips are timed with costs, in nanoseconds: the median
/// time between two reads in a row.
fn clock_read() -> f64 {
    let mut samples: Vec<f64> = (0..CLOCK_SAMPLES)
        .map(|_| {
            let start = Instant::now();
            start.elapsed().as_nanos() as f64
        })
        .collect();
    percentiles(&mut samples).0
}

// ANCHOR: round_trip_latency
pub fn round_trip_latency(iterations: u32, wanted: &[Ping], placement: Where) -> Result<()> {
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
        let batch = ping::trips_per_sample(k, p);
        let note = if trips < iterations {
            format!(" ({trips} round trips only)")
        } else if batch > 1 {
            match ping::groups(trips, batch) {
                1 => " (timed as one group)".to_string(),
                groups => format!(" (timed in {groups} groups)"),
            }
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
    if medians.contains_key(&(Ping::Spin, Placement::TwoCores)) {
        println!(
            "note: one read of the clock (Instant::now, median of {CLOCK_SAMPLES}) takes {}; \
             spin round trips on two cores are timed in groups of up to {}, so that it is not counted \
             in each",
            time(clock_read()),
            ping::SPIN_BATCH
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
    let spin = get(Ping::Spin, Placement::TwoCores);
    let next = others((Ping::Spin, Placement::TwoCores)).reduce(f64::min);
    if let (Some(spin), Some(next)) = (spin, next) {
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
