//! Human-readable rendering shared by the server (culprit explanations, notifications)
//! and the clients: tiers, units, factors, rogues.

use chrono::{DateTime, Local};

use crate::v1::{
    AppHang, Culprit, Event, EventKind, EventStatus, Factor, MachineStress, ProcessFactors, ProcessGroup, ProcessState,
    ProcessUse, Rogue, SchedPolicy, StackThread, StallCause, StallWindow, StressFactor, Tier, WaitChain,
};

/// `SENTINEL`, `ELEVATED`, `CRITICAL`.
pub fn tier(value: i32) -> &'static str {
    match Tier::try_from(value) {
        Ok(Tier::Sentinel) => "SENTINEL",
        Ok(Tier::Elevated) => "ELEVATED",
        Ok(Tier::Critical) => "CRITICAL",
        _ => "UNKNOWN",
    }
}

/// `pause` or `escalation`.
pub fn event_kind(kind: i32) -> &'static str {
    match EventKind::try_from(kind) {
        Ok(EventKind::Pause) => "pause",
        Ok(EventKind::Escalation) => "escalation",
        _ => "unknown",
    }
}

/// `unreviewed`, `reviewed`, `pinned` or `dismissed`: the words `pmon events mark` takes.
pub fn event_status(status: i32) -> &'static str {
    match EventStatus::try_from(status) {
        Ok(EventStatus::Unreviewed) => "unreviewed",
        Ok(EventStatus::Reviewed) => "reviewed",
        Ok(EventStatus::Pinned) => "pinned",
        Ok(EventStatus::Dismissed) => "dismissed",
        _ => "unknown",
    }
}

