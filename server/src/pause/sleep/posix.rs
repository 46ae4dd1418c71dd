//! `clock_gettime(2)`, the one call both supported platforms read their clocks with.

use std::time::Duration;

use super::ClockError;

/// Reads `clock` as time since that clock's origin; `name` goes into the error.
pub(super) fn read(clock: libc::clockid_t, name: &'static str) -> Result<Duration, ClockError> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable `timespec` owned by this frame for the whole call, and
    // `clock_gettime` writes only into it; an unknown clock id is reported through the return
    // value, not undefined behaviour.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    if rc != 0 {
        return Err(ClockError::Read { clock: name, source: std::io::Error::last_os_error() });
    }
    // Both clocks count up from boot, so a negative or out-of-range field means a broken
    // kernel answer; report it rather than invent a time.
    let invalid = || ClockError::Read { clock: name, source: std::io::Error::other("time out of range") };
    let secs = u64::try_from(ts.tv_sec).map_err(|_| invalid())?;
    let nanos = u32::try_from(ts.tv_nsec).ok().filter(|n| *n < 1_000_000_000).ok_or_else(invalid)?;
    Ok(Duration::new(secs, nanos))
}
