//! Children that exit between two readings. A process's own counters vanish with it,
//! so what it did after its last reading would be lost; but when its parent reaps it,
//! the kernel adds its whole CPU time to the parent's `cutime` + `cstime`. The part of
//! that growth that no reading of the child accounts for is what it did unseen: after
//! its last reading, or all its life if it was never read (a short-lived worker).
//!
//! ```text
//! child gone: its last reading's CPU (own + its reaped children's) ──► pending[parent]
//! parent's reaped time grew ── minus pending[parent] ──► Usage::reaped (to the child
//!                                                         if it was the only one gone)
//! ```
//!
//! A child read after its parent in the same sample may be reaped in between: then the
//! parent's growth shows a sample later, so pending readings wait a few samples.

use std::{collections::HashMap, time::Duration};

use pmon_proto::v1::ProcessState;

use super::counters::Counters;
use crate::collect::ProcessRecord;

/// Samples a gone child's last reading waits for its parent's reaped time to grow.
const WAIT_SAMPLES: u8 = 3;

/// The last readings of gone children, per parent, not yet found in its reaped time.
#[derive(Debug, Default)]
pub(super) struct Reaping {
    pending: HashMap<u32, Pending>,
    /// Gone since the last settling, with their parents: a gone parent's own pending
    /// readings (children it reaped after its last reading) pass to its parent, whose
    /// reaped time will hold them too.
    gone: HashMap<u32, u32>,
}

#[derive(Debug, Default)]
struct Pending {
    /// Their CPU time at their last readings (with their own reaped children's), ticks.
    ticks: u64,
    children: Vec<u32>,
    /// Those running at their last readings, or that had reaped children of their own
    /// since: what grew unseen can be theirs.
    running: Vec<u32>,
    /// Samples waited.
    age: u8,
}

impl Reaping {
    /// `pid` is gone; `last` is its last reading.
    pub(super) fn gone(&mut self, pid: u32, last: &Counters) {
        let ppid = last.stat.ppid;
        if ppid == 0 {
            return;
        }
        self.gone.insert(pid, ppid);
        let p = self.pending.entry(ppid).or_default();
        p.ticks = p.ticks.saturating_add(last.stat.cpu_ticks.saturating_add(last.stat.children_ticks));
        p.children.push(pid);
        // Only a child running when last read can have run on unseen: a sleeping one
        // that exited took little, and what grew is then its unread siblings'.
        if last.stat.state == ProcessState::Running {
            p.running.push(pid);
        }
        p.age = 0;
    }

