//! The pipeline run on a file with bad lines: its stdout, stderr and exit status, checked against
//! what the library's parser says about each line.

use anyhow::{bail, Context, Result};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use vmbook::{finding, numbers, section};

/// Removes what a pipeline killed by a signal could not: its objects, whose names end in its pid.
fn sweep_after(pid: u32) {
    // The pipeline's names are /vmbook-TAG-PID-N, files vmbook-TAG-PID-N in /dev/shm.
    let prefix = &vmbook::shm::name_prefix(pid)[1..];
    for entry in std::fs::read_dir("/dev/shm")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) || name.starts_with(&format!("sem.{prefix}")) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

// ANCHOR: bad_input_demo
pub fn bad_input_demo(input: &Path) -> Result<()> {
    section("The pipeline on a file with bad lines");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text =
        std::fs::read(root.join(input)).with_context(|| format!("read {}", input.display()))?;
    let max = "80";
    let args = [
        "pipeline",
        "--input",
        &input.to_string_lossy(),
        "--max-line",
        max,
    ];
    println!(
        "running: posix-shm {} (from the project root)",
        args.join(" ")
    );
    let exe = vmbook::chapter::this_program()?;
    // If we are interrupted, the pipeline gets SIGTERM, not SIGKILL: its own handler then
    // unlinks its object and ends its child before it dies, and ours reaps it.
    // If the pipeline itself is killed, its child is orphaned: as a subreaper, this process becomes
    // its new parent (instead of init) and can reap it.
    nix::sys::prctl::set_child_subreaper(true).context("prctl(PR_SET_CHILD_SUBREAPER)")?;
    let pipeline = vmbook::process::spawn_tracked_ending_with(
        Command::new(exe)
            .args(args)
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        libc::SIGTERM,
    )?;
    let pid = pipeline.id();
    let run = vmbook::process::wait_spawned(pipeline)?;
    if run.status.signal().is_some() {
        // The orphan dies of its parent-death signal; wait for it, then remove what it left.
        while nix::sys::wait::waitpid(None, None).is_ok() {}
        sweep_after(pid);
        bail!("the pipeline was killed ({})", run.status);
    }
    let (stdout, stderr) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    println!("--- its stdout:\n{}", stdout.trim_end());
    println!("--- its stderr:\n{}", stderr.trim_end());
    println!(
        "--- its exit status: {}",
        run.status
            .code()
            .map_or(run.status.to_string(), |c| c.to_string())
    );
    // ANCHOR_END: bad_input_demo
    // What the file should give, line by line, from the same parser.
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    let mut lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop(); // what follows the last newline is not a line
    }
    for (i, line) in lines.into_iter().enumerate() {
        match numbers::sum_line(line, 80) {
            Ok(sum) => good.push((i + 1, sum.sum)),
            Err(_) => bad.push(i + 1),
        }
    }
    let summed: Vec<usize> = good
        .iter()
        .filter(|(n, sum)| stdout.contains(&format!("line {n}: {sum} (")))
        .map(|(n, _)| *n)
        .collect();
    let reported: Vec<usize> = bad
        .iter()
        .filter(|n| stderr.contains(&format!(": line {n}: ")))
        .copied()
        .collect();
    let list = |v: &[usize]| {
        v.iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    finding(
        "every good line was summed",
        !good.is_empty() && summed.len() == good.len(),
        format!(
            "{} of {} good lines summed: lines {}",
            summed.len(),
            good.len(),
            list(&summed)
        ),
    );
    finding(
        "each bad line was reported on stderr with its line number",
        !bad.is_empty() && reported.len() == bad.len(),
        format!(
            "{} of {} bad lines reported: lines {}",
            reported.len(),
            bad.len(),
            list(&reported)
        ),
    );
    finding(
        "the exit status is 2: some lines were bad",
        run.status.code() == Some(2),
        format!("{}", run.status),
    );
    Ok(())
}
