//! The settings of this machine that legitimately change what the book's programs print.
//!
//! The book is rebuilt on the reader's machine. Every output was written against one configuration
//! (root with CAP_SYS_ADMIN, transparent huge pages in `madvise` mode, several CPUs, …), and readers
//! have others. This module names each difference that matters, detects it from the kernel's own
//! files (never from what a chapter program concluded), and renders it two ways:
//!
//! - [`Environment::facts`]: `key = value` pairs that the snapshot tests compare with the reference
//!   configuration recorded in `tests/environments.toml`, and
//! - [`Environment::describe`]: the lines the `machine` program prints into the book, so that a
//!   reader of the published site knows which machine produced its numbers.
//!
//! | key            | read from                                                        |
//! |----------------|------------------------------------------------------------------|
//! | `kernel`       | `uname -r`, major.minor                                          |
//! | `arch`         | `uname -m`                                                       |
//! | `page-size`    | `sysconf(_SC_PAGESIZE)`                                          |
//! | `pmd-size`     | `/sys/kernel/mm/transparent_hugepage/hpage_pmd_size`             |
//! | `thp`          | the `[mode]` in `/sys/kernel/mm/transparent_hugepage/enabled`    |
//! | `frames`       | CAP_SYS_ADMIN in the initial user namespace (what pagemap checks) |
//! | `user`         | the effective uid: `root` or `ordinary`                          |
//! | `cpus`         | `sched_getaffinity`: `one` or `several`                          |
//! | `valgrind`     | `valgrind --version` runs                                        |
//! | `swap`         | an active device or file in `/proc/swaps`                        |
//! | `aslr`         | `randomize_va_space` and the ADDR_NO_RANDOMIZE personality bit   |
//! | `memcg`        | a cgroup v2 memory controller this process's cgroup may use      |
//! | `hugetlb-pool` | `HugePages_Total` in `/proc/meminfo`: `empty` or `reserved`      |

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

/// `PROC_USER_INIT_INO`: the inode number of the initial user namespace (include/linux/proc_ns.h).
const INITIAL_USER_NAMESPACE: &str = "user:[4026531837]";
/// `ADDR_NO_RANDOMIZE` in `personality(2)`: set by `setarch -R`.
const ADDR_NO_RANDOMIZE: u64 = 0x0040000;
/// CAP_SYS_ADMIN's bit in the capability sets of `/proc/self/status`.
const CAP_SYS_ADMIN: u32 = 21;

/// What this machine and this process look like to the book's programs.
#[derive(Clone, Debug)]
pub struct Environment {
    pub kernel_release: String,
    pub arch: String,
    pub page_size: usize,
    /// The transparent huge page size (one PMD), if THP is built in.
    pub pmd_size: Option<u64>,
    /// `always`, `madvise`, `never`, or `unavailable`.
    pub thp: String,
    /// Physical frame numbers are readable in `/proc/PID/pagemap`.
    pub frames_visible: bool,
    pub root: bool,
    pub cpus: usize,
    /// `valgrind --version`, if valgrind runs.
    pub valgrind: Option<String>,
    /// Active swap, in kB.
    pub swap_kb: u64,
    /// `/proc/sys/kernel/randomize_va_space`.
    pub randomize_va_space: Option<u32>,
    /// This process runs with the ADDR_NO_RANDOMIZE personality (`setarch -R`).
    pub no_randomize_personality: bool,
    /// Why a memory cgroup v2 child can (Ok) or cannot (Err) be made under this process's cgroup.
    pub memcg: Result<String, String>,
    pub hugetlb_pages: u64,
}

impl Environment {
    /// Reads every setting from the kernel.
    pub fn detect() -> Environment {
        let uname = nix::sys::utsname::uname().ok();
        let text = |p: &str| std::fs::read_to_string(p).ok();
        Environment {
            kernel_release: uname
                .as_ref()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            arch: uname
                .as_ref()
                .map(|u| u.machine().to_string_lossy().into_owned())
                .unwrap_or_default(),
            page_size: crate::procinfo::page_size(),
            pmd_size: crate::procinfo::thp_size().map(|size| size as u64),
            thp: crate::procinfo::thp_setting("enabled"),
            frames_visible: frames_visible(),
            root: nix::unistd::geteuid().is_root(),
            cpus: usable_cpus(),
            valgrind: valgrind_version(),
            swap_kb: swap_kb(),
            randomize_va_space: text("/proc/sys/kernel/randomize_va_space")
                .and_then(|s| s.trim().parse().ok()),
            no_randomize_personality: text("/proc/self/personality")
                .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
                .is_some_and(|p| p & ADDR_NO_RANDOMIZE != 0),
            memcg: memory_cgroup(),
            hugetlb_pages: meminfo("HugePages_Total").unwrap_or(0),
        }
    }

