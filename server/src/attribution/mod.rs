//! Attribution (SPEC §3.10): who froze the machine, and who stresses it. One pure rule
//! over a span of time (a stall, an escalation), the recent activity and the ring,
//! whose answer every client, notification and metric shows: [`attribute`] for a
//! pause, [`escalation`] for an escalation.
//!
//! ```text
//! sentinel: stall (span, gaps, own evidence) ─┐
//! Recent: per-reading consumption and waits ──┼─► attribute ─► cause, window, culprits, victims, groups
//! ring: rogues with their scores ─────────────┘
//! ```
//!
//! - **Window**: the stall and its lead-up. Each reading covers the time between two
//!   readings of a process; only the part inside the window counts, so whatever exited or
//!   went quiet before it is never blamed.
//! - **Culprits consume, victims wait**: culprits are ranked by CPU time consumed in the
//!   window (the stall itself counting in full, the lead-up half); a real-time task that
//!   burnt CPU during a stall starves every ordinary one and ranks first. Victims are who
//!   waited longest for a CPU or for I/O. A zombie, an exiting process or a waiting
//!   kernel thread consumed nothing, so it is evidence, never a culprit.
//! - **pmon-server** and the tools it runs are never culprits, and a stall of the server
//!   alone (see [`cause`]) names none.

pub mod cause;
pub mod recent;
pub(crate) mod trees;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, SystemTime},
};

use pmon_proto::{
    time::timestamp,
    v1::{Culprit, ProcessGroup, ProcessState, ProcessUse, Rogue, Sample, SchedPolicy, StallCause, StallWindow},
};
pub use recent::Recent;

use crate::collect::Scheduling;

/// Culprits kept with a pause.
const CULPRITS: usize = 5;
/// Victims kept with a pause.
const VICTIMS: usize = 10;
/// The lead-up weighs this much against the stall itself.
const LEAD_UP_WEIGHT: f64 = 0.5;
/// A culprit consumed at least this share of one CPU over the window.
const MIN_CULPRIT_SHARE: f64 = 0.02;
/// A victim waited at least this long.
const MIN_WAIT: Duration = Duration::from_millis(10);
/// Memory growth that weighs as much as a second of CPU: taking memory from everyone
/// else is how a memory freeze is caused, and it costs little CPU.
const GROWTH_PER_CPU_SECOND: f64 = 128.0 * 1024.0 * 1024.0;
/// A culprit by memory alone grew at least this much in the window.
const MIN_GROWTH: f64 = 32.0 * 1024.0 * 1024.0;
/// The kernel credits a task's wait for a CPU when it next gets one, so the waits of a
/// stall show in the first readings after it: those ending this soon after the stall
/// count in full.
const DELAY_GRACE: Duration = Duration::from_secs(1);

/// A freeze as the sentinel saw it: one or several late wake-ups close together.
#[derive(Debug, Clone, PartialEq)]
pub struct Stall {
    /// When the freeze began: when the first late wake-up was due.
    pub from: SystemTime,
    /// When it ended: the last late wake-up.
    pub to: SystemTime,
    /// Total lateness of the late wake-ups.
    pub stalled: Duration,
    /// The longest of them.
    pub longest_gap: Duration,
    /// How many there were.
    pub gaps: u32,
    /// What the server knows of its own part in it.
    pub evidence: cause::Evidence,
}

/// Who is to blame for a stall, and who suffered it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// A machine freeze, or the server alone held up.
    pub cause: StallCause,
    /// The evidence for `cause`, in words.
    pub cause_detail: String,
    /// Where the blame was looked for.
    pub window: StallWindow,
    /// Who consumed, most to blame first.
    pub culprits: Vec<Culprit>,
    /// Who waited, longest first.
    pub victims: Vec<ProcessUse>,
    /// Trees of processes blamed together.
    pub groups: Vec<ProcessGroup>,
}

