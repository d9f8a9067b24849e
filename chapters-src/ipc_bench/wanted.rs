//! What the reader asked for, narrowed to what this machine allows: the placements (two cores only
//! where this process may use two CPUs) and whether POSIX message queues can be measured at all.

use crate::pair::{cpu_pair, Placement};
use crate::stream;
use crate::Where;
use anyhow::Result;

/// The placements asked for; two cores only where this process may use two CPUs.
pub fn placements(wanted: Where) -> Result<Vec<Placement>> {
    let pair = cpu_pair()?;
    let mut list = Vec::new();
    if wanted != Where::TwoCores {
        list.push(Placement::OneCore);
    }
    if wanted != Where::OneCore {
        if pair.second.is_some() {
            list.push(Placement::TwoCores);
        }
        if let Some(caveat) = pair.caveat() {
            println!("note: {caveat}");
        }
    }
    Ok(list)
}

/// Why the two-core findings cannot be checked here: `Some` when two cores were asked for and this
/// process may run on one CPU only.
pub fn no_second_cpu(wanted: Where) -> Result<Option<String>> {
    let pair = cpu_pair()?;
    Ok(match (wanted, pair.second) {
        (Where::OneCore, _) | (_, Some(_)) => None,
        _ => pair.caveat(),
    })
}

/// Whether this machine lets us create message queues (some containers forbid them).
pub fn mqueue_works() -> Result<(), String> {
    stream::open_queue(1, 8)
        .map(drop)
        .map_err(|e| format!("{e:#}"))
}
