//! The pipes between a parent and its forked child: reports go up, go-aheads go down.

use anyhow::{Context, Result};
use nix::unistd::pipe;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};

/// Two pipes between parent and child: reports up, go-aheads down.
pub struct Link {
    pub up: (File, File),
    pub down: (File, File),
}

impl Link {
    pub fn new() -> Result<Link> {
        let (up_read, up_write) = pipe().context("pipe")?;
        let (down_read, down_write) = pipe().context("pipe")?;
        Ok(Link {
            up: (up_read.into(), up_write.into()),
            down: (down_read.into(), down_write.into()),
        })
    }

    /// The parent's ends that the child must close: if the parent dies, the child then reads
    /// end-of-file instead of waiting forever.
    pub fn parent_ends(&self) -> [RawFd; 2] {
        [self.up.0.as_raw_fd(), self.down.1.as_raw_fd()]
    }

    /// After fork, in the parent: keeps its two ends and closes the child's, so that a read sees
    /// end-of-file if the child dies.
    pub fn parent(self) -> (File, File) {
        (self.up.0, self.down.1)
    }
}

pub fn send(to: &mut File, values: &[u64]) -> Result<()> {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_ne_bytes()).collect();
    to.write_all(&raw).context("write to pipe")
}

pub fn receive(from: &mut File, count: usize) -> Result<Vec<u64>> {
    let mut raw = vec![0u8; count * 8];
    from.read_exact(&mut raw)
        .context("read from pipe: the other process ended early")?;
    Ok(raw
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8])))
        .collect())
}

/// Runs the child's part: closes the parent's pipe ends, runs `body`, exits 0 or 1.
pub fn child_side(parent_ends: [RawFd; 2], body: impl FnOnce() -> Result<()>) -> i32 {
    for fd in parent_ends {
        let _ = nix::unistd::close(fd);
    }
    match body() {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("copy-on-write (child): error: {error:#}");
            1
        }
    }
}