/// The attribution of `stall`, from the activity in `recent`, the rogues of `ring` and
/// a lead-up of `lead_up`; `server` is pmon-server's own pid, `server_cgroup` its
/// control group (naming the group the server itself runs in would explain nothing).
pub fn attribute(
    stall: &Stall,
    recent: &Recent,
    ring: &[Arc<Sample>],
    lead_up: Duration,
    server: u32,
    server_cgroup: Option<&str>,
) -> Verdict {
    let span = Span::new(stall.from, stall.to, lead_up, "stall");
    let (uses, samples) = tally(recent, span.lead_from, span.from, span.to);
    let ours = |u: &Tally| trees::descends_from(u.pid, server, &uses, recent);
    // Unknown (no process reported a wait) is not "nobody waited".
    let others_waited = uses.values().filter(|u| !ours(u)).filter_map(|u| u.run_delay).reduce(|a, b| a + b);
    let (cause, mut cause_detail) =
        cause::classify(&stall.evidence, stall, &cause::pressure(recent, stall), others_waited);
    if let Some(kills) = cause::kills(&stall.evidence) {
        cause_detail = format!("{cause_detail}; {kills}");
    }
    let window = StallWindow {
        lead_up_from: Some(timestamp(span.lead_from)),
        stall_from: Some(timestamp(stall.from)),
        stall_to: Some(timestamp(stall.to)),
        samples,
        gaps: stall.gaps,
        longest_gap_ms: stall.longest_gap.as_secs_f64() * 1000.0,
    };
    if !pmon_proto::format::blames_processes(cause as i32) {
        return Verdict { cause, cause_detail, window, culprits: vec![], victims: vec![], groups: vec![] };
    }
    let blame = rank(&uses, &span, (recent, ring), server, server_cgroup);
    Verdict { cause, cause_detail, window, culprits: blame.culprits, victims: blame.victims, groups: blame.groups }
}

/// The culprits of an escalation that began at `from` and is under way at `to`, by
/// the same rule as a pause's: who consumed in it (and its lead-up of `lead_up`)
/// while others waited, not who scored highest.
pub fn escalation(
    (from, to): (SystemTime, SystemTime),
    lead_up: Duration,
    (recent, ring): (&Recent, &[Arc<Sample>]),
    server: u32,
    server_cgroup: Option<&str>,
) -> Blamed {
    let span = Span::new(from, to, lead_up, "escalation");
    let (uses, _) = tally(recent, span.lead_from, span.from, span.to);
    let blame = rank(&uses, &span, (recent, ring), server, server_cgroup);
    Blamed { culprits: blame.culprits, groups: blame.groups }
}

/// An escalation's culprits and the groups blamed together.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Blamed {
    /// Who consumed while others waited, most to blame first.
    pub culprits: Vec<Culprit>,
    /// The process tree and control group that hold most of it, if any.
    pub groups: Vec<ProcessGroup>,
}

impl Blamed {
    /// This blame, keeping `before`'s culprits or groups where it found none: over a
    /// long escalation the bar to be a culprit rises with its length while the record
    /// keeps only its last minute, so a later look may find nobody that an earlier one
    /// rightly named.
    pub fn or(self, before: Blamed) -> Blamed {
        Blamed {
            culprits: if self.culprits.is_empty() { before.culprits } else { self.culprits },
            groups: if self.groups.is_empty() { before.groups } else { self.groups },
        }
    }
}

/// Where blame is looked for: `[from, to]` (a stall, an escalation) after a lead-up
/// from `lead_from`; `what` names the span in the culprits' explanations.
struct Span {
    lead_from: SystemTime,
    from: SystemTime,
    to: SystemTime,
    what: &'static str,
}

impl Span {
    fn new(from: SystemTime, to: SystemTime, lead_up: Duration, what: &'static str) -> Self {
        Self { lead_from: from.checked_sub(lead_up).unwrap_or(from), from, to: to.max(from), what }
    }
}

/// Who consumed and who waited in a span.
struct Blame {
    culprits: Vec<Culprit>,
    victims: Vec<ProcessUse>,
    groups: Vec<ProcessGroup>,
}

