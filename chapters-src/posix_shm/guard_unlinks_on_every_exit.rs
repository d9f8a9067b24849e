//! The library's guard (seed 003's class, done right) unlinks the name on every way out of a
//! scope: its end, an error returned with `?`, a panic.

use crate::names::in_dev_shm;
use anyhow::{bail, Result};
use vmbook::{finding, section, ShmObject};

// ANCHOR: guard_unlinks_on_every_exit
pub fn guard_unlinks_on_every_exit() -> Result<()> {
    section("The guard unlinks its name on every way out of a scope");
    let mut rows = Vec::new();
    let existed;
    let mut name = {
        let object = ShmObject::create(4096)?;
        existed = in_dev_shm(object.name()).exists();
        object.name().to_string()
    }; // Drop: munmap, close, shm_unlink
    rows.push(("the scope ends", existed && !in_dev_shm(&name).exists()));
    let failing = |name: &mut String| -> Result<()> {
        let object = ShmObject::create(4096)?;
        *name = object.name().to_string();
        bail!("something went wrong while {} existed", object.name()); // Drop runs here too
    };
    let _ = failing(&mut name);
    rows.push(("an error returns early (?)", !in_dev_shm(&name).exists()));
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {})); // the panic below is on purpose: don't print it
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let object = ShmObject::create(4096).expect("create");
        name = object.name().to_string();
        panic!("a bug while the object exists"); // unwinding drops it
    }));
    std::panic::set_hook(previous);
    rows.push(("a panic unwinds", !in_dev_shm(&name).exists()));
    // ANCHOR_END: guard_unlinks_on_every_exit
    for (how, gone) in &rows {
        println!("{how:<30} name removed from /dev/shm afterwards: {gone}");
    }
    let all = rows.iter().all(|r| r.1);
    finding(
        "Drop removes the name whether the scope ends, returns an error, or panics",
        all,
        format!(
            "{} of {} cases",
            rows.iter().filter(|r| r.1).count(),
            rows.len()
        ),
    );
    Ok(())
}
