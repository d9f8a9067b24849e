//! Finding this program's own cgroup v2 directory, and a child cgroup of it that is removed on
//! every path (Drop on the normal path, the library's signal handler otherwise).
//!
//! The rules kept here: never create a cgroup outside the program's own, never touch a cgroup v1
//! hierarchy, never change a setting of the program's own cgroup.

use anyhow::{Context, Result};
use nix::unistd::{access, AccessFlags};
use std::ffi::CString;
use std::path::{Path, PathBuf};
use vmbook::cleanup;

// ANCHOR: own_cgroup
/// This process's cgroup v2 directory, if a child cgroup made there can have its own memory.max;
/// otherwise why not.
pub fn memory_cgroup_here() -> Result<PathBuf, String> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    check_cgroup(
        &cgroups,
        &mounts,
        |dir, file| std::fs::read_to_string(dir.join(file)).unwrap_or_default(),
        |dir| access(dir, AccessFlags::W_OK).is_ok(),
    )
}

/// The checks of [`memory_cgroup_here`], given the text of /proc/self/cgroup and
/// /proc/self/mountinfo, a way to read a cgroup's file and to ask whether a directory is writable.
fn check_cgroup(
    cgroups: &str,
    mounts: &str,
    read: impl Fn(&Path, &str) -> String,
    writable: impl Fn(&Path) -> bool,
) -> Result<PathBuf, String> {
    // cgroup v2 is the line "0::/PATH"; v1 hierarchies have their own numbered lines.
    let own = cgroups
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or("this process is in no cgroup v2 hierarchy (/proc/self/cgroup has no 0:: line)")?;
    let memory_on_v1 = mounts.lines().any(|line| {
        line.contains(" - cgroup ") && line.rsplit(' ').next().unwrap_or("").contains("memory")
    });
    // mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ... - FSTYPE SOURCE SUPEROPTIONS".
    let dir = mounts
        .lines()
        .filter(|line| line.contains(" - cgroup2 "))
        .find_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let (root, mountpoint) = (*fields.get(3)?, *fields.get(4)?);
            let rest = own.strip_prefix(root.trim_end_matches('/'))?;
            Some(PathBuf::from(format!(
                "{}{rest}",
                mountpoint.trim_end_matches('/')
            )))
        })
        .ok_or("no cgroup2 filesystem is mounted where this process's cgroup lives")?;
    let controllers = read(&dir, "cgroup.controllers");
    if !controllers.split_whitespace().any(|c| c == "memory") {
        return Err(format!(
            "the memory controller is not available to this cgroup v2 (cgroup.controllers: {}){}",
            if controllers.trim().is_empty() {
                "none"
            } else {
                controllers.trim()
            },
            if memory_on_v1 {
                "; memory is on a cgroup v1 hierarchy"
            } else {
                ""
            }
        ));
    }
    // A child gets memory.max only if this cgroup enables memory for its children. cgroup v2
    // allows that, for a cgroup holding processes (this one holds us), only at the root.
    if !read(&dir, "cgroup.subtree_control")
        .split_whitespace()
        .any(|c| c == "memory")
    {
        return Err(
            "memory is not enabled for child cgroups (cgroup.subtree_control), and a \
                    cgroup that holds processes may not enable it (cgroup v2's no-internal-process \
                    rule)"
                .to_string(),
        );
    }
    if !writable(&dir) {
        return Err("this cgroup is not writable by this user (not root, not delegated)".into());
    }
    Ok(dir)
}
// ANCHOR_END: own_cgroup

/// A child cgroup this program created, removed on drop (and by the signal handler).
pub struct ChildCgroup {
    path: PathBuf,
    slot: Option<usize>,
}

impl ChildCgroup {
    pub fn create(parent: &Path) -> Result<ChildCgroup> {
        let path = parent.join(format!("vmbook-oom-{}", std::process::id()));
        // Recorded before it exists, with the signals held back: no signal can find it unrecorded.
        let blocked = cleanup::block_signals();
        let slot = cleanup::track_dir(&path.to_string_lossy());
        let made = std::fs::create_dir(&path);
        drop(blocked);
        if let Err(e) = made {
            cleanup::untrack_dir(slot);
            return Err(e).with_context(|| format!("mkdir {}", path.display()));
        }
        Ok(ChildCgroup { path, slot })
    }

