//! Was it the machine, or pmon-server alone? The sentinel measures the server's own
//! lateness and reads the kernel's accounting of what can hold the server up alone
//! (`pause::held`). In order:
//!
//! - **stopped**: it got SIGCONT (`kill -STOP`, a suspended shell job);
//! - **throttled**: its sentinel waited for a CPU for most of its lateness (a throttled
//!   task stays runnable) and its control group's quota held the group off (per CPU) for
//!   at least a quarter of it;
//! - **the host**: steal per CPU grew by half the lateness: the whole virtual machine
//!   was descheduled, and nothing inside it is to blame;
//! - **the machine**: the server waited for a CPU along with others, or tasks waited on
//!   memory, I/O or a CPU (PSI), or other processes waited for a CPU;
//! - **its memory group at its limit**: the group's limit was hit during the stall (a
//!   task there waits for reclaim or the OOM killer, in no pressure figure): a freeze of
//!   every process of the group, the machine's as far as they are concerned;
//! - **held up alone**: it was late without waiting for a CPU while nobody else waited:
//!   frozen, when its group can be frozen (a frozen task neither runs nor waits);
//!   otherwise suspended. A machine freeze needs evidence that others waited.
//! - Where nothing tells either way (no PSI, no run delays: macOS), the machine.

use std::time::Duration;

use pmon_proto::v1::StallCause;

use super::{Recent, Stall};

/// A share of the stall this large is real pressure, not background noise.
const PRESSURE_SHARE: f64 = 0.25;
/// The sentinel waited on a run queue for at least this share of its lateness: it was
/// ready to run and the machine did not let it. Throttling or steal this large held it
/// up as well.
const WAIT_SHARE: f64 = 0.5;

/// What the server knows about its own part in a stall.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    /// The server got SIGCONT during the freeze: it had been stopped.
    pub continued: bool,
    /// How long the sentinel thread waited on a run queue during its late wake-ups;
    /// `None` where the platform does not tell.
    pub sentinel_waited: Option<Duration>,
    /// How long its control group's CPU quota held it off across the freeze, per CPU.
    pub throttled: Option<Duration>,
    /// How much time the host took from this machine across it, per CPU.
    pub steal: Option<Duration>,
    /// How often its memory control group hit its limit across the freeze, and the file
    /// that says so.
    pub limit_hits: Option<(u64, String)>,
    /// The freezer that can hold its group, in words; `None` if none can.
    pub freezer: Option<String>,
    /// Processes the kernel's OOM killer killed across the freeze, anywhere.
    pub oom_kills: Option<u64>,
    /// Why a figure above is unknown, in words.
    pub unknown: Vec<String>,
}

/// How much longer tasks stalled on each resource (PSI "some") across the stall.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pressure {
    /// Waiting for a CPU.
    pub cpu: Option<Duration>,
    /// Waiting for memory (reclaim, refaults).
    pub memory: Option<Duration>,
    /// Waiting for I/O.
    pub io: Option<Duration>,
}

/// The pressure growth between the last sample before the stall and the first after it.
pub fn pressure(recent: &Recent, stall: &Stall) -> Pressure {
    let before = recent.moments().filter(|m| m.at <= stall.from).last();
    let after = recent.moments().find(|m| m.at >= stall.to);
    let delta = |i: usize| {
        let (then, now) = (before?.pressure[i]?, after?.pressure[i]?);
        Some(Duration::from_micros(now.saturating_sub(then)))
    };
    Pressure { cpu: delta(0), memory: delta(1), io: delta(2) }
}

