//! What a process costs: VmRSS counts every shared page in full in each process; Pss splits it.

use crate::child::fork_waiting;
use crate::memory::{check, fill};
use anyhow::{Context, Result};
use plotters::prelude::SeriesLabelPosition;
use procfs::process::{MMapPath, PageInfo, Process};
use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use vmbook::chart::{bars_svg, Axes};
use vmbook::procinfo::{frames_visible, page_size, smaps_of_pid};
use vmbook::{bytes, finding, kb, not_checked, section, Mapping};

// ANCHOR: rollup
/// The counters of /proc/PID/smaps_rollup (one line per counter, summed over every mapping) and
/// VmRSS from /proc/PID/status, in bytes.
fn rollup(pid: i32) -> Result<HashMap<String, u64>> {
    let process = Process::new(pid).with_context(|| format!("open /proc/{pid}"))?;
    let rollup = process
        .smaps_rollup()
        .with_context(|| format!("read /proc/{pid}/smaps_rollup"))?;
    let mut counters = rollup
        .memory_map_rollup
        .0
        .into_iter()
        .next()
        .map(|m| m.extension.map)
        .unwrap_or_default();
    let status = process.status().context("read /proc/PID/status")?;
    counters.insert("VmRSS".into(), status.vmrss.unwrap_or(0) * 1024);
    Ok(counters)
}
// ANCHOR_END: rollup

/// The physical frames of every present page of `pid`, each with how many times `pid` maps it
/// (needs CAP_SYS_ADMIN to see frame numbers).
fn frames(pid: i32, found: &mut HashMap<u64, u64>) -> Result<()> {
    let process = Process::new(pid)?;
    let mut pagemap = process.pagemap()?;
    for map in process.maps()? {
        // vvar and vsyscall are not pages of this process (and not in its RSS).
        if matches!(&map.pathname, MMapPath::Vvar | MMapPath::Vsyscall)
            || matches!(&map.pathname, MMapPath::Other(name) if name.starts_with("vvar"))
        {
            continue;
        }
        let range = (map.address.0 as usize / page_size())..(map.address.1 as usize / page_size());
        for entry in pagemap.get_range_info(range)? {
            if let PageInfo::MemoryPage(flags) = entry {
                let pfn = flags.get_page_frame_number().0;
                if pfn != 0 {
                    *found.entry(pfn).or_default() += 1;
                }
            }
        }
    }
    Ok(())
}

/// How many of `frames` some other process maps too: /proc/kpagecount (root only) says how many
/// times each frame is mapped in all, against how many times the pair maps it.
fn mapped_by_others(frames: &HashMap<u64, u64>) -> Result<u64> {
    let kpagecount = std::fs::File::open("/proc/kpagecount").context("open /proc/kpagecount")?;
    let mut others = 0;
    for (&pfn, &ours) in frames {
        let mut count = [0u8; 8];
        kpagecount
            .read_exact_at(&mut count, pfn * 8)
            .context("read /proc/kpagecount")?;
        if u64::from_ne_bytes(count) > ours {
            others += 1;
        }
    }
    Ok(others)
}

