//! Chapter 5, "POSIX shared memory": an object with a name in /dev/shm, opened again by a fork+exec'd
//! child at another address; the RAII guard of the library (seed 003's class, done right); offsets
//! instead of pointers; and seed 001's numbers pipeline with its 0/1/2 flag protocol.

use anyhow::{bail, ensure, Context, Result};
use clap::{Parser, Subcommand};
use nix::fcntl::OFlag;
use nix::sys::mman::shm_open;
use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::stat::Mode;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};
use vmbook::numbers::{self, LineSlot, DONE, EMPTY, READY, SLOT_CAPACITY};
use vmbook::procinfo::{frames_visible, page_entry, page_size};
use vmbook::{banner, bytes, cleanup, finding, not_checked, section, ShmObject};

/// Chapter 5 of the book, "POSIX shared memory": shm_open/ftruncate/mmap and the object in
/// /dev/shm, a fork+exec'd child that opens it by name, the RAII guard, offsets instead of
/// pointers, and seed 001's numbers pipeline.
#[derive(Parser)]
#[command(version, long_about = None)]
struct Options {
    #[command(subcommand)]
    experiment: Experiment,
    /// Stop at each experiment, print this process's pid and what to inspect, wait for Enter.
    #[arg(long, global = true)]
    pause: bool,
}

#[derive(Subcommand)]
enum Experiment {
    /// Create an object, look at it in /dev/shm, unlink it while it stays mapped.
    Object {
        /// The object's size in bytes (ftruncate).
        #[arg(long, default_value_t = 65_536, value_parser = clap::value_parser!(u64).range(1..=1 << 32))]
        size: u64,
    },
    /// Start a child with fork+exec that opens the object by name: where does it map it?
    Exec,
    /// The guard unlinks the name on every way out of a scope: end, `?`, panic.
    Guard,
    /// A list linked by offsets and one linked by pointers, walked by a forked and an exec'd child.
    Pointers,
    /// Seed 001: lines of numbers → shared memory → an exec'd child sums each line into a file.
    Pipeline {
        /// Read lines from this file instead of stdin.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Write the sums here (kept); by default to a temporary file without a name, shown, then gone.
        #[arg(long)]
        output: Option<PathBuf>,
        /// The longest line accepted, in bytes (at most the slot's 4080).
        #[arg(long, default_value_t = SLOT_CAPACITY as u64, value_parser = clap::value_parser!(u64).range(1..=SLOT_CAPACITY as u64))]
        max_line: u64,
        /// How long each side sleeps between looks at the flag (seed 001: 1000 µs).
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        poll_us: u64,
    },
    /// Run `pipeline` on a file with bad lines and show its stdout, stderr and exit status.
    BadInputDemo {
        /// The input file, relative to the project root.
        #[arg(long, default_value = "book/data/numbers-bad.txt")]
        input: PathBuf,
    },
    /// (Used by `exec`.) Open the object by name and report where it is mapped.
    #[command(hide = true)]
    ExecChild { name: String },
    /// (Used by `pointers`.) Open the object by name and walk both lists.
    #[command(hide = true)]
    WalkChild { name: String },
    /// (Used by `pipeline`.) Take lines from the slot, sum them, write the output file.
    #[command(hide = true)]
    PipelineChild {
        name: String,
        output: PathBuf,
        max_line: usize,
        poll_us: u64,
    },
}

