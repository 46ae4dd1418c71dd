//! Linux: `CLOCK_MONOTONIC` stops during suspend, `CLOCK_BOOTTIME` includes it; both are
//! immune to wall-clock steps, so their difference grows by exactly the time suspended.

use super::{ClockError, Readings, paired, posix};

/// Reads `CLOCK_MONOTONIC` and `CLOCK_BOOTTIME` as one instant.
pub(super) fn now() -> Result<Readings, ClockError> {
    paired(
        || posix::read(libc::CLOCK_MONOTONIC, "CLOCK_MONOTONIC"),
        || posix::read(libc::CLOCK_BOOTTIME, "CLOCK_BOOTTIME"),
    )
}
