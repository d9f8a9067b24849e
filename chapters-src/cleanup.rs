//! Chapter 7, "Cleanup": what a program leaves behind when it ends, on every path: a leak valgrind
//! cannot see, an orphan in /dev/shm after SIGKILL, which endings run Drop, signals handled safely,
//! zombies, and what munmap, close and shm_unlink each free.

use anyhow::{bail, ensure, Context, Result};
use clap::{Parser, Subcommand};
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::mman::{mmap, munmap, shm_open, shm_unlink, MapFlags, ProtFlags};
use nix::sys::signal::{
    kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal,
};
use nix::sys::stat::{fstat, Mode};
use nix::sys::wait::WaitStatus;
use nix::unistd::{ftruncate, pipe, read, write, Pid};
use procfs::process::Process;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, Ordering};
use std::time::{Duration, Instant};
use vmbook::process::{fork_child, wait_child};
use vmbook::shm::unique_name;
use vmbook::{banner, bytes, cleanup, finding, kb, not_checked, section, Mapping};

/// Chapter 7 of the book, "Cleanup": leaks valgrind does not report, objects that outlive a
/// SIGKILLed creator, which endings run Drop, signal handlers that only set a flag, zombies, and what
/// munmap, close and shm_unlink each free.
#[derive(Parser)]
#[command(version, long_about = None)]
struct Options {
    #[command(subcommand)]
    experiment: Option<Experiment>,
    /// Stop at each experiment, print this process's pid and what to inspect, wait for Enter.
    #[arg(long, global = true)]
    pause: bool,
}

#[derive(Subcommand, Clone)]
enum Experiment {
    /// Seed 000 under valgrind: an mmap'd region and a malloc'd block, both leaked; what it reports.
    Valgrind {
        /// The size of each leak (the mapping and the heap block), in KiB.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65536))]
        kib: u64,
        /// The valgrind program to run (a path, or a name looked up in PATH).
        #[arg(long, default_value = "valgrind")]
        valgrind: String,
    },
    /// A child leaks mappings one by one; watch them from outside in /proc/PID (pmap-style).
    WatchLeak {
        /// How many mappings the child leaks.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
        leaks: u32,
        /// The size of each leaked mapping, in MiB.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
        mib: u64,
    },
    /// The creator of a shm object is SIGKILLed before shm_unlink: the object stays in /dev/shm.
    Orphan {
        /// The size of the object, in KiB.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65536))]
        kib: u64,
    },
    /// Open the object in every process, unlink it at once: SIGKILL then leaves nothing behind.
    UnlinkEarly {
        /// The size of the object, in KiB.
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65536))]
        kib: u64,
    },
    /// Seven ways for a child to end, and whether its Drop ran and its object stayed in /dev/shm.
    DropTable,
    /// A SIGINT handler that only sets a flag and writes to a pipe; cleanup on the main path.
    Signals,
    /// A child that exited but was not waited for: a zombie in /proc, until waitpid reaps it.
    Zombie {
        /// The exit status the child returns (read back by waitpid).
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(i32).range(0..=255))]
        exit_code: i32,
    },
    /// munmap, close and shm_unlink in two orders: what each one frees.
    Order {
        /// The size of the object, in MiB.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1024))]
        mib: u64,
    },
    /// (Run under valgrind by `valgrind`.) Seed 000: mmap, fork, _exit; then leak a heap block.
    #[command(hide = true)]
    LeakProbe {
        /// The size of each leak, in bytes.
        #[arg(long)]
        bytes: usize,
    },
}

fn main() -> std::process::ExitCode {
    let options = Options::parse();
    vmbook::pause::enable(options.pause);
    let code = vmbook::run(|| match options.experiment {
        Some(Experiment::LeakProbe { bytes }) => leak_probe(bytes),
        Some(experiment) => {
            banner();
            run(experiment)
        }
        None => {
            banner();
            let all = [
                Experiment::Valgrind {
                    kib: 64,
                    valgrind: "valgrind".into(),
                },
                Experiment::WatchLeak { leaks: 4, mib: 1 },
                Experiment::Orphan { kib: 64 },
                Experiment::UnlinkEarly { kib: 64 },
                Experiment::DropTable,
                Experiment::Signals,
                Experiment::Zombie { exit_code: 7 },
                Experiment::Order { mib: 8 },
            ];
            all.into_iter().try_for_each(run)
        }
    });
    // After an error, kill and reap the children still tracked and unlink the names still tracked.
    cleanup::cleanup_now();
    code
}

