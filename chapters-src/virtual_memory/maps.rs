//! Where each kind of value lives: this process's own /proc/self/maps, annotated.

use anyhow::Result;
use procfs::process::MMapPath;
use vmbook::procinfo::{describe, maps};
use vmbook::{finding, kb, section};

/// What a line of /proc/self/maps is, in the words of the chapter.
fn region(path: &MMapPath, perms: &str, exe: &str) -> &'static str {
    match path {
        MMapPath::Path(p) if p.file_name().is_some_and(|f| f == exe) => match perms {
            p if p.contains('x') => "program code",
            p if p.contains('w') => "program data",
            _ => "program constants",
        },
        MMapPath::Path(_) => "shared library",
        MMapPath::Heap => "heap",
        MMapPath::Stack => "stack",
        MMapPath::Anonymous => "anonymous mapping",
        MMapPath::Vdso | MMapPath::Vvar | MMapPath::Vsyscall | MMapPath::Other(_) => {
            "kernel-provided"
        }
        _ => "other",
    }
}

// ANCHOR: where_things_live
pub fn where_things_live() -> Result<()> {
    section("The address space of this process, from /proc/self/maps");
    let on_stack = 7u64;
    let on_heap = Box::new(7u64);
    let big = vec![7u8; 4 << 20]; // large blocks: malloc asks mmap for a mapping of their own
    let code = where_things_live as fn() -> Result<()>;
    let wanted = [
        ("a local variable", &on_stack as *const u64 as u64, "stack"),
        ("a small Box", &*on_heap as *const u64 as u64, "heap"),
        ("a 4 MiB Vec", big.as_ptr() as u64, "anonymous mapping"),
        ("this function's code", code as usize as u64, "program code"),
    ];
    // ANCHOR_END: where_things_live
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
        "program data",
        "heap",
        "shared library",
        "anonymous mapping",
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
    finding(
        "from low to high addresses: program code, heap, shared libraries, stack",
        ascending,
        format!(
            "first addresses of program code, heap, libraries, stack: {}",
            fmt_addrs(&starts)
        ),
    );
    Ok(())
}

/// One row of the table: one mapping (the program's data including its `.bss`).
struct Row {
    start: u64,
    end: u64,
    perms: String,
    kind: &'static str,
    name: String,
}

/// /proc/self/maps as rows. Zero-filled data a program declares without a value (its `.bss`) may
/// spill past the last page of the file into an anonymous mapping right after the program's data;
/// whether it does depends on the layout of each build, so that mapping is counted as program data.
fn rows(exe: &str) -> Result<Vec<Row>> {
    let mut rows: Vec<Row> = Vec::new();
    for m in maps()? {
        let (start, end) = m.address;
        let perms = m.perms.as_str();
        let kind = region(&m.pathname, &perms, exe);
        if let Some(last) = rows.last_mut() {
            let bss = kind == "anonymous mapping" && last.kind == "program data";
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

fn fmt_addrs(addrs: &[Option<u64>]) -> String {
    addrs
        .iter()
        .map(|a| a.map_or("none".to_string(), |a| format!("{a:#x}")))
        .collect::<Vec<_>>()
        .join(" < ")
}
