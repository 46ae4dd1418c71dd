//! The naive reference a /proc sampler is judged by, shared by the collector bench and
//! the `naive-proc-reader` example that `bench/peers` runs next to pmon-server.

use std::{fs::File, io::Read};

use anyhow::{Context, Result};

/// Same size as the collector's buffer, so both do one `read` per file.
pub const BUFFER: usize = 8192;

/// The least a per-process /proc sampler must do: the floor the collector is judged by.
pub struct Reference {
    pids: Vec<u32>,
    path: String,
    buf: Vec<u8>,
}

impl Reference {
    pub fn new() -> Self {
        Self { pids: Vec::new(), path: String::with_capacity(64), buf: vec![0; BUFFER] }
    }

    /// Lists /proc and reads stat, status and io of every pid; returns the bytes read.
    pub fn sample(&mut self) -> Result<usize> {
        self.pids.clear();
        for entry in std::fs::read_dir("/proc").context("listing /proc")? {
            let Ok(entry) = entry else { continue };
            if let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) {
                self.pids.push(pid);
            }
        }
        let mut total = 0;
        for &pid in &self.pids {
            for name in ["stat", "status", "io"] {
                use std::fmt::Write;
                self.path.clear();
                // Writing into a String cannot fail.
                let _ = write!(self.path, "/proc/{pid}/{name}");
                // Vanished pids (and unreadable io of other users) are expected: skipped.
                let Ok(mut file) = File::open(&self.path) else {
                    continue;
                };
                total += file.read(&mut self.buf).unwrap_or(0);
                // `file` closes here, as the collector's does.
            }
        }
        Ok(total)
    }
}