fn run(experiment: Experiment) -> Result<()> {
    match experiment {
        Experiment::Valgrind { kib, valgrind } => valgrind_misses_mmap_leaks(kib << 10, &valgrind),
        Experiment::WatchLeak { leaks, mib } => see_a_leak_from_outside(leaks, mib << 20),
        Experiment::Orphan { kib } => orphan_outlives_its_creator(kib << 10),
        Experiment::UnlinkEarly { kib } => unlink_early_leaves_nothing(kib << 10),
        Experiment::DropTable => which_endings_run_drop(),
        Experiment::Signals => flag_handler_cleans_on_main_path(),
        Experiment::Zombie { exit_code } => zombie_until_reaped(exit_code),
        Experiment::Order { mib } => what_each_call_frees(mib << 20),
        Experiment::LeakProbe { bytes } => leak_probe(bytes),
    }
}

// ANCHOR: leak_probe
/// Seed 000 in Rust: map memory, fork, let the child `_exit`, and never unmap. Then leak a heap
/// block of the same size, the kind of leak valgrind is built to find.
fn leak_probe(size: usize) -> Result<()> {
    let mut region = Mapping::private(size)?;
    region.bytes_mut()[..18].copy_from_slice(b"Temporary message\n");
    let child = fork_child(|| 0)?; // the child leaves with _exit(0): nothing is cleaned up
    wait_child(child)?;
    std::mem::forget(region); // never unmapped
    leak_heap_block(size);
    println!("{} {}", std::process::id(), child);
    Ok(())
}

#[inline(never)]
fn leak_heap_block(size: usize) {
    let block = vec![0xA5u8; size].into_boxed_slice(); // malloc
    std::mem::forget(std::hint::black_box(block)); // never freed, and no pointer to it is kept
}
// ANCHOR_END: leak_probe

/// valgrind's "definitely lost" line for each process it watched: (pid, bytes, the line).
fn definitely_lost(log: &str) -> Vec<(i32, u64, String)> {
    let mut seen = Vec::new();
    for line in log.lines() {
        // "==4186==    definitely lost: 65,536 bytes in 1 blocks"
        let mut parts = line.splitn(3, "==");
        let (Some(""), Some(pid), Some(text)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(pid), text) = (pid.parse::<i32>(), text.trim()) else {
            continue;
        };
        if let Some(n) = text.strip_prefix("definitely lost: ") {
            let n = n.split(' ').next().unwrap_or("").replace(',', "");
            if let Ok(n) = n.parse() {
                seen.push((pid, n, text.to_string()));
            }
        } else if text.starts_with("All heap blocks were freed") {
            seen.push((pid, 0, text.to_string()));
        }
    }
    seen
}

// ANCHOR: valgrind
fn valgrind_misses_mmap_leaks(size: u64, valgrind: &str) -> Result<()> {
    section("Seed 000 under valgrind: two leaks of the same size");
    let exe = std::env::current_exe().context("find this program's path")?;
    let probe = ["leak-probe", "--bytes", &size.to_string()];
    println!("$ valgrind --leak-check=full cleanup {}", probe.join(" "));
    println!(
        "  leaks {} with mmap (then fork, child _exit(0)) and {} with malloc",
        bytes(size),
        bytes(size)
    );
    let started = Instant::now();
    let spawned = with_signals_held(|before| {
        let mut command = Command::new(valgrind);
        let mask = *before;
        // SAFETY: between fork and exec the child only calls pthread_sigmask, which is
        // async-signal-safe: valgrind must not inherit the signals we hold back here.
        unsafe { command.pre_exec(move || Ok(mask.thread_set_mask()?)) };
        let spawned = command
            .args(["--leak-check=full", "--error-exitcode=0"])
            .arg(&exe)
            .args(probe)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        if let Ok(child) = &spawned {
            cleanup::track_child(child.id() as i32); // a SIGINT now kills and reaps valgrind too
        }
        spawned
    })?;
    let child = match spawned {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("valgrind was not found (`{valgrind}`): install it to run this experiment");
            not_checked(
                "valgrind reports the malloc'd block, and nothing for the mmap'd region",
                "valgrind is not installed",
            );
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("run {valgrind}")),
    };
    let valgrind_pid = child.id() as i32;
    let out = child.wait_with_output().context("wait for valgrind")?;
    cleanup::untrack_child(valgrind_pid);
    // ANCHOR_END: valgrind
    let took = started.elapsed();
    let log = String::from_utf8_lossy(&out.stderr);
    let pids: Vec<i32> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    let lost = definitely_lost(&log);
    let (&[parent, child], true) = (pids.as_slice(), out.status.success()) else {
        bail!(
            "valgrind ({}) did not run the probe: {}",
            out.status,
            log.lines().last().unwrap_or("no output")
        );
    };
    let lost_by = |pid: i32| lost.iter().find(|(p, _, _)| *p == pid);
    let (Some((_, parent_lost, parent_line)), Some((_, child_lost, child_line))) =
        (lost_by(parent), lost_by(child))
    else {
        bail!("no leak summary for pid {parent} and pid {child} in valgrind's output");
    };
    let (parent_lost, child_lost) = (*parent_lost, *child_lost);
    println!("valgrind's LEAK SUMMARY for the parent (pid {parent}): {parent_line}");
    println!("valgrind's LEAK SUMMARY for the child  (pid {child}): {child_line}");
    println!("valgrind's run took {} ms", took.as_millis());
    finding(
        "valgrind reports the malloc'd block as definitely lost",
        parent_lost >= size,
        format!("parent: {parent_lost} bytes definitely lost"),
    );
    finding(
        "valgrind reports nothing for the mmap'd region, in the parent or in the child",
        parent_lost < 2 * size && child_lost < size,
        format!(
            "{} mapped and never unmapped in each; reported: parent {parent_lost} bytes, child {child_lost} bytes",
            bytes(size)
        ),
    );
    Ok(())
}

