//! What the chapter programs share: the output conventions of the book (command line, findings,
//! sizes), one error convention, readers for `/proc/self`, mappings and a POSIX shared-memory guard
//! that clean up after themselves, and a fork helper for single-threaded programs.
//!
//! A helper lives here only when two chapters use it; anything a chapter teaches stays in the
//! chapter's own file, where the reader can see it next to the prose.

pub mod book;
pub mod chapter;
pub mod chart;
pub mod cleanup;
pub mod clock;
pub mod environment;
pub mod fail;
pub mod figure;
pub mod futex;
pub mod mapping;
pub mod measure;
pub mod numbers;
pub mod output;
pub mod pause;
pub mod process;
pub mod procinfo;
pub mod shm;

pub use fail::run;
pub use mapping::Mapping;
pub use output::{banner, bytes, finding, kb, not_checked, section};
pub use shm::ShmObject;
