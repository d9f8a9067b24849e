//! After any run of `shared-mappings` and `posix-shm` (normal, interrupted by SIGINT at several
//! points, or with the pipeline's child SIGKILLed) /dev/shm and the temp directory hold nothing of
//! the run, no process of the run is left alive, and no child was left unreaped.
//!
//! How "unreaped" is seen: this test process makes itself a child subreaper
//! (`PR_SET_CHILD_SUBREAPER`), so a child that a program leaves behind, running or a zombie, is
//! reparented to the test instead of to init when the program exits. Any child of the test that
//! the test did not start itself is such an orphan. Every process of a run carries the run's tag
//! in its environment (`VMBOOK_RUN_TAG`), which is how live leftovers are found.
//!
//! The tests take turns (one lock): each looks at all of the test process's children.

mod support;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::runner::{Input, Running};
use support::{binary, fresh_tag, leftovers, procs, root};

static TURN: Mutex<()> = Mutex::new(());

fn turn() -> std::sync::MutexGuard<'static, ()> {
    let guard = TURN.lock().unwrap_or_else(|e| e.into_inner());
    nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
    support::signals_at_default();
    guard
}

/// Starts a chapter binary as the book does (cwd book/), tagged, in its own process group.
fn start(bin: &str, args: &[&str], tag: &str, input: Input) -> Running {
    Running::start(
        Command::new(binary(bin))
            .args(args)
            .current_dir(root().join("book"))
            .env("VMBOOK_RUN_TAG", tag),
        input,
    )
    .unwrap_or_else(|why| panic!("{why}"))
}

/// (pid, state) of every process whose parent is `parent`.
fn children_of(parent: i32) -> Vec<(i32, char)> {
    procs::children_of(parent)
        .into_iter()
        .map(|p| (p.pid, p.state))
        .collect()
}

/// Live processes carrying this run's tag in their environment.
fn tagged_processes(tag: &str) -> Vec<i32> {
    procs::tagged(tag, &procs::all())
        .into_iter()
        .map(|p| p.pid)
        .collect()
}

/// Waits for `child` to end, at most 20 s (then kills it and fails, naming what hung: the
/// process, its children and their states, from /proc).
fn finish(mut child: Running) -> (ExitStatus, String) {
    if let Some(status) = child.wait_within(Duration::from_secs(20)) {
        return (status, child.output().1);
    }
    let pid = child.pid();
    let mut tree = vec![procs::describe(pid)];
    for (kid, _) in children_of(pid) {
        tree.push(procs::describe(kid));
        for (grandkid, _) in children_of(kid) {
            tree.push(procs::describe(grandkid));
        }
    }
    child.kill();
    panic!("the program did not end within 20 s:\n{}", tree.join("\n"));
}

/// Waits until `pid` has a child (the exec'd or forked helper), at most 10 s; returns its pid.
fn first_child(pid: i32) -> i32 {
    first_child_while_running(pid)
        .unwrap_or_else(|| panic!("{pid} ended before any child of it appeared"))
}

/// Like [`first_child`], but `None` if `pid` ends first: a program that finishes its whole run
/// between two looks at /proc (a busy machine makes the looks slow) never shows its child.
fn first_child_while_running(pid: i32) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(&(child, _)) = children_of(pid).first() {
            return Some(child);
        }
        if matches!(procs::state(pid), None | Some('Z')) {
            return None;
        }
        assert!(Instant::now() < deadline, "no child of {pid} appeared");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// After the program has ended: what it left behind. `orphans_allowed`: children it did not
/// wait for may outlive it (they must still end by themselves and clean up).
fn assert_clean(tag: &str, orphans_allowed: bool, what: &str) {
    let me = std::process::id() as i32;
    let mut orphans = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let kids = children_of(me);
        for &(pid, _) in &kids {
            if !orphans.contains(&pid) {
                orphans.push(pid);
            }
        }
        // Reap the ones that have ended.
        for &(pid, state) in &kids {
            if state == 'Z' {
                let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
            }
        }
        if kids.is_empty() && tagged_processes(tag).is_empty() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let alive = tagged_processes(tag);
    for &pid in &alive {
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    assert!(alive.is_empty(), "{what}: processes still alive: {alive:?}");
    assert!(
        orphans_allowed || orphans.is_empty(),
        "{what}: children left unreaped (reparented to the test): {orphans:?}"
    );
    let shm = leftovers(tag);
    assert!(shm.is_empty(), "{what}: left in /dev/shm: {shm:?}");
    let needle = format!("vmbook-{tag}-");
    let tmp: Vec<String> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(&needle))
        .collect();
    assert!(
        tmp.is_empty(),
        "{what}: left in the temp directory: {tmp:?}"
    );
}

