//! Parent and child both write every page of a shared and a private region: pagemap says which
//! frames are behind them, smaps how the kernel counts them.

use anyhow::{ensure, Context, Result};
use nix::sys::signal::Signal;
use nix::unistd::{pipe, read, write};
use vmbook::process::{fork_child, wait_exit_code};
use vmbook::procinfo::{
    frames_visible, page_entry, page_entry_of_pid, page_size, smaps_of, FRAMES_HIDDEN,
};
use vmbook::{finding, kb, not_checked, section, Mapping};

/// smaps bytes counted Shared and Private, for one mapping.
type SharedPrivate = (u64, u64);

// ANCHOR: frames_stay_shared_after_writes
pub fn frames_stay_shared_after_writes(pages: usize) -> Result<()> {
    section("Parent and child both write every page: which frames are behind them?");
    let page = page_size();
    let len = pages * page;
    let mut shared = Mapping::shared(len)?;
    let mut private = Mapping::private(len)?;
    shared.bytes_mut().fill(b'P'); // the parent writes first, so both regions are resident
    private.bytes_mut().fill(b'P');
    let (child_done, child_signals) = pipe().context("pipe")?;
    let (parent_done, parent_signals) = pipe().context("pipe")?;
    let child = fork_child(|| {
        // The write end moves in here, so the parent's copy closes when fork_child drops this
        // closure there: a child that dies gives the parent an end-of-file, not a hang.
        let (signal, wait) = (child_signals, &parent_done);
        let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL); // nor waits for a dead parent
        shared.bytes_mut().fill(b'C'); // the child writes every page of both, after the fork
        private.bytes_mut().fill(b'C');
        // Tell the parent, then stay alive until it has read our page tables.
        let _ = write(&signal, b"w");
        let _ = read(wait, &mut [0u8; 1]);
        0
    })?;
    let look = || -> Result<([usize; 2], [SharedPrivate; 2])> {
        let got = read(&child_done, &mut [0u8; 1]).context("wait for the child's writes")?;
        ensure!(got == 1, "the child ended before it had written");
        let pid = child.as_raw();
        let mut same = [0usize; 2];
        for (i, region) in [&shared, &private].iter().enumerate() {
            for addr in (region.addr()..region.addr() + len).step_by(page) {
                let (mine, childs) = (page_entry(addr)?, page_entry_of_pid(pid, addr)?);
                same[i] += usize::from(mine.pfn.is_some() && mine.pfn == childs.pfn);
            }
        }
        // ANCHOR_END: frames_stay_shared_after_writes
        vmbook::pause::here(
            "the child has written every page and waits; both map both regions",
            &[
                "grep -A12 -e '-rw-s' /proc/PID/smaps",
                "ps -o pid,stat,cmd --ppid PID",
            ],
        );
        let sizes = |region: &Mapping| -> Result<(u64, u64)> {
            let s = smaps_of(region.addr())?;
            let get = |k: &str| s.get(k).copied().unwrap_or(0);
            Ok((
                get("Shared_Clean") + get("Shared_Dirty"),
                get("Private_Clean") + get("Private_Dirty"),
            ))
        };
        Ok((same, [sizes(&shared)?, sizes(&private)?]))
    };
    let looked = look();
    // Whatever happened, let the child go and reap it before reporting.
    let _ = write(&parent_signals, b"g");
    let ended = wait_exit_code(child);
    let (same, counters) = looked?;
    ensure!(ended? == 0, "the child failed");
    let parent_reads = [shared.bytes()[0], private.bytes()[0]];
    println!(
        "{:<26} {:>16} {:>13} {:>13} {:>13}",
        "", "same frame", "smaps Shared", "smaps Private", "parent reads"
    );
    for (i, what) in ["MAP_SHARED|MAP_ANONYMOUS", "MAP_PRIVATE|MAP_ANONYMOUS"]
        .iter()
        .enumerate()
    {
        println!(
            "{what:<26} {:>16} {:>13} {:>13} {:>13}",
            format!("{} of {pages}", same[i]),
            kb(counters[i].0),
            kb(counters[i].1),
            format!("{:?}", parent_reads[i] as char)
        );
    }
    let frame_claims = [
        "after both wrote, every MAP_SHARED page is the same frame in parent and child",
        "after the child's writes, every MAP_PRIVATE page has its own frame in each (copy-on-write)",
    ];
    if frames_visible() {
        let shared_evidence = format!("{} of {pages} pages", same[0]);
        finding(frame_claims[0], same[0] == pages, shared_evidence);
        let private_evidence = format!("{} of {pages} pages share a frame", same[1]);
        finding(frame_claims[1], same[1] == 0, private_evidence);
    } else {
        for claim in frame_claims {
            not_checked(claim, FRAMES_HIDDEN);
        }
    }
    let whole = len as u64;
    for (claim, counted, expected) in [
        (
            "smaps counts the MAP_SHARED region as Shared (two processes map it) and none as Private",
            counters[0],
            (whole, 0),
        ),
        (
            "smaps counts the MAP_PRIVATE region as Private: each process has its own copies",
            counters[1],
            (0, whole),
        ),
    ] {
        let evidence = format!("Shared {}, Private {}", kb(counted.0), kb(counted.1));
        finding(claim, counted == expected, evidence);
    }
    finding(
        "the parent reads the child's byte in the shared region and its own in the private one",
        parent_reads == [b'C', b'P'],
        format!(
            "{:?} and {:?}",
            parent_reads[0] as char, parent_reads[1] as char
        ),
    );
    Ok(())
}
