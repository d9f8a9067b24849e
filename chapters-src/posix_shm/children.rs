//! The exec'd children: this program started again (fork + exec) in a hidden child role.

use anyhow::{Context, Result};
use std::process::{Child, Stdio};

/// Starts this program again in a child role (fork + exec): `posix-shm child ROLE ARGS...`, stdin
/// closed, recorded for cleanup.
pub fn spawn_self(role: &str, args: &[&str]) -> Result<Child> {
    let mut command = vmbook::chapter::child_command(role, args)?;
    vmbook::process::spawn_tracked(command.stdin(Stdio::null()))
}

/// Waits for a child started by `spawn_self`; its exit code, or an error if a signal killed it.
pub fn wait_for(child: Child) -> Result<i32> {
    let status = vmbook::process::wait_spawned(child)?.status;
    status
        .code()
        .with_context(|| format!("the child ended by {status}"))
}
