//! Where each kind of value lives: this process's own /proc/self/maps, annotated.

use crate::address_space_figure;
use anyhow::{Context, Result};
use nix::sys::resource::{getrlimit, Resource, RLIM_INFINITY};
use procfs::process::MMapPath;
use vmbook::procinfo::{describe, maps};
use vmbook::{finding, kb, not_checked, section};

/// What a line of /proc/self/maps is, in the words of the chapter. `after_code` says whether the
/// mapping lies above the program's code: a read-only part of the program there is its RELRO data
/// (the GOT, `.data.rel.ro`), which the loader relocates and then makes read-only.
fn region(path: &MMapPath, perms: &str, exe: &str, after_code: bool) -> &'static str {
    match path {
        MMapPath::Path(p) if p.file_name().is_some_and(|f| f == exe) => match perms {
            p if p.contains('x') => "program code",
            p if p.contains('w') => "program data",
            _ if after_code => "program RELRO",
            _ => "program constants",
        },
        MMapPath::Path(_) => "shared library",
        MMapPath::Heap => "heap",
        MMapPath::Stack => "stack",
        MMapPath::Anonymous if perms.starts_with("---") => "guard page",
        MMapPath::Anonymous => "anonymous mapping",
        MMapPath::Vdso | MMapPath::Vvar | MMapPath::Vsyscall | MMapPath::Other(_) => {
            "kernel-provided"
        }
        _ => "other",
    }
}

/// This process's personality flags (`personality(2)`), from /proc/self/personality (hexadecimal).
pub fn personality() -> Result<u32> {
    let text =
        std::fs::read_to_string("/proc/self/personality").context("read /proc/self/personality")?;
    u32::from_str_radix(text.trim(), 16).context("parse /proc/self/personality")
}

/// Why the kernel gave this process the legacy, bottom-up layout (the mmap area starting low, at a
/// third of the address space), if it did: the choice is made at `execve`, from these three.
fn legacy_layout() -> Result<Option<String>> {
    const ADDR_COMPAT_LAYOUT: u32 = 0x0200000;
    let (stack, _) = getrlimit(Resource::RLIMIT_STACK).context("getrlimit(RLIMIT_STACK)")?;
    let sysctl = std::fs::read_to_string("/proc/sys/vm/legacy_va_layout").unwrap_or_default();
    Ok(if personality()? & ADDR_COMPAT_LAYOUT != 0 {
        Some("the ADDR_COMPAT_LAYOUT personality".into())
    } else if stack == RLIM_INFINITY {
        Some("an unlimited stack size (ulimit -s unlimited)".into())
    } else if sysctl.trim().parse::<u32>().unwrap_or(0) != 0 {
        Some("vm.legacy_va_layout".into())
    } else {
        None
    })
}