/// VmSize and VmRSS of process `pid`, in bytes.
fn vm_of(pid: Pid) -> Result<(u64, u64)> {
    let status = Process::new(pid.as_raw())
        .and_then(|p| p.status())
        .with_context(|| format!("read /proc/{pid}/status"))?;
    Ok((
        status.vmsize.unwrap_or(0) * 1024,
        status.vmrss.unwrap_or(0) * 1024,
    ))
}

// ANCHOR: see_a_leak_from_outside
fn see_a_leak_from_outside(leaks: u32, size: u64) -> Result<()> {
    section("Watching a process leak mappings, from outside");
    let (go_r, go_w) = pipe().context("pipe")?;
    let (done_r, done_w) = pipe().context("pipe")?;
    let child = fork_tracked(|| {
        let mut one = [0u8; 1];
        // One leak per "+" the parent sends; anything else means "stop".
        while matches!(read(&go_r, &mut one), Ok(1)) && one[0] == b'+' {
            let Ok(mut leak) = Mapping::private(size as usize) else {
                return 1;
            };
            leak.bytes_mut()
                .iter_mut()
                .step_by(4096)
                .for_each(|b| *b = 1);
            let addr = leak.addr() as u64;
            std::mem::forget(leak); // the leak: nothing will ever unmap it
            if write(&done_w, &addr.to_ne_bytes()).is_err() {
                return 1;
            }
        }
        0
    })?;
    drop(done_w); // only the child writes: if it dies, our read sees end-of-file
    let (size0, rss0) = vm_of(child)?;
    let mut addrs = Vec::new();
    // Sizes measured by the kernel vary, so nothing is aligned after one.
    println!("before:  VmSize {}, VmRSS {}", kb(size0), kb(rss0));
    for n in 1..=leaks {
        write(&go_w, b"+").context("write to the child")?;
        let mut addr = [0u8; 8];
        ensure!(
            read(&done_r, &mut addr).context("read from the child")? == 8,
            "the child stopped leaking"
        );
        addrs.push(u64::from_ne_bytes(addr));
        let (size, rss) = vm_of(child)?;
        println!("leak {n}:  VmSize {}, VmRSS {}", kb(size), kb(rss));
    }
    // ANCHOR_END: see_a_leak_from_outside
    vmbook::pause::here(
        "the child has leaked its mappings and waits (look at the child: ps --ppid PID)",
        &["ps -o pid,stat,cmd --ppid PID", "pmap -x $(pgrep -P PID)"],
    );
    let (size1, rss1) = vm_of(child)?;
    println!("the child's mappings that hold a leak, as pmap -x PID shows them:");
    let smaps = Process::new(child.as_raw())
        .and_then(|p| p.smaps())
        .with_context(|| format!("read /proc/{child}/smaps"))?;
    let mut found = 0;
    for m in smaps.iter() {
        let (start, end) = m.address;
        let held = addrs.iter().filter(|a| (start..end).contains(a)).count();
        if held == 0 {
            continue;
        }
        found += held;
        let get = |k: &str| m.extension.map.get(k).copied().unwrap_or(0);
        println!(
            "{start:#x} {} [anon] holding {held} of the leaks: Kbytes {}, RSS {}, Dirty {}",
            m.perms.as_str(),
            kb(end - start),
            kb(get("Rss")),
            kb(get("Private_Dirty") + get("Shared_Dirty"))
        );
    }
    write(&go_w, b"q").context("write to the child")?; // the child returns and exits
    let status = wait_child(child)?;
    let total = u64::from(leaks) * size;
    finding(
        "every leaked mapping is still listed in the child's /proc/PID/smaps",
        found == leaks as usize,
        format!("{found} of {leaks} leak addresses inside a listed mapping"),
    );
    finding(
        "VmSize grows by the size leaked",
        size1 >= size0 + total && size1 < size0 + total + (1 << 20),
        format!(
            "leaked {}, VmSize grew by {}",
            bytes(total),
            kb(size1.saturating_sub(size0))
        ),
    );
    finding(
        "VmRSS grows by the size leaked, since every page was touched",
        rss1 >= rss0 + total * 9 / 10,
        format!("VmRSS grew by {}", kb(rss1.saturating_sub(rss0))),
    );
    finding(
        "the leak ends with the process: the child exited normally and its address space is gone",
        matches!(status, WaitStatus::Exited(_, 0)) && Process::new(child.as_raw()).is_err(),
        format!("waitpid: {}", describe_status(status)),
    );
    Ok(())
}

