//! Desktop notifications (SPEC §3.8): a pause is announced after recovery, naming the
//! top suspect and why; repeats of a kind are rate-limited; every notification is
//! stored with its event, delivered or not. When no notification service can be
//! reached, that is logged once and pmon carries on.

#[cfg_attr(target_os = "macos", path = "macos.rs")]
#[cfg_attr(not(target_os = "macos"), path = "desktop.rs")]
mod os;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use pmon_proto::{config::Alerts, format, v1::Culprit};

use crate::{
    attribution::Verdict,
    store::{Op, Store, ms},
};

/// How long a notification command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends and records notifications.
#[derive(Debug, Clone)]
pub struct Notifier {
    /// `[alerts]` and `learning_mode` (record everything, announce nothing), shared by
    /// every clone so a reload reaches them all.
    settings: Arc<std::sync::RwLock<(Alerts, bool)>>,
    store: Store,
    last: Arc<Mutex<HashMap<&'static str, Instant>>>,
    warned: Arc<AtomicBool>,
}

impl Notifier {
    /// A notifier following `[alerts]`; `learning_mode` silences it.
    pub fn new(cfg: Alerts, learning_mode: bool, store: Store) -> Self {
        Self {
            settings: Arc::new(std::sync::RwLock::new((cfg, learning_mode))),
            store,
            last: Arc::default(),
            warned: Arc::default(),
        }
    }

    /// Takes a reloaded `[alerts]` and `learning_mode`.
    pub fn reconfigure(&self, cfg: Alerts, learning_mode: bool) {
        *self.settings.write().unwrap_or_else(PoisonError::into_inner) = (cfg, learning_mode);
    }

    fn cfg(&self) -> (Alerts, bool) {
        self.settings.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Announces a freeze, after recovery: how long, and its first culprit with why,
    /// as the event names it (none, when the host descheduled the whole machine). A
    /// stall of pmon-server alone is no freeze of the machine and is not announced.
    pub fn pause(&self, id: u64, stalled: Duration, verdict: &Verdict) {
        let (cfg, _) = self.cfg();
        if cfg.pause_detected
            && stalled.as_secs_f64() >= cfg.pause_min_duration_seconds
            && !pmon_proto::format::server_alone(verdict.cause as i32)
        {
            let (title, body) = pause_message(id, stalled, verdict);
            self.send("pause", Some(id), &title, &body);
        }
    }

    /// Announces entering ELEVATED (off by default), naming the escalation's culprits.
    pub fn elevated(&self, event_id: Option<u64>, sample: &pmon_proto::v1::Sample, culprits: &[Culprit]) {
        if self.cfg().0.elevated_entered {
            self.send(
                "elevated",
                event_id,
                &format!("pmon: stress rising ({:.0})", sample.stress),
                &stress_body(sample, culprits),
            );
        }
    }

    /// Announces CRITICAL stress that has lasted `lasted`, naming the escalation's culprits.
    pub fn critical(
        &self,
        event_id: Option<u64>,
        sample: &pmon_proto::v1::Sample,
        lasted: Duration,
        culprits: &[Culprit],
    ) {
        if self.cfg().0.critical_stress {
            let title = format!("pmon: critical stress for {:.0} s ({:.0})", lasted.as_secs_f64(), sample.stress);
            self.send("critical", event_id, &title, &stress_body(sample, culprits));
        }
    }

    /// Announces that a pause's evidence is in.
    pub fn forensics_done(&self, id: u64, failed_steps: usize) {
        if !self.cfg().0.forensics_completed {
            return;
        }
        let failed = if failed_steps == 0 { String::new() } else { format!(", {failed_steps} steps failed") };
        self.send(
            "forensics",
            Some(id),
            &format!("pmon: evidence for pause {id} is ready"),
            &format!("pmon events show {id}{failed}"),
        );
    }

    /// Rate-limits, then delivers on a thread of its own (a notification command may
    /// take seconds; no caller waits for it) and records the outcome.
    fn send(&self, kind: &'static str, event_id: Option<u64>, title: &str, body: &str) {
        let (cfg, quiet) = self.cfg();
        if !cfg.enabled || quiet {
            return;
        }
        {
            let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let min = Duration::from_secs_f64(cfg.min_interval_seconds);
            if last.get(kind).is_some_and(|at| now.saturating_duration_since(*at) < min) {
                return;
            }
            last.insert(kind, now);
        }
        let (this, title, body) = (self.clone(), title.to_string(), body.to_string());
        let sent_at_ms = ms(Some(&pmon_proto::time::timestamp(SystemTime::now())));
        let spawned = std::thread::Builder::new().name("pmon-notify".into()).spawn(move || {
            let error = deliver(&title, &body).err();
            if let Some(e) = &error
                && !this.warned.swap(true, Ordering::Relaxed)
            {
                tracing::warn!(
                    "no desktop notification service reachable ({e}); notifications are still recorded with their events"
                );
            }
            this.store.submit(Op::Notification { event_id, sent_at_ms, title, body, error });
        });
        if let Err(e) = spawned {
            tracing::warn!("cannot start a notification: {e}");
        }
    }
}

/// "pmon: the machine stalled 3.1 s" / "top suspect name[pid]: cpu 2.95 s in the
/// 3.10 s stall, SCHED_FIFO 50 (pmon events show 12)": the event's first culprit.
fn pause_message(id: u64, stalled: Duration, verdict: &Verdict) -> (String, String) {
    let suspect = verdict.culprits.first().map_or_else(
        || format!("no culprit found: {}", verdict.cause_detail),
        |c| format!("top suspect {}", format::culprit(c)),
    );
    (format!("pmon: the machine stalled {:.1} s", stalled.as_secs_f64()), format!("{suspect} (pmon events show {id})"))
}

/// Why the machine is stressed when its own figure drove the tier, then the top
/// suspect.
fn stress_body(sample: &pmon_proto::v1::Sample, culprits: &[Culprit]) -> String {
    match sample.machine.as_ref().filter(|m| !m.reason.is_empty() && m.score >= sample.max_score) {
        Some(m) => format!("{}; {}", m.reason, suspect(culprits)),
        None => suspect(culprits),
    }
}

/// "top suspect name[pid]: cpu 2.10 s in the 3.00 s escalation, …": the first of an
/// escalation's culprits (the attribution's answer, never pmon-server).
fn suspect(culprits: &[Culprit]) -> String {
    culprits.first().map_or_else(|| "no suspect".into(), |c| format!("top suspect {}", format::culprit(c)))
}

/// Runs the platform's notification command, bounded.
fn deliver(title: &str, body: &str) -> Result<(), String> {
    let (program, args) = os::command(title, body);
    crate::command::run(program, &args, COMMAND_TIMEOUT).map(drop)
}

#[cfg(test)]
mod tests {
    use pmon_proto::v1::{Rogue, StallCause, StallWindow};

