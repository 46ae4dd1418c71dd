//! The recent past the attribution works from: what each process consumed and waited
//! over each reading, for the last minute. The ring holds only rogues, and a stall's
//! victims are rarely rogues, so this keeps its own, compact record: only processes
//! that did something (consumed, waited, faulted, sat in uninterruptible sleep) in a
//! reading are kept, which on a quiet machine is a handful per sample.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::{Duration, SystemTime},
};

use pmon_proto::v1::{Pressure, ProcessState, SystemFigures};

use crate::collect::{ProcessRecord, Scheduling, Usage};

/// How far back the record goes: a pause is recorded once its freeze is over, and its
/// lead-up comes before that.
pub const KEEP: Duration = Duration::from_secs(60);
/// Activities kept per sample, the most active first: on a machine where thousands of
/// processes are busy, the record stays bounded (a few hundred KiB a sample).
const MAX_ACTIVITIES: usize = 256;
/// Samples kept at most (a minute at the fastest sampling, 0.05 s), whatever the clock does.
const MAX_MOMENTS: usize = 1200;

/// Below this, a reading's CPU time or wait is noise, not activity worth keeping.
const NOISE: Duration = Duration::from_millis(1);
/// A reading with this much CPU time makes a process busy enough to note its control
/// group.
const BUSY: Duration = Duration::from_millis(10);

/// One process over one reading span (from its previous reading to `Moment::at`).
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    /// Process id.
    pub pid: u32,
    /// Command name.
    pub command: String,
    /// State at the reading.
    pub state: ProcessState,
    /// Parent process id.
    pub ppid: Option<u32>,
    /// How it is scheduled.
    pub scheduling: Option<Scheduling>,
    /// A kernel thread.
    pub kernel_thread: bool,
    /// What it consumed and waited over the span.
    pub usage: Usage,
    /// Its control group, for a busy process, where the platform has them.
    pub cgroup: Option<Arc<str>>,
}

/// One sample's activities.
#[derive(Debug, Clone, PartialEq)]
pub struct Moment {
    /// When the sample was taken; each activity's span ends here.
    pub at: SystemTime,
    /// Processes that did something.
    pub activities: Vec<Activity>,
    /// Machine-wide pressure stall totals (cpu, memory, io "some"), microseconds.
    pub pressure: [Option<u64>; 3],
}

/// The record of the last [`KEEP`] of activity.
#[derive(Debug, Default)]
pub struct Recent {
    moments: VecDeque<Moment>,
    /// Every process seen within [`KEEP`]: its parent and name, and when it was last
    /// seen, to build process trees (a parent that only waits for its children never
    /// shows as active, and a `timeout` between a shell and its busy child may be gone
    /// by the time the tree is asked for).
    parents: HashMap<u32, (Option<u32>, String, SystemTime)>,
    /// When the latest sample was taken.
    latest: Option<SystemTime>,
}

