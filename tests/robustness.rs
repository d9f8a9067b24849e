//! Robustness of every chapter program the book runs: interrupted runs, a SIGKILLed child, bad
//! input, and the privacy of the book's shared-memory objects (runs without root: `non_root.rs`).
//!
//! The programs under test are found the way the book finds them: every `<!-- cmdrun ... -->`
//! directive in `book/` (see `support::directives`), so a new chapter is covered as soon as its
//! first directive exists. Options are discovered from each program's `--help`.
//!
//! After every run, nothing may remain: no entry in /dev/shm carrying the run's `VMBOOK_RUN_TAG`,
//! no live process started by the run (found by the tag in `/proc/PID/environ`, or as a descendant
//! seen while it ran), and no zombie (an exited descendant nobody reaped). This test process makes
//! itself a child subreaper (`PR_SET_CHILD_SUBREAPER`), so that orphans of a run are reparented to
//! it rather than to PID 1 (which, in some containers, never reaps them): it counts them, kills
//! them and reaps them.
//!
//! `cargo test` runs a small sample (one directive per program, a few interruptions each); the
//! ignored stress test runs at least 100 interrupted runs per program:
//! `cargo test --test robustness -- --ignored --nocapture` (`VMBOOK_STRESS_RUNS` changes 100).

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::runner::{Input, Running};
use support::{binary, directives, fresh_tag, leftovers, root};

/// The tests of this file run one at a time: each one's orphans must be told apart from the
/// others' children, and the programs measure timings.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    support::signals_at_default();
    guard
}

// ---------------------------------------------------------------------------------------------
// Processes, from /proc (support::procs)

use support::procs::{self, tagged, Proc};

fn signal(pid: i32, sig: libc::c_int) -> bool {
    // SAFETY: kill(2) with a pid we started (or that was reparented to us).
    unsafe { libc::kill(pid, sig) == 0 }
}

fn reap(pid: i32) {
    // SAFETY: waitpid on a specific pid that is our child; WNOHANG never blocks.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
}

fn become_subreaper() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: PR_SET_CHILD_SUBREAPER only changes where this process's orphaned descendants go.
    ONCE.call_once(|| unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    });
}

// ---------------------------------------------------------------------------------------------
// One run, watched

#[derive(Clone, Copy, Debug)]
enum Plan {
    /// Let it finish.
    Complete,
    /// SIGINT the program after this long.
    SigintAfter(Duration),
    /// SIGKILL the first child of the program that shows up.
    KillAChild,
}

#[derive(Debug, Default)]
struct Outcome {
    status: Option<ExitStatus>,
    elapsed: Duration,
    had_children: bool,
    interrupted: bool,
    child_killed: bool,
    hung: bool,
    stderr: String,
    leftovers: Vec<String>,
    strays: Vec<String>,
    zombies: Vec<String>,
}

impl Outcome {
    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !self.leftovers.is_empty() {
            p.push(format!("left in /dev/shm: {:?}", self.leftovers));
        }
        if !self.strays.is_empty() {
            p.push(format!("processes still running: {:?}", self.strays));
        }
        if !self.zombies.is_empty() {
            p.push(format!(
                "children that outlived the program or were never reaped by it (zombies): {:?}",
                self.zombies
            ));
        }
        if self.hung {
            p.push("did not finish in time (stopped with SIGINT, then SIGKILL)".into());
        }
        if self.stderr.contains("panicked") {
            p.push(format!("panicked: {}", first_lines(&self.stderr, 3)));
        }
        p
    }
}

fn first_lines(text: &str, n: usize) -> String {
    text.lines().take(n).collect::<Vec<_>>().join(" / ")
}