fn describe_status(status: WaitStatus) -> String {
    match status {
        WaitStatus::Exited(_, code) => format!("exited with status {code}"),
        WaitStatus::Signaled(_, sig, _) => format!("killed by {}", sig.as_str()),
        other => format!("{other:?}"),
    }
}

/// Creates the object `name` (O_CREAT | O_EXCL, mode 0600) of `size` bytes and maps it.
fn create_and_map(name: &str, size: usize) -> Result<(OwnedFd, *mut u8)> {
    let fd = shm_open(
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
        Mode::S_IRUSR | Mode::S_IWUSR,
    )
    .with_context(|| format!("shm_open({name}, O_CREAT|O_EXCL|O_RDWR, 0600)"))?;
    ftruncate(&fd, size as i64).with_context(|| format!("ftruncate({name})"))?;
    let ptr = map(&fd, size)?;
    Ok((fd, ptr))
}

fn map(fd: &OwnedFd, size: usize) -> Result<*mut u8> {
    let len = NonZeroUsize::new(size).context("size 0")?;
    // SAFETY: a new shared mapping at an address the kernel picks overlaps nothing Rust owns; the
    // object is at least `size` bytes long.
    let ptr = unsafe {
        mmap(
            None,
            len,
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
            fd,
            0,
        )
    }
    .context("mmap(MAP_SHARED)")?;
    Ok(ptr.as_ptr().cast())
}

// ANCHOR: fork_tracked
/// Runs `f` with the cleanup signals held back: a SIGINT between starting a child and recording
/// it for the signal handler would end this process and leave the child running. A signal that
/// arrives meanwhile is delivered when `f` returns, with the child recorded.
fn with_signals_held<T>(f: impl FnOnce(&SigSet) -> T) -> Result<T> {
    let mut held = SigSet::empty();
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        held.add(sig);
    }
    let before = held
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .context("sigprocmask")?;
    let result = f(&before);
    before.thread_set_mask().context("sigprocmask")?;
    Ok(result)
}

/// `fork_child`, the child recorded before any cleanup signal can arrive.
fn fork_tracked(child: impl FnOnce() -> i32) -> Result<Pid> {
    with_signals_held(|before| {
        fork_child(|| {
            let _ = before.thread_set_mask(); // the child starts with the mask its parent had
            child()
        })
    })?
}
// ANCHOR_END: fork_tracked

/// Blocks until the child writes one byte; an error naming `what` if it died first.
fn wait_for(pipe: &OwnedFd, what: &str) -> Result<()> {
    let mut byte = [0u8; 1];
    ensure!(
        read(pipe, &mut byte).context("read from the child")? == 1,
        "the child ended before {what}"
    );
    Ok(())
}

/// A child's loop while it waits to be killed.
fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How the book shows an object's name: the run tag and the creator's pid vary from run to run.
const SHOWN_NAME: &str = "/dev/shm/vmbook-TAG-PID-N";

// ANCHOR: orphan
fn orphan_outlives_its_creator(size: u64) -> Result<()> {
    section("A shm object whose creator was SIGKILLed before shm_unlink");
    let name = unique_name(); // chosen here, so that this process can remove it on any path
    let path = format!("/dev/shm{name}");
    let slot = cleanup::track_path(&path);
    let (ready_r, ready_w) = pipe().context("pipe")?;
    let child = fork_tracked(|| {
        let Ok((_fd, ptr)) = create_and_map(&name, size as usize) else {
            return 1;
        };
        let text = b"written by the creator";
        // SAFETY: the mapping is `size` >= 1024 bytes long and only this process writes it.
        unsafe { ptr.copy_from_nonoverlapping(text.as_ptr(), text.len()) };
        let _ = write(&ready_w, b"!");
        sleep_forever() // shm_unlink would come later: it never does
    })?;
    drop(ready_w);
    wait_for(&ready_r, "creating the object")?;
    kill(child, Signal::SIGKILL).context("kill(SIGKILL)")?;
    let status = wait_child(child)?;
    let survived = std::fs::metadata(&path);
    // ANCHOR_END: orphan
    println!("the creator (pid {child}): {}", describe_status(status));
    let (left, left_size, mode) = match &survived {
        Ok(meta) => (true, meta.len(), meta.permissions().mode() & 0o777),
        Err(_) => (false, 0, 0),
    };
    let contents = std::fs::read(&path).unwrap_or_default();
    let text = String::from_utf8_lossy(&contents[..22.min(contents.len())]).into_owned();
    if left {
        println!(
            "still in /dev/shm: {SHOWN_NAME}  size {}  mode {mode:o}  starts with {text:?}",
            bytes(left_size)
        );
    } else {
        println!("nothing in /dev/shm");
    }
    vmbook::pause::here(
        "the orphaned object is still in /dev/shm",
        &["ls -l /dev/shm"],
    );
    // ANCHOR: remove_orphan
    if left {
        shm_unlink(name.as_str()).with_context(|| format!("shm_unlink({name})"))?;
    }
    cleanup::untrack_path(slot);
    let gone = std::fs::metadata(&path).is_err();
    // ANCHOR_END: remove_orphan
    println!(
        "after this process called shm_unlink: {}",
        if gone {
            "gone from /dev/shm"
        } else {
            "still there"
        }
    );
    finding(
        "an object whose creator is SIGKILLed before shm_unlink stays in /dev/shm, data and all",
        left && left_size == size && text == "written by the creator",
        format!(
            "{}, {}",
            describe_status(status),
            if left {
                "object found"
            } else {
                "object not found"
            }
        ),
    );
    finding(
        "any process with permission can remove the orphan with shm_unlink",
        left && gone,
        "gone after shm_unlink",
    );
    Ok(())
}

