//! Offsets, not pointers: two lists in one object, walked by a forked child (same addresses) and
//! an exec'd one (the object mapped elsewhere).

use crate::children::{spawn_self, wait_for};
use anyhow::{ensure, Result};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use vmbook::procinfo::page_size;
use vmbook::{finding, section, ShmObject};

// ANCHOR: lists
/// A list node linked by offset: `next` counts bytes from the start of the object (0 = end).
#[repr(C)]
struct OffsetNode {
    value: u64,
    next: u64,
}

/// The same node linked by pointer: `next` is an address in the process that wrote it.
#[repr(C)]
struct PtrNode {
    value: u64,
    next: *const PtrNode,
}

/// At offset 0 of the object: where each list starts.
#[repr(C)]
struct Heads {
    offsets: u64,
    pointers: *const PtrNode,
}
// ANCHOR_END: lists

const _: () = assert!(std::mem::size_of::<OffsetNode>() == std::mem::size_of::<PtrNode>());
const VALUES: [u64; 4] = [10, 20, 30, 40];
const OFFSET_LIST_AT: usize = 64;
const POINTER_LIST_AT: usize = 256;

/// Builds both lists in a fresh object. Only this process touches it until a child is started.
fn build_lists(object: &ShmObject) {
    let base = object.as_ptr();
    // Both node types are 16 bytes on a 64-bit machine.
    let size = std::mem::size_of::<OffsetNode>();

    // SAFETY: every write is inside the object (offsets below 512, less than a page), aligned to
    // 8, and no other process maps the object yet.
    unsafe {
        for (i, &value) in VALUES.iter().enumerate() {
            let last = i + 1 == VALUES.len();
            let at = |start: usize, i: usize| base.add(start + i * size);
            let next = if last {
                0
            } else {
                (OFFSET_LIST_AT + (i + 1) * size) as u64
            };
            (at(OFFSET_LIST_AT, i) as *mut OffsetNode).write(OffsetNode { value, next });
            let next = if last {
                std::ptr::null()
            } else {
                at(POINTER_LIST_AT, i + 1) as *const PtrNode
            };
            (at(POINTER_LIST_AT, i) as *mut PtrNode).write(PtrNode { value, next });
        }
        (base as *mut Heads).write(Heads {
            offsets: OFFSET_LIST_AT as u64,
            pointers: base.add(POINTER_LIST_AT) as *const PtrNode,
        });
    }
}

/// Whether a node of type T at `addr` lies wholly inside the mapping, aligned.
fn inside<T>(object: &ShmObject, addr: usize) -> bool {
    addr >= object.addr()
        && addr + std::mem::size_of::<T>() <= object.addr() + object.len()
        && addr % std::mem::align_of::<T>() == 0
}

// ANCHOR: walk
fn walk_offsets(object: &ShmObject) -> Result<Vec<u64>, String> {
    // SAFETY: offset 0 holds Heads (checked inside); nobody writes while children walk.
    let mut offset = unsafe { (object.as_ptr() as *const Heads).read() }.offsets as usize;
    let mut values = Vec::new();
    while offset != 0 && values.len() < 64 {
        let node = object.addr() + offset; // an offset means the same thing in every mapping
        if !inside::<OffsetNode>(object, node) {
            return Err(format!("offset {offset} is outside the object"));
        }
        // SAFETY: checked above: inside this process's mapping of the object, aligned.
        let node = unsafe { (node as *const OffsetNode).read() };
        values.push(node.value);
        offset = node.next as usize;
    }
    Ok(values)
}

fn walk_pointers(object: &ShmObject) -> Result<Vec<u64>, String> {
    // SAFETY: as in walk_offsets.
    let mut node = unsafe { (object.as_ptr() as *const Heads).read() }.pointers;
    let mut values = Vec::new();
    while !node.is_null() && values.len() < 64 {
        // The pointer is an address in the writer's mapping. Check before following it: outside
        // our own mapping it could point at anything, or at nothing (SIGSEGV).
        if !inside::<PtrNode>(object, node as usize) {
            return Err(format!(
                "pointer {:#x} lies outside this mapping ({:#x}..{:#x}): not followed",
                node as usize,
                object.addr(),
                object.addr() + object.len()
            ));
        }
        // SAFETY: checked above: inside this process's mapping of the object, aligned.
        let here = unsafe { node.read() };
        values.push(here.value);
        node = here.next;
    }
    Ok(values)
}
// ANCHOR_END: walk

