//! When a memory cgroup reaches memory.max and nothing can be reclaimed, the kernel's OOM killer
//! ends a process in that cgroup with SIGKILL. Done here to a child in a child cgroup of our own.

use crate::cgroup::{memory_cgroup_here, ChildCgroup};
use crate::child::fork_waiting;
use crate::memory::SwapAreas;
use anyhow::{Context, Result};
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use std::sync::atomic::{AtomicU64, Ordering};
use vmbook::procinfo::page_size;
use vmbook::{bytes, finding, kb, not_checked, section, Mapping};

fn read_proc(pid: i32, file: &str) -> Result<i64> {
    let path = format!("/proc/{pid}/{file}");
    std::fs::read_to_string(&path)
        .with_context(|| format!("read {path}"))?
        .trim()
        .parse()
        .with_context(|| format!("parse {path}"))
}

/// How a child ended, without its pid.
fn ended(status: &WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, signal, _) => format!("was killed by {signal}"),
        other => format!("{other:?}"),
    }
}

/// A child raises its own oom_score_adj to 1000; its oom_score next to ours.
fn oom_score_adj_raises_the_score() -> Result<()> {
    // ANCHOR: oom_score_adj
    let child = fork_waiting(
        || match std::fs::write("/proc/self/oom_score_adj", "1000") {
            Ok(()) => 0,
            Err(_) => 1,
        },
        || 0,
    )?;
    let pid = child.pid.as_raw();
    let adj = read_proc(pid, "oom_score_adj")?;
    let score_child = read_proc(pid, "oom_score")?;
    let score_parent = read_proc(std::process::id() as i32, "oom_score")?;
    // ANCHOR_END: oom_score_adj
    child.release()?;
    println!("the child set its oom_score_adj to {adj}");
    finding(
        "a process that sets oom_score_adj to 1000 scores above its parent (oom_score): the OOM \
         killer would choose it first",
        adj == 1000 && score_child > score_parent,
        format!(
            "the child's oom_score is {:.1}× its parent's",
            score_child as f64 / score_parent.max(1) as f64
        ),
    );
    Ok(())
}

pub fn oom_killer_in_a_cgroup(max_mib: u64) -> Result<()> {
    section("The OOM killer: oom_score_adj, and a child that outgrows its memory cgroup");
    oom_score_adj_raises_the_score()?;
    let max = max_mib << 20;
    let claims = [
        "a child that keeps touching memory in a cgroup with a small memory.max is killed with \
         SIGKILL",
        "that cgroup's memory.events counts the kill (oom_kill 1)",
        "it was killed when its memory reached memory.max: it had touched between half of \
         memory.max and all of it",
    ];
    let dir = match memory_cgroup_here() {
        Ok(dir) => dir,
        Err(why) => {
            claims.iter().for_each(|claim| not_checked(claim, &why));
            return Ok(());
        }
    };
    // ANCHOR: oom_killer_in_a_cgroup
    let cgroup = ChildCgroup::create(&dir)?;
    cgroup.write("memory.max", &max.to_string())?;
    // With swap, the kernel would swap the child's pages out instead of killing it.
    if cgroup.has("memory.swap.max") {
        cgroup.write("memory.swap.max", "0")?;
    } else if SwapAreas::read()?.configured() {
        let why = "swap is configured and this cgroup has no memory.swap.max to keep it out";
        claims.iter().for_each(|claim| not_checked(claim, why));
        return Ok(());
    }
    // A counter both processes see: how many pages the child has touched so far.
    let shared = Mapping::shared(page_size())?;
    // SAFETY: the mapping is page-aligned, zero-filled and outlives both uses; AtomicU64 has the
    // layout of a u64 and is meant to be shared.
    let touched = unsafe { &*(shared.as_ptr() as *const AtomicU64) };
    let child = fork_waiting(
        || {
            // If the parent dies, so does the child: it must not run on alone.
            // SAFETY: prctl with these arguments only sets this process's death signal.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            0
        },
        || {
            // Four times memory.max: far more than the cgroup lets it have.
            let Ok(mut region) = Mapping::private(4 * max as usize) else {
                return 3;
            };
            let _ = region.base_pages_only();
            for (i, page) in region.bytes_mut().chunks_mut(page_size()).enumerate() {
                page[0] = 1;
                touched.store(i as u64 + 1, Ordering::Relaxed);
            }
            0
        },
    )?;
    cgroup.write("cgroup.procs", &child.pid.to_string())?;
    vmbook::pause::here(
        "the child is in the new cgroup and has not started touching memory",
        &[
            "cat /sys/fs/cgroup/.../vmbook-oom-PID/memory.max",
            "ps -o pid,stat,cmd --ppid PID",
        ],
    );
    let status = child.go_and_wait()?;
    let oom_kills = cgroup.counter("memory.events", "oom_kill")?;
    let reached = touched.load(Ordering::Relaxed) * page_size() as u64;
    // ANCHOR_END: oom_killer_in_a_cgroup
    let peak = if cgroup.has("memory.peak") {
        format!(", memory.peak {}", kb(cgroup.counter_value("memory.peak")?))
    } else {
        String::new()
    };
    println!(
        "child cgroup with memory.max {}: the child {} after touching {}; \
         memory.events oom_kill {oom_kills}{peak}",
        bytes(max),
        ended(&status),
        kb(reached)
    );
    drop(cgroup);
    finding(
        claims[0],
        matches!(status, WaitStatus::Signaled(_, Signal::SIGKILL, _)),
        ended(&status),
    );
    finding(claims[1], oom_kills == 1, format!("oom_kill {oom_kills}"));
    finding(
        claims[2],
        reached >= max / 2 && reached <= max,
        format!("touched {} with memory.max {}", kb(reached), bytes(max)),
    );
    Ok(())
}
