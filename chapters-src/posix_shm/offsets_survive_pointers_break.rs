//! Offsets, not pointers: two lists in one object, walked by a forked child (same addresses) and
//! an exec'd one (the object mapped elsewhere).

use crate::children::{spawn_self, wait_for};
use anyhow::{ensure, Result};
use std::process::ExitCode;
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

/// Exit code of a walking child: 10 + 1 if the offset list read right + 2 if the pointer one did.
fn walk_code(object: &ShmObject) -> i32 {
    let offsets = walk_offsets(object);
    let pointers = walk_pointers(object);
    println!("          offsets:  {}", show(&offsets));
    println!("          pointers: {}", show(&pointers));
    let good = |w: &Result<Vec<u64>, String>| w.as_ref().is_ok_and(|v| v[..] == VALUES[..]);
    10 + i32::from(good(&offsets)) + 2 * i32::from(good(&pointers))
}

pub fn walk_child(name: &str) -> Result<ExitCode> {
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    let object = ShmObject::open(name)?;
    println!("child (exec'd), object mapped at {:#x}:", object.addr());
    Ok(ExitCode::from(walk_code(&object) as u8))
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
        walk_code(&object)
    })?;
    let forked = vmbook::process::wait_exit_code(forked)?;
    let execd = wait_for(spawn_self(&["walk-child", object.name()])?)?;
    ensure!(
        (10..14).contains(&forked) && (10..14).contains(&execd),
        "a child failed"
    );
    finding(
        "a list linked by offsets reads back whole in both children",
        (forked - 10) & 1 == 1 && (execd - 10) & 1 == 1,
        "10 → 20 → 30 → 40 in each",
    );
    finding(
        "a list linked by pointers works in the forked child (same addresses) only",
        (forked - 10) & 2 == 2 && (execd - 10) & 2 == 0,
        "the exec'd child maps the object elsewhere, so the stored addresses point outside it",
    );
    Ok(())
}