/// The cause of a stall and the evidence for it, in words; `others_waited` is how long
/// processes other than the server waited for a CPU in the window, where known.
pub fn classify(
    evidence: &Evidence,
    stall: &Stall,
    pressure: &Pressure,
    others_waited: Option<Duration>,
) -> (StallCause, String) {
    let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    if evidence.continued {
        return (
            StallCause::ServerSuspended,
            "pmon-server was stopped (SIGSTOP or SIGTSTP) and continued: not a machine freeze".into(),
        );
    }
    let late = stall.stalled;
    let share = |d: Duration, of: f64| d.as_secs_f64() >= of * late.as_secs_f64();
    if let Some(held) = quota_or_host(evidence, late) {
        return held;
    }
    if let Some(waited) = evidence.sentinel_waited.filter(|w| share(*w, WAIT_SHARE)) {
        // Only waits others reported can show they did not wait.
        if let Some(others) = others_waited.filter(|o| !share(*o, PRESSURE_SHARE)) {
            return (
                StallCause::ServerSuspended,
                format!(
                    "pmon-server alone waited for a CPU ({} of its {} lateness; other processes {}): its own \
                     scheduling held it back",
                    secs(waited),
                    secs(late),
                    secs(others)
                ),
            );
        }
        return (
            StallCause::Machine,
            format!(
                "the sentinel was ready to run and waited {} of its {} lateness for a CPU, other processes {}",
                secs(waited),
                secs(late),
                others_waited.map_or_else(|| "unknown".into(), secs)
            ),
        );
    }
    let span = stall.to.duration_since(stall.from).unwrap_or(late).max(late);
    let pressed: Vec<String> = [("cpu", pressure.cpu), ("memory", pressure.memory), ("io", pressure.io)]
        .into_iter()
        .filter_map(|(name, d)| d.filter(|d| d.as_secs_f64() >= PRESSURE_SHARE * span.as_secs_f64()).map(|d| (name, d)))
        .map(|(name, d)| format!("{name} {}", secs(d)))
        .collect();
    if !pressed.is_empty() {
        return (StallCause::Machine, format!("tasks waited for {} during the stall", pressed.join(", ")));
    }
    if let Some(others) = others_waited.filter(|o| share(*o, PRESSURE_SHARE)) {
        return (StallCause::Machine, format!("other processes waited {} for a CPU during the stall", secs(others)));
    }
    if let Some((hits, file)) = evidence.limit_hits.as_ref().filter(|(hits, _)| *hits > 0) {
        return (
            StallCause::Machine,
            format!(
                "pmon-server's memory control group hit its limit {hits} times during the stall ({file}): its tasks \
                 waited for memory"
            ),
        );
    }
    let known = [pressure.cpu, pressure.memory, pressure.io, others_waited];
    if known.iter().all(Option::is_none) {
        return (StallCause::Machine, format!("the sentinel woke {} late; nothing tells more", secs(late)));
    }
    // Others are known not to have waited: the server alone was held up.
    held_alone(evidence, late, others_waited)
}

/// What the kernel killed, as evidence beside the cause: a freeze that ended with OOM
/// kills was a memory freeze, and an exited culprit may have been the one killed.
pub fn kills(evidence: &Evidence) -> Option<String> {
    let n = evidence.oom_kills.filter(|n| *n > 0)?;
    let what = if n == 1 { "process" } else { "processes" };
    Some(format!("the kernel's OOM killer killed {n} {what} during it (oom_kill in /proc/vmstat)"))
}

/// Its group's CPU quota or the host held the server up for most of its lateness
/// `late`: throttling and steal are counted by the kernel, so they come first.
fn quota_or_host(evidence: &Evidence, late: Duration) -> Option<(StallCause, String)> {
    let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    let share = |d: Duration, of: f64| d.as_secs_f64() >= of * late.as_secs_f64();
    let waited = evidence.sentinel_waited.is_some_and(|w| share(w, WAIT_SHARE));
    if let Some(throttled) = evidence.throttled.filter(|t| waited && share(*t, PRESSURE_SHARE)) {
        return Some((
            StallCause::ServerThrottled,
            format!(
                "pmon-server's control group ran out of its CPU quota: throttled {} (per CPU) during its {} \
                 lateness, waiting for a CPU (cpu.stat)",
                secs(throttled),
                secs(late)
            ),
        ));
    }
    if let Some(steal) = evidence.steal.filter(|s| share(*s, WAIT_SHARE)) {
        return Some((
            StallCause::HostSteal,
            format!(
                "the host descheduled this virtual machine: steal grew {} (per CPU) during the {} lateness \
                 (/proc/stat)",
                secs(steal),
                secs(late)
            ),
        ));
    }
    None
}

/// The server was late by `late` without waiting for a CPU while nobody else waited:
/// frozen where its group can be, else held up some other way (suspended).
fn held_alone(evidence: &Evidence, late: Duration, others_waited: Option<Duration>) -> (StallCause, String) {
    let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    let waited = evidence.sentinel_waited.map_or_else(|| "unknown".into(), secs);
    let others = others_waited.map_or_else(|| "unknown".into(), secs);
    let unknown = if evidence.unknown.is_empty() {
        String::new()
    } else {
        format!(" (unknown: {})", evidence.unknown.join("; "))
    };
    let nobody = format!(
        "held up {} without waiting for a CPU (it waited {waited}) while nobody else waited (other processes {others}, \
         no pressure stall)",
        secs(late)
    );
    match &evidence.freezer {
        Some(freezer) => (
            StallCause::ServerFrozen,
            format!(
                "pmon-server's control group can be frozen ({freezer}) and was, as far as the counters tell: {nobody}{unknown}"
            ),
        ),
        None => (StallCause::ServerSuspended, format!("pmon-server alone was {nobody}{unknown}")),
    }
}
