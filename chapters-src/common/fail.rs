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
pub fn run<T: std::process::Termination>(body: impl FnOnce() -> anyhow::Result<T>) -> ExitCode {
    match body() {
        Ok(value) => value.report(),
        Err(error) => {
            // `{:#}` joins the context chain on one line: "call: cause: cause".
            eprintln!("{}: error: {error:#}", crate::output::program_name());
            ExitCode::FAILURE
        }
    }
}