// ANCHOR: unlink_early
fn unlink_early_leaves_nothing(size: u64) -> Result<()> {
    section("Unlink early: every process opens the object, then its name goes at once");
    let name = unique_name();
    let path = format!("/dev/shm{name}");
    let slot = cleanup::track_path(&path);
    let (created_r, created_w) = pipe().context("pipe")?;
    let (opened_r, opened_w) = pipe().context("pipe")?;
    let (unlinked_r, unlinked_w) = pipe().context("pipe")?;
    let child = fork_tracked(|| {
        let Ok((_fd, ptr)) = create_and_map(&name, size as usize) else {
            return 1;
        };
        let _ = write(&created_w, b"!");
        let mut byte = [0u8; 1];
        let _ = read(&opened_r, &mut byte); // every party has it open now
        let _ = shm_unlink(name.as_str());
        let text = b"written after the unlink";
        // SAFETY: the mapping is `size` >= 1024 bytes long; the parent only reads it.
        unsafe { ptr.copy_from_nonoverlapping(text.as_ptr(), text.len()) };
        let _ = write(&unlinked_w, b"!");
        sleep_forever()
    })?;
    drop((created_w, unlinked_w));
    wait_for(&created_r, "creating the object")?;
    let other = vmbook::ShmObject::open(&name)?; // the second party
    write(&opened_w, b"!").context("write to the child")?;
    wait_for(&unlinked_r, "unlinking")?;
    let named_while_alive = std::fs::metadata(&path).is_ok();
    let maps_line = Process::new(child.as_raw())
        .and_then(|p| p.maps())
        .ok()
        .and_then(|maps| {
            maps.into_iter()
                .find(|m| format!("{:?}", m.pathname).contains(&name))
        })
        .map(|m| format!("{:?}", m.pathname));
    kill(child, Signal::SIGKILL).context("kill(SIGKILL)")?;
    let status = wait_child(child)?;
    // SAFETY: the object is `size` >= 1024 bytes long and the writer is dead.
    let seen = unsafe { std::slice::from_raw_parts(other.as_ptr(), 24) };
    let text = String::from_utf8_lossy(seen).into_owned();
    drop(other);
    let left_after = std::fs::metadata(&path).is_ok();
    // ANCHOR_END: unlink_early
    cleanup::untrack_path(slot);
    let deleted = maps_line
        .as_deref()
        .is_some_and(|l| l.contains("(deleted)"));
    println!(
        "while the creator lives: {} in /dev/shm; its /proc/PID/maps lists {}",
        if named_while_alive {
            "the name is"
        } else {
            "no name"
        },
        if deleted {
            format!("{SHOWN_NAME} (deleted)")
        } else {
            "no such mapping".into()
        }
    );
    println!("the creator (pid {child}): {}", describe_status(status));
    println!("the other process reads, through its mapping: {text:?}");
    println!(
        "after SIGKILL: {}",
        if left_after {
            "the object is in /dev/shm"
        } else {
            "nothing in /dev/shm"
        }
    );
    finding(
        "after an early shm_unlink the memory is still shared: the other process read the text written after it",
        text == "written after the unlink",
        format!("read {text:?}"),
    );
    finding(
        "an object unlinked at once leaves nothing in /dev/shm, even when its creator is SIGKILLed",
        !named_while_alive && deleted && !left_after,
        format!(
            "{}; mapping shown as (deleted): {deleted}",
            describe_status(status)
        ),
    );
    Ok(())
}

/// The ways a child ends in `which_endings_run_drop`.
#[derive(Clone, Copy, PartialEq)]
enum Ending {
    Return,
    Panic,
    ProcessExit,
    SigintFlagHandler,
    SigintCleanupHandler,
    SigintNoHandler,
    Sigkill,
}

