//! The appendix's two charts: throughput against chunk size for each transport (one panel per
//! placement), and the median round trip of each transport, measured here and drawn by
//! `vmbook::chart`.

use super::pair::Placement;
use super::ping::{self, Ping};
use super::round_trip_latency::SPIN_ONE_CORE_TRIPS;
use super::stream::{self, Transport};
use super::units::{gbps, percentiles};
use super::wanted::{mqueue_works, placements};
use super::Where;
use anyhow::Result;
use plotters::prelude::SeriesLabelPosition;
use std::collections::HashMap;
use std::path::Path;
use vmbook::chart::{bars_svg, log_lines_svg, Axes, Series};
use vmbook::{bytes, figure, finding, section};

/// The chunk sizes of the throughput chart.
const CHART_CHUNKS: [usize; 5] = [1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10];
/// How many times the chart measures each point (it keeps the best).
const CHART_RUNS: u32 = 2;

// ANCHOR: draw_charts
pub fn draw_charts(out: Option<&Path>, volume: usize, iterations: u32) -> Result<()> {
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
    let mut memcpy = Series {
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
        let mut series = vec![Series {
            label: memcpy.label.clone(),
            points: memcpy.points.clone(),
        }];
        for &t in &transports {
            let points = CHART_CHUNKS
                .iter()
                .map(|&chunk| (chunk as f64 / 1024.0, best[&(p, t, chunk)] / 1e9))
                .collect();
            series.push(Series {
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
    let files = [
        ("ipc-throughput.svg", throughput_svg(&panels)?),
        ("ipc-latency.svg", latency_svg(&placements, &bars)?),
    ];
    // ANCHOR_END: draw_charts
    let sizes: Vec<String> = CHART_CHUNKS.iter().map(|&c| bytes(c as u64)).collect();
    println!(
        "{:<14} {:<10} rate for chunks of {}",
        "transport",
        "placement",
        sizes.join(", ")
    );
    let rates = |s: &Series| -> String {
        let r: Vec<String> = s.points.iter().map(|(_, gb)| gbps(gb * 1e9)).collect();
        r.join(", ")
    };
    for (series, p) in panels.iter().map(|(_, s)| s).zip(&placements) {
        for s in series.iter().skip(1) {
            println!("{:<14} {:<10} {}", s.label, p.label(), rates(s));
        }
    }
    println!("{:<14} {:<10} {}", "memcpy", "", rates(&memcpy));
    // Written quietly: the output is the same whether or not the figures could be written.
    for (name, svg) in files {
        match out {
            Some(dir) => drop(figure::save_in(dir, name, &svg)?),
            None => figure::save(name, &svg),
        }
    }
    // With both processes on one core, a small chunk costs a system call and a context switch.
    if let Some((title, series)) = panels
        .first()
        .filter(|_| placements[0] == Placement::OneCore)
    {
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

/// Throughput against chunk size, one panel per placement.
fn throughput_svg(panels: &[(String, Vec<Series>)]) -> Result<String> {
    let axes = Axes {
        x: "chunk size (KiB)",
        y: "GB/s",
        legend: SeriesLabelPosition::LowerRight,
    };
    log_lines_svg(panels, &axes)
}

/// Median round trips in µs: one group per transport, one bar per placement.
fn latency_svg(placements: &[Placement], rows: &[(String, Vec<Option<f64>>)]) -> Result<String> {
    let groups: Vec<String> = rows.iter().map(|(name, _)| name.clone()).collect();
    let kinds: Vec<(String, Vec<Option<f64>>)> = placements
        .iter()
        .enumerate()
        .map(|(p, placement)| {
            let values = rows.iter().map(|(_, v)| v.get(p).copied().flatten());
            (placement.label().to_string(), values.collect())
        })
        .collect();
    let axes = Axes {
        x: "",
        y: "µs",
        legend: SeriesLabelPosition::UpperLeft,
    };
    bars_svg(
        "Round trip, median (log scale)",
        &groups,
        &kinds,
        &axes,
        true,
    )
}