fn main() -> ExitCode {
    let options = Options::parse();
    vmbook::pause::enable(options.pause);
    vmbook::run(|| {
        let done = Ok(ExitCode::SUCCESS);
        match options.experiment {
            Experiment::ExecChild { name } => exec_child(&name),
            Experiment::WalkChild { name } => walk_child(&name),
            Experiment::PipelineChild {
                name,
                output,
                max_line,
                poll_us,
            } => pipeline_child(&name, &output, max_line, poll_us),
            experiment => {
                banner();
                match experiment {
                    Experiment::Object { size } => object_lives_in_dev_shm(size as usize).and(done),
                    Experiment::Exec => exec_child_maps_elsewhere().and(done),
                    Experiment::Guard => guard_unlinks_on_every_exit().and(done),
                    Experiment::Pointers => offsets_survive_pointers_break().and(done),
                    Experiment::Pipeline {
                        input,
                        output,
                        max_line,
                        poll_us,
                    } => numbers_pipeline(input, output, max_line as usize, poll_us),
                    Experiment::BadInputDemo { input } => bad_input_demo(&input).and(done),
                    _ => unreachable!("child roles are handled above"),
                }
            }
        }
    })
}

/// `-rw-------` from a mode's permission bits.
fn mode_string(mode: u32) -> String {
    let mut s = String::from("-");
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn in_dev_shm(name: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm{name}"))
}

/// Writes `text` into `cells` (cut to fit), then a terminating zero if there is room.
fn put_str(cells: &[AtomicU8], text: &str) {
    for (cell, &b) in cells.iter().zip(text.as_bytes().iter().chain([&0u8])) {
        cell.store(b, Ordering::Relaxed);
    }
}

/// Reads a zero-terminated string out of `cells`.
fn get_str(cells: &[AtomicU8]) -> String {
    let raw: Vec<u8> = cells
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&raw).into_owned()
}

// ANCHOR: object_lives_in_dev_shm
fn object_lives_in_dev_shm(size: usize) -> Result<()> {
    section("shm_open → ftruncate → mmap, and the object in /dev/shm");
    let mut object = ShmObject::create(size)?; // O_CREAT|O_EXCL|O_RDWR, 0600, a fresh name
    let name = object.name().to_string();
    println!(
        "created {name} ({}), mapped at {:#x}",
        bytes(size as u64),
        object.addr()
    );
    let meta = std::fs::metadata(in_dev_shm(&name)).context("stat the object in /dev/shm")?;
    println!(
        "/dev/shm{name}: {} {}, owned by this process's user: {}",
        mode_string(meta.mode()),
        bytes(meta.len()),
        meta.uid() == nix::unistd::geteuid().as_raw()
    );
    // A second O_EXCL create of the same name must fail: nobody reuses a stale object by accident.
    let again = shm_open(
        name.as_str(),
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_RDWR,
        Mode::S_IRUSR | Mode::S_IWUSR,
    )
    .map(drop)
    .map_err(|errno| errno.to_string());
    println!(
        "shm_open({name}, O_CREAT|O_EXCL) again: {}",
        outcome(again.clone())
    );
    vmbook::pause::here(
        "the object exists under its name",
        &["ls -l /dev/shm", "grep vmbook /proc/PID/maps"],
    );
    // SAFETY: the mapping is `size` bytes long and lives as long as `object`; nobody else maps it.
    let memory = unsafe { std::slice::from_raw_parts_mut(object.as_ptr(), size) };
    memory[..13].copy_from_slice(b"still mapped!");
    object.unlink()?; // shm_unlink: the name goes, the memory stays while mapped
    let listed = in_dev_shm(&name).exists();
    let reopen = ShmObject::open(&name)
        .map(drop)
        .map_err(|e| e.root_cause().to_string());
    println!(
        "after shm_unlink: in /dev/shm: {listed}; shm_open({name}) again: {}",
        outcome(reopen.clone())
    );
    memory[13] = b'!'; // still usable: read and write
    let kept = String::from_utf8_lossy(&memory[..14]).into_owned();
    println!("after shm_unlink the mapping still reads {kept:?}");
    // ANCHOR_END: object_lives_in_dev_shm
    finding(
        "the object appears in /dev/shm with the size given to ftruncate and mode 0600",
        meta.len() == size as u64 && meta.mode() & 0o777 == 0o600,
        format!("{} {}", mode_string(meta.mode()), bytes(meta.len())),
    );
    finding(
        "O_EXCL refuses to create a name that exists (EEXIST)",
        again.as_ref().is_err_and(|e| e.starts_with("EEXIST")),
        outcome(again.clone()),
    );
    finding(
        "after shm_unlink the name is gone: not in /dev/shm, and shm_open fails with ENOENT",
        !listed && reopen.as_ref().is_err_and(|e| e.starts_with("ENOENT")),
        outcome(reopen.clone()),
    );
    finding(
        "after shm_unlink the mapping stays usable",
        kept == "still mapped!!",
        format!("read back {kept:?}"),
    );
    Ok(())
}