impl Ending {
    fn label(self) -> &'static str {
        match self {
            Ending::Return => "returns normally",
            Ending::Panic => "panics (unwinds)",
            Ending::ProcessExit => "calls process::exit(3)",
            Ending::SigintFlagHandler => "SIGINT, handler sets a flag",
            Ending::SigintCleanupHandler => "SIGINT, vmbook's handler",
            Ending::SigintNoHandler => "SIGINT, no handler",
            Ending::Sigkill => "SIGKILL",
        }
    }
}

static STOP: AtomicBool = AtomicBool::new(false);
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

// ANCHOR: flag_handler
/// The whole signal handler: set a flag, and wake the main loop through a pipe. Both are
/// async-signal-safe (an atomic store, and write(2), listed in signal-safety(7)).
extern "C" fn on_sigint(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the byte lives on the handler's own stack.
        unsafe { libc::write(fd, b"!".as_ptr().cast(), 1) };
    }
}

fn install_flag_handler() -> Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(on_sigint),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: on_sigint only makes async-signal-safe calls and touches only atomics.
    unsafe { sigaction(Signal::SIGINT, &action) }.context("sigaction(SIGINT)")?;
    Ok(())
}
// ANCHOR_END: flag_handler

// ANCHOR: guard
/// Removes its object when dropped, and says so in memory the parent shares.
struct Guard<'a> {
    name: &'a str,
    dropped: &'a AtomicU8,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.dropped.store(1, Ordering::SeqCst);
        let _ = shm_unlink(self.name);
    }
}
// ANCHOR_END: guard

// ANCHOR: ending_child
/// The child: create an object, guard it, tell the parent, then end the way `ending` says.
fn end_child(ending: Ending, name: &str, dropped: &AtomicU8, ready: &OwnedFd) -> i32 {
    let Ok((_fd, _)) = create_and_map(name, 4096) else {
        return 1;
    };
    let _guard = Guard { name, dropped };
    match ending {
        Ending::SigintFlagHandler if install_flag_handler().is_err() => return 1,
        Ending::SigintCleanupHandler => {
            cleanup::track_path(&format!("/dev/shm{name}"));
        }
        Ending::SigintNoHandler => cleanup::disable_signal_cleanup(),
        _ => {}
    }
    let _ = write(ready, b"!");
    match ending {
        Ending::Return => 0,
        Ending::Panic => {
            std::panic::set_hook(Box::new(|_| {})); // quiet: the table tells the story
            panic!("on purpose")
        }
        Ending::ProcessExit => std::process::exit(3),
        Ending::SigintFlagHandler => {
            while !STOP.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            130 // back on the main path: returning drops the guard
        }
        _ => sleep_forever(),
    }
}
// ANCHOR_END: ending_child