/// Local wall-clock time with milliseconds.
pub fn clock(ts: Option<&pbjson_types::Timestamp>) -> String {
    ts.and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
        .map(|t| t.with_timezone(&Local).format("%H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| "--:--:--.---".into())
}

/// Local date and time to the second, `2026-11-21 14:05:09`.
pub fn date_time(ts: Option<&pbjson_types::Timestamp>) -> String {
    ts.and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
        .map(|t| t.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

/// Bytes in binary units: `812 KiB`, `11.2 MiB`, `3.0 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{n} B"),
        _ if value >= 100.0 => format!("{value:.0} {}", UNITS[unit]),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

/// A rate: `740/s`, `48.0k/s`, `1.2M/s`.
pub fn rate(per_sec: f64) -> String {
    if per_sec >= 1e6 {
        format!("{:.1}M/s", per_sec / 1e6)
    } else if per_sec >= 1e3 {
        format!("{:.1}k/s", per_sec / 1e3)
    } else {
        format!("{per_sec:.0}/s")
    }
}

/// An event's culprit as every client and notification names it: `hog[42]: cpu 3.90 s
/// in the 4.00 s stall, SCHED_FIFO 50`.
pub fn culprit(c: &Culprit) -> String {
    let (command, pid) = who(c).unwrap_or(("?", None));
    match pid {
        Some(pid) => format!("{command}[{pid}]: {}", c.why),
        None => format!("{command}: {}", c.why),
    }
}

/// A culprit's command and pid: its rogue's, its usage's, or the stack report thread's
/// it was found as; `None` for a culprit that names nothing.
fn who(c: &Culprit) -> Option<(&str, Option<u32>)> {
    match (&c.rogue, &c.usage, &c.waited_on) {
        (Some(r), _, _) => Some((r.command.as_str(), Some(r.pid))),
        (None, Some(u), _) => Some((u.command.as_str(), Some(u.pid))),
        (None, None, Some(t)) => Some((t.process.as_str(), t.pid)),
        (None, None, None) => None,
    }
}

/// A culprit's command, wherever it was found (see [`culprit`]).
pub fn culprit_command(c: &Culprit) -> Option<String> {
    who(c).map(|(command, _)| command.to_string())
}

/// A thread of a stack report: `WindowServer [153] main thread 0x3e2`, `mds [371] thread
/// 0x1b02`, or the process alone, `smd [245]`.
pub fn stack_thread(t: &StackThread) -> String {
    let process = match (t.pid, t.process.as_str()) {
        (Some(pid), "") => format!("[{pid}]"),
        (Some(pid), name) => format!("{name} [{pid}]"),
        (None, name) => name.to_string(),
    };
    match (t.thread.as_str(), t.main) {
        ("", _) => process,
        (id, true) => format!("{process} main thread {id}"),
        (id, false) => format!("{process} thread {id}"),
    }
}

/// A chain of waits: its sentence, then who waited, one line per process.
pub fn wait_chain(c: &WaitChain) -> Vec<String> {
    let mut lines = vec![c.why.clone()];
    for g in &c.waiters {
        let who = stack_thread(&StackThread { process: g.process.clone(), pid: g.pid, ..StackThread::default() });
        let threads = match (g.threads, g.more_threads) {
            (n, true) => format!("at least {n} threads"),
            (1, false) => "1 thread".to_string(),
            (n, false) => format!("{n} threads"),
        };
        let main = if g.main { " (its main thread among them)" } else { "" };
        lines.push(format!("  {who}: {threads}{main}, {} samples waiting", g.samples));
    }
    lines
}

/// A main-thread hang: `Mail [812] main thread 0x2f5: hung 1001/1001 samples, mostly
/// blocked in __psynch_mutexwait (libsystem_kernel.dylib) under -[MFLibraryStore
/// messagesMatchingCriterion:], waiting for mds [371] thread 0x1a3f`.
pub fn app_hang(h: &AppHang) -> String {
    let who = h.thread.as_ref().map(stack_thread).unwrap_or_default();
    let how = if h.busy { "busy" } else { "blocked" };
    // The app's own frame says more than the library calls between it and the wait.
    let own = h.via.iter().find(|f| !f.starts_with('_') && *f != "???");
    let under = own.map_or_else(String::new, |f| format!(" under {f}"));
    let waiting = if h.waiting_for.is_empty() { String::new() } else { format!(", waiting for {}", h.waiting_for) };
    format!("{who}: hung {}/{} samples, mostly {how} in {}{under}{waiting}", h.samples, h.total_samples, h.doing)
}

/// An event's first culprit as one phrase, the same in every list: `-` when there is
/// none, and for a stall of pmon-server alone, that.
pub fn top_culprit(e: &Event) -> String {
    if server_alone(e.cause) {
        return "none: pmon-server alone was held up".into();
    }
    if !blames_processes(e.cause) {
        return no_culprit(e).into();
    }
    e.culprits.first().map_or_else(|| "-".into(), culprit)
}

/// A pause's cause with its evidence; `None` where the event has none (escalations,
/// pauses recorded before causes were told apart).
pub fn cause(e: &Event) -> Option<String> {
    match StallCause::try_from(e.cause) {
        Ok(StallCause::Machine) => Some(format!("the machine froze: {}", e.cause_detail)),
        Ok(StallCause::ServerSuspended | StallCause::ServerFrozen | StallCause::ServerThrottled) => {
            Some(format!("not a machine freeze: {}", e.cause_detail))
        }
        Ok(StallCause::HostSteal) => Some(format!("the host froze this machine: {}", e.cause_detail)),
        Ok(StallCause::Unspecified) | Err(_) => None,
    }
}

/// Whether a stall of this cause (`StallCause` as sent) held up pmon-server alone, not
/// the machine: such a stall is not announced, and not counted among the machine's.
pub fn server_alone(cause: i32) -> bool {
    matches!(
        StallCause::try_from(cause),
        Ok(StallCause::ServerSuspended | StallCause::ServerFrozen | StallCause::ServerThrottled)
    )
}

/// Why an event names no culprit, in words.
pub fn no_culprit(e: &Event) -> &'static str {
    match StallCause::try_from(e.cause) {
        Ok(StallCause::HostSteal) => "none: the host descheduled the whole machine",
        _ if server_alone(e.cause) => "none: the machine did not freeze",
        _ => "none: no process stood out",
    }
}

/// Whether a stall of this cause (`StallCause` as sent) is one that processes of this
/// machine made, so that culprits are named: not when pmon-server alone was held up
/// (stopped, frozen, throttled), nor when the host descheduled the whole machine.
pub fn blames_processes(cause: i32) -> bool {
    !matches!(
        StallCause::try_from(cause),
        Ok(StallCause::ServerSuspended
            | StallCause::ServerFrozen
            | StallCause::ServerThrottled
            | StallCause::HostSteal)
    )
}

/// Seconds with two decimals: `3.92 s`.
fn secs_ms(ms: f64) -> String {
    format!("{:.2} s", ms / 1000.0)
}

/// Where a pause's blame was looked for: `stall 14:05:09.100 to 14:05:13.200 (4 late
/// wake-ups, longest 0.95 s) and the lead-up from 14:05:06.100; 25 samples`.
pub fn window(w: &StallWindow) -> String {
    let wakeups = if w.gaps == 1 { "1 late wake-up".to_string() } else { format!("{} late wake-ups", w.gaps) };
    format!(
        "stall {} to {} ({wakeups}, longest {}) and the lead-up from {}; {} samples",
        clock(w.stall_from.as_ref()),
        clock(w.stall_to.as_ref()),
        secs_ms(w.longest_gap_ms),
        clock(w.lead_up_from.as_ref()),
        w.samples
    )
}

/// `SCHED_FIFO`, `SCHED_OTHER`, …
pub fn policy(p: i32) -> &'static str {
    match SchedPolicy::try_from(p) {
        Ok(SchedPolicy::Normal) => "SCHED_OTHER",
        Ok(SchedPolicy::Batch) => "SCHED_BATCH",
        Ok(SchedPolicy::Idle) => "SCHED_IDLE",
        Ok(SchedPolicy::Fifo) => "SCHED_FIFO",
        Ok(SchedPolicy::Rr) => "SCHED_RR",
        Ok(SchedPolicy::Deadline) => "SCHED_DEADLINE",
        _ => "policy unknown",
    }
}

/// What a process did in a pause's window: `cpu 3.92 s · waited 0.00 s for a CPU ·
/// SCHED_FIFO 50 · exited`.
pub fn process_use(u: &ProcessUse) -> String {
    let mut parts = vec![format!("cpu {}", secs_ms(u.cpu_ms))];
    if let Some(w) = u.run_delay_ms {
        parts.push(format!("waited {} for a CPU", secs_ms(w)));
    }
    if let Some(w) = u.io_delay_ms {
        parts.push(format!("{} for I/O", secs_ms(w)));
    }
    if let Some(n) = u.pageins.filter(|n| *n > 0) {
        parts.push(format!("{n} page-ins"));
    }
    match SchedPolicy::try_from(u.policy) {
        Ok(SchedPolicy::Fifo | SchedPolicy::Rr) => parts.push(format!("{} {}", policy(u.policy), u.rt_priority)),
        // Sources that tell no policy (macOS) say nothing of it.
        Ok(SchedPolicy::Unspecified) | Err(_) => {}
        Ok(_) => parts.push(policy(u.policy).to_string()),
    }
    if u.state == ProcessState::Stuck as i32 {
        parts.push("in uninterruptible sleep".into());
    }
    if u.exited {
        parts.push("exited".into());
    }
    parts.join(" · ")
}

/// A victim: `editor[20]: cpu 0.01 s · waited 5.40 s for a CPU · SCHED_OTHER`.
pub fn victim(u: &ProcessUse) -> String {
    format!("{}[{}]: {}", u.command, u.pid, process_use(u))
}

/// A group: `tree make[200] and 9 children: cpu 2.70 s`.
pub fn group(g: &ProcessGroup) -> String {
    format!("{} {}: cpu {}", g.kind, g.name, secs_ms(g.cpu_ms))
}

/// A factor's short name.
pub fn factor_name(f: i32) -> &'static str {
    match Factor::try_from(f) {
        Ok(Factor::Cpu) => "cpu",
        Ok(Factor::State) => "state",
        Ok(Factor::Pageins) => "pageins",
        Ok(Factor::Mem) => "mem",
        Ok(Factor::Cmprs) => "cmprs",
        Ok(Factor::Csw) => "csw",
        Ok(Factor::Sysbsd) => "syscalls",
        Ok(Factor::Threads) => "threads",
        _ => "?",
    }
}

/// A factor's raw value with its unit; `n/a` when the source could not tell.
pub fn factor_value(f: i32, factors: &ProcessFactors, state: i32) -> String {
    let na = || "n/a".to_string();
    match Factor::try_from(f) {
        Ok(Factor::Cpu) => factors.cpu_percent.map_or_else(na, |v| format!("{v:.1}%")),
        Ok(Factor::State) => state_name(state).to_string(),
        Ok(Factor::Pageins) => factors.pageins_per_sec.map_or_else(na, rate),
        Ok(Factor::Mem) => factors.mem_bytes.map_or_else(na, bytes),
        Ok(Factor::Cmprs) => factors.cmprs_bytes.map_or_else(na, bytes),
        Ok(Factor::Csw) => factors.csw_per_sec.map_or_else(na, rate),
        Ok(Factor::Sysbsd) => factors.sysbsd_per_sec.map_or_else(na, rate),
        Ok(Factor::Threads) => factors.threads.map_or_else(na, |t| t.to_string()),
        _ => na(),
    }
}

fn state_name(state: i32) -> &'static str {
    use crate::v1::ProcessState as S;
    match S::try_from(state) {
        Ok(S::Running) => "running",
        Ok(S::Sleeping) => "sleeping",
        Ok(S::Stuck) => "stuck",
        Ok(S::Zombie) => "zombie",
        Ok(S::Halted) => "halted",
        Ok(S::Stopped) => "stopped",
        Ok(S::Idle) => "idle",
        _ => "unknown",
    }
}

