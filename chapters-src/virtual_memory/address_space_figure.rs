//! The chapter's first figure: the rows of /proc/self/maps that `maps` printed, drawn as a column
//! of bands, highest address at the top as the kernel lays a process out, with each band's length
//! on a logarithmic scale (the stack's 132 KiB and a 4 MiB block would not both be visible to
//! scale), the unmapped gaps between them, and an arrow at each mapping that holds a variable.

use crate::maps_where_things_live::Row;
use vmbook::figure::Svg;
use vmbook::procinfo::page_size;

/// The figure's file name under the book's charts directory.
pub const NAME: &str = "virtual-memory-address-space.svg";

/// Consecutive rows of one region and file (a library's five mappings) drawn as one band.
struct Band<'a> {
    start: u64,
    end: u64,
    size: u64,
    mappings: usize,
    row: &'a Row,
}

fn bands(rows: &[Row]) -> Vec<Band<'_>> {
    let mut bands: Vec<Band> = Vec::new();
    for row in rows {
        match bands.last_mut() {
            Some(b) if b.row.kind == row.kind && b.row.name == row.name && b.end == row.start => {
                b.end = row.end;
                b.size += row.end - row.start;
                b.mappings += 1;
            }
            _ => bands.push(Band {
                start: row.start,
                end: row.end,
                size: row.end - row.start,
                mappings: 1,
                row,
            }),
        }
    }
    bands
}

fn color(kind: &str) -> &'static str {
    match kind {
        "program code" => "#1f77b4",
        "program constants" | "program RELRO" => "#9ecae1",
        "program data" => "#6baed6",
        "heap" => "#ff7f0e",
        "anonymous mapping" => "#2ca02c",
        "shared library" => "#9467bd",
        "stack" => "#d62728",
        "signal stack" => "#f7b6d2",
        "guard page" => "#c7c7c7",
        _ => "#8c564b",
    }
}

/// log2 of `x` (at least 1), exact at powers of two and straight in between. Not `f64::log2`: that
/// would link libm into this program, and the libraries it maps are what `maps` prints.
fn log2(x: f64) -> f64 {
    let whole = (x.max(1.0) as u64).ilog2();
    f64::from(whole) + (x / (1u64 << whole) as f64 - 1.0)
}

