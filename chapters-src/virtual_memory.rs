//! Chapter 1, "Virtual memory": every address a program uses is virtual, private to its process,
//! and backed by RAM only where it has been touched.

use anyhow::{ensure, Context, Result};
use clap::{Parser, Subcommand};
use nix::sys::mman::MapFlags;
use nix::unistd::{pipe, read, write};
use procfs::process::MMapPath;
use procfs::Current;
use std::process::{Command, Stdio};
use vmbook::process::{fork_child, spawn_tracked, wait_exit_code, wait_spawned};
use vmbook::procinfo::{describe, maps, vm_counters};
use vmbook::{banner, bytes, finding, kb, section, Mapping};

/// Chapter 1 of the book, "Virtual memory": this process's own address space, one address holding
/// two values in two processes, address space reserved far beyond RAM, and ASLR.
#[derive(Parser)]
#[command(version)]
struct Options {
    #[command(subcommand)]
    experiment: Option<Experiment>,
    /// Stop at each experiment, print this process's pid and what to inspect, wait for Enter.
    #[arg(long, global = true)]
    pause: bool,
}

#[derive(Subcommand)]
enum Experiment {
    /// List /proc/self/maps and find the mapping that holds each kind of variable.
    Maps,
    /// Fork; the child writes a variable; both print what they see at its address.
    Fork,
    /// Reserve address space with MAP_NORESERVE, then touch part of it: VmSize vs VmRSS.
    Reserve {
        /// How much address space to reserve, in GiB.
        #[arg(long, default_value_t = 1024)]
        reserve_gib: u64,
        /// How much of it to touch afterwards, in MiB.
        #[arg(long, default_value_t = 16)]
        touch_mib: u64,
    },
    /// Start this program again a few times and compare where stack, heap and mappings land.
    Aslr {
        /// How many fresh processes to start.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(2..=100))]
        runs: u32,
    },
    /// (Used by `aslr`.) Print this process's stack, heap, mmap and code addresses, and exit.
    #[command(hide = true)]
    AslrProbe,
}

fn main() -> std::process::ExitCode {
    let options = Options::parse();
    vmbook::pause::enable(options.pause);
    vmbook::run(|| match options.experiment {
        Some(Experiment::AslrProbe) => aslr_probe(),
        Some(experiment) => {
            banner();
            run(experiment)
        }
        None => {
            banner();
            run(Experiment::Maps)?;
            run(Experiment::Fork)?;
            run(Experiment::Reserve {
                reserve_gib: 1024,
                touch_mib: 16,
            })?;
            run(Experiment::Aslr { runs: 4 })
        }
    })
}

