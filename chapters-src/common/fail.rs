//! One error convention for every chapter program: a failed call becomes one line on stderr that
//! names the call and the errno text (`mmap(64 GiB): ENOMEM: Cannot allocate memory`), and the
//! program exits non-zero.
//!
//! Chapter code adds the call's name with anyhow's `.context("mmap")`; nix's `Errno` already prints
//! as `ENOMEM: Cannot allocate memory`.

use std::process::ExitCode;

/// Runs a chapter program's body and turns an error into one line on stderr and exit status 1.
///
/// The body may return `()` or an `ExitCode` of its own (for example 2 when some input was bad).
///
/// It also installs the signal handler of [`crate::cleanup`] first, and on error kills and reaps
/// any child still running and unlinks any object still named, before it reports.
pub fn run<T: std::process::Termination>(body: impl FnOnce() -> anyhow::Result<T>) -> ExitCode {
    crate::cleanup::install();
    match body() {
        Ok(value) => value.report(),
        Err(error) => {
            crate::cleanup::cleanup_now();
            // `{:#}` joins the context chain on one line: "call: cause: cause".
            eprintln!("{}: error: {error:#}", crate::output::program_name());
            ExitCode::FAILURE
        }
    }
}
