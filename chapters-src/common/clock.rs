//! The two clocks the chapters read by hand: CLOCK_MONOTONIC, to compare times taken in
//! different processes, and CLOCK_REALTIME, the clock that POSIX timed waits (sem_timedwait,
//! pthread_mutex_timedlock, mq_timedreceive) take their absolute deadlines on.

use nix::sys::time::TimeSpec;
use nix::time::{clock_gettime, ClockId};
use std::time::Duration;

/// CLOCK_MONOTONIC in nanoseconds: one clock for every process on the machine, so a time taken
/// in one process can be subtracted from a time taken in another.
pub fn monotonic_ns() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC exists on Linux");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

/// The absolute CLOCK_REALTIME time `after` from now, as the POSIX timed waits want their
/// deadline (`.as_ref()` gives the `libc::timespec`). CLOCK_REALTIME can jump (settimeofday,
/// NTP): a wait may then end early or late, which is why those calls' deadlines are only a
/// safety net here, never a measurement.
pub fn realtime_deadline(after: Duration) -> TimeSpec {
    let now = clock_gettime(ClockId::CLOCK_REALTIME).expect("CLOCK_REALTIME exists on Linux");
    now + TimeSpec::from(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_lies_ahead_by_the_wait() {
        let before = clock_gettime(ClockId::CLOCK_REALTIME).unwrap();
        let deadline = realtime_deadline(Duration::from_millis(1500));
        let ahead = Duration::from(deadline) - Duration::from(before);
        assert!(ahead >= Duration::from_millis(1500) && ahead < Duration::from_secs(60));
        assert!((0..1_000_000_000).contains(&deadline.tv_nsec()));
    }
}