/// `name[pid]`, or for a group its name, `make[4120] and 48 children`.
pub fn rogue_name(r: &Rogue) -> String {
    match &r.group {
        Some(g) => g.name.clone(),
        None => format!("{}[{}]", r.command, r.pid),
    }
}

/// What the tier followed in a sample: its `stress`, or in a sample from a server that
/// did not measure the machine yet, its top score.
pub fn stress_of(s: &crate::v1::Sample) -> f64 {
    if s.machine.is_some() { s.stress } else { s.max_score }
}

/// A machine stress factor's short name.
pub fn stress_factor(f: StressFactor) -> &'static str {
    match f {
        StressFactor::CpuWait => "cpu",
        StressFactor::Realtime => "real-time",
        StressFactor::MemorySome | StressFactor::MemoryFull | StressFactor::MemoryAvailable => "memory",
        StressFactor::IoSome => "io",
        StressFactor::Pageins => "page-ins",
        StressFactor::Swap => "swap",
        StressFactor::Thermal => "thermal",
        StressFactor::Unspecified => "?",
    }
}

/// `machine 60.0: cpu: 23.1 tasks waited for each CPU …`, or `machine 2.1` when no
/// factor gives points worth a reason.
pub fn machine(m: &MachineStress) -> String {
    if m.reason.is_empty() {
        format!("machine {:.1}", m.score)
    } else {
        format!("machine {:.1}: {}", m.score, m.reason)
    }
}

