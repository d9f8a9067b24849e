//! Seed 001's numbers pipeline, fixed: the 0/1/2 usleep handshake against a futex ring of slots.

use crate::children::{exited, fork_guarded};
use crate::timing::{cpu_ns, median, ratio};
use anyhow::{bail, ensure, Context, Result};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use std::io::Write;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use vmbook::clock::monotonic_ns;
use vmbook::measure::time;
use vmbook::numbers::{sum_slot_line, LineSlot, DONE, EMPTY, READY};
use vmbook::process::wait_child;
use vmbook::{cleanup, finding, futex, section, ShmObject};

/// The size of one slot, and of the header before them: fixed by `LineSlot`'s layout, not by the
/// page size (offsets into the object need no page alignment).
const SLOT: usize = std::mem::size_of::<LineSlot>();
const _: () = assert!(std::mem::size_of::<PipeHeader>() <= SLOT);

/// The header before the slots (one slot's size): when the line in each slot was ready to send,
/// what the child measured.
#[repr(C)]
struct PipeHeader {
    ready_at: [AtomicU64; 64],
    median_latency: AtomicU64,
    child_cpu: AtomicU64,
}

/// Line `i` of the input the parent sends: numbers, and now and then a bad or an empty line.
fn input_line(i: u64) -> String {
    if i % 25 == 0 {
        format!("{i} x {i}")
    } else if i % 40 == 0 {
        String::new()
    } else {
        (i..i + i % 7 + 1)
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn slots_of(shm: &ShmObject, slots: usize) -> Result<(&PipeHeader, Vec<&LineSlot>)> {
    // SAFETY: the object is (1 + slots) × SLOT bytes long and lives as long as `shm`; the header page is
    // all atomics, and every process uses the slots through LineSlot only.
    let header = unsafe { &*(shm.as_ptr() as *const PipeHeader) };
    let mut v = Vec::new();
    for i in 0..slots {
        // SAFETY: as above; page i + 1 of the object.
        v.push(unsafe { LineSlot::at(shm.as_ptr().add(SLOT * (i + 1)), SLOT)? });
    }
    Ok((header, v))
}

/// Wait until `cond(word)` holds: seed 001's way (usleep 1 ms) or with the futex on that word.
fn wait_until(
    word: &AtomicU32,
    futex_wait: bool,
    partner: Option<Pid>,
    cond: impl Fn(u32) -> bool,
) -> Result<u32> {
    let start = Instant::now();
    let mut checked = Instant::now();
    loop {
        let now = word.load(Ordering::Acquire);
        if cond(now) {
            return Ok(now);
        }
        // Every 20 ms, make sure the other side still exists (a child can be SIGKILLed).
        if checked.elapsed() > Duration::from_millis(20) {
            checked = Instant::now();
            ensure!(
                start.elapsed() < Duration::from_secs(5) && !partner.is_some_and(exited),
                "the other side of the pipeline stopped"
            );
        }
        if futex_wait {
            futex::wait(word, now, Some(Duration::from_millis(20)));
        } else {
            std::thread::sleep(Duration::from_micros(1000));
        }
    }
}

// ANCHOR: ring
/// The parent's side: each line goes into the next slot of the ring once the child has emptied it.
fn send_lines(
    slots: &[&LineSlot],
    header: &PipeHeader,
    lines: u64,
    futex_wait: bool,
    child: Pid,
) -> Result<()> {
    for i in 1..=lines {
        let line = input_line(i);
        let ready_at = monotonic_ns(); // the line is ready; its latency starts now
        let slot = slots[(i as usize - 1) % slots.len()];
        wait_until(&slot.state, futex_wait, Some(child), |s| s == EMPTY)?;
        slot.put(i, line.as_bytes(), line.len());
        header.ready_at[(i as usize - 1) % slots.len()].store(ready_at, Ordering::Relaxed);
        slot.state.store(READY, Ordering::Release); // publish the line ...
        if futex_wait {
            futex::wake(&slot.state, 1); // ... and wake the child if it sleeps on this slot
        }
    }
    let last = slots[lines as usize % slots.len()];
    wait_until(&last.state, futex_wait, Some(child), |s| s == EMPTY)?;
    last.state.store(DONE, Ordering::Release);
    if futex_wait {
        futex::wake(&last.state, 1);
    }
    Ok(())
}

/// The child's side: take each line from the next slot, hand the slot back, then sum the line.
fn sum_lines(
    slots: &[&LineSlot],
    header: &PipeHeader,
    futex_wait: bool,
    out: &mut impl Write,
) -> Result<Vec<u64>> {
    let mut latencies = Vec::new();
    let mut text = Vec::new();
    for i in 0.. {
        let slot = slots[i % slots.len()];
        if wait_until(&slot.state, futex_wait, None, |s| s != EMPTY)? == DONE {
            break;
        }
        let (line_no, len) = slot.take(&mut text);
        latencies.push(
            monotonic_ns().saturating_sub(header.ready_at[i % slots.len()].load(Ordering::Relaxed)),
        );
        slot.state.store(EMPTY, Ordering::Release); // the slot is free again ...
        if futex_wait {
            futex::wake(&slot.state, 1); // ... tell the parent, if it waits for it
        }
        match sum_slot_line(&text, len, 1024) {
            Ok(s) => writeln!(out, "line {line_no}: sum {} of {} numbers", s.sum, s.count)?,
            Err(e) => writeln!(out, "line {line_no}: bad line: {e}")?,
        }
    }
    Ok(latencies)
}
// ANCHOR_END: ring

/// Runs the pipeline once; returns (results file, wall ns, CPU ns of both sides, median latency).
fn run_pipeline(lines: u64, slots: usize, futex_wait: bool) -> Result<(Vec<u8>, u64, u64, u64)> {
    let shm = ShmObject::create(SLOT * (1 + slots))?;
    let (header, ring) = slots_of(&shm, slots)?;
    let path = std::env::temp_dir().join(format!("{}.txt", &vmbook::shm::unique_name()[1..]));
    let slot = cleanup::track_path(&path.to_string_lossy());
    vmbook::pause::here(
        "the pipeline's shared-memory object exists; the child is not forked yet",
        &["ls -l /dev/shm", "grep vmbook /proc/PID/maps"],
    );
    let start = (monotonic_ns(), cpu_ns());
    let child = fork_guarded(|| {
        let cpu0 = cpu_ns();
        let run = || -> Result<Vec<u64>> {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
            let latencies = sum_lines(&ring, header, futex_wait, &mut out)?;
            out.flush()?;
            Ok(latencies)
        };
        match run() {
            Ok(latencies) if !latencies.is_empty() => {
                header
                    .median_latency
                    .store(median(latencies), Ordering::Relaxed);
                header.child_cpu.store(cpu_ns() - cpu0, Ordering::Release);
                0
            }
            _ => 1,
        }
    })?;
    let sent = send_lines(&ring, header, lines, futex_wait, child);
    let ended = wait_child(child);
    let (wall, parent_cpu) = (monotonic_ns() - start.0, cpu_ns() - start.1);
    let results = std::fs::read(&path).with_context(|| format!("read {}", path.display()));
    let _ = std::fs::remove_file(&path);
    cleanup::untrack_path(slot);
    match ended? {
        WaitStatus::Exited(_, 0) => sent?,
        WaitStatus::Signaled(_, sig, _) => bail!("the summing child was killed by {sig}"),
        other => bail!("the summing child failed: {other:?}"),
    }
    let cpu = parent_cpu + header.child_cpu.load(Ordering::Acquire);
    Ok((
        results?,
        wall,
        cpu,
        header.median_latency.load(Ordering::Acquire),
    ))
}

pub fn pipeline_fixed(lines: u64, slots: u32) -> Result<()> {
    section("Seed 001's numbers pipeline: the parent sends lines, the child sums each one");
    let slots = slots as usize;
    println!(
        "{lines} lines through POSIX shared memory; the child writes one result per line to a file"
    );
    let (poll_out, poll_wall, poll_cpu, poll_lat) = run_pipeline(lines, 1, false)?;
    let (fx_out, fx_wall, fx_cpu, fx_lat) = run_pipeline(lines, slots, true)?;
    println!(
        "{:<44} total {}, CPU {}, line latency {} (median)",
        "one slot, 0/1/2 flag, usleep(1000) polling",
        time(poll_wall as f64),
        time(poll_cpu as f64),
        time(poll_lat as f64)
    );
    println!(
        "{:<44} total {}, CPU {}, line latency {} (median)",
        format!("ring of {slots} slots, futex wait/wake"),
        time(fx_wall as f64),
        time(fx_cpu as f64),
        time(fx_lat as f64)
    );
    println!(
        "the futex ring is {} faster, uses {} less CPU time, and a line reaches the child {} sooner",
        ratio(poll_wall as f64, fx_wall as f64),
        ratio(poll_cpu as f64, fx_cpu as f64),
        ratio(poll_lat as f64, fx_lat as f64)
    );
    let text = String::from_utf8_lossy(&fx_out);
    println!("the results file begins:");
    for line in text.lines().take(3) {
        println!("    {line}");
    }
    let bad = text.lines().filter(|l| l.contains("bad line")).count();
    finding(
        "both handshakes write the same results file, one line per input line",
        poll_out == fx_out && text.lines().count() as u64 == lines,
        format!(
            "{} lines, {bad} of them bad input, identical",
            text.lines().count()
        ),
    );
    finding(
        "with the futex ring a line reaches the child far sooner than with 1 ms polling",
        fx_lat * 3 < poll_lat,
        format!(
            "median {} vs {}",
            time(fx_lat as f64),
            time(poll_lat as f64)
        ),
    );
    finding(
        "the futex ring needs less CPU time for the same lines",
        fx_cpu < poll_cpu,
        format!("{} vs {}", time(fx_cpu as f64), time(poll_cpu as f64)),
    );
    Ok(())
}