// ANCHOR: maps_where_things_live
pub fn maps_where_things_live() -> Result<()> {
    section("The address space of this process, from /proc/self/maps");
    let on_stack = 7u64;
    let on_heap = Box::new(7u64);
    let big = vec![7u8; 4 << 20]; // large blocks: malloc asks mmap for a mapping of their own
    let code = maps_where_things_live as fn() -> Result<()>;
    let wanted = [
        ("a local variable", &on_stack as *const u64 as u64, "stack"),
        ("a small Box", &*on_heap as *const u64 as u64, "heap"),
        ("a 4 MiB Vec", big.as_ptr() as u64, "anonymous mapping"),
        ("this function's code", code as usize as u64, "program code"),
    ];
    // ANCHOR_END: maps_where_things_live
    let exe = vmbook::output::program_name();
    let rows = rows(&exe)?;
    println!(
        "{:<37} {:<5} {:>10}  {:<18} holds",
        "range", "perms", "size", "region"
    );
    let mut found = Vec::new();
    for row in &rows {
        let here: Vec<&str> = wanted
            .iter()
            .filter(|(_, addr, _)| (row.start..row.end).contains(addr))
            .map(|(what, _, _)| *what)
            .collect();
        for (what, _, expected) in wanted.iter().filter(|w| here.contains(&w.0)) {
            found.push((*what, row.kind, *expected));
        }
        println!(
            "{:<37} {:<5} {:>10}  {:<18} {}{}",
            format!("{:#x}-{:#x}", row.start, row.end),
            row.perms,
            kb(row.end - row.start),
            row.kind,
            row.name,
            if here.is_empty() {
                String::new()
            } else {
                format!("  <- {}", here.join(", "))
            }
        );
    }
    println!("\ntotal size by region:");
    for kind in [
        "program code",
        "program constants",
        "program RELRO",
        "program data",
        "heap",
        "shared library",
        "anonymous mapping",
        "guard page",
        "signal stack",
        "stack",
        "kernel-provided",
    ] {
        let total: u64 = rows
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.end - r.start)
            .sum();
        println!("  {kind:<18} {:>10}", kb(total));
    }
    let marks: Vec<(&str, u64)> = wanted
        .iter()
        .map(|(what, addr, _)| (*what, *addr))
        .collect();
    vmbook::figure::save(
        address_space_figure::NAME,
        &address_space_figure::address_space_svg(&rows, &marks),
    );
    vmbook::pause::here(
        "the values above exist; compare with the kernel's own listing",
        &["cat /proc/PID/maps", "grep -A3 heap /proc/PID/smaps"],
    );
    std::hint::black_box((&on_stack, &on_heap, &big));
    let right = found.iter().filter(|(_, got, want)| got == want).count();
    let detail: Vec<String> = found
        .iter()
        .map(|(w, got, _)| format!("{w}: {got}"))
        .collect();
    finding(
        "each kind of value lives in the mapping its kind predicts",
        right == wanted.len(),
        detail.join("; "),
    );
    let lowest = |kind: &str| {
        rows.iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.start)
            .min()
    };
    let order = ["program code", "heap", "shared library", "stack"];
    let starts: Vec<Option<u64>> = order.iter().map(|k| lowest(k)).collect();
    let ascending = starts.iter().all(Option::is_some) && starts.windows(2).all(|w| w[0] < w[1]);
    let evidence = format!(
        "first addresses of program code, heap, libraries, stack: {}",
        fmt_addrs(&starts)
    );
    let claim = "from low to high addresses: program code, heap, shared libraries, stack";
    match legacy_layout()? {
        Some(why) => not_checked(
            claim,
            format!("{why} gives this process the legacy layout, mmap area below the program; {evidence}"),
        ),
        None => finding(claim, ascending, evidence),
    }
    Ok(())
}

/// One row of the table: one mapping (a program's or library's data including its `.bss`).
pub struct Row {
    pub start: u64,
    pub end: u64,
    pub perms: String,
    pub kind: &'static str,
    pub name: String,
}

/// /proc/self/maps as rows. Zero-filled data a program or library declares without a value (its
/// `.bss`) may spill past the last page of the file into an anonymous mapping right after its data;
/// whether it does depends on the layout of each build, so that mapping is counted with the data.
/// The alternate signal stack (Rust's standard library sets one up to report a stack overflow) is
/// named as such; the guard page below it is a `---p` mapping.
fn rows(exe: &str) -> Result<Vec<Row>> {
    let signal_stack = signal_stack_address();
    let mut rows: Vec<Row> = Vec::new();
    let mut code_start = None;
    for m in maps()? {
        let (start, end) = m.address;
        let perms = m.perms.as_str();
        let after_code = code_start.is_some_and(|code| start > code);
        let mut kind = region(&m.pathname, &perms, exe, after_code);
        if kind == "program code" {
            code_start.get_or_insert(start);
        }
        if kind == "anonymous mapping" && signal_stack.is_some_and(|sp| (start..end).contains(&sp))
        {
            kind = "signal stack";
        }
        if let Some(last) = rows.last_mut() {
            let data = last.kind == "program data" || last.kind == "shared library";
            let bss = kind == "anonymous mapping" && data && last.perms.contains('w');
            if bss && last.end == start && last.perms == perms {
                last.end = end;
                continue;
            }
        }
        rows.push(Row {
            start,
            end,
            perms,
            kind,
            name: describe(&m.pathname),
        });
    }
    Ok(rows)
}

/// Where this thread's alternate signal stack starts, if it has one (`sigaltstack(2)`).
fn signal_stack_address() -> Option<u64> {
    // SAFETY: with a null new stack, sigaltstack only writes the current one into `current`.
    let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::sigaltstack(std::ptr::null(), &mut current) };
    let enabled = rc == 0 && current.ss_flags & libc::SS_DISABLE == 0;
    enabled.then_some(current.ss_sp as u64)
}

fn fmt_addrs(addrs: &[Option<u64>]) -> String {
    addrs
        .iter()
        .map(|a| a.map_or("none".to_string(), |a| format!("{a:#x}")))
        .collect::<Vec<_>>()
        .join(" < ")
}