/// A size in the largest binary unit it reaches, one decimal (`1.5 GiB`): gaps are rarely round.
fn approx(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 100.0 || value == (value as u64) as f64 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// What lies between two bands. On x86-64 the vsyscall page sits at the top of the kernel's half:
/// the gap below it is not the process's to use.
fn gap_label(above: &Band, below: &Band) -> String {
    let size = approx(above.start - below.end);
    if above.row.name == "[vsyscall]" {
        format!("{size}: the kernel's half and the hole below it")
    } else {
        format!("unmapped: {size}")
    }
}

/// What a band is: region, file, and its permissions (several mappings: how many).
fn label(band: &Band) -> String {
    let row = band.row;
    let detail = if band.mappings > 1 {
        format!("{} mappings", band.mappings)
    } else {
        row.perms.clone()
    };
    format!("{} {} ({detail})", row.kind, row.name)
}

/// The figure: `rows` as `maps` read them (lowest address first), and `marks`, the variables
/// (what, address) whose mapping gets an arrow.
pub fn address_space_svg(rows: &[Row], marks: &[(&str, u64)]) -> String {
    const BAR_X: f64 = 170.0;
    const BAR_MAX: f64 = 270.0;
    const LABEL_X: f64 = 500.0;
    // About the width of one character of 11px sans-serif: columns move right of long file names.
    const CHAR_W: f64 = 5.6;
    const BAND_H: f64 = 22.0;
    const GAP_H: f64 = 14.0;
    let bands = bands(rows);
    let page = page_size() as f64;
    let largest = bands.iter().map(|b| b.size).max().unwrap_or(1) as f64;
    // log2 of the size above one page, out of the largest band's: a page gets a sliver.
    let decades = log2(largest / page).max(1.0);
    let length = |size: u64| 4.0 + (BAR_MAX - 4.0) * (log2(size as f64 / page) / decades);
    let gaps = bands.windows(2).filter(|w| w[1].start > w[0].end).count();
    let top = 86.0;
    let height = top + bands.len() as f64 * BAND_H + gaps as f64 * GAP_H + 20.0;
    let labels: Vec<String> = bands.iter().map(label).collect();
    let held: Vec<String> = bands
        .iter()
        .map(|band| {
            let inside = marks
                .iter()
                .filter(|(_, addr)| (band.start..band.end).contains(addr));
            let arrows: Vec<String> = inside
                .map(|(what, addr)| format!("\u{2190} {what} at {addr:#x}"))
                .collect();
            arrows.join("; ")
        })
        .collect();
    let widest = |texts: &[String]| texts.iter().map(|t| t.chars().count()).max().unwrap_or(0);
    let mark_x = (LABEL_X + widest(&labels) as f64 * CHAR_W + 16.0).max(740.0);
    let width = (mark_x + widest(&held) as f64 * CHAR_W + 12.0).max(960.0);
    let mut svg = Svg::new(width as u32, height as u32);
    svg.text(
        12.0,
        22.0,
        16,
        "start",
        "This run's address space, from its own /proc/self/maps (highest address at the top)",
    );
    // The scale: ticks at every 16-fold size from one page up.
    svg.text(BAR_X, 44.0, 11, "start", "size (log scale)");
    svg.text(12.0, 74.0, 11, "start", "start address");
    svg.text(LABEL_X, 74.0, 11, "start", "region and file");
    svg.text(mark_x, 74.0, 11, "start", "holds");
    let mut tick = page_size() as u64;
    while tick as f64 <= largest {
        let x = BAR_X + length(tick);
        svg.line((x, 50.0), (x, 56.0), r#"stroke="black""#);
        svg.text(x, 68.0, 10, "middle", &approx(tick));
        tick *= 16;
    }
    svg.line((BAR_X, 56.0), (BAR_X + BAR_MAX, 56.0), r#"stroke="black""#);
    let mut y = top;
    for (i, band) in bands.iter().enumerate().rev() {
        let row = band.row;
        svg.text(12.0, y + 15.0, 11, "start", &format!("{:#x}", band.start));
        let w = length(band.size);
        svg.rect(
            BAR_X,
            y + 3.0,
            w,
            BAND_H - 6.0,
            &format!(
                r#"fill="{}" stroke="black" stroke-width="0.5""#,
                color(row.kind)
            ),
        );
        svg.text(BAR_X + w + 6.0, y + 15.0, 10, "start", &approx(band.size));
        svg.text(LABEL_X, y + 15.0, 11, "start", &labels[i]);
        if !held[i].is_empty() {
            svg.text(mark_x, y + 15.0, 11, "start", &held[i]);
        }
        y += BAND_H;
        if let Some(below) = i.checked_sub(1).map(|j| &bands[j]) {
            if band.start > below.end {
                svg.line(
                    (BAR_X, y + GAP_H / 2.0),
                    (BAR_X + BAR_MAX, y + GAP_H / 2.0),
                    r##"stroke="#999" stroke-dasharray="4 3""##,
                );
                svg.text(
                    LABEL_X,
                    y + GAP_H - 3.0,
                    10,
                    "start",
                    &gap_label(band, below),
                );
                y += GAP_H;
            }
        }
    }
    svg.finish("This run's address space, from its own /proc/self/maps")
}

#[cfg(test)]
mod tests {
    use super::approx;

    #[test]
    fn sizes_are_rounded_to_one_decimal() {
        assert_eq!(approx(4096), "4 KiB");
        assert_eq!(approx(1536 << 20), "1.5 GiB");
        assert_eq!(approx(100), "100 bytes");
    }
}
