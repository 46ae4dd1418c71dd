//! Pause detection (SPEC §3.6): a tiny sentinel thread that measures its own wake-up
//! lateness, independently of the heavier sampling, and tells a stall of the machine
//! from a sleep of it.
//!
//! ```text
//! sentinel thread: read clocks ─ sleep(interval) ─ read clocks ─► sleep::classify
//!     Stall  ──► engine Msg::Pause (the engine freezes the ring, records, starts forensics)
//!     Slept  ──► logged, never a pause
//! ```
//!
//! A plain OS thread, not a task: a busy async runtime must not look like a pause.

pub mod pmset;
#[cfg_attr(target_os = "macos", path = "power_macos.rs")]
#[cfg_attr(not(target_os = "macos"), path = "power_other.rs")]
mod power;
pub mod sleep;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, SystemTime},
};

use crate::engine::Msg;

/// The running sentinel thread.
#[derive(Debug)]
pub struct Sentinel {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Sentinel {
    /// Starts ticking every `interval`; a tick late by at least `threshold_ms` (read
    /// each tick: it follows the sampling interval) is reported to `engine`.
    pub fn spawn(
        interval: Duration,
        threshold_ms: Arc<AtomicU64>,
        engine: mpsc::Sender<Msg>,
    ) -> std::io::Result<Sentinel> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("pmon-sentinel".into())
            .spawn(move || run(interval, &threshold_ms, &engine, &flag))?;
        Ok(Sentinel { stop, thread })
    }

    /// Stops within one tick.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        if self.thread.join().is_err() {
            tracing::error!("the pause sentinel panicked");
        }
    }
}

fn run(interval: Duration, threshold_ms: &AtomicU64, engine: &mpsc::Sender<Msg>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let start = match sleep::now() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("pause detection is off: {e}");
                return;
            }
        };
        std::thread::sleep(interval);
        let Ok(end) = sleep::now() else { continue };
        let threshold = Duration::from_millis(threshold_ms.load(Ordering::Relaxed));
        // When the stall ended: read now, before consulting the (slow) power log.
        let now = SystemTime::now();
        let mut gap = sleep::classify(start, end, interval, threshold);
        if let sleep::Gap::Stall { duration } = gap {
            // Where the clocks alone cannot tell (macOS), the power log can: a stall
            // that overlaps a sleep or wake there is a sleep.
            let events = power::recent_events();
            gap = sleep::classify_with_pmset(start, end, interval, threshold, &events, (now - duration, now));
        }
        match gap {
            sleep::Gap::OnTime => {}
            sleep::Gap::Stall { duration } => {
                if engine.send(Msg::Pause { ended_at: now, stall: duration }).is_err() {
                    return;
                }
            }
            sleep::Gap::Slept { asleep } => {
                tracing::info!(asleep_ms = asleep.as_millis() as u64, "the machine slept: not a pause");
            }
        }
    }
}