/// "ok", or why a call failed.
fn outcome(result: std::result::Result<(), String>) -> String {
    result.err().unwrap_or_else(|| "ok".to_string())
}

/// What the parent and its exec'd child tell each other through the object.
#[repr(C)]
struct Meeting {
    message: [AtomicU8; 64],
    reply: [AtomicU8; 64],
    child_addr: AtomicU64,
    child_frame: AtomicU64,
    /// 1 if the child found the object among its mappings before opening it.
    mapped_before_open: AtomicU64,
}

/// The Meeting at the start of an object.
fn meeting(object: &ShmObject) -> Result<&Meeting> {
    ensure!(
        object.len() >= std::mem::size_of::<Meeting>(),
        "the object is too small"
    );
    // SAFETY: the mapping is page-aligned, large enough (checked), lives as long as the borrow, and
    // every field is an atomic: any bit pattern is valid and both processes only use atomics.
    Ok(unsafe { &*(object.as_ptr() as *const Meeting) })
}

/// Starts this program again in a child role (fork + exec), stdin closed, recorded for cleanup.
fn spawn_self(args: &[&str]) -> Result<Child> {
    let exe = std::env::current_exe().context("find this program's path")?;
    vmbook::process::spawn_tracked(Command::new(exe).args(args).stdin(Stdio::null()))
}

/// Waits for a child started by `spawn_self`; its exit code, or an error if a signal killed it.
fn wait_for(mut child: Child) -> Result<i32> {
    let status = child.wait().context("waitpid")?;
    cleanup::untrack_child(child.id() as i32);
    status
        .code()
        .with_context(|| format!("the child ended by {status}"))
}

// ANCHOR: exec_child_maps_elsewhere
fn exec_child_maps_elsewhere() -> Result<()> {
    section("A fork+exec'd child opens the object by name");
    let object = ShmObject::create(page_size())?;
    let talk = meeting(&object)?;
    put_str(&talk.message, "hello from the parent");
    let frame = page_entry(object.addr())?.pfn;
    println!("parent: {} mapped at {:#x}", object.name(), object.addr());
    let child = spawn_self(&["exec-child", object.name()])?;
    ensure!(wait_for(child)? == 0, "the child failed");
    let child_addr = talk.child_addr.load(Ordering::Relaxed) as usize;
    let reply = get_str(&talk.reply);
    println!("parent: the child's reply reads {reply:?}");
    // ANCHOR_END: exec_child_maps_elsewhere
    finding(
        "after exec the child has no mapping of the object until it opens it by name",
        talk.mapped_before_open.load(Ordering::Relaxed) == 0,
        "none in its /proc/self/maps before shm_open",
    );
    finding(
        "the exec'd child maps the object at a different virtual address",
        child_addr != 0 && child_addr != object.addr(),
        format!("parent {:#x}, child {child_addr:#x}", object.addr()),
    );
    finding(
        "both see the same data: the child read the parent's message, the parent reads the reply",
        reply == "hello from the child",
        format!("reply {reply:?}"),
    );
    let child_frame = talk.child_frame.load(Ordering::Relaxed);
    match frame {
        Some(frame) if frames_visible() => finding(
            "both addresses lead to the same physical frame",
            child_frame == frame,
            format!("frame {frame:#x} in the parent, {child_frame:#x} in the child"),
        ),
        _ => not_checked(
            "both addresses lead to the same physical frame",
            "frame numbers in pagemap need CAP_SYS_ADMIN",
        ),
    }
    Ok(())
}