impl Recent {
    /// Adds a sample taken at `at`; forgets what is older than [`KEEP`]. `cgroup` tells
    /// the control group of a busy process.
    pub fn add(
        &mut self,
        at: SystemTime,
        processes: &[ProcessRecord],
        system: &SystemFigures,
        cgroup: &mut dyn FnMut(u32) -> Option<Arc<str>>,
    ) {
        let mut activities: Vec<Activity> = processes
            .iter()
            .filter_map(|p| {
                let usage = p.usage?;
                let waited = |d: Option<Duration>| d.is_some_and(|d| d >= NOISE);
                let active = usage.cpu >= NOISE
                    || waited(usage.run_delay)
                    || waited(usage.io_delay)
                    || usage.pageins.is_some_and(|n| n > 0)
                    || usage.mem_growth.is_some_and(|g| g > 0)
                    || usage.reaped.is_some_and(|r| r.cpu >= NOISE)
                    || p.state == ProcessState::Stuck;
                active.then(|| Activity {
                    pid: p.pid,
                    command: p.command.clone(),
                    state: p.state,
                    ppid: p.ppid,
                    scheduling: p.scheduling,
                    kernel_thread: p.kernel_thread,
                    usage,
                    cgroup: (usage.cpu >= BUSY && !p.kernel_thread).then(|| cgroup(p.pid)).flatten(),
                })
            })
            .collect();
        if activities.len() > MAX_ACTIVITIES {
            // Those stuck in uninterruptible sleep always stay: they are the evidence.
            let weight = |a: &Activity| {
                let u = &a.usage;
                let stuck = if a.state == ProcessState::Stuck { 1e9 } else { 0.0 };
                stuck + (u.cpu + u.run_delay.unwrap_or_default() + u.io_delay.unwrap_or_default()).as_secs_f64()
            };
            activities.sort_by(|a, b| weight(b).total_cmp(&weight(a)));
            activities.truncate(MAX_ACTIVITIES);
        }
        let some = |p: &Option<Pressure>| p.as_ref().map(|p| p.some_total_micros);
        let pressure = [some(&system.cpu_pressure), some(&system.memory_pressure), some(&system.io_pressure)];
        self.moments.push_back(Moment { at, activities, pressure });
        while self.moments.len() > MAX_MOMENTS
            || self.moments.front().is_some_and(|m| at.duration_since(m.at).is_ok_and(|age| age > KEEP))
        {
            self.moments.pop_front();
        }
        self.parents.retain(|_, (_, _, seen)| at.duration_since(*seen).is_ok_and(|age| age <= KEEP));
        for p in processes {
            let entry = self.parents.entry(p.pid).or_insert((p.ppid, String::new(), at));
            // Handed to init when its parent died: the parent it had tells its tree.
            if p.ppid.is_some_and(|pp| pp > 1) || entry.0.is_none() {
                entry.0 = p.ppid;
            }
            entry.1.clone_from(&p.command);
            entry.2 = at;
        }
        self.latest = Some(at);
    }

    /// The samples kept, oldest first.
    pub fn moments(&self) -> impl Iterator<Item = &Moment> {
        self.moments.iter()
    }

    /// Whether `pid` was there in the latest sample.
    pub fn alive(&self, pid: u32) -> bool {
        self.parents.get(&pid).is_some_and(|(_, _, seen)| Some(*seen) == self.latest)
    }

    /// A process's parent and name as last seen within [`KEEP`].
    pub fn parent(&self, pid: u32) -> Option<(Option<u32>, &str)> {
        self.parents.get(&pid).map(|(ppid, command, _)| (*ppid, command.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_keeps_its_most_active_processes_and_every_stuck_one() {
        let busy = |pid: u32, cpu_ms: u64, state| ProcessRecord {
            pid,
            state,
            usage: Usage::of_cpu(Duration::from_secs(1), cpu_ms as f64 / 10.0),
            ..ProcessRecord::default()
        };
        let mut procs: Vec<ProcessRecord> =
            (1..=400).map(|pid| busy(pid, 10 + u64::from(pid), ProcessState::Running)).collect();
        procs.push(busy(999, 0, ProcessState::Stuck));
        procs.push(busy(998, 0, ProcessState::Sleeping));
        let mut r = Recent::default();
        r.add(SystemTime::UNIX_EPOCH, &procs, &SystemFigures::default(), &mut |_| None);
        let kept: Vec<u32> = r.moments().flat_map(|m| m.activities.iter().map(|a| a.pid)).collect();
        assert_eq!(kept.len(), MAX_ACTIVITIES);
        assert!(kept.contains(&999), "stuck: evidence");
        assert!(kept.contains(&400) && !kept.contains(&1), "the busiest");
        assert!(r.alive(998) && r.alive(1), "every process is still known as alive");
    }

    #[test]
    fn a_process_gone_is_not_alive_but_its_parent_is_known_for_a_while() {
        let child = ProcessRecord { pid: 20, ppid: Some(10), command: "timeout".into(), ..ProcessRecord::default() };
        let mut r = Recent::default();
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        r.add(at(1), std::slice::from_ref(&child), &SystemFigures::default(), &mut |_| None);
        r.add(at(2), &[], &SystemFigures::default(), &mut |_| None);
        assert!(!r.alive(20));
        assert_eq!(r.parent(20), Some((Some(10), "timeout")));
        r.add(at(1) + KEEP, &[], &SystemFigures::default(), &mut |_| None);
        assert_eq!(r.parent(20), Some((Some(10), "timeout")), "seen within KEEP");
        r.add(at(2) + KEEP, &[], &SystemFigures::default(), &mut |_| None);
        assert_eq!(r.parent(20), None, "forgotten after KEEP");
    }
}