/// `name[pid] 22.5: cpu 99.8% (100% of it)`: a rogue, its score and its main factor.
pub fn rogue(r: &Rogue) -> String {
    let suspect = if r.suspect { " [known suspect]" } else { "" };
    let head = format!("{}{suspect} {:.1}", rogue_name(r), r.score);
    match main_factor(r) {
        Some(why) => format!("{head}: {why}"),
        None => head,
    }
}

/// A rogue's explanation on one line: each factor's raw value and its points,
/// `cpu 98.0% = 22.1 · mem 1.5 GiB = 2.8`; empty when nothing scored.
pub fn explanation(r: &Rogue) -> String {
    let factors = r.factors.unwrap_or_default();
    let shares: Vec<String> = r
        .explanation
        .iter()
        .map(|s| format!("{} {} = {:.1}", factor_name(s.factor), factor_value(s.factor, &factors, r.state), s.points))
        .collect();
    shares.join(" · ")
}

/// How long an event lasted: the stall for a pause, start to end for an escalation.
pub fn event_length(e: &Event) -> String {
    if let Some(stall) = e.stall_ms {
        return format!("{:.2} s", stall / 1000.0);
    }
    match (&e.started_at, &e.ended_at) {
        (Some(s), Some(end)) => {
            format!("{:.0} s", (end.seconds - s.seconds) as f64 + f64::from(end.nanos - s.nanos) / 1e9)
        }
        _ => "open".into(),
    }
}

/// `cpu 99.8% (100% of it)`: the factor that weighs most in a rogue's score, its raw
/// value, and its share of the score.
pub fn main_factor(r: &Rogue) -> Option<String> {
    match (r.explanation.first(), &r.factors) {
        (Some(top), Some(factors)) if r.score > 0.0 => Some(format!(
            "{} {} ({:.0}% of it)",
            factor_name(top.factor),
            factor_value(top.factor, factors, r.state),
            top.points / r.score * 100.0
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(11 * 1024 * 1024 + 200 * 1024), "11.2 MiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
        assert_eq!(rate(740.2), "740/s");
        assert_eq!(rate(48_000.0), "48.0k/s");
        assert_eq!(rate(1_250_000.0), "1.2M/s");
    }

    #[test]
    fn rogue_names_its_main_factor_and_share() {
        use crate::v1::FactorShare;
        let r = Rogue {
            pid: 42,
            command: "stress".into(),
            score: 20.0,
            state: crate::v1::ProcessState::Running as i32,
            factors: Some(ProcessFactors { cpu_percent: Some(99.84), ..Default::default() }),
            explanation: vec![FactorShare { factor: Factor::Cpu as i32, normalized: 1.0, weight: 25.0, points: 15.0 }],
            ..Default::default()
        };
        assert_eq!(rogue(&r), "stress[42] 20.0: cpu 99.8% (75% of it)");
        let unavailable = ProcessFactors::default();
        assert_eq!(factor_value(Factor::Sysbsd as i32, &unavailable, 0), "n/a");
    }
}