// ANCHOR: exec_child
fn exec_child(name: &str) -> Result<ExitCode> {
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let path = in_dev_shm(name);
    let before = vmbook::procinfo::maps()?
        .iter()
        .filter(
            |m| matches!(&m.pathname, procfs::process::MMapPath::Path(p) if p.starts_with(&path)),
        )
        .count();
    let object = ShmObject::open(name)?; // shm_open(O_RDWR) + mmap: no O_CREAT, no ftruncate
    let talk = meeting(&object)?;
    println!(
        "child:  a new program (pid {}); before shm_open it had {before} mappings of the object",
        std::process::id()
    );
    println!(
        "child:  {name} mapped at {:#x}, reads {:?}",
        object.addr(),
        get_str(&talk.message)
    );
    put_str(&talk.reply, "hello from the child");
    // ANCHOR_END: exec_child
    vmbook::pause::here(
        "this is the exec'd child; it maps the object",
        &["grep vmbook /proc/PID/maps"],
    );
    let frame = page_entry(object.addr())?.pfn.unwrap_or(0);
    talk.child_frame.store(frame, Ordering::Relaxed);
    talk.mapped_before_open
        .store(u64::from(before > 0), Ordering::Relaxed);
    talk.child_addr
        .store(object.addr() as u64, Ordering::Relaxed);
    Ok(ExitCode::SUCCESS)
}

// ANCHOR: guard_unlinks_on_every_exit
fn guard_unlinks_on_every_exit() -> Result<()> {
    section("The guard unlinks its name on every way out of a scope");
    let mut rows = Vec::new();
    let existed;
    let mut name = {
        let object = ShmObject::create(4096)?;
        existed = in_dev_shm(object.name()).exists();
        object.name().to_string()
    }; // Drop: munmap, close, shm_unlink
    rows.push(("the scope ends", existed && !in_dev_shm(&name).exists()));
    let failing = |name: &mut String| -> Result<()> {
        let object = ShmObject::create(4096)?;
        *name = object.name().to_string();
        bail!("something went wrong while {} existed", object.name()); // Drop runs here too
    };
    let _ = failing(&mut name);
    rows.push(("an error returns early (?)", !in_dev_shm(&name).exists()));
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {})); // the panic below is on purpose: don't print it
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let object = ShmObject::create(4096).expect("create");
        name = object.name().to_string();
        panic!("a bug while the object exists"); // unwinding drops it
    }));
    std::panic::set_hook(previous);
    rows.push(("a panic unwinds", !in_dev_shm(&name).exists()));
    // ANCHOR_END: guard_unlinks_on_every_exit
    for (how, gone) in &rows {
        println!("{how:<30} name removed from /dev/shm afterwards: {gone}");
    }
    let all = rows.iter().all(|r| r.1);
    finding(
        "Drop removes the name whether the scope ends, returns an error, or panics",
        all,
        format!(
            "{} of {} cases",
            rows.iter().filter(|r| r.1).count(),
            rows.len()
        ),
    );
    Ok(())
}

// ANCHOR: lists
/// A list node linked by offset: `next` counts bytes from the start of the object (0 = end).
#[repr(C)]
struct OffsetNode {
    value: u64,
    next: u64,
}

/// The same node linked by pointer: `next` is an address in the process that wrote it.
#[repr(C)]
struct PtrNode {
    value: u64,
    next: *const PtrNode,
}

/// At offset 0 of the object: where each list starts.
#[repr(C)]
struct Heads {
    offsets: u64,
    pointers: *const PtrNode,
}
// ANCHOR_END: lists

const _: () = assert!(std::mem::size_of::<OffsetNode>() == std::mem::size_of::<PtrNode>());
const VALUES: [u64; 4] = [10, 20, 30, 40];
const OFFSET_LIST_AT: usize = 64;
const POINTER_LIST_AT: usize = 256;

