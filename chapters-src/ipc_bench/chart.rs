//! The appendix's two charts, drawn as SVG with plotters: throughput against chunk size for each
//! transport (one panel per placement), and the median round trip of each transport.

use super::pair::Placement;
use super::ping::{self, Ping};
use super::round_trip_latency::SPIN_ONE_CORE_TRIPS;
use super::stream::{self, Transport};
use super::units::{gbps, percentiles};
use super::wanted::{mqueue_works, placements};
use super::Where;
use anyhow::{Context, Result};
use plotters::prelude::*;
use std::collections::HashMap;
use std::path::Path;
use vmbook::{bytes, finding, section};

/// One line of the throughput chart: a label and (chunk in KiB, GB/s) points.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

const COLORS: [RGBColor; 7] = [
    RGBColor(0, 0, 0),
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        (0.1, 10.0)
    } else {
        (lo / 2.0, hi * 2.0)
    }
}

/// Throughput against chunk size: `panels` are (title, series), drawn side by side on one scale.
pub fn throughput_svg(panels: &[(String, Vec<Series>)]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 420)).into_drawing_area();
        root.fill(&WHITE).context("plotters: fill")?;
        let all = || {
            panels
                .iter()
                .flat_map(|(_, s)| s.iter().flat_map(|s| s.points.iter()))
        };
        let (x0, x1) = range(all().map(|p| p.0));
        let (y0, y1) = range(all().map(|p| p.1));
        let areas = root.split_evenly((1, panels.len().max(1)));
        for ((title, series), area) in panels.iter().zip(areas) {
            let mut chart = ChartBuilder::on(&area)
                .caption(title, ("sans-serif", 18))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
                .context("plotters: chart")?;
            chart
                .configure_mesh()
                .x_desc("chunk size (KiB)")
                .y_desc("GB/s")
                .draw()
                .context("plotters: mesh")?;
            for (i, s) in series.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                chart
                    .draw_series(LineSeries::new(
                        s.points.iter().copied(),
                        color.stroke_width(2),
                    ))
                    .context("plotters: line")?
                    .label(s.label.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .context("plotters: points")?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .context("plotters: legend")?;
        }
        root.present().context("plotters: present")?;
    }
    Ok(svg)
}

/// Median round trips in µs: one row per transport, one bar per placement (`None`: not measured).
pub fn latency_svg(placements: &[&str], rows: &[(String, Vec<Option<f64>>)]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 420)).into_drawing_area();
        root.fill(&WHITE).context("plotters: fill")?;
        let (y0, y1) = range(rows.iter().flat_map(|(_, v)| v.iter().flatten().copied()));
        let n = rows.len();
        let mut chart = ChartBuilder::on(&root)
            .caption("Round trip, median (log scale)", ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..n as f64, (y0..y1).log_scale())
            .context("plotters: chart")?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n * 2 + 1)
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                if (x - x.floor() - 0.5).abs() < 0.01 && i < n {
                    rows[i].0.clone()
                } else {
                    String::new()
                }
            })
            .y_desc("µs")
            .draw()
            .context("plotters: mesh")?;
        let width = 0.8 / placements.len().max(1) as f64;
        for (p, name) in placements.iter().enumerate() {
            let color = COLORS[1 + p % (COLORS.len() - 1)];
            let bars = rows.iter().enumerate().filter_map(|(i, (_, values))| {
                let v = values.get(p).copied().flatten()?;
                let left = i as f64 + 0.1 + width * p as f64;
                Some(Rectangle::new(
                    [(left, y0), (left + width * 0.95, v)],
                    color.filled(),
                ))
            });
            chart
                .draw_series(bars)
                .context("plotters: bars")?
                .label(*name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .context("plotters: legend")?;
        root.present().context("plotters: present")?;
    }
    Ok(svg)
}

/// The chunk sizes of the throughput chart.
const CHART_CHUNKS: [usize; 5] = [1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10];
/// How many times the chart measures each point (it keeps the best).
const CHART_RUNS: u32 = 2;

/// The path a file was written to, relative to the current directory when it lies inside it (the
/// book runs the program from book/, and the default --out is the book's charts directory).
fn shown(path: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    match path.strip_prefix(&cwd) {
        Ok(inside) if path.is_absolute() && !inside.as_os_str().is_empty() => {
            inside.display().to_string()
        }
        _ => path.display().to_string(),
    }
}

// ANCHOR: draw_charts
pub fn draw_charts(out: &Path, volume: usize, iterations: u32) -> Result<()> {
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
    let labels: Vec<&str> = placements.iter().map(|p| p.label()).collect();
    std::fs::create_dir_all(out).with_context(|| format!("mkdir -p {}", out.display()))?;
    let files = [
        ("ipc-throughput.svg", throughput_svg(&panels)?),
        ("ipc-latency.svg", latency_svg(&labels, &bars)?),
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
    for (name, svg) in files {
        let path = out.join(name);
        std::fs::write(&path, &svg).with_context(|| format!("write {}", path.display()))?;
        println!("wrote {}", shown(&path));
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
