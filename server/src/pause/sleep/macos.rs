//! macOS: `CLOCK_UPTIME_RAW` (mach absolute time) stops during sleep; the wall clock keeps
//! going but can be stepped by NTP, which is why `pmset -g log` is consulted as well.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{ClockError, Readings, paired, posix};

/// Reads `CLOCK_UPTIME_RAW` and the wall clock since the Unix epoch as one instant.
pub(super) fn now() -> Result<Readings, ClockError> {
    paired(
        || posix::read(libc::CLOCK_UPTIME_RAW, "CLOCK_UPTIME_RAW"),
        || SystemTime::now().duration_since(UNIX_EPOCH).map_err(|_| ClockError::WallBeforeEpoch),
    )
}
