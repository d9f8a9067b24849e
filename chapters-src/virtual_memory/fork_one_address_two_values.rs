//! One virtual address, two values: the child's write stays in the child.

use anyhow::{ensure, Context, Result};
use nix::unistd::{pipe, read, write};
use vmbook::process::{fork_child, wait_exit_code};
use vmbook::{finding, section};

// ANCHOR: fork_one_address_two_values
pub fn fork_one_address_two_values() -> Result<()> {
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
    // ANCHOR_END: fork_one_address_two_values
    finding(
        "after fork, one virtual address holds different values in parent and child",
        child_addr == addr && child_value == 2 && parent_value == 1,
        format!("address {addr:#x} in both; child read {child_value}, parent read {parent_value}"),
    );
    Ok(())
}
