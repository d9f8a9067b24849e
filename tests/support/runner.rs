//! The one way the tests start a process: in its own process group, its output collected in the
//! background, and never waited for without a limit. On time out the whole group is killed and
//! reaped, and the error says so with what the process had printed.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the process reads.
pub enum Input<'a> {
    /// `/dev/null`: a program that reads gets end of file at once.
    Null,
    /// These bytes, then end of file.
    Bytes(&'a [u8]),
    /// A pipe that stays open and never receives a byte: a program that waits for input (a pause
    /// that should not happen) waits until it is killed.
    Silent,
    /// A pipe the test writes to itself ([`Running::stdin`]).
    Pipe,
}

/// What a process did within its time limit.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// A started process, leader of its own process group.
pub struct Running {
    child: Child,
    started: Instant,
    stdin: Option<ChildStdin>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

/// Runs `command` with stdin empty and waits at most `limit`; the process group is killed once
/// the process has ended, so that a straggler (a child that outlived its parent) cannot keep the
/// pipes open.
pub fn run(command: &mut Command, limit: Duration) -> Result<Finished, String> {
    Running::start(command, Input::Null)?.finish(limit)
}

/// [`run`] with `input` on stdin.
pub fn run_with_input(
    command: &mut Command,
    input: &[u8],
    limit: Duration,
) -> Result<Finished, String> {
    Running::start(command, Input::Bytes(input))?.finish(limit)
}

/// [`run`] with a stdin that stays open and silent (see [`Input::Silent`]).
pub fn run_with_silent_stdin(command: &mut Command, limit: Duration) -> Result<Finished, String> {
    Running::start(command, Input::Silent)?.finish(limit)
}

impl Running {
    /// Starts `command` (stdout and stderr collected) in its own process group.
    pub fn start(command: &mut Command, input: Input) -> Result<Running, String> {
        command
            .stdin(match input {
                Input::Null => Stdio::null(),
                _ => Stdio::piped(),
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {command:?}: {e}"))?;
        let mut stdin = child.stdin.take();
        if let Input::Bytes(bytes) = input {
            let mut pipe = stdin.take().unwrap();
            let bytes = bytes.to_vec();
            // From a thread: a program that does not read all of it must not block the test.
            std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
        }
        Ok(Running {
            stdout: Some(collect(child.stdout.take().unwrap())),
            stderr: Some(collect(child.stderr.take().unwrap())),
            child,
            started: Instant::now(),
            stdin,
        })
    }

    /// Starts `command` (stdin empty) in its own process group, its stdout and stderr written to
    /// the file `log` as they come, for a long-running process (a server) that the test watches.
    pub fn start_logged(command: &mut Command, log: &std::path::Path) -> Result<Running, String> {
        let file = std::fs::File::create(log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let copy = file
            .try_clone()
            .map_err(|e| format!("{}: {e}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(copy)
            .process_group(0);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {command:?}: {e}"))?;
        Ok(Running {
            child,
            started: Instant::now(),
            stdin: None,
            stdout: None,
            stderr: None,
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The write end of stdin ([`Input::Pipe`]); dropping it closes the pipe.
    pub fn stdin(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    /// Whether the process has ended, without reaping it (`waitid` with `WNOWAIT`): while it is
    /// a zombie its pid, the group's id, cannot be reused.
    pub fn exited(&self) -> bool {
        use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        !matches!(
            waitid(Id::Pid(nix::unistd::Pid::from_raw(self.pid())), flags),
            Ok(WaitStatus::StillAlive)
        )
    }

    /// Sends `signal` to the process alone; false if it is gone.
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> bool {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).is_ok()
    }

    /// Sends `signal` to its whole process group, as a terminal's Ctrl-C does.
    pub fn signal_group(&self, signal: nix::sys::signal::Signal) -> bool {
        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.pid()), signal).is_ok()
    }

    /// Reaps the process if it has ended (its exit status), else `None`.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("waitpid on our own child")
    }

    /// Waits until the process ends, at most until `limit` after it started: its exit status,
    /// reaped, or `None` (it still runs). Whatever it started is left alone.
    pub fn wait_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if self.started.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGKILL to the whole group, then reaps the process.
    pub fn kill(&mut self) {
        self.signal_group(nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }

    /// What it wrote to stdout and stderr, once every holder of the pipes has closed them (a
    /// straggler that inherited them keeps them open until it ends).
    pub fn output(&mut self) -> (String, String) {
        let join =
            |h: Option<JoinHandle<String>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
        (join(self.stdout.take()), join(self.stderr.take()))
    }

    /// Waits at most `limit` (from the start) for the process to end, then kills its process
    /// group (stragglers included) and reaps it. On time out, the error says what it had printed.
    pub fn finish(mut self, limit: Duration) -> Result<Finished, String> {
        // Short runs are common (hundreds in some tests): look often at first, then less.
        let mut nap = Duration::from_micros(100);
        while !self.exited() {
            if self.started.elapsed() > limit {
                self.kill();
                let (stdout, stderr) = self.output();
                return Err(format!(
                    "did not finish within {limit:?} and was killed; stdout so far:\n{stdout}\nstderr so far:\n{stderr}"
                ));
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(5));
        }
        let elapsed = self.started.elapsed();
        self.stdin = None;
        self.signal_group(nix::sys::signal::Signal::SIGKILL);
        let status = self.child.wait().expect("waitpid on our own child");
        let (stdout, stderr) = self.output();
        Ok(Finished {
            status,
            stdout,
            stderr,
            elapsed,
        })
    }
}

impl Drop for Running {
    /// A test that panics mid-run leaves no process of it behind.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.kill();
        }
    }
}

fn collect(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
