//! Where a shared-memory object's name shows up: as a file in /dev/shm (a tmpfs).

use std::path::PathBuf;

pub fn in_dev_shm(name: &str) -> PathBuf {
    PathBuf::from(format!("/dev/shm{name}"))
}