fn which_endings_run_drop() -> Result<()> {
    section("Which endings run Drop, and what they leave in /dev/shm");
    let endings = [
        Ending::Return,
        Ending::Panic,
        Ending::ProcessExit,
        Ending::SigintFlagHandler,
        Ending::SigintCleanupHandler,
        Ending::SigintNoHandler,
        Ending::Sigkill,
    ];
    // One byte per child, in memory both sides share: the guard's Drop sets it.
    let flags = Mapping::shared(4096)?;
    // SAFETY: the mapping is 4096 bytes, and u8 and AtomicU8 have the same layout.
    let dropped: &[AtomicU8] =
        unsafe { std::slice::from_raw_parts(flags.as_ptr().cast::<AtomicU8>(), endings.len()) };
    println!(
        "{:<30} {:<26} {:<9} left in /dev/shm",
        "the child", "waitpid says", "Drop ran"
    );
    let mut rows = Vec::new();
    for (i, &ending) in endings.iter().enumerate() {
        let name = unique_name();
        let path = format!("/dev/shm{name}");
        let slot = cleanup::track_path(&path);
        let (ready_r, ready_w) = pipe().context("pipe")?;
        let child = fork_tracked(|| end_child(ending, &name, &dropped[i], &ready_w))?;
        drop(ready_w);
        wait_for(&ready_r, "creating its object")?;
        match ending {
            Ending::Sigkill => kill(child, Signal::SIGKILL).context("kill(SIGKILL)")?,
            e if e != Ending::Return && e != Ending::Panic && e != Ending::ProcessExit => {
                kill(child, Signal::SIGINT).context("kill(SIGINT)")?
            }
            _ => {}
        }
        let status = wait_child(child)?;
        let ran = dropped[i].load(Ordering::SeqCst) == 1;
        let left = std::fs::metadata(&path).is_ok();
        if left {
            shm_unlink(name.as_str()).with_context(|| format!("shm_unlink({name})"))?;
        }
        cleanup::untrack_path(slot);
        println!(
            "{:<30} {:<26} {:<9} {}",
            ending.label(),
            describe_status(status),
            if ran { "yes" } else { "no" },
            if left {
                "yes (removed by the parent)"
            } else {
                "no"
            }
        );
        rows.push((ending, ran, left));
    }
    let list = |pick: &dyn Fn(&(Ending, bool, bool)) -> bool| {
        let v: Vec<&str> = rows
            .iter()
            .filter(|r| pick(r))
            .map(|r| r.0.label())
            .collect();
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let ran = list(&|r| r.1);
    let left = list(&|r| r.2);
    finding(
        "Drop runs only when the program gets back to its own code: return, unwinding panic, a flag handler",
        ran == "returns normally, panics (unwinds), SIGINT, handler sets a flag",
        format!("Drop ran: {ran}"),
    );
    finding(
        "process::exit, SIGKILL and an unhandled SIGINT leave the object behind; a cleanup handler does not",
        left == "calls process::exit(3), SIGINT, no handler, SIGKILL",
        format!("left behind: {left}"),
    );
    Ok(())
}

// ANCHOR: signals
fn flag_handler_cleans_on_main_path() -> Result<()> {
    section("A signal handler that only sets a flag; the cleanup on the main path");
    let name = unique_name();
    let path = format!("/dev/shm{name}");
    let slot = cleanup::track_path(&path);
    let (ready_r, ready_w) = pipe().context("pipe")?;
    let (input_r, _input_w) = pipe().context("pipe")?; // the child's "input": never written
    let dropped = AtomicU8::new(0);
    let child = fork_tracked(|| {
        let Ok((wake_r, wake_w)) = pipe() else {
            return 1;
        };
        WAKE_FD.store(wake_w.as_raw_fd(), Ordering::SeqCst);
        if install_flag_handler().is_err() {
            return 1;
        }
        let Ok((_fd, _)) = create_and_map(&name, 4096) else {
            return 1;
        };
        let guard = Guard {
            name: &name,
            dropped: &dropped,
        };
        let _ = write(&ready_w, b"!");
        // The main loop waits for input or for the handler's byte, whichever comes first.
        let mut fds = [
            PollFd::new(input_r.as_fd(), PollFlags::POLLIN),
            PollFd::new(wake_r.as_fd(), PollFlags::POLLIN),
        ];
        while !STOP.load(Ordering::SeqCst) {
            let _ = poll(&mut fds, PollTimeout::NONE); // EINTR or the wake byte: check the flag
        }
        println!("child: SIGINT seen on the main path; cleaning up there");
        drop(guard); // shm_unlink, in ordinary code where anything may be called
        println!("child: object removed; exiting with status 130 (128 + SIGINT)");
        130
    })?;
    drop(ready_w);
    wait_for(&ready_r, "installing its handler")?;
    kill(child, Signal::SIGINT).context("kill(SIGINT)")?;
    let status = wait_child(child)?;
    // ANCHOR_END: signals
    let left = std::fs::metadata(&path).is_ok();
    if left {
        shm_unlink(name.as_str()).with_context(|| format!("shm_unlink({name})"))?;
    }
    cleanup::untrack_path(slot);
    println!("parent: the child {}", describe_status(status));
    finding(
        "a handler that only sets a flag lets the main path clean up and exit on its own terms",
        matches!(status, WaitStatus::Exited(_, 130)) && !left,
        format!(
            "{}; object {}",
            describe_status(status),
            if left { "left in /dev/shm" } else { "removed" }
        ),
    );
    Ok(())
}

/// The state letter in /proc/PID/stat (R, S, Z, ...), or None once the process is gone.
fn state_of(pid: Pid) -> Option<char> {
    Process::new(pid.as_raw())
        .and_then(|p| p.stat())
        .ok()
        .map(|s| s.state)
}

// ANCHOR: zombie
fn zombie_until_reaped(exit_code: i32) -> Result<()> {
    section("A child that exited but was not waited for");
    let child = fork_tracked(|| exit_code)?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while state_of(child) != Some('Z') && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let before = state_of(child);
    let status_file = std::fs::read_to_string(format!("/proc/{child}/status")).unwrap_or_default();
    let holds_memory = status_file.lines().any(|l| l.starts_with("VmSize"));
    vmbook::pause::here(
        "the child is a zombie now",
        &["ps -o pid,stat,cmd --ppid PID"],
    );
    let status = wait_child(child)?; // waitpid(pid, &status, 0): read the status, free the entry
    let after = state_of(child);
    // ANCHOR_END: zombie
    let show = |s: Option<char>| {
        s.map_or("gone (no /proc entry)".to_string(), |c| {
            format!("state {c}")
        })
    };
    println!(
        "child (pid {child}) has exited, not yet waited for: /proc/PID/stat {}",
        show(before)
    );
    println!(
        "its /proc/PID/status {}",
        if holds_memory {
            "still has a VmSize line"
        } else {
            "has no VmSize line: no address space"
        }
    );
    println!("waitpid: {}", describe_status(status));
    println!("after waitpid: /proc/PID/stat {}", show(after));
    finding(
        "a child that exited but was not waited for is a zombie (state Z) that holds no memory",
        before == Some('Z') && !holds_memory,
        format!("{}, VmSize line: {holds_memory}", show(before)),
    );
    finding(
        "waitpid returns the child's exit status and the zombie disappears",
        matches!(status, WaitStatus::Exited(_, c) if c == exit_code) && after.is_none(),
        format!("{}, then {}", describe_status(status), show(after)),
    );
    Ok(())
}

/// One row of the `order` table: what still refers to the object, and how much memory it holds.
struct Refs {
    named: bool,
    fd_open: bool,
    mapping: Option<String>,
    held: Option<u64>,
}

fn refs(name: &str, fd: Option<&OwnedFd>, addr: Option<usize>) -> Result<Refs> {
    let path = format!("/dev/shm{name}");
    let named = std::fs::metadata(&path).ok();
    let mapping = match addr {
        Some(a) => Some(vmbook::procinfo::smaps_of(a)?),
        None => None,
    };
    let line = match addr {
        Some(a) => vmbook::procinfo::maps()?
            .into_iter()
            .find(|m| (m.address.0..m.address.1).contains(&(a as u64)))
            .map(|m| format!("{:?}", m.pathname)),
        None => None,
    };
    // The object's memory, from whatever still refers to it: the name, the descriptor, the mapping.
    let held = if let Some(meta) = &named {
        Some(meta.blocks() * 512)
    } else if let Some(fd) = fd {
        Some(fstat(fd).context("fstat")?.st_blocks as u64 * 512)
    } else {
        mapping.as_ref().map(|m| m.get("Rss").copied().unwrap_or(0))
    };
    Ok(Refs {
        named: named.is_some(),
        fd_open: fd.is_some(),
        mapping: line.map(|l| {
            if l.contains("(deleted)") {
                "yes (deleted)".into()
            } else {
                "yes".into()
            }
        }),
        held,
    })
}

fn print_refs(step: &str, r: &Refs) {
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!(
        "{:<26} {:<6} {:<5} {:<15} {}",
        step,
        yes(r.named),
        yes(r.fd_open),
        r.mapping.as_deref().unwrap_or("no"),
        r.held.map_or("freed: nothing refers to it".to_string(), kb)
    );
}

fn unmap(ptr: *mut u8, size: usize) -> Result<()> {
    // SAFETY: ptr/size are exactly what mmap returned, and nothing borrows the memory any more.
    unsafe { munmap(std::ptr::NonNull::new(ptr.cast()).context("null")?, size) }.context("munmap")
}

// ANCHOR: order
fn what_each_call_frees(size: u64) -> Result<()> {
    section("What munmap, close and shm_unlink each free");
    let size = size as usize;
    println!(
        "{:<26} {:<6} {:<5} {:<15} memory it holds",
        "step", "name", "fd", "mapping"
    );
    let mut held_after_munmap_close = 0;
    let mut held_by_mapping_alone = 0;
    for early in [false, true] {
        let name = unique_name();
        let slot = cleanup::track_path(&format!("/dev/shm{name}"));
        let (fd, ptr) = create_and_map(&name, size)?;
        // SAFETY: the mapping is `size` bytes; writing one byte per page makes each page resident.
        (0..size)
            .step_by(4096)
            .for_each(|i| unsafe { *ptr.add(i) = 1 });
        println!(
            "{}",
            if early {
                "-- unlink early: shm_unlink, close, munmap"
            } else {
                "-- seed 003's order: munmap, close, shm_unlink"
            }
        );
        print_refs(
            "created, mapped, written",
            &refs(&name, Some(&fd), Some(ptr as usize))?,
        );
        if !early {
            unmap(ptr, size)?;
            print_refs("munmap", &refs(&name, Some(&fd), None)?);
            drop(fd); // close(2)
            let r = refs(&name, None, None)?;
            held_after_munmap_close = r.held.unwrap_or(0);
            print_refs("close", &r);
            shm_unlink(name.as_str()).context("shm_unlink")?;
            print_refs("shm_unlink", &refs(&name, None, None)?);
        } else {
            shm_unlink(name.as_str()).context("shm_unlink")?;
            print_refs("shm_unlink", &refs(&name, Some(&fd), Some(ptr as usize))?);
            drop(fd);
            let r = refs(&name, None, Some(ptr as usize))?;
            held_by_mapping_alone = r.held.unwrap_or(0);
            print_refs("close", &r);
            unmap(ptr, size)?;
            print_refs("munmap", &refs(&name, None, None)?);
        }
        cleanup::untrack_path(slot);
    }
    // ANCHOR_END: order
    let size = size as u64;
    finding(
        "munmap and close free none of the object's memory while its name exists",
        held_after_munmap_close >= size,
        format!(
            "after munmap and close the object still holds {}",
            kb(held_after_munmap_close)
        ),
    );
    finding(
        "after shm_unlink and close, the mapping alone keeps the memory alive, shown as (deleted)",
        held_by_mapping_alone >= size * 9 / 10,
        format!(
            "Rss of the (deleted) mapping: {}",
            kb(held_by_mapping_alone)
        ),
    );
    Ok(())
}
