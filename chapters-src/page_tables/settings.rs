//! What the experiments read about this machine: the transparent huge page mode, the
//! CPU's flags, the hugetlb pool in /proc/meminfo, one process's VmPTE.

use anyhow::{Context, Result};
use procfs::Current;

/// The transparent huge page mode (`always`, `madvise`, `never`, `unavailable`).
pub fn thp_mode() -> String {
    vmbook::procinfo::thp_setting("enabled")
}

/// Whether the first CPU in /proc/cpuinfo lists `flag` (x86: `la57`, `nx`, `pdpe1gb`).
pub fn cpu_flag(flag: &str) -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|line| line.starts_with("flags"))
        .is_some_and(|line| line.split_whitespace().any(|f| f == flag))
}

/// The hugetlb pool, from /proc/meminfo: total, free, reserved, surplus pages; page size in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    pub total: u64,
    pub free: u64,
    pub reserved: u64,
    pub surplus: u64,
    pub page: u64,
}

pub fn hugetlb_pool() -> Result<Pool> {
    let m = procfs::Meminfo::current().context("read /proc/meminfo")?;
    Ok(Pool {
        total: m.hugepages_total.unwrap_or(0),
        free: m.hugepages_free.unwrap_or(0),
        reserved: m.hugepages_rsvd.unwrap_or(0),
        surplus: m.hugepages_surp.unwrap_or(0),
        page: m.hugepagesize.unwrap_or(0),
    })
}

impl std::fmt::Display for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HugePages_Total {}, HugePages_Free {}, HugePages_Rsvd {}, HugePages_Surp {}",
            self.total, self.free, self.reserved, self.surplus
        )
    }
}

/// VmPTE of this process: the memory its page tables take, in bytes.
pub fn vm_pte() -> Result<u64> {
    let status = procfs::process::Process::myself()
        .and_then(|p| p.status())
        .context("read /proc/self/status")?;
    Ok(status.vmpte.context("VmPTE missing in /proc/self/status")? * 1024)
}

/// A number read from a file such as /proc/sys/vm/nr_hugepages.
pub fn read_number(path: &str) -> Result<u64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {path}"))?;
    text.trim()
        .parse()
        .with_context(|| format!("{path}: not a number: {text:?}"))
}