pub fn rss_counts_pss_splits_shared_pages(pages: usize) -> Result<()> {
    let len = pages * page_size();
    section(&format!(
        "Parent and child share a {} MAP_SHARED region (and the C library)",
        bytes(len as u64)
    ));
    // ANCHOR: rss_counts_pss_splits_shared_pages
    let mut region = Mapping::shared(len)?;
    fill(region.bytes_mut(), 1);
    let addr = region.addr();
    let shared = &region;
    // The child reads every page, so that both processes map all of them, then holds still.
    let child = fork_waiting(|| check(shared.bytes(), 1).0.min(255) as u8, || 0)?;
    let me = std::process::id() as i32;
    let them = child.pid.as_raw();
    let visible = frames_visible();
    if visible {
        // A first walk grows this process's heap to what a walk needs; the walk after the
        // counters then reuses that memory instead of adding pages the counters never saw.
        frames(me, &mut HashMap::new())?;
    }
    let counters = [rollup(me)?, rollup(them)?];
    let in_region = [smaps_of_pid(me, addr)?, smaps_of_pid(them, addr)?];
    // ANCHOR_END: rss_counts_pss_splits_shared_pages
    // What the pair uses: its distinct frames, and how many of them other processes map too.
    let pair_frames = if visible {
        let mut all = HashMap::new();
        frames(me, &mut all)?;
        frames(them, &mut all)?;
        let page = page_size() as u64;
        Some((all.len() as u64 * page, mapped_by_others(&all)? * page))
    } else {
        None
    };
    vmbook::pause::here(
        "parent and child both map the region; the child waits",
        &[
            "cat /proc/PID/smaps_rollup",
            "ps -o pid,rss,cmd --ppid PID",
            "grep -A 8 rw-s /proc/PID/smaps",
        ],
    );
    let child_changed = child.report;
    child.release()?;

    let get = |i: usize, key: &str| counters[i].get(key).copied().unwrap_or(0);
    let shared_of = |i: usize| get(i, "Shared_Clean") + get(i, "Shared_Dirty");
    let private_of = |i: usize| get(i, "Private_Clean") + get(i, "Private_Dirty");
    println!(
        "{:<8} {:>12} {:>12} {:>12} {:>12}",
        "", "VmRSS", "Pss", "Shared_*", "Private_*"
    );
    for (i, who) in ["parent", "child"].iter().enumerate() {
        println!(
            "{who:<8} {:>12} {:>12} {:>12} {:>12}",
            kb(get(i, "VmRSS")),
            kb(get(i, "Pss")),
            kb(shared_of(i)),
            kb(private_of(i))
        );
    }
    let rss_sum = get(0, "VmRSS") + get(1, "VmRSS");
    let pss_sum = get(0, "Pss") + get(1, "Pss");
    println!("{:<8} {:>12} {:>12}", "sum", kb(rss_sum), kb(pss_sum));
    match pair_frames {
        Some((used, shared_out)) => println!(
            "the pair uses {} of RAM (distinct frames in the two pagemaps), {} of it mapped by \
             other processes too (/proc/kpagecount)",
            kb(used),
            kb(shared_out)
        ),
        None => println!(
            "the pair's distinct frames: hidden (pagemap shows frames only with CAP_SYS_ADMIN)"
        ),
    }
    if check(region.bytes(), 1).0 != 0 || child_changed != 0 {
        println!(
            "(the region's contents changed: {} pages differ in the child)",
            child_changed
        );
    }

    vmbook::figure::save(
        FIGURE,
        &rss_pss_chart(
            len as u64,
            [0, 1].map(|i| (get(i, "VmRSS"), get(i, "Pss"))),
            pair_frames,
        )?,
    );

    let region_rss = [in_region[0]["Rss"], in_region[1]["Rss"]];
    let region_pss = [in_region[0]["Pss"], in_region[1]["Pss"]];
    let whole = len as u64;
    finding(
        "VmRSS counts the shared region in full in each process",
        region_rss.iter().all(|&r| r * 10 >= whole * 9),
        format!(
            "the region's Rss: parent {}, child {}",
            kb(region_rss[0]),
            kb(region_rss[1])
        ),
    );
    let pss_region_sum = region_pss[0] + region_pss[1];
    finding(
        "Pss splits the shared region: half to each, the two add up to the region once \
         (to within a hundredth)",
        pss_region_sum.abs_diff(whole) * 100 <= whole
            && region_pss
                .iter()
                .all(|&p| p.abs_diff(whole / 2) * 100 <= whole),
        format!(
            "the region's Pss: parent {}, child {}",
            kb(region_pss[0]),
            kb(region_pss[1])
        ),
    );
    let claim_rss = "the two VmRSS add up to more than the pair uses: by at least the region \
                     (to within a tenth)";
    let claim_pss = "the two Pss add up to what the pair uses, less at most the part other \
                     processes map too (the C library's pages, charged partly to them), to within a hundredth";
    match pair_frames {
        Some((used, shared_out)) => {
            finding(
                claim_rss,
                rss_sum >= used + whole * 9 / 10,
                format!("VmRSS sum {} against {} used", kb(rss_sum), kb(used)),
            );
            // A hundredth: Pss is rounded down to whole kB, and for a large folio (a library
            // read ahead in one piece) both Pss and kpagecount use an average per page.
            let margin = used / 100 + 2048;
            finding(
                claim_pss,
                pss_sum <= used + margin && used <= pss_sum + shared_out + margin,
                format!(
                    "Pss sum {} against {} used, {} of it shared with others",
                    kb(pss_sum),
                    kb(used),
                    kb(shared_out)
                ),
            );
        }
        None => {
            let why = "frame numbers are hidden without CAP_SYS_ADMIN, so what the pair uses \
                       cannot be counted";
            not_checked(claim_rss, why);
            not_checked(claim_pss, why);
        }
    }
    Ok(())
}

/// The figure's file name under the book's charts directory.
const FIGURE: &str = "memory-pressure-rss-pss.svg";

/// VmRSS and Pss of parent and child, as printed, and their sums beside what the pair uses
/// (distinct frames, when they are visible), in MiB on a scale from zero: the difference between
/// the sum of VmRSS and the sum of Pss is the shared pages counted twice.
fn rss_pss_chart(region: u64, sides: [(u64, u64); 2], pair: Option<(u64, u64)>) -> Result<String> {
    let mib = |bytes: u64| Some(bytes as f64 / (1 << 20) as f64);
    let sum = |f: fn(&(u64, u64)) -> u64| sides.iter().map(f).sum::<u64>();
    let groups = ["parent", "child", "sum"].map(String::from);
    let mut kinds = vec![
        (
            "VmRSS".to_string(),
            vec![mib(sides[0].0), mib(sides[1].0), mib(sum(|s| s.0))],
        ),
        (
            "Pss".to_string(),
            vec![mib(sides[0].1), mib(sides[1].1), mib(sum(|s| s.1))],
        ),
    ];
    if let Some((used, _)) = pair {
        kinds.push((
            "RAM the pair uses (distinct frames)".to_string(),
            vec![None, None, mib(used)],
        ));
    }
    let axes = Axes {
        x: "",
        y: "MiB",
        legend: SeriesLabelPosition::UpperLeft,
    };
    let title = format!(
        "VmRSS and Pss of two processes sharing a {} region",
        bytes(region)
    );
    bars_svg(&title, &groups, &kinds, &axes, false)
}
