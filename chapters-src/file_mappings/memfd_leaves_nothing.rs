//! memfd: shared memory with no name. A forked creator makes one, seals it and passes its
//! descriptor over a Unix socket to an exec'd receiver; killing the creator with SIGKILL leaves
//! nothing to clean up anywhere, and the memory lives exactly as long as someone holds it.

use crate::file_map::text;
use crate::memfd_creator::create_seal_and_send;
use crate::memfd_receiver::{receive_line, MESSAGE};
use anyhow::{ensure, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{sendmsg, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use nix::sys::wait::WaitStatus;
use nix::unistd::{pipe, read, write};
use std::collections::HashMap;
use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::process::Stdio;
use vmbook::process::{fork_child, spawn_tracked, wait_child, wait_spawned};
use vmbook::shm::unique_name;
use vmbook::{finding, section};

/// The pids of the processes whose descriptors or mappings lead to the memfd `name`, among those
/// this one may look into (another user's /proc/PID/fd is closed to us, but they never had it).
fn holders(name: &str) -> Vec<i32> {
    let mark = format!("/memfd:{name} ");
    let mut found = Vec::new();
    let pids = std::fs::read_dir("/proc").into_iter().flatten().flatten();
    for pid in pids.filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok()) {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let by_fd = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|l| l.to_string_lossy().starts_with(mark.trim_end()))
        });
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
        if by_fd || maps.contains(&mark) {
            found.push(pid);
        }
    }
    found
}

/// Entries of /dev/shm whose name contains `name`.
fn in_dev_shm(name: &str) -> usize {
    let entries = std::fs::read_dir("/dev/shm")
        .into_iter()
        .flatten()
        .flatten();
    entries
        .filter(|e| e.file_name().to_string_lossy().contains(name))
        .count()
}

pub fn memfd_leaves_nothing(size: usize) -> Result<()> {
    section("memfd: shared memory with no name, sealed, passed over a Unix socket");
    let name = unique_name().trim_start_matches('/').to_string();
    // ANCHOR: memfd_leaves_nothing
    let (socket, receiver_end) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .context("socketpair")?;
    let mut command = vmbook::chapter::child_command("memfd-receiver", &[])?;
    command.stdin(Stdio::from(receiver_end)); // a new program; fd 0 is its socket
    let receiver = spawn_tracked(&mut command)?;
    let receiver_pid = receiver.id() as i32;
    let (from_creator, to_parent) = pipe().context("pipe")?;
    let parent = nix::unistd::getpid();
    let creator = fork_child(|| {
        // The creator dies with this process, so that it never outlives the experiment.
        if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err()
            || nix::unistd::getppid() != parent
        {
            return 1;
        }
        match create_seal_and_send(&socket, &name, size) {
            Ok((_memfd, refused)) => {
                let _ = write(&to_parent, refused.as_bytes());
                loop {
                    nix::unistd::pause(); // keeps the memfd open until it is killed
                }
            }
            Err(e) => {
                eprintln!("creator: {e:#}");
                1
            }
        }
    })?;
    drop(to_parent);
    let mut refused = [0u8; 64];
    let n = read(&from_creator, &mut refused).context("read from the creator")?;
    ensure!(n > 0, "the creator failed");
    let first = receive_line(&socket)?; // the receiver has mapped it and tried to change it
    let holding_before = holders(&name);
    vmbook::pause::here(
        "the creator and the receiver both hold the memfd",
        &[
            &format!("ls -l /proc/{receiver_pid}/fd; grep memfd /proc/{receiver_pid}/maps"),
            "ls /dev/shm",
        ],
    );
    kill(creator, Signal::SIGKILL).context("kill(SIGKILL)")?;
    let creator_status = wait_child(creator)?;
    println!("the creator (pid {creator}) was killed by SIGKILL");
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(b"again")],
        &[],
        MsgFlags::empty(),
        None,
    )
    .context("sendmsg")?;
    let second = receive_line(&socket)?; // what the receiver reads with its creator gone
    let holding_after_kill = holders(&name);
    drop(socket); // end of file for the receiver: it exits
    let receiver_status = wait_spawned(receiver)?.status;
    let holding_at_end = holders(&name);
    let named = in_dev_shm(&name);
    // ANCHOR_END: memfd_leaves_nothing
    let who = |pids: &[i32]| -> String {
        let others = pids
            .iter()
            .filter(|&&p| p != creator.as_raw() && p != receiver_pid)
            .count();
        let mut names = Vec::new();
        if pids.contains(&creator.as_raw()) {
            names.push("the creator".to_string());
        }
        if pids.contains(&receiver_pid) {
            names.push("the receiver".to_string());
        }
        if others > 0 {
            names.push(format!("{others} other processes"));
        }
        if names.is_empty() {
            "nobody".into()
        } else {
            names.join(" and ")
        }
    };
    println!("holding the memfd (a descriptor or a mapping, in /proc/*/fd and /proc/*/maps):");
    println!("  while both live:           {}", who(&holding_before));
    println!("  after the SIGKILL:         {}", who(&holding_after_kill));
    println!("  after the receiver exited: {}", who(&holding_at_end));
    println!("entries in /dev/shm with its name, at the end: {named}");
    let f: HashMap<&str, &str> = first
        .split('\t')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let s: HashMap<&str, &str> = second
        .split('\t')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let get = |m: &HashMap<&str, &str>, k: &str| m.get(k).copied().unwrap_or("").to_string();
    let refused = String::from_utf8_lossy(&refused[..n]).into_owned();
    finding(
        "F_SEAL_WRITE is refused with EBUSY while a writable MAP_SHARED mapping of the memfd exists",
        refused.starts_with("EBUSY"),
        format!("the creator's fcntl: {refused}"),
    );
    finding(
        "the exec'd receiver maps the descriptor it got over the socket and reads the creator's bytes",
        get(&f, "read") == text(MESSAGE),
        format!("it read {}", get(&f, "read")),
    );
    let refusals = [get(&f, "ftruncate"), get(&f, "write"), get(&f, "mmap")];
    finding(
        "the seals refuse the receiver's ftruncate, write(2) and writable shared mmap with EPERM",
        refusals.iter().all(|r| r.starts_with("EPERM")),
        format!(
            "ftruncate {}, write {}, mmap {}",
            refusals[0], refusals[1], refusals[2]
        ),
    );
    let link = get(&f, "link");
    finding(
        "the memfd has no name in any directory: its fd link reads /memfd:NAME (deleted), and /dev/shm has no entry",
        link == format!("/memfd:{name} (deleted)") && named == 0,
        format!("link {link:?}, {named} entries in /dev/shm"),
    );
    finding(
        "after its creator is SIGKILLed, the receiver still reads the memory: its descriptor keeps it",
        matches!(creator_status, WaitStatus::Signaled(_, Signal::SIGKILL, _)) && get(&s, "read") == text(MESSAGE),
        format!("it read {}", get(&s, "read")),
    );
    finding(
        "once the receiver has exited too, no process holds the memfd and nothing is left to remove",
        receiver_status.success() && holding_at_end.is_empty() && named == 0,
        format!("held by {} in the /proc/PID/fd and maps this user may read", who(&holding_at_end)),
    );
    Ok(())
}