    pub fn has(&self, file: &str) -> bool {
        self.path.join(file).exists()
    }

    pub fn read(&self, file: &str) -> Result<String> {
        let path = self.path.join(file);
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))
    }

    pub fn write(&self, file: &str, value: &str) -> Result<()> {
        let path = self.path.join(file);
        std::fs::write(&path, value).with_context(|| format!("write {value} to {}", path.display()))
    }

    /// A file that holds one number, such as memory.peak.
    pub fn counter_value(&self, file: &str) -> Result<u64> {
        let text = self.read(file)?;
        text.trim()
            .parse()
            .with_context(|| format!("parse {}: {text:?}", self.path.join(file).display()))
    }

    /// One counter of a flat-keyed file such as memory.events ("oom_kill 1").
    pub fn counter(&self, file: &str, key: &str) -> Result<u64> {
        Ok(self
            .read(file)?
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(' ')?;
                (name == key).then(|| value.trim().parse().ok())?
            })
            .unwrap_or(0))
    }
}

impl Drop for ChildCgroup {
    fn drop(&mut self) {
        if let Ok(path) = CString::new(self.path.as_os_str().as_encoded_bytes()) {
            // SAFETY: a valid C string that lives across the call.
            if !unsafe { cleanup::rmdir_patiently(path.as_ptr()) } {
                eprintln!("warning: could not remove cgroup {}", self.path.display());
            }
        }
        cleanup::untrack_dir(self.slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_AND_V2: &str = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                             41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
    const V2_ONLY: &str = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n";

    fn files<'a>(controllers: &'a str, subtree: &'a str) -> impl Fn(&Path, &str) -> String + 'a {
        move |_, file| match file {
            "cgroup.controllers" => controllers.to_string(),
            "cgroup.subtree_control" => subtree.to_string(),
            _ => String::new(),
        }
    }

    #[test]
    fn refuses_without_a_cgroup_v2_line() {
        let why = check_cgroup("4:memory:/x\n", V1_AND_V2, files("", ""), |_| true).unwrap_err();
        assert!(why.contains("no cgroup v2"), "{why}");
    }

    #[test]
    fn refuses_without_a_cgroup2_mount() {
        let mounts = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let why = check_cgroup("0::/\n", mounts, files("", ""), |_| true).unwrap_err();
        assert!(why.contains("no cgroup2 filesystem"), "{why}");
    }

    #[test]
    fn refuses_when_memory_is_on_v1() {
        let why = check_cgroup("0::/\n", V1_AND_V2, files("hugetlb\n", ""), |_| true).unwrap_err();
        assert!(why.contains("(cgroup.controllers: hugetlb)"), "{why}");
        assert!(why.contains("memory is on a cgroup v1 hierarchy"), "{why}");
    }

    #[test]
    fn refuses_when_children_do_not_get_memory() {
        let read = files("cpu memory pids", "pids");
        let why = check_cgroup("0::/user.slice/a.scope\n", V2_ONLY, read, |_| true).unwrap_err();
        assert!(why.contains("cgroup.subtree_control"), "{why}");
    }

    #[test]
    fn refuses_when_not_writable() {
        let read = files("memory", "memory");
        let why = check_cgroup("0::/\n", V2_ONLY, read, |_| false).unwrap_err();
        assert!(why.contains("not writable"), "{why}");
    }

    #[test]
    fn finds_the_directory_below_the_mount() {
        let read = files("memory", "memory");
        let dir = check_cgroup("0::/a/b\n", V2_ONLY, &read, |_| true).unwrap();
        assert_eq!(dir, PathBuf::from("/sys/fs/cgroup/a/b"));
        let dir = check_cgroup("0::/\n", V2_ONLY, &read, |_| true).unwrap();
        assert_eq!(dir, PathBuf::from("/sys/fs/cgroup/"));
        // Mounted from inside a cgroup namespace: the mount's root is a cgroup, not "/".
        let mounts = "30 23 0:26 /a /mnt/cg rw - cgroup2 cgroup2 rw\n";
        let dir = check_cgroup("0::/a/b\n", mounts, &read, |_| true).unwrap();
        assert_eq!(dir, PathBuf::from("/mnt/cg/b"));
    }
}