fn run(experiment: Experiment) -> Result<()> {
    match experiment {
        Experiment::Maps => where_things_live(),
        Experiment::Fork => one_address_two_values(),
        Experiment::Reserve {
            reserve_gib,
            touch_mib,
        } => reserve_more_than_ram(reserve_gib, touch_mib),
        Experiment::Aslr { runs } => layout_moves_every_run(runs),
        Experiment::AslrProbe => aslr_probe(),
    }
}

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
fn where_things_live() -> Result<()> {
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
    let maps = maps()?;
    println!(
        "{:<37} {:<5} {:>10}  {:<18} holds",
        "range", "perms", "size", "region"
    );
    let mut found = Vec::new();
    for m in &maps {
        let perms = m.perms.as_str();
        let kind = region(&m.pathname, &perms, &exe);
        let (start, end) = m.address;
        let here: Vec<&str> = wanted
            .iter()
            .filter(|(_, addr, _)| (start..end).contains(addr))
            .map(|(what, _, _)| *what)
            .collect();
        for (what, _, expected) in wanted.iter().filter(|w| here.contains(&w.0)) {
            found.push((*what, kind, *expected));
        }
        println!(
            "{:<37} {:<5} {:>10}  {:<18} {}{}",
            format!("{start:#x}-{end:#x}"),
            perms,
            kb(end - start),
            kind,
            describe(&m.pathname),
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
        let total: u64 = maps
            .iter()
            .filter(|m| region(&m.pathname, &m.perms.as_str(), &exe) == kind)
            .map(|m| m.address.1 - m.address.0)
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
        maps.iter()
            .filter(|m| region(&m.pathname, &m.perms.as_str(), &exe) == kind)
            .map(|m| m.address.0)
            .min()
    };
    let order = ["program code", "heap", "shared library", "stack"];
    let starts: Vec<Option<u64>> = order.iter().map(|k| lowest(k)).collect();
    let ascending = starts.iter().all(Option::is_some) && starts.windows(2).all(|w| w[0] < w[1]);
    finding(
        "from low to high addresses: program, heap, libraries and mappings, stack",
        ascending,
        format!("lowest starts {}", fmt_addrs(&starts)),
    );
    Ok(())
}

fn fmt_addrs(addrs: &[Option<u64>]) -> String {
    addrs
        .iter()
        .map(|a| a.map_or("none".to_string(), |a| format!("{a:#x}")))
        .collect::<Vec<_>>()
        .join(" < ")
}

// ANCHOR: one_address_two_values
fn one_address_two_values() -> Result<()> {
    section("One address, two processes");
    let mut value = Box::new(1u64);
    let addr = &*value as *const u64 as usize;
    println!("parent: before fork, the value at {addr:#x} is {}", *value);
    let (from_child, to_parent) = pipe().context("pipe")?;
    let child = fork_child(|| {
        *value = 2; // the child's write ...
        let seen = std::hint::black_box(*value);
        println!(
            "child:  I wrote 2 at {:#x} and read back {seen}",
            &*value as *const u64 as usize
        );
        vmbook::pause::here(
            "this is the child; it has written 2, its parent still holds 1",
            &[
                "ps -o pid,ppid,stat,cmd --pid PID --ppid PID",
                "cat /proc/PID/maps",
            ],
        );
        let report = [
            (&*value as *const u64 as usize as u64).to_ne_bytes(),
            seen.to_ne_bytes(),
        ];
        i32::from(write(&to_parent, report.as_flattened()).is_err())
    })?;
    drop(to_parent);
    let mut report = [0u8; 16];
    let got = read(&from_child, &mut report).context("read from the child's pipe")?;
    ensure!(
        wait_exit_code(child)? == 0 && got == 16,
        "the child did not report back"
    );
    let child_addr = u64::from_ne_bytes(report[..8].try_into()?) as usize;
    let child_value = u64::from_ne_bytes(report[8..].try_into()?);
    let parent_value = std::hint::black_box(*value); // ... is not seen here
    println!("parent: after the child exited, the value at {addr:#x} is {parent_value}");
    // ANCHOR_END: one_address_two_values
    finding(
        "after fork, one virtual address holds different values in parent and child",
        child_addr == addr && child_value == 2 && parent_value == 1,
        format!("address {addr:#x} in both; child read {child_value}, parent read {parent_value}"),
    );
    Ok(())
}

// ANCHOR: reserve_more_than_ram
fn reserve_more_than_ram(reserve_gib: u64, touch_mib: u64) -> Result<()> {
    section("Reserving address space is not using memory");
    let ram = procfs::Meminfo::current()
        .context("read /proc/meminfo")?
        .mem_total;
    let reserve = reserve_gib << 30;
    let touch = touch_mib << 20;
    ensure!(
        touch <= reserve,
        "--touch-mib must not exceed --reserve-gib"
    );
    let before = vm_counters()?;
    let mut region = Mapping::anonymous(
        reserve as usize,
        MapFlags::MAP_PRIVATE | MapFlags::MAP_NORESERVE,
        "MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE",
    )?;
    let reserved = vm_counters()?;
    let page = vmbook::procinfo::page_size();
    for offset in (0..touch as usize).step_by(page) {
        region.bytes_mut()[offset] = 1; // one write per page is enough to make it resident
    }
    let touched = vm_counters()?;
    // ANCHOR_END: reserve_more_than_ram
    vmbook::pause::here(
        "the reservation exists and its first pages are touched",
        &[
            "grep -E 'VmSize|VmRSS' /proc/PID/status",
            "cat /proc/PID/smaps_rollup",
        ],
    );
    println!("RAM in this machine (MemTotal): {}", kb(ram));
    println!("{:<34} {:>16} {:>12}", "", "VmSize", "VmRSS");
    for (label, c) in [
        ("before mmap".to_string(), before),
        (format!("after mmap of {}", bytes(reserve)), reserved),
        (format!("after touching {}", bytes(touch)), touched),
    ] {
        println!("{label:<34} {:>16} {:>12}", kb(c.size), kb(c.rss));
    }
    let size_growth = reserved.size.saturating_sub(before.size);
    let rss_growth_at_mmap = reserved.rss.saturating_sub(before.rss);
    let rss_growth_at_touch = touched.rss.saturating_sub(reserved.rss);
    finding(
        "the reservation is larger than this machine's RAM",
        reserve > ram,
        format!("reserved {}, MemTotal {}", bytes(reserve), kb(ram)),
    );
    finding(
        "mmap grows VmSize by the size reserved",
        size_growth >= reserve && size_growth < reserve + (1 << 20),
        format!("VmSize grew by {}", kb(size_growth)),
    );
    finding(
        "mmap alone leaves VmRSS unchanged (within 1 MiB)",
        rss_growth_at_mmap < 1 << 20,
        format!("VmRSS grew by {}", kb(rss_growth_at_mmap)),
    );
    // With transparent huge pages in "always" mode a touch may bring in a whole 2 MiB page.
    finding(
        "touching pages grows VmRSS by what was touched (up to one huge page more)",
        rss_growth_at_touch >= touch * 9 / 10 && rss_growth_at_touch <= touch + (2 << 20),
        format!(
            "touched {}, VmRSS grew by {}",
            bytes(touch),
            kb(rss_growth_at_touch)
        ),
    );
    Ok(())
}

/// The addresses `aslr` compares, printed by a fresh process: stack, heap, mmap, code.
fn aslr_probe() -> Result<()> {
    let on_stack = 0u8;
    let on_heap = Box::new(0u8);
    let mapping = Mapping::private(4096)?;
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

// ANCHOR: layout_moves_every_run
fn layout_moves_every_run(runs: u32) -> Result<()> {
    section("Address space layout randomization (ASLR)");
    let setting = std::fs::read_to_string("/proc/sys/kernel/randomize_va_space")
        .context("read /proc/sys/kernel/randomize_va_space")?;
    let setting: u32 = setting.trim().parse().context("parse randomize_va_space")?;
    let exe = std::env::current_exe().context("find this program's path")?;
    let mut samples: Vec<[usize; 4]> = Vec::new();
    for _ in 0..runs {
        let probe = spawn_tracked(Command::new(&exe).arg("aslr-probe").stdout(Stdio::piped()))?;
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
    // ANCHOR_END: layout_moves_every_run
    let meaning = match setting {
        0 => "off: every process gets the same layout",
        1 => "stack, mmap area and vdso randomized; heap (brk) not",
        2 => "stack, mmap area, vdso and heap (brk) randomized",
        _ => "an unknown value",
    };
    println!("/proc/sys/kernel/randomize_va_space = {setting} ({meaning})");
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
    match setting {
        0 => finding(
            "with ASLR off, every run gets the same addresses",
            counts.iter().all(|&c| c == 1),
            evidence,
        ),
        1 => finding(
            "with randomize_va_space=1, stack and mmap move every run",
            counts[0] == n && counts[2] == n,
            evidence,
        ),
        _ => finding(
            "with randomize_va_space=2, stack, heap, mmap area and code move every run",
            counts.iter().all(|&c| c == n),
            evidence,
        ),
    }
    Ok(())
}
