//! The sentinel thread's own run-queue wait, from `/proc/thread-self/schedstat`: a
//! thread that was late because it was ready to run and got no CPU waited; one that was
//! stopped or blocked did not.

use std::{fs::File, os::unix::fs::FileExt, time::Duration};

/// The calling thread's schedstat, opened once (on the thread that reads it).
#[derive(Debug)]
pub struct OwnWait {
    file: Option<File>,
}

impl OwnWait {
    /// Opens the calling thread's statistics; without them every reading is `None`.
    pub fn open() -> Self {
        Self { file: File::open("/proc/thread-self/schedstat").ok() }
    }

    /// Time this thread has waited on a run queue since it started.
    pub fn total(&self) -> Option<Duration> {
        let mut buf = [0u8; 96];
        let n = self.file.as_ref()?.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(&buf[..n]).ok()?;
        let wait_ns: u64 = text.split_ascii_whitespace().nth(1)?.parse().ok()?;
        Some(Duration::from_nanos(wait_ns))
    }
}
