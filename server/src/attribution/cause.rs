//! Was it the machine, or pmon-server alone? The sentinel measures the server's own
//! lateness. A server that was stopped (`kill -STOP`, a suspended shell job: it gets
//! SIGCONT when continued) was suspended, and so was one that waited for a CPU while no
//! other process did (its own priority held it back). Otherwise the lateness is the
//! machine's: the server waited for a CPU along with others, or tasks waited on memory
//! or I/O, or (no evidence either way) the server was blocked in the kernel, which is
//! how a memory freeze looks from inside it.

use std::time::Duration;

use pmon_proto::v1::StallCause;

use super::{Recent, Stall};

/// A share of the stall this large is real pressure, not background noise.
const PRESSURE_SHARE: f64 = 0.25;
/// The sentinel waited on a run queue for at least this share of its lateness: it was
/// ready to run and the machine did not let it.
const WAIT_SHARE: f64 = 0.5;

/// What the server knows about its own part in a stall.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Evidence {
    /// The server got SIGCONT during the freeze: it had been stopped.
    pub continued: bool,
    /// How long the sentinel thread waited on a run queue during its late wake-ups;
    /// `None` where the platform does not tell.
    pub sentinel_waited: Option<Duration>,
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
    match evidence.sentinel_waited {
        Some(waited) => (
            StallCause::Machine,
            format!(
                "the sentinel was held up {} without waiting for a CPU (it waited {}): blocked in the kernel, \
                 as on memory or I/O",
                secs(late),
                secs(waited)
            ),
        ),
        None => (StallCause::Machine, format!("the sentinel woke {} late; nothing tells more", secs(late))),
    }
}
