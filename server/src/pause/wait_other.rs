//! Where the OS does not tell a thread's run-queue wait, the sentinel does without it.

use std::time::Duration;

/// No run-queue statistics on this platform.
#[derive(Debug)]
pub struct OwnWait;

impl OwnWait {
    /// Nothing to open.
    pub fn open() -> Self {
        Self
    }

    /// Unknown here.
    pub fn total(&self) -> Option<Duration> {
        None
    }
}