/// Builds both lists in a fresh object. Only this process touches it until a child is started.
fn build_lists(object: &ShmObject) {
    let base = object.as_ptr();
    // Both node types are 16 bytes on a 64-bit machine.
    let size = std::mem::size_of::<OffsetNode>();

    // SAFETY: every write is inside the object (offsets below 512, less than a page), aligned to
    // 8, and no other process maps the object yet.
    unsafe {
        for (i, &value) in VALUES.iter().enumerate() {
            let last = i + 1 == VALUES.len();
            let at = |start: usize, i: usize| base.add(start + i * size);
            let next = if last {
                0
            } else {
                (OFFSET_LIST_AT + (i + 1) * size) as u64
            };
            (at(OFFSET_LIST_AT, i) as *mut OffsetNode).write(OffsetNode { value, next });
            let next = if last {
                std::ptr::null()
            } else {
                at(POINTER_LIST_AT, i + 1) as *const PtrNode
            };
            (at(POINTER_LIST_AT, i) as *mut PtrNode).write(PtrNode { value, next });
        }
        (base as *mut Heads).write(Heads {
            offsets: OFFSET_LIST_AT as u64,
            pointers: base.add(POINTER_LIST_AT) as *const PtrNode,
        });
    }
}

/// Whether a node of type T at `addr` lies wholly inside the mapping, aligned.
fn inside<T>(object: &ShmObject, addr: usize) -> bool {
    addr >= object.addr()
        && addr + std::mem::size_of::<T>() <= object.addr() + object.len()
        && addr % std::mem::align_of::<T>() == 0
}

// ANCHOR: walk
fn walk_offsets(object: &ShmObject) -> Result<Vec<u64>, String> {
    // SAFETY: offset 0 holds Heads (checked inside); nobody writes while children walk.
    let mut offset = unsafe { (object.as_ptr() as *const Heads).read() }.offsets as usize;
    let mut values = Vec::new();
    while offset != 0 && values.len() < 64 {
        let node = object.addr() + offset; // an offset means the same thing in every mapping
        if !inside::<OffsetNode>(object, node) {
            return Err(format!("offset {offset} is outside the object"));
        }
        // SAFETY: checked above: inside this process's mapping of the object, aligned.
        let node = unsafe { (node as *const OffsetNode).read() };
        values.push(node.value);
        offset = node.next as usize;
    }
    Ok(values)
}

fn walk_pointers(object: &ShmObject) -> Result<Vec<u64>, String> {
    // SAFETY: as in walk_offsets.
    let mut node = unsafe { (object.as_ptr() as *const Heads).read() }.pointers;
    let mut values = Vec::new();
    while !node.is_null() && values.len() < 64 {
        // The pointer is an address in the writer's mapping. Check before following it: outside
        // our own mapping it could point at anything, or at nothing (SIGSEGV).
        if !inside::<PtrNode>(object, node as usize) {
            return Err(format!(
                "pointer {:#x} lies outside this mapping ({:#x}..{:#x}): not followed",
                node as usize,
                object.addr(),
                object.addr() + object.len()
            ));
        }
        // SAFETY: checked above: inside this process's mapping of the object, aligned.
        let here = unsafe { node.read() };
        values.push(here.value);
        node = here.next;
    }
    Ok(values)
}
// ANCHOR_END: walk

fn show(walk: &Result<Vec<u64>, String>) -> String {
    match walk {
        Ok(values) => values
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" → "),
        Err(why) => format!("broken: {why}"),
    }
}

/// Exit code of a walking child: 10 + 1 if the offset list read right + 2 if the pointer one did.
fn walk_code(object: &ShmObject) -> i32 {
    let offsets = walk_offsets(object);
    let pointers = walk_pointers(object);
    println!("          offsets:  {}", show(&offsets));
    println!("          pointers: {}", show(&pointers));
    let good = |w: &Result<Vec<u64>, String>| w.as_ref().is_ok_and(|v| v[..] == VALUES[..]);
    10 + i32::from(good(&offsets)) + 2 * i32::from(good(&pointers))
}

