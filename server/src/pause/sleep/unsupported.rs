//! Platforms without a known pair of clocks that tells suspend from a stall.

use super::{ClockError, Readings};

/// Always [`ClockError::Unsupported`]: guessing would report every sleep as a pause.
pub(super) fn now() -> Result<Readings, ClockError> {
    Err(ClockError::Unsupported)
}
