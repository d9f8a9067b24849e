//! The appendix's two charts, drawn as SVG with plotters: throughput against chunk size for each
//! transport (one panel per placement), and the median round trip of each transport.

use anyhow::{Context, Result};
use plotters::prelude::*;

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
