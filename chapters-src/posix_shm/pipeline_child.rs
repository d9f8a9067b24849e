//! Seed 001's pipeline, child side: take each line from the slot, sum it, write the output file.

use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Duration;
use vmbook::clock::monotonic_ns;
use vmbook::measure::cpu_time;
use vmbook::measure::duration;
use vmbook::numbers::{self, LineSlot, DONE, EMPTY, READY};
use vmbook::{finding, ShmObject};

fn plural(n: usize) -> String {
    if n == 1 {
        "1 number".into()
    } else {
        format!("{n} numbers")
    }
}

// ANCHOR: pipeline_child
pub fn pipeline_child(
    name: &str,
    output: &Path,
    max_line: usize,
    poll_us: u64,
) -> Result<ExitCode> {
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let parent = nix::unistd::getppid();
    // By name: exec left nothing of the parent's mappings.
    let object = ShmObject::open(name)?;
    // SAFETY: as in the parent: one page, mapped while `object` lives, used only atomically.
    let slot = unsafe { LineSlot::at(object.as_ptr(), object.len()) }?;
    let file = std::fs::OpenOptions::new().write(true).open(output);
    let mut file =
        std::io::BufWriter::new(file.with_context(|| format!("open {}", output.display()))?);
    let (mut text, mut bad, mut polls, mut lines) = (Vec::new(), 0, 0u64, 0);
    let mut waits = Vec::new(); // per line: from the parent's store of 1 to the look that saw it
    let mut shortest_sleep = Duration::MAX;
    let cpu_start = cpu_time()?;
    let started = std::time::Instant::now();
    loop {
        match slot.state.load(Ordering::Acquire) {
            READY => {
                let seen = monotonic_ns();
                waits.push(seen.saturating_sub(slot.published_ns.load(Ordering::Relaxed)));
                let (line_no, full_len) = slot.take(&mut text);
                slot.state.store(EMPTY, Ordering::Release); // 0: the parent may write the next
                lines += 1;
                match numbers::sum_slot_line(&text, full_len, max_line) {
                    Ok(sum) => {
                        writeln!(
                            file,
                            "line {line_no}: {} (the sum of {})",
                            sum.sum,
                            plural(sum.count)
                        )
                    }
                    Err(error) => {
                        bad += 1;
                        eprintln!(
                            "{}: line {line_no}: {error}",
                            vmbook::output::program_name()
                        );
                        writeln!(file, "line {line_no}: not summed: {error}")
                    }
                }
                .context("write the output file")?;
            }
            DONE => break,
            _ if nix::unistd::getppid() != parent => bail!("the parent is gone"),
            _ => {
                polls += 1;
                let before = std::time::Instant::now();
                std::thread::sleep(Duration::from_micros(poll_us));
                shortest_sleep = shortest_sleep.min(before.elapsed());
            }
        }
    }
    file.flush().context("write the output file")?;
    // ANCHOR_END: pipeline_child
    let (cpu, ran) = (cpu_time()? - cpu_start, started.elapsed());
    // Every look at the flag found a line, the end, or nothing (a poll, then a sleep).
    let looks = polls + lines + 1;
    println!(
        "child:  took {lines} lines ({bad} bad); looked at the flag once every {}, \
         and found nothing new in {}% of its looks; CPU time {} in {} of wall time",
        duration(ran.div_f64(looks as f64)),
        (polls * 100 + looks / 2) / looks,
        duration(cpu),
        duration(ran)
    );
    if !waits.is_empty() {
        report_waits(waits, shortest_sleep, polls, poll_us, cpu, ran);
    }
    Ok(ExitCode::from(if bad > 0 { 2 } else { 0 }))
}

/// What the child measured: how long each line sat in the slot before the child saw it, how long
/// its sleeps really lasted, and how much of its run it spent on the CPU.
fn report_waits(
    mut waits: Vec<u64>,
    shortest_sleep: Duration,
    sleeps: u64,
    poll_us: u64,
    cpu: Duration,
    ran: Duration,
) {
    waits.sort_unstable();
    let (median, longest) = (waits[waits.len() / 2], waits[waits.len() - 1]);
    println!(
        "child:  each line waited in the slot until the child looked: median {}, longest {} \
         (the first line may also wait for the child to start)",
        duration(Duration::from_nanos(median)),
        duration(Duration::from_nanos(longest))
    );
    let poll = Duration::from_micros(poll_us);
    if sleeps == 0 {
        vmbook::not_checked(
            "every sleep between two looks lasted at least the poll interval",
            "the child never had to sleep: every look found a line",
        );
    } else {
        finding(
            "every sleep between two looks lasted at least the poll interval",
            shortest_sleep >= poll,
            format!(
                "the shortest of its sleeps took {} for a {} poll",
                duration(shortest_sleep),
                duration(poll)
            ),
        );
    }
    finding(
        "the polling child spends most of its time asleep, not on the CPU",
        cpu * 4 < ran,
        format!("CPU time {} in {}", duration(cpu), duration(ran)),
    );
}
