//! Memory freezes come fast: a group of processes can take a memory cgroup's whole limit,
//! or the machine's available memory, within a fraction of a second, and the freeze that
//! follows can hold the sampler before its next sample (at the default 1 s sampling, the
//! culprit of such a burst was never read, and nobody was blamed). So the sentinel looks
//! at a few cheap figures every tick and asks for a sample at once when memory moves
//! fast; that sample reads the culprit while it grows, and the pause names it after.
//!
//! A sample is asked for when, since the previous tick:
//! - the memory pressure stall total (`/proc/pressure/memory`, "some") grew by at least
//!   [`PSI_SHARE`] of the tick: tasks began to wait for memory;
//! - `MemAvailable` fell by at least [`FAST_SHARE`] of `MemTotal`;
//! - the server's own memory control group's usage grew by at least [`FAST_SHARE`] of
//!   its limit, or the group hit its limit (`memory.failcnt`, `memory.events` `max`):
//!   a group at its limit whose OOM killer is off freezes in no pressure figure.
//!
//! A figure that cannot be read is left out (`None`), never taken as a change. The
//! figures are three small files (the group's two more), a few microseconds a tick.

use std::{path::Path, time::Duration};

use super::held::{self, MemoryGroup};

/// Growth of the memory stall total, as a share of the tick, that asks for a sample.
pub const PSI_SHARE: f64 = 0.1;
/// Memory taken within one tick, as a share of all there is (or of the group's limit),
/// that asks for a sample: 1/16 (1.5 GB in 100 ms on a 24 GB machine).
pub const FAST_SHARE: f64 = 1.0 / 16.0;

/// The figures read at one tick.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    /// Memory pressure stall total ("some"), microseconds.
    pub psi_some_micros: Option<u64>,
    /// `MemAvailable` and `MemTotal`, bytes.
    pub available: Option<u64>,
    pub total: Option<u64>,
    /// The server's memory group: bytes charged, its limit, its limit hits.
    pub group_usage: Option<u64>,
    pub group_limit: Option<u64>,
    pub group_hits: Option<u64>,
}

/// Why memory moves fast enough between two ticks `tick` apart to sample at once;
/// `None` when it does not (or nothing can tell).
pub fn rising(before: &Figures, now: &Figures, tick: Duration) -> Option<String> {
    let grew = |b: Option<u64>, n: Option<u64>| n?.checked_sub(b?);
    if let Some(stalled) = grew(before.psi_some_micros, now.psi_some_micros)
        && stalled as f64 >= PSI_SHARE * tick.as_micros() as f64
    {
        return Some(format!("tasks waited {:.0} ms for memory within one tick", stalled as f64 / 1000.0));
    }
    if let (Some(fell), Some(total)) = (grew(now.available, before.available), now.total)
        && fell as f64 >= FAST_SHARE * total as f64
    {
        return Some(format!("available memory fell {} MiB within one tick", fell >> 20));
    }
    if let Some(hits) = grew(before.group_hits, now.group_hits).filter(|h| *h > 0) {
        return Some(format!("its memory group hit its limit {hits} times within one tick"));
    }
    if let (Some(taken), Some(limit)) = (grew(before.group_usage, now.group_usage), now.group_limit)
        && taken as f64 >= FAST_SHARE * limit as f64
    {
        return Some(format!("its memory group took {} MiB within one tick", taken >> 20));
    }
    None
}

/// Reads the figures of the machine at `root` (`/` in production).
#[derive(Debug)]
pub struct MemoryWatch {
    pressure: std::path::PathBuf,
    meminfo: std::path::PathBuf,
    group: Option<MemoryGroup>,
}

impl MemoryWatch {
    /// The watch of this process's memory and its group's (found again by `regroup`).
    pub fn open(root: &Path) -> Self {
        let mut watch =
            Self { pressure: root.join("proc/pressure/memory"), meminfo: root.join("proc/meminfo"), group: None };
        watch.regroup(root);
        watch
    }

    /// Finds the server's memory group again (it may have been moved to another).
    pub fn regroup(&mut self, root: &Path) {
        self.group = held::memory_group(root).ok();
    }

    /// The figures now.
    pub fn read(&self) -> Figures {
        let text = |p: &Path| held::read(p).ok();
        let number = |p: &Path| text(p).and_then(|t| t.trim().parse::<u64>().ok());
        let psi_some_micros = text(&self.pressure).and_then(|t| {
            let line = t.lines().find(|l| l.starts_with("some "))?;
            line.split_ascii_whitespace().find_map(|f| f.strip_prefix("total="))?.parse().ok()
        });
        let meminfo = text(&self.meminfo);
        let field = |name: &str| {
            let line = meminfo.as_deref()?.lines().find(|l| l.starts_with(name))?;
            let kib: u64 = line.split_ascii_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        };
        let group = self.group.as_ref();
        Figures {
            psi_some_micros,
            available: field("MemAvailable:"),
            total: field("MemTotal:"),
            group_usage: group.and_then(|g| number(&g.usage)),
            // v2 says "max" for no limit: then no growth is a share of it.
            group_limit: group.and_then(|g| number(&g.limit)),
            group_hits: group.and_then(|g| text(&g.hits)).and_then(|t| held::limit_hits(&t)),
        }
    }
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
