//! Platforms pmon has no memory reading for: unavailable, never zero.

use super::Memory;

/// Resident memory is not known here.
pub fn memory() -> Memory {
    Memory { resident: None, peak: None }
}
