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
//!   its limit: a group at its limit whose OOM killer is off freezes in no pressure
//!   figure. (Hits of its limit alone ask for nothing: page-cache reclaim at the limit
//!   hits it all the time in an ordinary limited container.)
//!
//! A figure that cannot be read is left out (`None`), never taken as a change. The
//! files are kept open and read in place (the group's limit only when the group is
//! looked up again), three small reads a tick.

use std::{fs::File, os::unix::fs::FileExt, path::Path, time::Duration};

use super::held::{self, MemoryGroup};
use crate::collect::proc::parse;

/// Growth of the memory stall total, as a share of the tick, that asks for a sample.
pub const PSI_SHARE: f64 = 0.1;
/// Memory taken within one tick, as a share of all there is (or of the group's limit),
/// that asks for a sample: 1/16 (1.5 GB in 100 ms on a 24 GB machine).
pub const FAST_SHARE: f64 = 1.0 / 16.0;

/// At most this many samples asked for within [`URGE_WINDOW`]: a burst is followed tick
/// by tick while it grows (400 MB can be taken in 0.3 s), and under lasting memory
/// pressure the sampler takes at most this many extra samples per window.
const URGE_BURST: usize = 3;
const URGE_WINDOW: Duration = Duration::from_secs(5);

/// The figures read at one tick.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// Memory pressure stall total ("some"), microseconds.
    pub psi_some_micros: Option<u64>,
    /// The machine's memory (`MemAvailable`, `MemTotal` are used).
    pub meminfo: parse::MemInfo,
    /// The server's memory group.
    pub group: GroupFigures,
}

/// A memory group's bytes charged and its limit, each where readable.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GroupFigures {
    pub usage: Option<u64>,
    pub limit: Option<u64>,
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
    if let (Some(fell), Some(total)) = (grew(now.meminfo.available, before.meminfo.available), now.meminfo.total)
        && fell as f64 >= FAST_SHARE * total as f64
    {
        return Some(format!("available memory fell {} MiB within one tick", fell >> 20));
    }
    if let (Some(taken), Some(limit)) = (grew(before.group.usage, now.group.usage), now.group.limit)
        && taken as f64 >= FAST_SHARE * limit as f64
    {
        return Some(format!("its memory group took {} MiB within one tick", taken >> 20));
    }
    None
}

/// A file kept open and read from its start each time.
#[derive(Debug)]
struct Kept(Option<File>);

impl Kept {
    fn open(path: &Path) -> Self {
        Self(File::open(path).ok())
    }

    /// Its text now, into `buf`; `None` if unreadable.
    fn text<'a>(&self, buf: &'a mut [u8]) -> Option<&'a str> {
        let n = self.0.as_ref()?.read_at(buf, 0).ok()?;
        std::str::from_utf8(&buf[..n]).ok()
    }
}

/// The server's memory group: its usage kept open, its limit as last read.
#[derive(Debug)]
struct Group {
    files: MemoryGroup,
    usage: Kept,
    limit: Option<u64>,
}

/// Reads the figures of the machine at `root` (`/` in production).
#[derive(Debug)]
pub struct MemoryWatch {
    pressure: Kept,
    meminfo: Kept,
    group: Option<Group>,
}

impl MemoryWatch {
    /// The watch of the machine's memory and of the server's memory `group`.
    pub fn open(root: &Path, group: Option<MemoryGroup>) -> Self {
        let mut watch = Self {
            pressure: Kept::open(&root.join("proc/pressure/memory")),
            meminfo: Kept::open(&root.join("proc/meminfo")),
            group: None,
        };
        watch.regroup(group);
        watch
    }

    /// The server's memory group as found again (it may have been moved to another);
    /// its limit is read again (it may have been changed).
    pub fn regroup(&mut self, files: Option<MemoryGroup>) {
        if files.as_ref() != self.group.as_ref().map(|g| &g.files) {
            self.group = files.map(|files| Group { usage: Kept::open(&files.usage), files, limit: None });
        }
        if let Some(g) = &mut self.group {
            // v2 says "max" for no limit: then no growth is a share of it.
            g.limit = held::read(&g.files.limit).ok().and_then(|t| t.trim().parse().ok());
        }
    }

    /// The figures now.
    pub fn read(&self) -> Figures {
        let mut buf = [0u8; 4096];
        let psi_some_micros = self.pressure.text(&mut buf).and_then(parse::pressure).map(|p| p.some_total_micros);
        let meminfo = self.meminfo.text(&mut buf).map(parse::meminfo).unwrap_or_default();
        let group = self.group.as_ref();
        let mut small = [0u8; 512];
        let group = GroupFigures {
            usage: group.and_then(|g| g.usage.text(&mut small)?.trim().parse().ok()),
            limit: group.and_then(|g| g.limit),
        };
        Figures { psi_some_micros, meminfo, group }
    }
}

/// The watch with its limit on samples asked for: at most [`URGE_BURST`] within
/// [`URGE_WINDOW`].
#[derive(Debug)]
pub struct Urges {
    watch: MemoryWatch,
    figures: Figures,
    /// When samples were asked for (monotonic), the oldest first.
    urged: std::collections::VecDeque<Duration>,
}

impl Urges {
    /// Watches the machine at `root` and the server's memory `group` from now on.
    pub fn open(root: &Path, group: Option<MemoryGroup>) -> Self {
        let watch = MemoryWatch::open(root, group);
        Self { figures: watch.read(), watch, urged: std::collections::VecDeque::new() }
    }

    /// The server's memory group as found again.
    pub fn regroup(&mut self, group: Option<MemoryGroup>) {
        self.watch.regroup(group);
    }

    /// After a tick `tick` long that ended at monotonic `at`: why a sample is wanted
    /// now, if memory moved fast and the limit allows one more.
    pub fn tick(&mut self, at: Duration, tick: Duration) -> Option<String> {
        let now = self.watch.read();
        self.urged.retain(|then| at.saturating_sub(*then) < URGE_WINDOW);
        let why = rising(&self.figures, &now, tick).filter(|_| self.urged.len() < URGE_BURST);
        if why.is_some() {
            self.urged.push_back(at);
        }
        self.figures = now;
        why
    }
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