    /// Takes from each parent's reaped time (as `usage` measured it: its whole growth)
    /// what its gone children's readings account for, and names the child when only one
    /// is gone; then ages what is still pending.
    pub(super) fn settle(&mut self, processes: &mut [ProcessRecord], ticks_per_sec: f64) {
        let gone = std::mem::take(&mut self.gone);
        // Up the tree: each pass moves one gone process's pending to its parent.
        for _ in 0..gone.len() {
            let Some((pid, ppid)) = gone.iter().find(|(pid, _)| self.pending.contains_key(*pid)) else { break };
            let Some(moved) = self.pending.remove(pid) else { break };
            let p = self.pending.entry(*ppid).or_default();
            p.ticks = p.ticks.saturating_add(moved.ticks);
            p.age = 0;
            // It reaped children after its last reading: what its parent finds unseen is
            // its tree's doing, even if it slept itself (a shell waiting on workers).
            if !p.running.contains(pid) {
                p.running.push(*pid);
            }
        }
        for record in processes.iter_mut() {
            let Some(reaped) = record.usage.as_mut().and_then(|u| u.reaped.as_mut()) else { continue };
            if reaped.cpu.is_zero() {
                continue;
            }
            let Some(p) = self.pending.get_mut(&record.pid) else { continue };
            let known = Duration::from_secs_f64(p.ticks as f64 / ticks_per_sec);
            let matched = known.min(reaped.cpu);
            reaped.cpu -= matched;
            if let ([_], &[only]) = (&p.children[..], &p.running[..]) {
                reaped.child = Some(only);
            }
            p.ticks = p.ticks.saturating_sub((matched.as_secs_f64() * ticks_per_sec).round() as u64);
            if p.ticks == 0 {
                self.pending.remove(&record.pid);
            }
        }
        self.pending.retain(|_, p| {
            p.age += 1;
            p.age < WAIT_SAMPLES
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::{Reaped, Usage};

    fn gone(ppid: u32, cpu_ticks: u64) -> Counters {
        let stat = super::super::parse::stat(
            format!("9 (w) R {ppid} 9 9 0 -1 0 0 0 0 0 {cpu_ticks} 0 0 0 20 0 1 0 5 100 3\n").as_bytes(),
        )
        .expect("a valid stat");
        Counters {
            stat,
            sched: None,
            threads: None,
            ctxt_switches: None,
            swap_bytes: None,
            syscalls: None,
            read_at: std::time::Instant::now(),
        }
    }

    fn parent(pid: u32, reaped_ms: u64) -> ProcessRecord {
        let mut usage = Usage::of_cpu(Duration::from_secs(1), 0.0).expect("usage");
        usage.reaped = Some(Reaped { cpu: Duration::from_millis(reaped_ms), child: None });
        ProcessRecord { pid, usage: Some(usage), ..ProcessRecord::default() }
    }

    /// What `settle` leaves of `reaped_ms` grown in the reaped time of parent `pid`.
    fn settled(r: &mut Reaping, pid: u32, reaped_ms: u64) -> Reaped {
        let mut procs = [parent(pid, reaped_ms)];
        r.settle(&mut procs, 100.0);
        procs[0].usage.and_then(|u| u.reaped).expect("reaped")
    }

    /// A child of `ppid` that slept when last read.
    fn sleeping(ppid: u32, cpu_ticks: u64) -> Counters {
        let mut c = gone(ppid, cpu_ticks);
        c.stat.state = ProcessState::Sleeping;
        c
    }

    #[test]
    fn a_read_child_keeps_what_it_did_after_its_last_reading() {
        let mut r = Reaping::default();
        r.gone(77, &gone(70, 150));
        assert_eq!(settled(&mut r, 70, 4_000), Reaped { cpu: Duration::from_millis(2_500), child: Some(77) });
        assert!(r.pending.is_empty(), "all of it was found");
    }

    #[test]
    fn unread_children_stay_their_parents_and_a_late_reap_is_found_a_sample_later() {
        let mut r = Reaping::default();
        r.gone(81, &gone(80, 100));
        r.gone(82, &gone(80, 100));
        // Read before its children were reaped: nothing grew yet.
        assert_eq!(settled(&mut r, 80, 0).cpu, Duration::ZERO);
        // Next sample: both children's 1 s each, and 0.5 s more nobody read.
        assert_eq!(
            settled(&mut r, 80, 2_500),
            Reaped { cpu: Duration::from_millis(500), child: None },
            "two gone: the parent's"
        );
    }

    #[test]
    fn a_gone_shell_takes_its_trees_unseen_time_once() {
        // A shell whose worker (read, then gone) it reaped after its own last reading,
        // itself reaped since: its parent's reaped time holds the worker's reading again
        // (not counted twice) and what nobody read, the shell's tree's, running (0.1 s
        // read, the worker 1 s) or sleeping on its workers (0.02 s, 0.2 s).
        for (shell, worker, grown, unseen) in [(gone(1, 10), 100, 1_150, 50), (sleeping(1, 2), 20, 800, 580)] {
            let mut r = Reaping::default();
            r.gone(11, &gone(10, worker));
            r.gone(10, &shell);
            let want = Reaped { cpu: Duration::from_millis(unseen), child: Some(10) };
            assert_eq!(settled(&mut r, 1, grown), want, "the shell {:?}", shell.stat.state);
        }
    }

    #[test]
    fn a_child_that_slept_when_last_read_is_not_charged_with_what_grew() {
        let mut r = Reaping::default();
        r.gone(96, &sleeping(95, 0));
        assert_eq!(settled(&mut r, 95, 400), Reaped { cpu: Duration::from_millis(400), child: None });
    }

    #[test]
    fn a_parent_that_never_reaps_is_forgotten_after_a_few_samples() {
        let mut r = Reaping::default();
        r.gone(91, &gone(90, 100));
        for _ in 0..WAIT_SAMPLES {
            r.settle(&mut [], 100.0);
        }
        assert!(r.pending.is_empty());
        assert_eq!(settled(&mut r, 90, 1_000), Reaped { cpu: Duration::from_secs(1), child: None });
    }
}
