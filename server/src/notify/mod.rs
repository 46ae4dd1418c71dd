//! Desktop notifications (SPEC §3.8): a pause is announced after recovery, naming the
//! top suspect and why; repeats of a kind are rate-limited; every notification is
//! stored with its event, delivered or not. When no notification service can be
//! reached, that is logged once and pmon carries on.

#[cfg_attr(target_os = "macos", path = "macos.rs")]
#[cfg_attr(not(target_os = "macos"), path = "desktop.rs")]
mod os;

use std::{
    collections::HashMap,
    process::Stdio,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use pmon_proto::{config::Alerts, format};

use crate::{
    forensics::Pause,
    store::{Op, Store, ms},
};

/// How long a notification command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends and records notifications.
#[derive(Debug, Clone)]
pub struct Notifier {
    cfg: Alerts,
    store: Store,
    last: Arc<Mutex<HashMap<&'static str, Instant>>>,
    warned: Arc<AtomicBool>,
}

impl Notifier {
    /// A notifier following `[alerts]`.
    pub fn new(cfg: Alerts, store: Store) -> Self {
        Self { cfg, store, last: Arc::default(), warned: Arc::default() }
    }

    /// Announces a pause, after recovery: how long, and the top suspect with why.
    pub fn pause(&self, id: u64, pause: &Pause) {
        let secs = pause.stall.as_secs_f64();
        if !self.cfg.pause_detected || secs < self.cfg.pause_min_duration_seconds {
            return;
        }
        let suspect =
            pause.ring.iter().rev().find_map(|s| s.rogues.first()).map_or_else(
                || "no suspect in the last samples".into(),
                |r| format!("top suspect {}", format::rogue(r)),
            );
        self.send(
            "pause",
            Some(id),
            &format!("pmon: the machine stalled {secs:.1} s"),
            &format!("{suspect} (pmon events show {id})"),
        );
    }

    /// Announces that a pause's evidence is in.
    pub fn forensics_done(&self, id: u64, failed_steps: usize) {
        if !self.cfg.forensics_completed {
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

    fn send(&self, kind: &'static str, event_id: Option<u64>, title: &str, body: &str) {
        if !self.cfg.enabled {
            return;
        }
        {
            let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let min = Duration::from_secs_f64(self.cfg.min_interval_seconds);
            if last.get(kind).is_some_and(|at| now.saturating_duration_since(*at) < min) {
                return;
            }
            last.insert(kind, now);
        }
        let error = deliver(title, body).err();
        if let Some(e) = &error
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                "no desktop notification service reachable ({e}); notifications are still recorded with their events"
            );
        }
        self.store.submit(Op::Notification {
            event_id,
            sent_at_ms: ms(Some(&pmon_proto::time::timestamp(SystemTime::now()))),
            title: title.to_string(),
            body: body.to_string(),
            error,
        });
    }
}

/// Runs the platform's notification command and waits (bounded) for it.
fn deliver(title: &str, body: &str) -> Result<(), String> {
    let (program, args) = os::command(title, body);
    let mut child = std::process::Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return Err(format!("{program} failed ({status}): {}", err.trim()));
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} did not finish within {COMMAND_TIMEOUT:?}"));
            }
            Err(e) => return Err(format!("waiting for {program}: {e}")),
        }
    }
}