fn walk_child(name: &str) -> Result<ExitCode> {
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let object = ShmObject::open(name)?;
    println!("child (exec'd), object mapped at {:#x}:", object.addr());
    Ok(ExitCode::from(walk_code(&object) as u8))
}

fn offsets_survive_pointers_break() -> Result<()> {
    section("Offsets, not pointers: a list in shared memory, walked by two children");
    let object = ShmObject::create(page_size())?;
    build_lists(&object);
    println!("parent: object mapped at {:#x}", object.addr());
    println!("          offsets:  {}", show(&walk_offsets(&object)));
    println!("          pointers: {}", show(&walk_pointers(&object)));
    let forked = vmbook::process::fork_child(|| {
        println!("child (forked), object mapped at {:#x}:", object.addr());
        walk_code(&object)
    })?;
    let forked = vmbook::process::wait_exit_code(forked)?;
    let execd = wait_for(spawn_self(&["walk-child", object.name()])?)?;
    ensure!(
        (10..14).contains(&forked) && (10..14).contains(&execd),
        "a child failed"
    );
    finding(
        "a list linked by offsets reads back whole in both children",
        (forked - 10) & 1 == 1 && (execd - 10) & 1 == 1,
        "10 → 20 → 30 → 40 in each",
    );
    finding(
        "a list linked by pointers works in the forked child (same addresses) only",
        (forked - 10) & 2 == 2 && (execd - 10) & 2 == 0,
        "the exec'd child maps the object elsewhere, so the stored addresses point outside it",
    );
    Ok(())
}

fn plural(n: usize) -> String {
    if n == 1 {
        "1 number".into()
    } else {
        format!("{n} numbers")
    }
}

/// Time as the book prints it: with a unit, redacted in snapshots.
fn fmt_time(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.0} µs", ns / 1e3)
    }
}

fn cpu_time(who: UsageWho) -> Result<Duration> {
    let usage = getrusage(who).context("getrusage")?;
    let micros = |t: nix::sys::time::TimeVal| t.tv_sec() as u64 * 1_000_000 + t.tv_usec() as u64;
    Ok(Duration::from_micros(
        micros(usage.user_time()) + micros(usage.system_time()),
    ))
}

