//! What the `proc` collector keeps of each process between samples, and the
//! conversions of its raw fields into the contract's terms.

use std::time::Instant;

use pmon_proto::v1::SchedPolicy;

use super::parse;
use crate::collect::Scheduling;

/// Cumulative counters of one process, kept until the next sample to compute rates.
#[derive(Debug, Clone)]
pub(super) struct Counters {
    pub(super) stat: parse::Stat,
    pub(super) sched: Option<parse::Sched>,
    /// Every thread's `schedstat` summed, for a process with several threads (its main
    /// thread's alone undercounts the others' waits); carried over while none ran.
    pub(super) threads: Option<parse::Sched>,
    pub(super) ctxt_switches: Option<Switches>,
    pub(super) swap_bytes: Option<u64>,
    pub(super) syscalls: Option<u64>,
    /// When these were read: a rate is a difference over the time between the two
    /// readings of the same process, not between the starts of two samples.
    pub(super) read_at: Instant,
}

/// A context-switch counter and the file it came from. Both count the same switches,
/// but a rate is taken only between two of a kind: a kernel without scheduler
/// statistics gives `status`'s, and a task that never ran has `schedstat` "0 0 0".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Switches {
    /// Times the main thread was put on a CPU (`schedstat`).
    Sched(u64),
    /// The main thread's voluntary + nonvoluntary switches (`status`).
    Status(u64),
}

impl Switches {
    /// The two counters, when they can be subtracted.
    pub(super) fn pair(now: Option<Self>, before: Option<Self>) -> (Option<u64>, Option<u64>) {
        match (now, before) {
            (Some(Self::Sched(n)), Some(Self::Sched(b))) | (Some(Self::Status(n)), Some(Self::Status(b))) => {
                (Some(n), Some(b))
            }
            _ => (None, None),
        }
    }
}

/// The scheduling fields of a `stat`, in the contract's terms.
pub(super) fn scheduling(stat: &parse::Stat) -> Scheduling {
    let policy = match stat.policy {
        Some(0) => SchedPolicy::Normal,
        Some(1) => SchedPolicy::Fifo,
        Some(2) => SchedPolicy::Rr,
        Some(3) => SchedPolicy::Batch,
        Some(5) => SchedPolicy::Idle,
        Some(6) => SchedPolicy::Deadline,
        _ => SchedPolicy::Unspecified,
    };
    Scheduling { policy, rt_priority: stat.rt_priority.unwrap_or(0), nice: stat.nice }
}
