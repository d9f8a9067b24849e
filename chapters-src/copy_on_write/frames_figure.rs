//! The chapter's figure: the pagemap entries `same-frame` printed, drawn. Two panels, right after
//! fork and after the child's write; in each, the parent's pages on the left, the child's on the
//! right, and between them the physical frames they map, a line from each page to its frame.
//! Where frame numbers are hidden (no CAP_SYS_ADMIN), no frame is drawn: the pages show only what
//! anyone can read, the pagemap exclusive bit, and the figure says so.

use vmbook::figure::Svg;

/// The figure's file name under the book's charts directory.
pub const NAME: &str = "copy-on-write-frames.svg";

/// How many pages the figure draws at most (the rest would only repeat them).
const MAX_PAGES: usize = 8;

/// One side's pagemap entries for one moment: (frame number or 0, exclusive) per page.
pub struct Moment<'a> {
    pub title: &'a str,
    pub parent: &'a [(u64, bool)],
    pub child: &'a [(u64, bool)],
}

const PAGE_W: f64 = 120.0;
const PAGE_H: f64 = 34.0;
const ROW: f64 = 48.0;
const FRAME_W: f64 = 150.0;
const FRAME_H: f64 = 20.0;
const PANEL_W: f64 = 470.0;
const TOP: f64 = 96.0;

fn page_style(exclusive: bool) -> &'static str {
    if exclusive {
        r##"fill="#d4f4d4" stroke="black""##
    } else {
        r##"fill="#fde3c4" stroke="black""##
    }
}

/// The figure; `frames_visible` says whether the frame numbers are real.
pub fn frames_svg(moments: &[Moment], pages: usize, frames_visible: bool) -> String {
    let shown = pages.min(MAX_PAGES);
    let height = TOP + shown as f64 * ROW + 70.0;
    let mut svg = Svg::new(
        (PANEL_W * moments.len() as f64 + 20.0) as u32,
        height as u32,
    );
    let title = if frames_visible {
        "Parent and child pages and the physical frames (PFN) they map, from /proc/PID/pagemap"
    } else {
        "Parent and child pages: the pagemap exclusive bit (frame numbers hidden without CAP_SYS_ADMIN)"
    };
    svg.text(12.0, 22.0, 15, "start", title);
    if shown < pages {
        svg.text(
            12.0,
            40.0,
            11,
            "start",
            &format!("the first {shown} of {pages} pages"),
        );
    }
    for (m, moment) in moments.iter().enumerate() {
        let x0 = 12.0 + m as f64 * PANEL_W;
        let frame_x = x0 + PAGE_W + (PANEL_W - 2.0 * PAGE_W - FRAME_W - 20.0) / 2.0;
        let child_x = x0 + PANEL_W - PAGE_W - 20.0;
        if m > 0 {
            let sep = x0 - 6.0;
            svg.line(
                (sep, 50.0),
                (sep, TOP + shown as f64 * ROW),
                r##"stroke="#999""##,
            );
        }
        svg.text(x0, 62.0, 13, "start", moment.title);
        svg.text(x0 + PAGE_W / 2.0, 84.0, 12, "middle", "parent");
        svg.text(child_x + PAGE_W / 2.0, 84.0, 12, "middle", "child");
        // The frames, in the order the pages first name them, each once.
        let mut frames: Vec<u64> = Vec::new();
        if frames_visible {
            svg.text(frame_x + FRAME_W / 2.0, 84.0, 12, "middle", "frames");
            for i in 0..shown {
                for pfn in [moment.parent[i].0, moment.child[i].0] {
                    if pfn != 0 && !frames.contains(&pfn) {
                        frames.push(pfn);
                    }
                }
            }
        } else {
            let mid = frame_x + FRAME_W / 2.0;
            svg.text(mid, TOP + 20.0, 11, "middle", "frame numbers");
            svg.text(mid, TOP + 34.0, 11, "middle", "hidden");
        }
        // Frames spread over the height of the pages, however many there are.
        let frame_step = (shown as f64 * ROW) / frames.len().max(1) as f64;
        let frame_y = |pfn: u64| {
            let k = frames.iter().position(|&f| f == pfn).unwrap_or(0);
            TOP + k as f64 * frame_step + (frame_step - FRAME_H) / 2.0
        };
        for &pfn in &frames {
            svg.rect(
                frame_x,
                frame_y(pfn),
                FRAME_W,
                FRAME_H,
                r##"fill="#eeeeee" stroke="black""##,
            );
            svg.text(
                frame_x + FRAME_W / 2.0,
                frame_y(pfn) + 14.0,
                11,
                "middle",
                &format!("PFN {pfn:#x}"),
            );
        }
        for i in 0..shown {
            let y = TOP + i as f64 * ROW + (ROW - PAGE_H) / 2.0;
            for (side, x, edge, frame_edge) in [
                (moment.parent, x0, x0 + PAGE_W, frame_x),
                (moment.child, child_x, child_x, frame_x + FRAME_W),
            ] {
                let (pfn, exclusive) = side[i];
                svg.rect(x, y, PAGE_W, PAGE_H, page_style(exclusive));
                svg.text(
                    x + PAGE_W / 2.0,
                    y + 14.0,
                    11,
                    "middle",
                    &format!("page {i}"),
                );
                let bit = if exclusive {
                    "exclusive"
                } else {
                    "not exclusive"
                };
                svg.text(x + PAGE_W / 2.0, y + 28.0, 10, "middle", bit);
                if frames.contains(&pfn) {
                    svg.line(
                        (edge, y + PAGE_H / 2.0),
                        (frame_edge, frame_y(pfn) + FRAME_H / 2.0),
                        r##"stroke="#555" stroke-width="1.2""##,
                    );
                }
            }
        }
    }
    let legend_y = TOP + shown as f64 * ROW + 24.0;
    svg.rect(12.0, legend_y - 11.0, 14.0, 14.0, page_style(true));
    svg.text(
        32.0,
        legend_y,
        11,
        "start",
        "exclusive: pagemap bit 56 set, the page is mapped by this process only",
    );
    svg.rect(12.0, legend_y + 9.0, 14.0, 14.0, page_style(false));
    svg.text(
        32.0,
        legend_y + 20.0,
        11,
        "start",
        "not exclusive: the frame may be mapped by another process too",
    );
    svg.finish(title)
}