/// The output file: the reader's, or a temporary one with no name at all (`O_TMPFILE`), which
/// nothing can leave behind, not even a SIGKILL. The child opens it through the parent's
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
                let file = open
                    .custom_flags(libc::O_TMPFILE)
                    .open(&dir)
                    .with_context(|| {
                        format!("open({}, O_TMPFILE) (give --output instead)", dir.display())
                    })?;
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
        let mut child = self.0.take().context("the child was already reaped")?;
        let status = child.wait().context("waitpid")?;
        cleanup::untrack_child(child.id() as i32);
        Ok(status)
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
fn numbers_pipeline(
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
        "pipeline-child",
        object.name(),
        &out_path,
        &max_line.to_string(),
        &poll_us.to_string(),
    ];
    let mut child = Reaped(Some(spawn_self(&args)?));
    vmbook::pause::here(
        "the object exists and the child polls it",
        &["ls -l /dev/shm", "ps -o pid,stat,cmd --ppid PID"],
    );
    let poll = Duration::from_micros(poll_us);
    let (start, cpu_start) = (Instant::now(), cpu_time(UsageWho::RUSAGE_SELF)?);
    let (mut text, mut sent, mut handoffs) = (Vec::new(), 0u64, Vec::new());
    while let Some(full_len) = numbers::read_line_bounded(&mut lines, SLOT_CAPACITY, &mut text)
        .with_context(|| format!("read line {} of the input", sent + 1))?
    {
        // Seed 001's protocol: put the line in the slot, set the flag to 1 (ready), then poll
        // until the child has set it back to 0 (taken).
        slot.put(sent + 1, &text, full_len);
        slot.state.store(READY, Ordering::Release);
        let published = Instant::now();
        sent += 1;
        wait_while_ready(slot, &mut child, poll, sent)?;
        handoffs.push(published.elapsed());
    }
    slot.state.store(DONE, Ordering::Release); // 2: no more lines
    let status = child.wait()?;
    // ANCHOR_END: numbers_pipeline
    let (wall, cpu) = (
        start.elapsed(),
        cpu_time(UsageWho::RUSAGE_SELF)? - cpu_start,
    );
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
    handoffs.sort();
    if let (Some(median), Some(max)) = (handoffs.get(handoffs.len() / 2), handoffs.last()) {
        println!(
            "parent: {sent} lines, each waiting for the child to take it: median {}, longest {}",
            fmt_time(*median),
            fmt_time(*max)
        );
        println!(
            "parent: CPU time {} in {} of wall time",
            fmt_time(cpu),
            fmt_time(wall)
        );
        finding(
            "with usleep polling, a line waits at least half a poll interval for the child",
            *median >= poll / 2,
            format!(
                "median {} with a {} poll",
                fmt_time(*median),
                fmt_time(poll)
            ),
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

// ANCHOR: pipeline_child
fn pipeline_child(name: &str, output: &Path, max_line: usize, poll_us: u64) -> Result<ExitCode> {
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
    let cpu_start = cpu_time(UsageWho::RUSAGE_SELF)?;
    loop {
        match slot.state.load(Ordering::Acquire) {
            READY => {
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
                std::thread::sleep(Duration::from_micros(poll_us));
            }
        }
    }
    file.flush().context("write the output file")?;
    // ANCHOR_END: pipeline_child
    let cpu = cpu_time(UsageWho::RUSAGE_SELF)? - cpu_start;
    println!("child:  took {lines} lines ({bad} bad), looked at the flag ~{polls} times in vain, CPU time {}", fmt_time(cpu));
    Ok(ExitCode::from(if bad > 0 { 2 } else { 0 }))
}

/// Removes what a pipeline killed by a signal could not: its objects, whose names end in its pid.
fn sweep_after(pid: u32) {
    // Our own names are /vmbook-TAG-OURPID-N; the pipeline's are /vmbook-TAG-PID-N.
    let ours = vmbook::shm::unique_name();
    let tag = ours[1..]
        .rsplitn(3, '-')
        .nth(2)
        .unwrap_or("vmbook-run")
        .to_string();
    let prefix = format!("{tag}-{pid}-");
    for entry in std::fs::read_dir("/dev/shm")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) || name.starts_with(&format!("sem.{prefix}")) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

// ANCHOR: bad_input_demo
fn bad_input_demo(input: &Path) -> Result<()> {
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
    let exe = std::env::current_exe().context("find this program's path")?;
    // Not tracked for the SIGINT handler: killing it with SIGKILL would leave its object behind.
    // It ends by itself within milliseconds, and on our death it gets SIGTERM (pdeathsig).
    let pipeline = Command::new(exe)
        .args(args)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("run the pipeline")?;
    let pid = pipeline.id();
    let run = pipeline
        .wait_with_output()
        .context("wait for the pipeline")?;
    if run.status.signal().is_some() {
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
    let summed = good
        .iter()
        .filter(|(n, sum)| stdout.contains(&format!("line {n}: {sum} (")))
        .count();
    let reported = bad
        .iter()
        .filter(|n| stderr.contains(&format!(": line {n}: ")))
        .count();
    let list = |v: &[usize]| {
        v.iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    finding(
        "every good line was summed",
        !good.is_empty() && summed == good.len(),
        format!(
            "lines {}",
            list(&good.iter().map(|g| g.0).collect::<Vec<_>>())
        ),
    );
    finding(
        "each bad line was reported on stderr with its line number",
        !bad.is_empty() && reported == bad.len(),
        format!("lines {}", list(&bad)),
    );
    finding(
        "the exit status is 2: some lines were bad",
        run.status.code() == Some(2),
        format!("{}", run.status),
    );
    Ok(())
}
