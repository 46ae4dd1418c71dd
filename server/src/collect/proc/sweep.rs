//! One pass over the processes, bounded in time. A sample held up half-way (the
//! machine froze while it read, or thousands of processes on a starved CPU) stops after
//! [`SWEEP_LIMIT`]: the processes it did not reach keep their last readings, so the
//! next sample charges them everything since, and the next sample starts with them.
//! Nothing they did is lost, only read later; the source's health says the sample was
//! cut short (`pmon status`).
//!
//! ```text
//! pids (those left unread last time first) ──► process() each, until the limit
//!   unread: last reading kept, read first next time; newcomers: found by a listing
//! ```

use std::time::{Duration, Instant, SystemTime};

use super::ProcCollector;
use crate::collect::ProcessRecord;

/// The longest a sample reads processes. Ordinary samples take milliseconds; one
/// starved by a freeze can take seconds, and the freeze's own accounting must not wait
/// for it.
pub(super) const SWEEP_LIMIT: Duration = Duration::from_secs(2);

/// The clock of each reading, the sample's start, and the uptimes before and now.
pub(super) type Times<'a> = (&'a dyn Fn() -> Instant, Instant, Option<(f64, f64)>);

impl ProcCollector {
    /// Reads the known `pids`, then the newcomers `tried`, until [`SWEEP_LIMIT`] after
    /// the sample started; returns the records and leaves in `self.pids` the pids to
    /// read next time.
    pub(super) fn sweep(&mut self, mut pids: Vec<u32>, tried: Vec<u32>, times: Times<'_>) -> Vec<ProcessRecord> {
        let (clock, started, _) = times;
        if let Some(first) = self.resume.take() {
            // Those not reached last time first, in pid order.
            pids.sort_unstable_by_key(|&pid| (pid < first, pid));
        }
        let total = pids.len() + tried.len();
        let mut processes = Vec::with_capacity(total);
        let mut kept = Vec::with_capacity(pids.len());
        let mut unread = Vec::new();
        let mut cut = false;
        let listed = pids.into_iter().map(|pid| (pid, false));
        for (pid, tried) in listed.chain(tried.into_iter().map(|pid| (pid, true))) {
            cut = cut || clock().saturating_duration_since(started) >= SWEEP_LIMIT;
            if cut {
                // Not reached: a listed pid keeps its last reading (below).
                if !tried {
                    unread.push(pid);
                }
                continue;
            }
            // A process that exited (or a pid tried that is a thread's) is dropped.
            if let Ok(record) = self.process(pid, times, tried) {
                processes.extend(record);
                kept.push(pid);
            }
        }
        if !cut {
            self.pids = kept;
            return processes;
        }
        // Their last readings stand: the next reading spans from them.
        for pid in &unread {
            if let Some(last) = self.prev.remove(pid) {
                self.next.insert(*pid, last);
            }
        }
        let why = format!(
            "sample cut short after {:.1} s: {} of {total} processes read; the rest keep their last readings and are \
             read first next time",
            clock().saturating_duration_since(started).as_secs_f64(),
            processes.len()
        );
        tracing::warn!("{why}");
        self.problem = Some((SystemTime::now(), why));
        self.resume = unread.first().copied();
        // A listing next time finds the newcomers not tried.
        self.last_pid = None;
        kept.extend(unread);
        self.pids = kept;
        processes
    }
}
