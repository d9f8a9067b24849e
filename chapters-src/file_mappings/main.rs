//! Chapter 6, "File mappings and the page cache": a file in memory. MAP_SHARED stores seen by read(2)
//! at once; dirty pages, writeback and msync; MAP_PRIVATE copy-on-write of a file; major faults
//! after dropping the page cache; SIGBUS past the end of a file; and memfd, shared memory with no
//! name, sealed and passed over a Unix socket.

mod dirty_until_written_back;
mod file_map;
mod major_faults_wait_for_the_disk;
mod memfd_creator;
mod memfd_leaves_nothing;
mod memfd_receiver;
mod private_mapping_copies_on_write;
mod scratch;
mod shared_stores_seen_by_read;
mod sigbus_past_end_of_file;

use clap::{Args, Subcommand};
use dirty_until_written_back::dirty_until_written_back;
use major_faults_wait_for_the_disk::major_faults_wait_for_the_disk;
use memfd_leaves_nothing::memfd_leaves_nothing;
use memfd_receiver::memfd_receiver;
use private_mapping_copies_on_write::private_mapping_copies_on_write;
use scratch::Scratch;
use shared_stores_seen_by_read::{read_child, shared_stores_seen_by_read};
use sigbus_past_end_of_file::sigbus_past_end_of_file;
use std::path::PathBuf;
use std::process::ExitCode;
use vmbook::chapter::pages_up_to;

/// At most 256 Ki pages (1 GiB with 4 KiB pages) in a file.
const MAX_PAGES: usize = 1 << 18;

/// Chapter 6 of the book, "File mappings and the page cache": a file mapped MAP_SHARED and read
/// with read(2), dirty pages and msync, MAP_PRIVATE of a file, major faults, SIGBUS past the end
/// of a file, and memfd with seals passed over a Unix socket. The files it makes have no name and
/// vanish with the program, however it ends.
#[derive(Subcommand)]
enum Experiment {
    /// Store into a MAP_SHARED mapping of a file; an exec'd process reads the file with read(2).
    Shared {
        /// How many pages the file holds.
        #[arg(long, default_value_t = 2, value_parser = pages_up_to(MAX_PAGES))]
        pages: usize,
    },
    /// Store into every page: dirty pages in smaps, then msync(MS_SYNC) and fsync.
    Dirty {
        /// How many pages to store into.
        #[arg(long, default_value_t = 16, value_parser = pages_up_to(MAX_PAGES))]
        pages: usize,
    },
    /// Map a file MAP_PRIVATE: shared page-cache pages until a store copies one.
    Private {
        /// How many pages the file holds.
        #[arg(long, default_value_t = 4, value_parser = pages_up_to(MAX_PAGES))]
        pages: usize,
    },
    /// Drop the file's pages from the page cache, read the mapping: major faults, readahead.
    Major {
        /// How many pages the file holds (each is read from the disk at least once).
        #[arg(long, default_value_t = 256, value_parser = pages_up_to(MAX_PAGES))]
        pages: usize,
    },
    /// Truncate a mapped file, and map a file longer than it is: SIGBUS in a child.
    Sigbus,
    /// memfd_create, seals, SCM_RIGHTS to an exec'd receiver; SIGKILL the creator.
    Memfd {
        /// The memfd's size in bytes.
        #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(64..=1 << 30))]
        size: u64,
    },
}

// Where the files go, for every experiment. (A plain comment: clap would take a doc comment for
// the program's `--help` text.)
#[derive(Args)]
struct Files {
    /// Make the files in DIR (default: the first of $TMPDIR, /var/tmp, /tmp on a disk).
    #[arg(long, global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// The roles this program is started again in (`file-mappings child ROLE`).
#[derive(Subcommand)]
enum Role {
    /// (Used by `shared`.) Read the file on stdin with pread, map it, report.
    Read { len: usize },
    /// (Used by `memfd`.) Receive the memfd over the socket on stdin, map it, try to change it.
    MemfdReceiver,
}

fn main() -> ExitCode {
    vmbook::chapter::main_with_options(
        |experiment: Experiment, files: &Files| {
            let scratch = || Scratch::choose(files.dir.as_deref());
            match experiment {
                Experiment::Shared { pages } => shared_stores_seen_by_read(&scratch()?, pages),
                Experiment::Dirty { pages } => dirty_until_written_back(&scratch()?, pages),
                Experiment::Private { pages } => {
                    private_mapping_copies_on_write(&scratch()?, pages)
                }
                Experiment::Major { pages } => major_faults_wait_for_the_disk(&scratch()?, pages),
                Experiment::Sigbus => sigbus_past_end_of_file(&scratch()?),
                Experiment::Memfd { size } => memfd_leaves_nothing(size as usize),
            }
            .map(|()| ExitCode::SUCCESS)
        },
        |role: Role, _: &Files| match role {
            Role::Read { len } => read_child(len),
            Role::MemfdReceiver => memfd_receiver(),
        },
    )
}