fn run_to_end(bin: &str, args: &[&str], input: &[u8]) -> (ExitStatus, String, String) {
    let tag = fresh_tag();
    let child = start(bin, args, &tag, Input::Bytes(input));
    let (status, err) = finish(child);
    (status, err, tag)
}

#[test]
fn normal_runs_leave_nothing() {
    let _turn = turn();
    let cases: &[(&str, &[&str], &[u8], i32)] = &[
        ("shared-mappings", &["compare"], b"", 0),
        (
            "shared-mappings",
            &["compare", "--stdin"],
            b"from stdin\n",
            0,
        ),
        ("shared-mappings", &["frames"], b"", 0),
        ("shared-mappings", &["race", "--runs", "20"], b"", 0),
        ("posix-shm", &["object"], b"", 0),
        ("posix-shm", &["exec"], b"", 0),
        ("posix-shm", &["guard"], b"", 0),
        ("posix-shm", &["pointers"], b"", 0),
        ("posix-shm", &["pipeline"], b"1 2 3\n4 5\n", 0),
        (
            "posix-shm",
            &["pipeline", "--input", "data/numbers.txt"],
            b"",
            0,
        ),
        ("posix-shm", &["pipeline"], b"1 2\nnope\n", 2),
        ("posix-shm", &["pipeline"], b"", 2),
        (
            "posix-shm",
            &["pipeline", "--input", "data/absent.txt"],
            b"",
            1,
        ),
        ("posix-shm", &["bad-input-demo"], b"", 0),
    ];
    for &(bin, args, input, code) in cases {
        let what = format!("{bin} {}", args.join(" "));
        let (status, err, tag) = run_to_end(bin, args, input);
        assert_eq!(
            status.code(),
            Some(code),
            "{what}: {status}; stderr:\n{err}"
        );
        assert!(!err.contains("panicked"), "{what} panicked:\n{err}");
        assert_clean(&tag, false, &what);
    }
}

#[test]
fn pipeline_interrupted_by_sigint() {
    let _turn = turn();
    // (lines written before the signal, signal to the whole process group as Ctrl-C does)
    for (lines, group) in [(0, false), (3, false), (3, true), (0, true)] {
        let what = format!("pipeline, SIGINT after {lines} lines, to the group: {group}");
        let tag = fresh_tag();
        let mut child = start("posix-shm", &["pipeline"], &tag, Input::Pipe);
        let helper = first_child(child.pid());
        let mut stdin = child.stdin().unwrap();
        for i in 0..lines {
            writeln!(stdin, "{i} {i}").unwrap();
        }
        std::thread::sleep(Duration::from_millis(30));
        assert!(
            std::fs::metadata(format!("/proc/{helper}")).is_ok(),
            "{what}: the child ended early"
        );
        let sent = if group {
            child.signal_group(Signal::SIGINT)
        } else {
            child.signal(Signal::SIGINT)
        };
        assert!(sent, "{what}: the program ended early");
        let (status, err) = finish(child);
        drop(stdin);
        assert_eq!(
            status.signal(),
            Some(libc::SIGINT),
            "{what}: {status}\n{err}"
        );
        assert_clean(&tag, false, &what);
    }
}

