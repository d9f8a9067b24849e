//! Execute permission: a page holding one `ret` instruction runs when it is mapped PROT_EXEC, and
//! faults when it is not (the NX bit in its page table entry). Shown on x86-64 only, where the
//! single byte 0xC3 is a complete function that returns at once.

use crate::fault_report::{in_child, Outcome, SEGV_ACCERR};
use crate::protection_faults::is_segv;
use crate::settings::cpu_flag;
use anyhow::{Context, Result};
use nix::sys::mman::{mprotect, ProtFlags};
use std::ptr::NonNull;
use vmbook::procinfo::page_size;
use vmbook::{finding, not_checked, section, Mapping};

const CLAIM: &str =
    "jumping into a page without PROT_EXEC raises SEGV_ACCERR at the jump target; with it, the code runs";

/// `READ_IMPLIES_EXEC` in personality(2): every readable mapping would also be executable.
const READ_IMPLIES_EXEC: u64 = 0x0400000;

/// Why this machine cannot show it, if it cannot.
fn cannot_show() -> Option<String> {
    if std::env::consts::ARCH != "x86_64" {
        return Some(format!(
            "shown on x86-64 only; this is {}",
            std::env::consts::ARCH
        ));
    }
    if !cpu_flag("nx") {
        return Some("the CPU does not list nx in /proc/cpuinfo".into());
    }
    let personality = std::fs::read_to_string("/proc/self/personality").unwrap_or_default();
    if u64::from_str_radix(personality.trim(), 16).is_ok_and(|p| p & READ_IMPLIES_EXEC != 0) {
        return Some("this process runs with the READ_IMPLIES_EXEC personality".into());
    }
    None
}

/// Calls the first byte of the page at `addr` as a function, in a forked child.
///
/// # Safety
///
/// `addr` is the start of a page of this program's that holds 0xC3, `ret` on x86-64: a complete
/// function taking no arguments and returning nothing.
unsafe fn call_in_child(addr: usize) -> Result<Outcome> {
    in_child(|| {
        // SAFETY: as the caller promises. Without PROT_EXEC the call faults and the handler ends
        // the child.
        let function: extern "C" fn() = unsafe { std::mem::transmute(addr) };
        function();
    })
}

// ANCHOR: no_execute
pub fn no_execute() -> Result<()> {
    section("Jumping into a page with and without PROT_EXEC (each in a forked child)");
    if let Some(why) = cannot_show() {
        not_checked(CLAIM, why);
        return Ok(());
    }
    let page = page_size();
    let code = Mapping::private(page)?;
    // SAFETY: the first byte of our own, writable page.
    unsafe { code.as_ptr().write_volatile(0xC3) }; // x86-64 `ret`
                                                   // SAFETY (both calls): the page holds the one `ret` just written.
    let without = unsafe { call_in_child(code.addr()) }?; // the page is PROT_READ | PROT_WRITE
    let start = NonNull::new(code.as_ptr().cast()).context("null mapping")?;
    // SAFETY: our own page; it holds one `ret` and is never written again.
    let with = match unsafe { mprotect(start, page, ProtFlags::PROT_READ | ProtFlags::PROT_EXEC) } {
        Ok(()) => unsafe { call_in_child(code.addr()) }?,
        Err(e) => {
            // A security policy (SELinux execmem, PaX) may forbid making memory executable.
            not_checked(CLAIM, format!("mprotect(PROT_READ|PROT_EXEC): {e}"));
            return Ok(());
        }
    };
    // ANCHOR_END: no_execute
    println!("call {:#x}, page rw-: {without}", code.addr());
    println!("call {:#x}, page r-x: {with}", code.addr());
    finding(
        CLAIM,
        is_segv(without, SEGV_ACCERR, code.addr()) && with == Outcome::NoFault,
        format!("without: {without}; with: {with}"),
    );
    Ok(())
}