/// Ranks the processes of a span's tally: culprits by blame (ties by pid), victims by
/// how long they waited, and the trees and control groups blamed together.
fn rank(
    uses: &HashMap<u32, Tally>,
    span: &Span,
    (recent, ring): (&Recent, &[Arc<Sample>]),
    server: u32,
    server_cgroup: Option<&str>,
) -> Blame {
    let ours = |u: &Tally| trees::descends_from(u.pid, server, uses, recent);
    let whole = span.to.duration_since(span.lead_from).unwrap_or_default();
    let min_cpu = whole.mul_f64(MIN_CULPRIT_SHARE);
    let mut culprits: Vec<&Tally> =
        uses.values().filter(|u| !ours(u) && (u.cpu >= min_cpu || u.grew >= MIN_GROWTH)).collect();
    culprits.sort_by(|a, b| b.blame().total_cmp(&a.blame()).then(a.pid.cmp(&b.pid)));
    culprits.truncate(CULPRITS);
    // A kernel thread that consumed mostly works for the processes that asked it (a
    // kworker writing an I/O flood's blocks): among the culprits it is named after
    // them. It stays one of them, and leads when no process is to blame beside it (a
    // runaway kworker, kswapd alone).
    culprits.sort_by_key(|u| u.kernel_thread);

    let mut victims: Vec<&Tally> = uses
        .values()
        .filter(|u| !ours(u) && !culprits.iter().any(|c| c.pid == u.pid))
        .filter(|u| u.waited() >= MIN_WAIT || u.state == ProcessState::Stuck)
        .collect();
    victims.sort_by(|a, b| b.waited().cmp(&a.waited()).then(a.pid.cmp(&b.pid)));
    let waiting = Waiting {
        processes: victims.iter().filter(|v| v.run_delay.is_some_and(|d| !d.is_zero())).count(),
        run_delay: victims.iter().filter_map(|v| v.run_delay).sum(),
    };
    victims.truncate(VICTIMS);

    let in_window = window_samples(ring, span.lead_from, span.to);
    let mut groups = trees::groups(uses, recent, server, min_cpu);
    groups.extend(trees::cgroups(&culprits, server_cgroup));
    let culprits = culprits
        .iter()
        .map(|c| {
            let (rogue, seen) = best_appearance(&in_window, c);
            let why = why(c, span, &waiting);
            // The user named it a suspect ([suspects] patterns): say so first.
            let why = if rogue.as_ref().is_some_and(|r| r.suspect) { format!("known suspect; {why}") } else { why };
            Culprit { rogue, samples_seen: seen, why, usage: Some(c.to_use()), waited_on: None }
        })
        .collect();
    Blame { culprits, victims: victims.iter().map(|v| v.to_use()).collect(), groups }
}

/// What one process did in the window, summed over its readings.
#[derive(Debug, Clone, PartialEq)]
struct Tally {
    pid: u32,
    command: String,
    state: ProcessState,
    ppid: Option<u32>,
    scheduling: Option<Scheduling>,
    kernel_thread: bool,
    cgroup: Option<Arc<str>>,
    /// CPU time in the whole window, and in the span alone (the stall, the escalation).
    cpu: Duration,
    cpu_in_stall: Duration,
    run_delay: Option<Duration>,
    io_delay: Option<Duration>,
    pageins: Option<f64>,
    /// Resident memory it gained, bytes (growth only).
    grew: f64,
    seen: Duration,
    exited: bool,
    /// CPU time counted in `cpu` that only its parent's reaped time showed: what it did
    /// after its last reading (or, for a parent, what its unread children did).
    reaped: Duration,
}

impl Tally {
    /// How much it is to blame: CPU consumed, the stall counting in full and the
    /// lead-up less, a real-time task doubly, since it held every ordinary one off; and
    /// the memory it took.
    fn blame(&self) -> f64 {
        let lead = self.cpu.saturating_sub(self.cpu_in_stall);
        let consumed = self.cpu_in_stall.as_secs_f64() + LEAD_UP_WEIGHT * lead.as_secs_f64();
        let cpu = if self.real_time() { consumed * 2.0 } else { consumed };
        cpu + self.grew / GROWTH_PER_CPU_SECOND
    }

    fn real_time(&self) -> bool {
        self.scheduling.is_some_and(|s| s.real_time())
    }

    fn waited(&self) -> Duration {
        self.run_delay.unwrap_or_default() + self.io_delay.unwrap_or_default()
    }

