//! Seed 001's pipeline, parent side: lines of numbers go one at a time through a slot in shared
//! memory to an exec'd child, with seed 001's 0/1/2 flag and usleep polling.

use crate::children::spawn_self;
use anyhow::{bail, ensure, Context, Result};
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Child, ExitCode};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use vmbook::measure::cpu_time;
use vmbook::measure::duration;
use vmbook::numbers::{self, LineSlot, DONE, READY, SLOT_CAPACITY};
use vmbook::{cleanup, finding, section, ShmObject};

/// The output file: the reader's, or a temporary one with no name at all (`O_TMPFILE`), which
/// nothing can leave behind, not even a SIGKILL (where the file system lacks `O_TMPFILE`: a file
/// whose name is removed right after it is created). The child opens it through the parent's
/// descriptor, `/proc/PID/fd/N`.
struct Output {
    path: PathBuf,
    _temporary: Option<std::fs::File>,
}

impl Output {
    fn new(path: Option<PathBuf>) -> Result<Output> {
        let mut open = std::fs::OpenOptions::new();
        open.read(true).write(true).mode(0o600);
        match path {
            Some(path) => {
                open.create(true)
                    .truncate(true)
                    .open(&path)
                    .with_context(|| format!("create {}", path.display()))?;
                Ok(Output {
                    path,
                    _temporary: None,
                })
            }
            None => {
                let dir = std::env::temp_dir();
                let file = match open.clone().custom_flags(libc::O_TMPFILE).open(&dir) {
                    Ok(file) => file,
                    // Some file systems (overlayfs in older containers) have no O_TMPFILE: create
                    // a file under a fresh name, then remove the name at once. The descriptor
                    // keeps the file, and /proc/PID/fd/N still opens it.
                    Err(tmpfile_error) => {
                        let path = dir.join(&vmbook::shm::unique_name()[1..]);
                        let slot = cleanup::track_path(&path.to_string_lossy());
                        let file = open.create_new(true).open(&path).with_context(|| {
                            format!(
                                "open({}, O_TMPFILE) failed ({tmpfile_error}), and so did \
                                 creating {} (give --output instead)",
                                dir.display(),
                                path.display()
                            )
                        });
                        let _ = std::fs::remove_file(&path);
                        cleanup::untrack_path(slot);
                        file?
                    }
                };
                let path = format!("/proc/{}/fd/{}", std::process::id(), file.as_raw_fd());
                Ok(Output {
                    path: path.into(),
                    _temporary: Some(file),
                })
            }
        }
    }
}

/// A child that is killed and reaped if the parent leaves early with an error.
struct Reaped(Option<Child>);

impl Reaped {
    /// `Some(status)` once the child has exited (and is reaped).
    fn exited(&mut self) -> Result<Option<std::process::ExitStatus>> {
        let child = self.0.as_mut().context("the child was already reaped")?;
        let status = child.try_wait().context("waitpid(WNOHANG)")?;
        if status.is_some() {
            cleanup::untrack_child(child.id() as i32);
            self.0 = None;
        }
        Ok(status)
    }

    fn wait(&mut self) -> Result<std::process::ExitStatus> {
        let child = self.0.take().context("the child was already reaped")?;
        Ok(vmbook::process::wait_spawned(child)?.status)
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
            cleanup::untrack_child(child.id() as i32);
        }
    }
}

// ANCHOR: numbers_pipeline
pub fn numbers_pipeline(
    input: Option<PathBuf>,
    output: Option<PathBuf>,
    max_line: usize,
    poll_us: u64,
) -> Result<ExitCode> {
    section("Seed 001's numbers pipeline: parent → shared memory → exec'd child → file");
    // If whoever started us dies, end the way a Ctrl-C would: cleaning up.
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM);
    let mut lines: Box<dyn BufRead> = match &input {
        Some(path) => Box::new(BufReader::new(
            std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?,
        )),
        None => Box::new(BufReader::new(std::io::stdin())), // not locked: --pause reads it too
    };
    let out = Output::new(output)?;
    let object = ShmObject::create(std::mem::size_of::<LineSlot>())?;
    // SAFETY: the object is one page, page-aligned, mapped while `object` lives, and both
    // processes use it only through LineSlot's atomics.
    let slot = unsafe { LineSlot::at(object.as_ptr(), object.len()) }?;
    let out_path = out.path.to_string_lossy().into_owned();
    let args = [
        object.name(),
        &out_path,
        &max_line.to_string(),
        &poll_us.to_string(),
    ];
    let mut child = Reaped(Some(spawn_self("pipeline", &args)?));
    vmbook::pause::here(
        "the object exists and the child polls it",
        &["ls -l /dev/shm", "ps -o pid,stat,cmd --ppid PID"],
    );
    let poll = Duration::from_micros(poll_us);
    let (start, cpu_start) = (Instant::now(), cpu_time()?);
    let (mut text, mut sent) = (Vec::new(), 0u64);
    while let Some(full_len) = numbers::read_line_bounded(&mut lines, SLOT_CAPACITY, &mut text)
        .with_context(|| format!("read line {} of the input", sent + 1))?
    {
        // Seed 001's protocol: put the line in the slot, set the flag to 1 (ready), then poll
        // until the child has set it back to 0 (taken). The child times the hand-off from the
        // moment stamped here to the moment its own look sees the 1.
        slot.put(sent + 1, &text, full_len);
        slot.published_ns
            .store(vmbook::clock::monotonic_ns(), Ordering::Relaxed);
        slot.state.store(READY, Ordering::Release);
        sent += 1;
        wait_while_ready(slot, &mut child, poll, sent)?;
    }
    slot.state.store(DONE, Ordering::Release); // 2: no more lines
    let status = child.wait()?;
    // ANCHOR_END: numbers_pipeline
    let (wall, cpu) = (start.elapsed(), cpu_time()? - cpu_start);
    let code = status
        .code()
        .with_context(|| format!("the child ended by {status}"))?;
    ensure!(
        code == 0 || code == 2,
        "the child failed with exit status {code}"
    );
    let results = std::fs::read_to_string(&out.path).context("read the output file")?;
    println!("results (the child's output file):");
    for line in results.lines() {
        println!("  {line}");
    }
    if sent > 0 {
        println!(
            "parent: sent {sent} line{}; CPU time {} in {} of wall time",
            if sent == 1 { "" } else { "s" },
            duration(cpu),
            duration(wall)
        );
        finding(
            "every line came back in the output file, in order",
            results
                .lines()
                .map(|l| l.split(':').next().unwrap_or(""))
                .eq((1..=sent).map(|n| format!("line {n}"))),
            format!("{sent} lines sent, {} in the file", results.lines().count()),
        );
    }
    if sent == 0 {
        eprintln!("{}: the input has no lines", vmbook::output::program_name());
        return Ok(ExitCode::from(2));
    }
    if code == 2 {
        eprintln!(
            "{}: some lines were bad (see above); every other line was summed",
            vmbook::output::program_name()
        );
    }
    Ok(ExitCode::from(code as u8))
}

/// Sleeps in steps of `poll` while the slot holds a line the child has not taken; fails if the child
/// has died (it would never take it).
fn wait_while_ready(slot: &LineSlot, child: &mut Reaped, poll: Duration, line: u64) -> Result<()> {
    while slot.state.load(Ordering::Acquire) == READY {
        if let Some(status) = child.exited()? {
            bail!("the child ended ({status}) before taking line {line}");
        }
        std::thread::sleep(poll);
    }
    Ok(())
}
