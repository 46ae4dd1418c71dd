//! Linux: `CLOCK_MONOTONIC` stops during suspend, `CLOCK_BOOTTIME` includes it; both are
//! immune to wall-clock steps, so their difference grows by exactly the time suspended.

use super::{ClockError, Readings, posix};

/// Reads `CLOCK_MONOTONIC`, then `CLOCK_BOOTTIME`.
pub(super) fn now() -> Result<Readings, ClockError> {
    let monotonic = posix::read(libc::CLOCK_MONOTONIC, "CLOCK_MONOTONIC")?;
    let reference = posix::read(libc::CLOCK_BOOTTIME, "CLOCK_BOOTTIME")?;
    Ok(Readings { monotonic, reference })
}
