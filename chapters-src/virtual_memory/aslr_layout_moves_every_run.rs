//! ASLR: fresh processes of this program, and where their stack, heap, mmap area and code land.

use crate::maps_where_things_live::personality;
use anyhow::{ensure, Context, Result};
use std::process::Stdio;
use vmbook::chapter::child_command;
use vmbook::process::{spawn_tracked, wait_spawned};
use vmbook::{finding, not_checked, section, Mapping};

/// The addresses `aslr` compares, printed by a fresh process: stack, heap, mmap, code.
pub fn aslr_probe() -> Result<()> {
    let on_stack = 0u8;
    let on_heap = Box::new(0u8);
    let mapping = Mapping::private(vmbook::procinfo::page_size())?;
    let code = aslr_probe as fn() -> Result<()>;
    println!(
        "{} {} {} {}",
        &on_stack as *const u8 as usize,
        &*on_heap as *const u8 as usize,
        mapping.addr(),
        code as usize
    );
    Ok(())
}

/// The flag `setarch -R` sets in the process personality (`personality(2)`).
const ADDR_NO_RANDOMIZE: u32 = 0x0040000;

// ANCHOR: aslr_layout_moves_every_run
pub fn aslr_layout_moves_every_run(runs: u32) -> Result<()> {
    section("Address space layout randomization (ASLR)");
    let setting = std::fs::read_to_string("/proc/sys/kernel/randomize_va_space")
        .context("read /proc/sys/kernel/randomize_va_space")?;
    let setting: u32 = setting.trim().parse().context("parse randomize_va_space")?;
    let mut samples: Vec<[usize; 4]> = Vec::new();
    for _ in 0..runs {
        let probe = spawn_tracked(child_command("aslr-probe", &[])?.stdout(Stdio::piped()))?;
        let out = wait_spawned(probe)?;
        ensure!(
            out.status.success(),
            "aslr-probe failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout)?;
        let v: Vec<usize> = text
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        samples.push(
            v.try_into()
                .map_err(|_| anyhow::anyhow!("aslr-probe: bad output"))?,
        );
    }
    // ANCHOR_END: aslr_layout_moves_every_run
    let meaning = match setting {
        0 => "off: every process gets the same layout",
        1 => "stack, mmap area and vdso randomized; heap (brk) not",
        2 => "stack, mmap area, vdso and heap (brk) randomized",
        _ => "an unknown value",
    };
    println!("/proc/sys/kernel/randomize_va_space = {setting} ({meaning})");
    // `setarch -R` turns randomization off for one program and its children with a personality
    // flag, whatever randomize_va_space says; the probes inherit this process's personality.
    let no_randomize = personality()? & ADDR_NO_RANDOMIZE != 0;
    println!(
        "personality flag ADDR_NO_RANDOMIZE (setarch -R): {}",
        if no_randomize {
            "set, randomization off for this program and its children"
        } else {
            "not set"
        }
    );
    println!(
        "{:<6} {:>16} {:>16} {:>16} {:>16}",
        "run", "stack", "heap", "mmap", "code"
    );
    for (i, s) in samples.iter().enumerate() {
        println!(
            "{:<6} {:>16} {:>16} {:>16} {:>16}",
            i + 1,
            format!("{:#x}", s[0]),
            format!("{:#x}", s[1]),
            format!("{:#x}", s[2]),
            format!("{:#x}", s[3])
        );
    }
    let distinct = |column: usize| {
        let mut v: Vec<usize> = samples.iter().map(|s| s[column]).collect();
        v.sort_unstable();
        v.dedup();
        v.len()
    };
    let counts: Vec<usize> = (0..4).map(distinct).collect();
    let evidence = format!(
        "distinct values in {runs} runs: stack {}, heap {}, mmap {}, code {}",
        counts[0], counts[1], counts[2], counts[3]
    );
    let n = runs as usize;
    let same = "with randomization off, every run gets the same addresses";
    let moves = "with randomize_va_space=2, stack, heap, mmap area and code move every run";
    if no_randomize || setting == 0 {
        finding(same, counts.iter().all(|&c| c == 1), &evidence);
        let why = if no_randomize {
            "this process has the ADDR_NO_RANDOMIZE personality (setarch -R)".to_string()
        } else {
            "randomize_va_space=0".to_string()
        };
        not_checked(moves, format!("{why}: nothing is randomized"));
    } else if setting == 1 {
        finding(
            "with randomize_va_space=1, stack and mmap move every run",
            counts[0] == n && counts[2] == n,
            &evidence,
        );
        not_checked(
            moves,
            "randomize_va_space=1 leaves the heap (brk) where it is",
        );
    } else {
        finding(moves, counts.iter().all(|&c| c == n), evidence);
    }
    Ok(())
}
