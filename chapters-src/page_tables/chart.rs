//! The chapter's chart, drawn as SVG with plotters: nanoseconds per read against region size, one
//! line for base pages and one for huge pages, both axes logarithmic.

use anyhow::{Context, Result};
use plotters::prelude::*;

/// One line of the chart: a label and (region in KiB, ns per read) points.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

const COLORS: [RGBColor; 2] = [RGBColor(214, 39, 40), RGBColor(31, 119, 180)];

/// The range of the positive values, widened by half a decade on a log scale.
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

pub fn tlb_svg(series: &[Series]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, 420)).into_drawing_area();
        root.fill(&WHITE).context("plotters: fill")?;
        let all = || series.iter().flat_map(|s| s.points.iter());
        let (x0, x1) = range(all().map(|p| p.0));
        let (y0, y1) = range(all().map(|p| p.1));
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Random dependent reads, one per page: time per read",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
            .context("plotters: chart")?;
        chart
            .configure_mesh()
            .x_desc("region size (KiB)")
            .y_desc("ns per read")
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
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .context("plotters: legend")?;
        root.present().context("plotters: present")?;
    }
    Ok(svg)
}
