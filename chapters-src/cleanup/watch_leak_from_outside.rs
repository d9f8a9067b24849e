//! A child leaks mappings one by one, watched from outside through /proc/PID (pmap-style).

use crate::child::describe_status;
use anyhow::{ensure, Context, Result};
use nix::sys::wait::WaitStatus;
use nix::unistd::{pipe, read, write, Pid};
use procfs::process::Process;
use vmbook::process::{fork_child, wait_child};
use vmbook::{bytes, finding, kb, section, Mapping};

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

// ANCHOR: watch_leak_from_outside
pub fn watch_leak_from_outside(leaks: u32, size: u64) -> Result<()> {
    section("Watching a process leak mappings, from outside");
    let (go_r, go_w) = pipe().context("pipe")?;
    let (done_r, done_w) = pipe().context("pipe")?;
    let child = fork_child(|| {
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
    // ANCHOR_END: watch_leak_from_outside
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