    fn to_use(&self) -> ProcessUse {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        ProcessUse {
            pid: self.pid,
            command: self.command.clone(),
            state: self.state as i32,
            cpu_ms: ms(self.cpu),
            run_delay_ms: self.run_delay.map(ms),
            io_delay_ms: self.io_delay.map(ms),
            pageins: self.pageins.map(|p| p.round() as u64),
            policy: self.scheduling.map_or(SchedPolicy::Unspecified, |s| s.policy) as i32,
            rt_priority: self.scheduling.map_or(0, |s| s.rt_priority),
            nice: self.scheduling.and_then(|s| s.nice),
            ppid: self.ppid,
            exited: self.exited,
            seen_ms: ms(self.seen),
        }
    }
}

/// The part of `[start, end]` inside `[from, to]`.
fn overlap(start: SystemTime, end: SystemTime, from: SystemTime, to: SystemTime) -> Duration {
    end.min(to).duration_since(start.max(from)).unwrap_or_default()
}

/// Sums every reading that overlaps the window `[lead_from, to]` (the stall being
/// `[from, to]`), each in proportion to its overlap; also counts the samples that did.
fn tally(recent: &Recent, lead_from: SystemTime, from: SystemTime, to: SystemTime) -> (HashMap<u32, Tally>, u32) {
    let mut uses: HashMap<u32, Tally> = HashMap::new();
    let mut reaped = Vec::new();
    let mut samples = 0;
    let mut previous: Option<SystemTime> = None;
    for moment in recent.moments() {
        if moment.at > lead_from && previous.is_none_or(|p| p < to) {
            samples += 1;
        }
        previous = Some(moment.at);
        for a in &moment.activities {
            let span = a.usage.span;
            // The reading ends when it was taken, `lag` into the collection.
            let end = moment.at + a.usage.lag;
            let Some(start) = end.checked_sub(span).filter(|_| !span.is_zero()) else { continue };
            let inside = overlap(start, end, lead_from, to);
            let credited = end > lead_from && end <= to + DELAY_GRACE;
            if inside.is_zero() && !credited {
                continue;
            }
            let share = inside.as_secs_f64() / span.as_secs_f64();
            let in_stall = overlap(start, end, from, to).as_secs_f64() / span.as_secs_f64();
            let delay_share = if credited { 1.0 } else { share };
            let u = uses.entry(a.pid).or_insert_with(|| Tally {
                pid: a.pid,
                command: a.command.clone(),
                state: a.state,
                ppid: a.ppid,
                scheduling: a.scheduling,
                kernel_thread: a.kernel_thread,
                cgroup: None,
                cpu: Duration::ZERO,
                cpu_in_stall: Duration::ZERO,
                run_delay: None,
                io_delay: None,
                pageins: None,
                grew: 0.0,
                seen: Duration::ZERO,
                exited: false,
                reaped: Duration::ZERO,
            });
            // The latest reading says what it is now.
            u.command.clone_from(&a.command);
            u.state = a.state;
            u.scheduling = a.scheduling.or(u.scheduling);
            // Its first parent in the window: a process whose parent died is handed to
            // init or a subreaper, which says nothing of the tree it ran in.
            u.ppid = u.ppid.or(a.ppid);
            u.cgroup = a.cgroup.clone().or(u.cgroup.take());
            u.cpu += a.usage.cpu.mul_f64(share);
            u.cpu_in_stall += a.usage.cpu.mul_f64(in_stall);
            let add = |sum: Option<Duration>, d: Option<Duration>| match (sum, d) {
                (s, None) => s,
                (s, Some(d)) => Some(s.unwrap_or_default() + d.mul_f64(delay_share)),
            };
            u.run_delay = add(u.run_delay, a.usage.run_delay);
            u.io_delay = add(u.io_delay, a.usage.io_delay);
            if let Some(n) = a.usage.pageins {
                u.pageins = Some(u.pageins.unwrap_or(0.0) + n as f64 * share);
            }
            u.grew += a.usage.mem_growth.filter(|g| *g > 0).map_or(0.0, |g| g as f64 * share);
            u.seen += inside;
            if let Some(r) = a.usage.reaped.filter(|r| !r.cpu.is_zero()) {
                reaped.push((a.pid, r, share, in_stall));
            }
        }
    }
    charge_reaped(&mut uses, reaped);
    for u in uses.values_mut() {
        u.exited = !recent.alive(u.pid);
    }
    (uses, samples)
}