#[test]
fn pipeline_child_killed() {
    let _turn = turn();
    // (lines written after the kill)
    for lines in [1, 0] {
        let what = format!("pipeline, child SIGKILLed, then {lines} lines");
        let tag = fresh_tag();
        let mut child = start("posix-shm", &["pipeline"], &tag, Input::Pipe);
        let helper = first_child(child.pid());
        let mut stdin = child.stdin().unwrap();
        writeln!(stdin, "1 2 3").unwrap();
        std::thread::sleep(Duration::from_millis(30));
        kill(Pid::from_raw(helper), Signal::SIGKILL).unwrap();
        for _ in 0..lines {
            let _ = writeln!(stdin, "4 5 6");
        }
        drop(stdin);
        let (status, err) = finish(child);
        assert_eq!(status.code(), Some(1), "{what}: {status}\n{err}");
        assert!(
            err.contains("posix-shm: error: the child ended") && err.contains("SIGKILL"),
            "{what}: stderr:\n{err}"
        );
        assert_clean(&tag, false, &what);
    }
}

#[test]
fn interrupted_experiments_leave_nothing() {
    let _turn = turn();
    let cases: &[(&str, &[&str], bool)] = &[
        ("shared-mappings", &["race", "--runs", "3000"], false),
        ("shared-mappings", &["frames", "--pages", "20000"], false),
        ("posix-shm", &["exec"], false),
        ("posix-shm", &["pointers"], false),
        ("posix-shm", &["object"], false),
        // The demo does not kill its pipeline (that would leak the pipeline's object): on the
        // demo's death the pipeline gets SIGTERM and cleans up by itself, as an orphan.
        ("posix-shm", &["bad-input-demo"], true),
    ];
    for &(bin, args, orphans_allowed) in cases {
        for delay_ms in [2, 5, 15, 60] {
            let what = format!("{bin} {}, SIGINT after {delay_ms} ms", args.join(" "));
            let tag = fresh_tag();
            let child = start(bin, args, &tag, Input::Null);
            std::thread::sleep(Duration::from_millis(delay_ms));
            child.signal(Signal::SIGINT);
            let (status, err) = finish(child);
            assert!(
                status.signal() == Some(libc::SIGINT) || status.success(),
                "{what}: {status}\n{err}"
            );
            assert_clean(&tag, orphans_allowed, &what);
        }
    }
}

#[test]
fn shared_mappings_child_killed() {
    let _turn = turn();
    // Large enough that the child lives for a while: it writes 2 × 128 MiB.
    for delay_ms in [0, 40, 150] {
        let what = format!("frames, child SIGKILLed {delay_ms} ms after it appeared");
        let tag = fresh_tag();
        let args = ["frames", "--pages", "32768"];
        let child = start("shared-mappings", &args, &tag, Input::Null);
        let helper = first_child(child.pid());
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = kill(Pid::from_raw(helper), Signal::SIGKILL);
        let (status, err) = finish(child);
        // Killed while writing or while waiting: the parent reports it; after it had finished,
        // the run simply succeeded. Either way, never a hang, a panic or a leftover.
        assert!(
            status.success() || status.code() == Some(1) && err.contains("shared-mappings: error:"),
            "{what}: {status}\n{err}"
        );
        assert!(!err.contains("panicked"), "{what} panicked:\n{err}");
        assert_clean(&tag, false, &what);
    }
}

#[test]
fn bad_input_demo_with_its_pipeline_killed() {
    let _turn = turn();
    for round in 0..3 {
        let what =
            format!("bad-input-demo, its pipeline SIGKILLed once its object exists ({round})");
        let tag = fresh_tag();
        let child = start("posix-shm", &["bad-input-demo"], &tag, Input::Null);
        let Some(pipeline) = first_child_while_running(child.pid()) else {
            // The whole demo ran between two looks: nothing to kill, a normal run to check.
            let (status, err) = finish(child);
            assert!(status.success(), "{what}: {status}\n{err}");
            assert_clean(&tag, false, &what);
            continue;
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while leftovers(&tag).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = kill(Pid::from_raw(pipeline), Signal::SIGKILL);
        let (status, err) = finish(child);
        // Killed in time: the demo removes the object the pipeline could not, and says so with
        // exit status 1. Too late (the pipeline had finished): a normal run.
        assert!(
            status.success() || status.code() == Some(1) && err.contains("the pipeline was killed"),
            "{what}: {status}\n{err}"
        );
        // The pipeline's own child dies with it (pdeathsig) and is reparented to us: allowed.
        assert_clean(&tag, true, &what);
    }
}