/// Runs `bin args` from the book's directory under a fresh tag, carries out `plan`, and reports
/// what the run left behind. `limit` is how long it may take before it counts as hung.
fn execute(bin: &str, args: &[String], plan: Plan, limit: Duration) -> Outcome {
    become_subreaper();
    let me = std::process::id() as i32;
    let tag = fresh_tag();
    let mut command = Command::new(binary(bin));
    command
        .args(args)
        .current_dir(root().join("book"))
        .env("VMBOOK_RUN_TAG", &tag);
    let started = Instant::now();
    let mut child = Running::start(&mut command, Input::Null).unwrap_or_else(|why| panic!("{why}"));
    let top = child.pid();
    let mut out = Outcome::default();
    let mut seen: HashMap<i32, Proc> = HashMap::new();
    let mut stopping: Option<Instant> = None;
    let status = loop {
        if let Some(status) = child.try_wait() {
            break status;
        }
        let below = procs::descendants(top);
        for p in &below {
            seen.entry(p.pid).or_insert_with(|| p.clone());
            out.had_children = true;
        }
        let elapsed = started.elapsed();
        match plan {
            Plan::SigintAfter(at)
                if !out.interrupted && elapsed >= at && child.try_wait().is_none() =>
            {
                out.interrupted = signal(top, libc::SIGINT);
            }
            Plan::KillAChild if !out.child_killed => {
                if let Some(c) = below.iter().find(|p| p.ppid == top && p.state != 'Z') {
                    out.child_killed = signal(c.pid, libc::SIGKILL);
                }
            }
            _ => {}
        }
        if elapsed > limit && stopping.is_none() {
            out.hung = true;
            signal(top, libc::SIGINT);
            stopping = Some(Instant::now());
        }
        if stopping.is_some_and(|s| s.elapsed() > Duration::from_secs(3)) {
            for p in &below {
                signal(p.pid, libc::SIGKILL);
            }
            signal(top, libc::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(3));
    };
    out.elapsed = started.elapsed();
    out.status = Some(status);

    // Give orphans a moment to finish on their own, then count what is left.
    let grace = Instant::now();
    let mut strays;
    loop {
        let procs = procs::all();
        strays = tagged(&tag, &procs)
            .into_iter()
            .filter(|p| p.state != 'Z')
            .collect::<Vec<_>>();
        for p in &procs {
            let ours = seen.get(&p.pid).is_some_and(|s| s.start == p.start);
            if ours && p.state != 'Z' && !strays.iter().any(|s| s.pid == p.pid) {
                strays.push(p.clone());
            }
        }
        if strays.is_empty() || grace.elapsed() > Duration::from_secs(2) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for p in &strays {
        out.strays
            .push(format!("pid {} ({}) {}", p.pid, p.comm, p.state));
        signal(p.pid, libc::SIGKILL);
    }
    std::thread::sleep(Duration::from_millis(if strays.is_empty() {
        0
    } else {
        50
    }));
    // Only now: a stray that inherited stderr keeps the pipe open until it is gone.
    out.stderr = child.output().1;
    // Zombies: descendants of the run that exited and were never reaped by it. Orphans come to
    // us (we are a subreaper); anything else that is our child now is one of them.
    for p in procs::all() {
        let ours =
            seen.get(&p.pid).is_some_and(|s| s.start == p.start) || (p.ppid == me && p.pid != top);
        if ours && p.state == 'Z' && !strays.iter().any(|s| s.pid == p.pid) {
            out.zombies.push(format!("pid {} ({})", p.pid, p.comm));
        }
        if p.ppid == me && p.pid != top {
            reap(p.pid);
        }
    }
    for name in leftovers(&tag) {
        let _ = std::fs::remove_file(Path::new("/dev/shm").join(&name));
        out.leftovers.push(name);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// What to run

/// Every program the book runs, with the distinct argument lists its directives use.
fn programs() -> BTreeMap<String, Vec<Vec<String>>> {
    let mut map: BTreeMap<String, Vec<Vec<String>>> = BTreeMap::new();
    for d in directives() {
        if let Ok((bin, args)) = d.parsed {
            let list = map.entry(bin).or_default();
            if !list.contains(&args) {
                list.push(args);
            }
        }
    }
    map
}

fn show(bin: &str, args: &[String]) -> String {
    format!("{bin} {}", args.join(" ")).trim().to_string()
}

#[derive(Default)]
struct Tally {
    runs: usize,
    interrupted: usize,
    children_killed: usize,
    leftovers: usize,
    strays: usize,
    zombies: usize,
    failures: Vec<String>,
}

impl Tally {
    fn add(&mut self, what: &str, out: &Outcome) {
        self.runs += 1;
        self.interrupted += usize::from(out.interrupted);
        self.children_killed += usize::from(out.child_killed);
        self.leftovers += out.leftovers.len();
        self.strays += out.strays.len();
        self.zombies += out.zombies.len();
        for p in out.problems() {
            self.failures.push(format!("{what}: {p}"));
        }
    }

    fn report(&self, title: &str, started: Instant) {
        eprintln!(
            "{title}: {} runs, {} interrupted with SIGINT, {} children SIGKILLed; \
             leftovers in /dev/shm {}, stray processes {}, zombies {}; {:.1} s",
            self.runs,
            self.interrupted,
            self.children_killed,
            self.leftovers,
            self.strays,
            self.zombies,
            started.elapsed().as_secs_f64()
        );
        assert!(
            self.failures.is_empty(),
            "{} problems:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

/// Runs `args` once to completion (it must succeed, like the book's run), then interrupts it at
/// the given fractions of that run's duration, then SIGKILLs a child `child_kills` times if the
/// program has children.
fn torture(tally: &mut Tally, bin: &str, args: &[String], fractions: &[f64], child_kills: usize) {
    let what = show(bin, args);
    let base = execute(bin, args, Plan::Complete, Duration::from_secs(60));
    if !base.status.is_some_and(|s| s.success()) {
        tally.failures.push(format!(
            "{what}: the uninterrupted run failed ({:?}): {}",
            base.status,
            first_lines(&base.stderr, 2)
        ));
    }
    tally.add(&what, &base);
    let limit = (base.elapsed * 20).max(Duration::from_secs(10));
    for &f in fractions {
        let at = base.elapsed.mul_f64(f);
        let out = execute(bin, args, Plan::SigintAfter(at), limit);
        tally.add(&format!("{what} (SIGINT after {at:?})"), &out);
    }
    if base.had_children {
        for _ in 0..child_kills {
            let out = execute(bin, args, Plan::KillAChild, limit);
            tally.add(&format!("{what} (a child SIGKILLed)"), &out);
        }
    }
}

#[test]
fn interrupted_runs_leave_nothing_behind() {
    let _serial = serial();
    let started = Instant::now();
    let mut tally = Tally::default();
    for (i, (bin, all_args)) in programs().iter().enumerate() {
        // The same sample every time (the stress test covers the rest): one directive per
        // program, and three moments spread over its run that differ from program to program.
        let args = &all_args[i % all_args.len()];
        let a = (i * 3 % 10) as f64 / 10.0 * 0.8 + 0.02;
        torture(
            &mut tally,
            bin,
            args,
            &[a, (a + 0.3) % 0.85, (a + 0.6) % 0.85],
            1,
        );
    }
    tally.report("interrupted runs (sample)", started);
}

#[test]
#[ignore = "stress: at least 100 interrupted runs per program; minutes"]
fn stress_interrupted_runs() {
    let _serial = serial();
    let started = Instant::now();
    let per_program: usize = std::env::var("VMBOOK_STRESS_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let mut tally = Tally::default();
    for (bin, all_args) in programs() {
        let before = tally.interrupted;
        let each = per_program.div_ceil(all_args.len());
        // Passes over every directive until at least `per_program` runs were really interrupted
        // (a SIGINT that comes after the program ended does not count); each pass aims earlier,
        // since a run under test can be faster than the uninterrupted one it is timed against.
        for pass in 0..6 {
            if tally.interrupted - before >= per_program {
                break;
            }
            let span = 0.9 / (pass + 1) as f64;
            for args in &all_args {
                let mut fractions: Vec<f64> = (0..each)
                    .map(|k| (k as f64 + 0.5) / each as f64 * span)
                    .collect();
                if pass == 0 {
                    fractions[0] = 0.0; // the very start, before any handler is installed
                }
                torture(&mut tally, &bin, args, &fractions, each.div_ceil(5));
            }
        }
        eprintln!("{bin}: {} interrupted runs", tally.interrupted - before);
    }
    tally.report("interrupted runs (stress)", started);
}

// ---------------------------------------------------------------------------------------------
// Bad input, discovered from --help

/// An option that takes a value, as `--help` lists it.
#[derive(Debug)]
struct ValueOption {
    name: String,
    default: Option<String>,
    choices: Vec<String>,
}

fn help_of(bin: &str, path: &[&str]) -> String {
    support::runner::run(
        Command::new(binary(bin))
            .args(path)
            .arg("--help")
            .current_dir(root().join("book")),
        support::PROGRAM_LIMIT,
    )
    .unwrap_or_else(|why| panic!("{bin} --help: {why}"))
    .stdout
}

fn subcommands(help: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut inside = false;
    for line in help.lines() {
        if line.trim_end() == "Commands:" {
            inside = true;
            continue;
        }
        if inside {
            if !line.starts_with("  ") {
                break;
            }
            if line.starts_with("   ") {
                continue; // the wrapped rest of a description
            }
            if let Some(name) = line.split_whitespace().next() {
                if name != "help" {
                    names.push(name.to_string());
                }
            }
        }
    }
    names
}

fn value_options(help: &str) -> Vec<ValueOption> {
    let start =
        regex::Regex::new(r"^\s*(?:-[A-Za-z], )?--([a-z0-9][a-z0-9-]*)[ =]<[^>]+>").unwrap();
    let default = regex::Regex::new(r"\[default: ([^\]]*)\]").unwrap();
    let choices = regex::Regex::new(r"\[possible values: ([^\]]*)\]").unwrap();
    let mut found: Vec<(String, String)> = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in help.lines() {
        let is_option = line.trim_start().starts_with('-');
        if let Some(cap) = start.captures(line) {
            found.extend(current.take());
            current = Some((cap[1].to_string(), line.to_string()));
        } else if is_option || line.trim().is_empty() {
            found.extend(current.take());
        } else if let Some((_, text)) = current.as_mut() {
            text.push(' ');
            text.push_str(line.trim());
        }
    }
    found.extend(current);
    found
        .into_iter()
        .map(|(name, text)| ValueOption {
            name,
            default: default.captures(&text).map(|c| c[1].to_string()),
            choices: choices
                .captures(&text)
                .map(|c| c[1].split(", ").map(str::to_string).collect())
                .unwrap_or_default(),
        })
        .collect()
}

/// Values that must be refused, and values that may be accepted, for one option.
fn bad_values(opt: &ValueOption, thorough: bool) -> (Vec<String>, Vec<String>) {
    let numeric = opt
        .default
        .as_deref()
        .is_some_and(|d| d.parse::<f64>().is_ok());
    let float = opt.default.as_deref().is_some_and(|d| d.contains('.'));
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    if !opt.choices.is_empty() {
        (s(&["bogus", ""]), vec![])
    } else if numeric && !float {
        let refused = if thorough {
            s(&["abc", "", "1.5", "12abc", "0x10", "99999999999999999999999"])
        } else {
            s(&["abc", "99999999999999999999999"])
        };
        (refused, s(&["-1", "0"]))
    } else if numeric {
        (s(&["abc", "", "1..2"]), s(&["-1", "0"]))
    } else {
        let maybe = if thorough {
            // Paths that may be legal are absolute and under /tmp: a program may create them,
            // and it must not do so inside the book (runs start in book/).
            s(&[
                "",
                "/tmp/vmbook-bad-input/dir/file",
                "/tmp/vmbook-bad-input/\u{1}garbage\u{7f}",
            ])
        } else {
            s(&["/tmp/vmbook-bad-input/dir/file"])
        };
        (vec![], maybe)
    }
}

/// Checks one run with bad input: it must end on its own with a clear error (or, for a value
/// that may be legal, succeed), never panic, and leave nothing behind.
fn check_bad_input(tally: &mut Tally, bin: &str, args: &[String], must_fail: bool) {
    let what = show(bin, args);
    let out = execute(bin, args, Plan::Complete, Duration::from_secs(30));
    tally.add(&what, &out);
    let Some(status) = out.status else { return };
    if out.hung {
        return;
    }
    if status.success() {
        if must_fail {
            tally
                .failures
                .push(format!("{what}: accepted (exit 0), expected an error"));
        }
        return;
    }
    let first = out
        .stderr
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    if status.code().is_none() {
        tally
            .failures
            .push(format!("{what}: killed by a signal ({status})"));
    } else if !first.contains("error") || first.len() > 400 {
        tally.failures.push(format!(
            "{what}: exit {status} without a clear one-line error; stderr starts: {}",
            first_lines(&out.stderr, 3)
        ));
    } else if must_fail {
        // The message must name what was wrong: the option or the value.
        let named = args.iter().any(|a| {
            let name = a.split('=').next().unwrap_or(a);
            first.contains(name) || (!a.contains('=') && first.contains(a.as_str()))
        });
        if !named {
            tally.failures.push(format!(
                "{what}: the error does not name the option: {first}"
            ));
        }
    }
}

fn bad_input_suite(thorough: bool) -> Tally {
    let mut tally = Tally::default();
    for bin in programs().keys() {
        let top = help_of(bin, &[]);
        let subs = subcommands(&top);
        let no_args: Vec<String> = vec![];
        // An unknown option, and an unknown subcommand where there are subcommands.
        check_bad_input(&mut tally, bin, &["--no-such-option".into()], true);
        if !subs.is_empty() {
            check_bad_input(&mut tally, bin, &["no-such-experiment".into()], true);
        }
        let mut paths: Vec<Vec<String>> = vec![no_args];
        paths.extend(subs.iter().map(|s| vec![s.clone()]));
        for path in paths {
            let refs: Vec<&str> = path.iter().map(String::as_str).collect();
            let help = help_of(bin, &refs);
            for opt in value_options(&help) {
                let flag = format!("--{}", opt.name);
                // The option without its value.
                let mut args = path.clone();
                args.push(flag.clone());
                check_bad_input(&mut tally, bin, &args, true);
                let (refused, maybe) = bad_values(&opt, thorough);
                for (value, must_fail) in refused
                    .iter()
                    .map(|v| (v, true))
                    .chain(maybe.iter().map(|v| (v, false)))
                {
                    let mut args = path.clone();
                    args.push(format!("{flag}={value}"));
                    check_bad_input(&mut tally, bin, &args, must_fail);
                }
            }
        }
    }
    tally
}

#[test]
fn bad_input_gets_one_clear_error_and_leaves_nothing() {
    let _serial = serial();
    let started = Instant::now();
    bad_input_suite(false).report("bad input (sample)", started);
}

#[test]
#[ignore = "stress: every bad value for every option"]
fn stress_bad_input() {
    let _serial = serial();
    let started = Instant::now();
    bad_input_suite(true).report("bad input (thorough)", started);
}

// ---------------------------------------------------------------------------------------------
// The privacy of shm objects (running every directive as nobody is tests/non_root.rs)

#[test]
fn book_shm_objects_are_private_to_their_owner() {
    let _serial = serial();
    use std::os::unix::fs::PermissionsExt;
    let object = vmbook::ShmObject::create(4096).expect("create a shm object");
    let path = format!("/dev/shm{}", object.name());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{path} has mode {mode:o}");
    if let Some(why) = support::cannot_run_as_nobody() {
        eprintln!("skipped: {why}");
        return;
    }
    let try_as_nobody = |script: &str, target: &str| {
        let out = support::runner::run(
            support::as_nobody(Path::new("/bin/sh")).args(["-c", script, "sh", target]),
            support::PROGRAM_LIMIT,
        )
        .expect("setpriv");
        (out.status.success(), out.stderr)
    };
    // The control: nobody can open a world-readable file, so a refusal below is about the mode.
    let (ok, err) = try_as_nobody("exec 3<\"$1\"", "/etc/passwd");
    assert!(ok, "nobody cannot even open /etc/passwd: {err}");
    for (what, script) in [
        ("read", "exec 3<\"$1\""),
        ("write", "exec 3>>\"$1\""),
        ("remove", "rm -f \"$1\""),
    ] {
        let (ok, err) = try_as_nobody(script, &path);
        assert!(!ok, "nobody could {what} {path}");
        assert!(
            err.contains("Permission denied") || err.contains("Operation not permitted"),
            "nobody's {what} of {path} failed for another reason: {err}"
        );
    }
    assert!(Path::new(&path).exists(), "{path} disappeared");
    drop(object);
    assert!(
        !Path::new(&path).exists(),
        "{path} was not unlinked on drop"
    );
}

/// Every process this file started is gone once its test ends.
#[test]
fn no_leftover_children_of_the_suite() {
    let _serial = serial();
    let me = std::process::id() as i32;
    let mine: BTreeSet<i32> = procs::all()
        .into_iter()
        .filter(|p| p.ppid == me && p.state != 'Z')
        .map(|p| p.pid)
        .collect();
    assert!(
        mine.is_empty(),
        "children of the test process still running: {mine:?}"
    );
}