fn show(walk: &Result<Vec<u64>, String>) -> String {
    match walk {
        Ok(values) => values
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" → "),
        Err(why) => format!("broken: {why}"),
    }
}

/// What a walking child found, written into the object for the parent to read. The forked child
/// fills the first of the two reports, the exec'd child the second.
#[repr(C)]
struct WalkReport {
    /// Where this child's mapping of the object starts.
    mapped_at: AtomicU64,
    /// Whether the walk of each list read back exactly 10, 20, 30, 40.
    offsets_whole: AtomicBool,
    pointers_whole: AtomicBool,
}

const REPORTS_AT: usize = 512;
const FORKED: usize = 0;
const EXECD: usize = 1;

fn report(object: &ShmObject, which: usize) -> &WalkReport {
    const _: () = assert!(REPORTS_AT + 2 * std::mem::size_of::<WalkReport>() <= 4096);
    // SAFETY: both reports lie inside the object (one page, asserted above), past the lists,
    // aligned to 8; every field is an atomic, so any bytes are valid and concurrent use is defined.
    unsafe {
        &*(object
            .as_ptr()
            .add(REPORTS_AT + which * std::mem::size_of::<WalkReport>())
            as *const WalkReport)
    }
}

/// Walks both lists, prints them, and records the outcome in report `which`.
fn walk_and_report(object: &ShmObject, which: usize) {
    let offsets = walk_offsets(object);
    let pointers = walk_pointers(object);
    println!("          offsets:  {}", show(&offsets));
    println!("          pointers: {}", show(&pointers));
    let whole = |w: &Result<Vec<u64>, String>| w.as_ref().is_ok_and(|v| v[..] == VALUES[..]);
    let out = report(object, which);
    out.mapped_at.store(object.addr() as u64, Ordering::Relaxed);
    out.offsets_whole.store(whole(&offsets), Ordering::Relaxed);
    out.pointers_whole
        .store(whole(&pointers), Ordering::Relaxed);
}

pub fn walk_child(name: &str) -> Result<ExitCode> {
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let object = ShmObject::open(name)?;
    println!("child (exec'd), object mapped at {:#x}:", object.addr());
    walk_and_report(&object, EXECD);
    Ok(ExitCode::SUCCESS)
}

/// How a list fared in one child, for the evidence: "whole" or "broken".
fn fared(whole: bool) -> &'static str {
    if whole {
        "whole"
    } else {
        "broken"
    }
}

pub fn offsets_survive_pointers_break() -> Result<()> {
    section("Offsets, not pointers: a list in shared memory, walked by two children");
    let object = ShmObject::create(page_size())?;
    build_lists(&object);
    println!("parent: object mapped at {:#x}", object.addr());
    println!("          offsets:  {}", show(&walk_offsets(&object)));
    println!("          pointers: {}", show(&walk_pointers(&object)));
    let forked = vmbook::process::fork_child(|| {
        println!("child (forked), object mapped at {:#x}:", object.addr());
        walk_and_report(&object, FORKED);
        0
    })?;
    ensure!(
        vmbook::process::wait_exit_code(forked)? == 0,
        "the forked child failed"
    );
    ensure!(
        wait_for(spawn_self("walk", &[object.name()])?)? == 0,
        "the exec'd child failed"
    );
    let children = [
        ("forked", report(&object, FORKED)),
        ("exec'd", report(&object, EXECD)),
    ];
    let offsets_evidence: Vec<String> = children
        .iter()
        .map(|(who, r)| {
            format!(
                "{} in the {who} child",
                fared(r.offsets_whole.load(Ordering::Relaxed))
            )
        })
        .collect();
    finding(
        "a list linked by offsets reads back whole in both children",
        children
            .iter()
            .all(|(_, r)| r.offsets_whole.load(Ordering::Relaxed)),
        offsets_evidence.join(", "),
    );
    // The pointer list should work exactly where the object sits at the parent's address.
    let mut pointers_evidence = Vec::new();
    let mut as_expected = true;
    for (who, r) in children {
        let same = r.mapped_at.load(Ordering::Relaxed) == object.addr() as u64;
        let whole = r.pointers_whole.load(Ordering::Relaxed);
        as_expected &= whole == same;
        pointers_evidence.push(format!(
            "{who} child: {}, {}",
            if same {
                "same address"
            } else {
                "another address"
            },
            fared(whole)
        ));
    }
    finding(
        "a list linked by pointers works only in a child that maps the object at the parent's address",
        as_expected,
        pointers_evidence.join("; "),
    );
    Ok(())
}
