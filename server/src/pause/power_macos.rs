//! macOS: the tail of `pmset -g log`, which records every sleep, wake and dark wake.

use std::time::Duration;

use super::pmset::{self, PowerEvent};

/// The log holds months; the window of interest is seconds old, so only the end is read.
const TAIL_BYTES: usize = 256 * 1024;
/// `pmset -g log` reads a large file; it gets this long.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Power events near the end of the log; none if pmset cannot be run (then the clocks
/// alone decide).
pub(super) fn recent_events() -> Vec<PowerEvent> {
    match crate::command::run("pmset", &["-g".into(), "log".into()], TIMEOUT) {
        Ok(out) => pmset::parse(&String::from_utf8_lossy(&out[out.len().saturating_sub(TAIL_BYTES)..])),
        Err(e) => {
            tracing::warn!("cannot read the power log to confirm a stall: {e}");
            Vec::new()
        }
    }
}
