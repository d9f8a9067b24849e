//! The exec'd children: this program started again (fork + exec) in a hidden child role.

use anyhow::{Context, Result};
use std::process::{Child, Command, Stdio};

/// Starts this program again in a child role (fork + exec), stdin closed, recorded for cleanup.
pub fn spawn_self(args: &[&str]) -> Result<Child> {
    let exe = std::env::current_exe().context("find this program's path")?;
    vmbook::process::spawn_tracked(Command::new(exe).args(args).stdin(Stdio::null()))
}

/// Waits for a child started by `spawn_self`; its exit code, or an error if a signal killed it.
pub fn wait_for(child: Child) -> Result<i32> {
    let status = vmbook::process::wait_spawned(child)?.status;
    status
        .code()
        .with_context(|| format!("the child ended by {status}"))
}