    use super::*;

    fn verdict(culprits: Vec<Culprit>) -> Verdict {
        Verdict {
            cause: StallCause::Machine,
            cause_detail: "the sentinel waited".into(),
            window: StallWindow::default(),
            culprits,
            victims: vec![],
            groups: vec![],
        }
    }

    #[test]
    fn a_pause_names_the_events_first_culprit_with_its_why() {
        let hog = |pid: u32, why: &str| Culprit {
            rogue: Some(Rogue { pid, command: "hog".into(), ..Default::default() }),
            why: why.into(),
            ..Default::default()
        };
        let v = verdict(vec![hog(42, "cpu 3.90 s in the 4.00 s stall, SCHED_FIFO 50"), hog(43, "cpu 1.00 s")]);
        let (title, body) = pause_message(7, Duration::from_millis(4200), &v);
        assert_eq!(title, "pmon: the machine stalled 4.2 s");
        assert_eq!(body, "top suspect hog[42]: cpu 3.90 s in the 4.00 s stall, SCHED_FIFO 50 (pmon events show 7)");
        let (_, body) = pause_message(8, Duration::from_secs(1), &verdict(vec![]));
        assert_eq!(body, "no culprit found: the sentinel waited (pmon events show 8)");
    }

    #[test]
    fn stress_is_announced_with_the_machines_reason_then_the_top_suspect() {
        let machine = pmon_proto::v1::MachineStress {
            score: 61.0,
            reason: "io: some task waited on I/O 71% of the last 3.0 s (PSI)".into(),
            ..Default::default()
        };
        let sample = pmon_proto::v1::Sample { stress: 61.0, machine: Some(machine), ..Default::default() };
        let body = stress_body(&sample, &[]);
        assert_eq!(body, "io: some task waited on I/O 71% of the last 3.0 s (PSI); no suspect");
        let quiet = pmon_proto::v1::Sample { machine: Some(Default::default()), ..Default::default() };
        assert_eq!(stress_body(&quiet, &[]), "no suspect", "no reason, nothing said of the machine");
        let hog = pmon_proto::v1::MachineStress {
            score: 1.5,
            reason: "memory: some task waited…".into(),
            ..Default::default()
        };
        let driven = pmon_proto::v1::Sample { max_score: 70.0, stress: 70.0, machine: Some(hog), ..Default::default() };
        assert_eq!(
            stress_body(&driven, &[]),
            "no suspect",
            "a process drove the tier: the machine's reason is beside the point"
        );
    }
}