    /// `(key, value)` for every setting the snapshot tests compare (see the table above).
    pub fn facts(&self) -> Vec<(&'static str, String)> {
        let kernel: Vec<&str> = self.kernel_release.split(['.', '-']).take(2).collect();
        let aslr = match (self.no_randomize_personality, self.randomize_va_space) {
            (true, _) | (false, Some(0)) => "off",
            (false, Some(1)) => "partial",
            (false, Some(2)) => "full",
            _ => "unknown",
        };
        let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
        vec![
            ("kernel", kernel.join(".")),
            ("arch", self.arch.clone()),
            ("page-size", self.page_size.to_string()),
            (
                "pmd-size",
                self.pmd_size.map_or("none".into(), |s| s.to_string()),
            ),
            ("thp", self.thp.clone()),
            (
                "frames",
                if self.frames_visible {
                    "visible"
                } else {
                    "hidden"
                }
                .into(),
            ),
            ("user", if self.root { "root" } else { "ordinary" }.into()),
            ("cpus", if self.cpus > 1 { "several" } else { "one" }.into()),
            ("valgrind", yes_no(self.valgrind.is_some())),
            ("swap", yes_no(self.swap_kb > 0)),
            ("aslr", aslr.into()),
            ("memcg", yes_no(self.memcg.is_ok())),
            (
                "hugetlb-pool",
                if self.hugetlb_pages > 0 {
                    "reserved"
                } else {
                    "empty"
                }
                .into(),
            ),
        ]
    }

    /// The lines the `machine` program prints: what produced the outputs a reader is looking at.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let mut line = |key: &str, value: String| {
            let _ = writeln!(out, "machine.{key}: {value}");
        };
        line("kernel", format!("Linux {}", self.kernel_release));
        line("architecture", self.arch.clone());
        line("usable CPUs", self.cpus.to_string());
        line("page size", format!("{} bytes", self.page_size));
        line(
            "transparent huge pages",
            match self.pmd_size {
                Some(size) => format!("{} mode, {} KiB each", self.thp, size / 1024),
                None => self.thp.clone(),
            },
        );
        line(
            "physical frame numbers",
            if self.frames_visible {
                "visible (CAP_SYS_ADMIN in the initial user namespace)".into()
            } else {
                "hidden (no CAP_SYS_ADMIN in the initial user namespace)".into()
            },
        );
        line(
            "user",
            if self.root {
                "root".into()
            } else {
                "an ordinary user".into()
            },
        );
        line(
            "valgrind",
            self.valgrind.clone().unwrap_or_else(|| "not found".into()),
        );
        line(
            "swap",
            if self.swap_kb > 0 {
                format!("{} MiB active", self.swap_kb / 1024)
            } else {
                "none".into()
            },
        );
        line(
            "address randomization",
            format!(
                "randomize_va_space={}{}",
                self.randomize_va_space
                    .map_or("unknown".into(), |v| v.to_string()),
                if self.no_randomize_personality {
                    ", off for this process (ADDR_NO_RANDOMIZE personality)"
                } else {
                    ""
                }
            ),
        );
        line(
            "memory cgroup v2",
            match &self.memcg {
                Ok(how) => format!("usable ({how})"),
                Err(why) => format!("not usable ({why})"),
            },
        );
        line(
            "hugetlb pool",
            format!("{} pages reserved", self.hugetlb_pages),
        );
        out
    }
}

/// Whether pagemap will show frame numbers to this process: the kernel requires CAP_SYS_ADMIN in
/// the initial user namespace of whoever opens the file (fs/proc/task_mmu.c, `pagemap_open`).
fn frames_visible() -> bool {
    let in_initial_namespace = std::fs::read_link("/proc/self/ns/user")
        .map(|link| link.to_string_lossy() == INITIAL_USER_NAMESPACE)
        .unwrap_or(false);
    let effective = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(0);
    in_initial_namespace && effective & (1 << CAP_SYS_ADMIN) != 0
}

/// How many CPUs this process may run on (its affinity mask).
pub fn usable_cpus() -> usize {
    nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .map(|set| {
            (0..nix::sched::CpuSet::count())
                .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
                .count()
        })
        .unwrap_or(1)
}

/// `valgrind --version`, run as a tracked child: a Ctrl-C during the run kills and reaps it too.
fn valgrind_version() -> Option<String> {
    let child = crate::process::spawn_tracked(
        Command::new("valgrind")
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )
    .ok()?;
    let out = crate::process::wait_spawned(child).ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Active swap in kB: the Size column of `/proc/swaps`, summed.
fn swap_kb() -> u64 {
    std::fs::read_to_string("/proc/swaps")
        .map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0)
}

/// A field of `/proc/meminfo`, without its unit.
pub fn meminfo(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Whether a child cgroup with a memory limit can be made under this process's own cgroup: cgroup
/// v2 (`0::/PATH` in /proc/self/cgroup), its mount found in mountinfo, `memory` among the
/// controllers the cgroup offers, and the directory writable by this process.
pub fn memory_cgroup() -> Result<String, String> {
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("read /proc/self/cgroup: {e}"))?;
    let path = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("this process is in no cgroup v2 hierarchy")?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("read /proc/self/mountinfo: {e}"))?;
    let mount = mounts
        .lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            right
                .starts_with("cgroup2 ")
                .then(|| left.split_whitespace().nth(4).map(str::to_string))?
        })
        .ok_or("no cgroup2 file system is mounted")?;
    let dir = Path::new(&mount).join(path.trim_start_matches('/'));
    let offered = std::fs::read_to_string(dir.join("cgroup.controllers"))
        .map_err(|e| format!("read {}: {e}", dir.join("cgroup.controllers").display()))?;
    if !offered.split_whitespace().any(|c| c == "memory") {
        return Err(format!(
            "the cgroup v2 hierarchy at {} offers no memory controller here (controllers: {})",
            dir.display(),
            if offered.trim().is_empty() {
                "none"
            } else {
                offered.trim()
            }
        ));
    }
    nix::unistd::access(&dir, nix::unistd::AccessFlags::W_OK)
        .map_err(|e| format!("{} is not writable: {e}", dir.display()))?;
    Ok(format!("under {}", dir.display()))
}