/// Charges CPU time found in parents' reaped time (`(parent, reaped, share of the
/// reading in the window, share in the stall)`): a reaped child's last moments are its
/// own when it has a record here; otherwise they stay with the parent that reaped it
/// (its children, unread, as a whole).
fn charge_reaped(uses: &mut HashMap<u32, Tally>, reaped: Vec<(u32, crate::collect::Reaped, f64, f64)>) {
    for (parent, r, share, in_stall) in reaped {
        let pid = r.child.filter(|c| uses.contains_key(c)).unwrap_or(parent);
        let Some(u) = uses.get_mut(&pid) else { continue };
        u.cpu += r.cpu.mul_f64(share);
        u.cpu_in_stall += r.cpu.mul_f64(in_stall);
        u.reaped += r.cpu.mul_f64(share);
    }
}

/// The ring's samples in the window, and the first one after it (its readings cover
/// the end of the stall).
fn window_samples(ring: &[Arc<Sample>], from: SystemTime, to: SystemTime) -> Vec<&Sample> {
    let at = |s: &Sample| s.time.as_ref().and_then(pmon_proto::time::system_time);
    let mut out = Vec::new();
    for s in ring {
        let Some(t) = at(s) else { continue };
        if t >= from {
            out.push(s.as_ref());
        }
        if t > to {
            break;
        }
    }
    out
}

/// A culprit as the ring saw it at its highest score in the window, and in how many of
/// those samples it was a rogue; none for a process that was never a rogue there (its
/// figures in the window describe it).
fn best_appearance(samples: &[&Sample], c: &Tally) -> (Option<Rogue>, u32) {
    let mut best: Option<&Rogue> = None;
    let mut seen = 0;
    for r in samples.iter().flat_map(|s| &s.rogues).filter(|r| r.pid == c.pid && r.command == c.command) {
        seen += 1;
        if best.is_none_or(|b| r.score > b.score) {
            best = Some(r);
        }
    }
    (best.cloned(), seen)
}

/// The victims' waiting, for the culprits' explanation.
struct Waiting {
    processes: usize,
    run_delay: Duration,
}

/// "cpu 3.92 s in the 4.01 s stall, SCHED_FIFO 50, exited; 23 processes waited 7.3 s
/// for a CPU".
fn why(c: &Tally, span: &Span, waiting: &Waiting) -> String {
    let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    let length = span.to.duration_since(span.from).unwrap_or_default();
    let lead = c.cpu.saturating_sub(c.cpu_in_stall);
    let mut parts = Vec::new();
    if length.is_zero() {
        // Just begun (an escalation's entry): only the lead-up tells.
        let before = span.from.duration_since(span.lead_from).unwrap_or_default();
        parts.push(format!("cpu {} in the {} before the {}", secs(lead), secs(before), span.what));
    } else {
        parts.push(format!("cpu {} in the {} {}", secs(c.cpu_in_stall), secs(length), span.what));
        if lead >= Duration::from_millis(10) {
            parts.push(format!("{} before it", secs(lead)));
        }
    }
    if c.grew >= 1024.0 * 1024.0 {
        parts.push(format!("grew {:.0} MiB", c.grew / (1024.0 * 1024.0)));
    }
    if let Some(s) = c.scheduling.filter(|_| c.real_time()) {
        parts.push(format!("{} {}", pmon_proto::format::policy(s.policy as i32), s.rt_priority));
    }
    if c.kernel_thread {
        parts.push("kernel thread".into());
    }
    if c.exited {
        parts.push("exited since".into());
    }
    if c.reaped >= Duration::from_millis(10) {
        let whose = if c.exited { "after its last reading, found when it was reaped" } else { "by children it reaped" };
        parts.push(format!("{} of it {whose}", secs(c.reaped)));
    }
    let mut why = parts.join(", ");
    if waiting.processes > 0 && !waiting.run_delay.is_zero() {
        let who = if waiting.processes == 1 { "process" } else { "processes" };
        why.push_str(&format!("; {} other {who} waited {} for a CPU", waiting.processes, secs(waiting.run_delay)));
    }
    why
}

#[cfg(test)]
mod tests;
