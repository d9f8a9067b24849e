//! The book's charts, drawn as SVG with plotters: lines on logarithmic axes (a cost against a size)
//! and grouped bars (one value per thing and kind). The chapters measure; these only draw what
//! they are given.

use anyhow::{Context, Result};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

/// One line of a chart, or one kind of bar: a label and its values.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// The axes' descriptions and where the legend goes.
pub struct Axes<'a> {
    pub x: &'a str,
    pub y: &'a str,
    pub legend: SeriesLabelPosition,
}

const SIZE: (u32, u32) = (960, 420);

const COLORS: [RGBColor; 7] = [
    RGBColor(0, 0, 0),
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// The range of the positive values, widened by half a decade on a log scale.
fn log_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        (0.1, 10.0)
    } else {
        (lo / 2.0, hi * 2.0)
    }
}

/// A tick label without trailing zeros: `1000`, `0.5`, `0.01`.
fn tick(v: &f64) -> String {
    if v.abs() >= 1.0 || *v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}").trim_end_matches('0').to_string()
    }
}

/// Lines with points on log-log axes, one panel per (title, series), side by side on one scale.
/// Colours follow each series' position, so a series keeps its colour from panel to panel.
pub fn log_lines_svg(panels: &[(String, Vec<Series>)], axes: &Axes) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).context("plotters: fill")?;
        let all = || {
            panels
                .iter()
                .flat_map(|(_, s)| s.iter().flat_map(|s| s.points.iter()))
        };
        let (x0, x1) = log_range(all().map(|p| p.0));
        let (y0, y1) = log_range(all().map(|p| p.1));
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
                .x_label_formatter(&tick)
                .y_label_formatter(&tick)
                .x_desc(axes.x)
                .y_desc(axes.y)
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
            legend(&mut chart, axes.legend.clone())?;
        }
        root.present().context("plotters: present")?;
    }
    Ok(svg)
}

/// Grouped bars: one group per name in `groups` (along x), one bar per kind in each group
/// (`values[k][g]`, `None`: not measured, no bar). `log` puts y on a logarithmic scale (values
/// decades apart), else y starts at zero (values compared as parts of a whole).
pub fn bars_svg(
    title: &str,
    groups: &[String],
    kinds: &[(String, Vec<Option<f64>>)],
    axes: &Axes,
    log: bool,
) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).context("plotters: fill")?;
        let values = || kinds.iter().flat_map(|(_, v)| v.iter().flatten().copied());
        if log {
            // A log axis has no place for zero: such a value gets no bar.
            let positive: Vec<(String, Vec<Option<f64>>)> = kinds
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.iter().map(|v| v.filter(|v| *v > 0.0)).collect(),
                    )
                })
                .collect();
            let kinds = &positive;
            let (y0, y1) = log_range(values());
            draw_bars(&root, title, groups, kinds, axes, (y0..y1).log_scale(), y0)?;
        } else {
            let top = values().fold(0.0, f64::max).max(f64::MIN_POSITIVE) * 1.15;
            draw_bars(&root, title, groups, kinds, axes, 0.0..top, 0.0)?;
        }
        root.present().context("plotters: present")?;
    }
    Ok(svg)
}

/// The bars on a y axis of either kind; `base` is where a bar starts.
fn draw_bars<Y>(
    root: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    title: &str,
    groups: &[String],
    kinds: &[(String, Vec<Option<f64>>)],
    axes: &Axes,
    y: Y,
    base: f64,
) -> Result<()>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let n = groups.len();
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(0f64..n as f64, y)
        .context("plotters: chart")?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&|x| {
            // A group's name under its middle, nothing at the other ticks.
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 && i < n {
                groups[i].clone()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&tick)
        .x_desc(axes.x)
        .y_desc(axes.y)
        .draw()
        .context("plotters: mesh")?;
    let width = 0.8 / kinds.len().max(1) as f64;
    for (k, (name, values)) in kinds.iter().enumerate() {
        let color = COLORS[1 + k % (COLORS.len() - 1)];
        let bars = values.iter().enumerate().filter_map(|(g, v)| {
            let left = g as f64 + 0.1 + width * k as f64;
            Some(Rectangle::new(
                [(left, base), (left + width * 0.95, (*v)?)],
                color.filled(),
            ))
        });
        chart
            .draw_series(bars)
            .context("plotters: bars")?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    legend(&mut chart, axes.legend.clone())
}

fn legend<'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .context("plotters: legend")
}
