//! A fork+exec'd child opens the object by name: it maps it at another address, and both see the
//! same bytes (and, as root, the same frame).

use crate::children::{spawn_self, wait_for};
use crate::names::in_dev_shm;
use anyhow::{ensure, Result};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use vmbook::procinfo::{frames_visible, page_entry, page_size, FRAMES_HIDDEN};
use vmbook::{finding, not_checked, section, ShmObject};

/// Writes `text` into `cells` (cut to fit), then a terminating zero if there is room.
fn put_str(cells: &[AtomicU8], text: &str) {
    for (cell, &b) in cells.iter().zip(text.as_bytes().iter().chain([&0u8])) {
        cell.store(b, Ordering::Relaxed);
    }
}

/// Reads a zero-terminated string out of `cells`.
fn get_str(cells: &[AtomicU8]) -> String {
    let raw: Vec<u8> = cells
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .take_while(|&b| b != 0)
        .collect();
    String::from_utf8_lossy(&raw).into_owned()
}

/// What the parent and its exec'd child tell each other through the object.
#[repr(C)]
struct Meeting {
    message: [AtomicU8; 64],
    reply: [AtomicU8; 64],
    child_addr: AtomicU64,
    child_frame: AtomicU64,
    /// How many lines of the child's /proc/self/maps named the object before it opened it.
    mapped_before_open: AtomicU64,
}

/// The Meeting at the start of an object.
fn meeting(object: &ShmObject) -> Result<&Meeting> {
    ensure!(
        object.len() >= std::mem::size_of::<Meeting>(),
        "the object is too small"
    );
    // SAFETY: the mapping is page-aligned, large enough (checked), lives as long as the borrow, and
    // every field is an atomic: any bit pattern is valid and both processes only use atomics.
    Ok(unsafe { &*(object.as_ptr() as *const Meeting) })
}

// ANCHOR: exec_child_maps_elsewhere
pub fn exec_child_maps_elsewhere() -> Result<()> {
    section("A fork+exec'd child opens the object by name");
    let object = ShmObject::create(page_size())?;
    let talk = meeting(&object)?;
    put_str(&talk.message, "hello from the parent");
    let frame = page_entry(object.addr())?.pfn;
    println!("parent: {} mapped at {:#x}", object.name(), object.addr());
    let child = spawn_self("exec", &[object.name()])?;
    ensure!(wait_for(child)? == 0, "the child failed");
    let child_addr = talk.child_addr.load(Ordering::Relaxed) as usize;
    let reply = get_str(&talk.reply);
    println!("parent: the child's reply reads {reply:?}");
    // ANCHOR_END: exec_child_maps_elsewhere
    let before = talk.mapped_before_open.load(Ordering::Relaxed);
    finding(
        "after exec the child has no mapping of the object until it opens it by name",
        before == 0,
        match before {
            0 => "no line of its /proc/self/maps named it before shm_open".to_string(),
            1 => "one line of its /proc/self/maps named it before shm_open".to_string(),
            n => format!("{n} lines of its /proc/self/maps named it before shm_open"),
        },
    );
    let claim = "with address randomization on, the exec'd child maps the object at a different \
                 virtual address";
    let addresses = format!("parent {:#x}, child {child_addr:#x}", object.addr());
    match randomization_off() {
        None => finding(
            claim,
            child_addr != 0 && child_addr != object.addr(),
            addresses,
        ),
        Some(why) => not_checked(claim, format!("{why}; {addresses}")),
    }
    finding(
        "both see the same data: the child read the parent's message, the parent reads the reply",
        reply == "hello from the child",
        format!("reply {reply:?}"),
    );
    let child_frame = talk.child_frame.load(Ordering::Relaxed);
    match frame {
        Some(frame) if frames_visible() => finding(
            "both addresses lead to the same physical frame",
            child_frame == frame,
            format!("frame {frame:#x} in the parent, {child_frame:#x} in the child"),
        ),
        _ => not_checked(
            "both addresses lead to the same physical frame",
            FRAMES_HIDDEN,
        ),
    }
    Ok(())
}

/// Why this process (and the child it execs, which inherits both) gets no randomized layout, if it
/// does not: the system setting, or the process personality that `setarch -R` sets.
fn randomization_off() -> Option<String> {
    let setting = std::fs::read_to_string("/proc/sys/kernel/randomize_va_space").ok()?;
    if setting.trim() == "0" {
        return Some("randomization is off: /proc/sys/kernel/randomize_va_space = 0".into());
    }
    // SAFETY: personality(0xffffffff) only reads the persona; it changes nothing.
    let persona = unsafe { libc::personality(0xffff_ffff) };
    (persona != -1 && persona & libc::ADDR_NO_RANDOMIZE != 0)
        .then(|| "randomization is off for this process: personality ADDR_NO_RANDOMIZE".into())
}

// ANCHOR: exec_child
pub fn exec_child(name: &str) -> Result<ExitCode> {
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let path = in_dev_shm(name);
    let before = vmbook::procinfo::maps()?
        .iter()
        .filter(
            |m| matches!(&m.pathname, procfs::process::MMapPath::Path(p) if p.starts_with(&path)),
        )
        .count();
    let object = ShmObject::open(name)?; // shm_open(O_RDWR) + mmap: no O_CREAT, no ftruncate
    let talk = meeting(&object)?;
    println!(
        "child:  a new program (pid {}); before shm_open it had {before} mappings of the object",
        std::process::id()
    );
    println!(
        "child:  {name} mapped at {:#x}, reads {:?}",
        object.addr(),
        get_str(&talk.message)
    );
    put_str(&talk.reply, "hello from the child");
    // ANCHOR_END: exec_child
    vmbook::pause::here(
        "this is the exec'd child; it maps the object",
        &["grep vmbook /proc/PID/maps"],
    );
    let frame = page_entry(object.addr())?.pfn.unwrap_or(0);
    talk.child_frame.store(frame, Ordering::Relaxed);
    talk.mapped_before_open
        .store(before as u64, Ordering::Relaxed);
    talk.child_addr
        .store(object.addr() as u64, Ordering::Relaxed);
    Ok(ExitCode::SUCCESS)
}
