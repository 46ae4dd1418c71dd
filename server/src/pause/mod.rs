//! Pause detection (SPEC §3.6): a tiny sentinel thread that measures its own wake-up
//! lateness, independently of the heavier sampling, and tells a stall of the machine
//! from a sleep of it.
//!
//! ```text
//! sentinel thread: sleep(rest of its period) ─ read clocks ─► sleep::classify (since the last tick ended)
//!     Stall  ──► Episodes (late wake-ups close together are one freeze)
//!                  └─ closed ──► engine Msg::Pause (attributes, records, starts forensics)
//!     Slept  ──► logged, never a pause
//!   memory::rising (memory taken fast) ──► engine Msg::SampleNow (reads the culprit while it grows)
//! ```
//!
//! A plain OS thread at ordinary priority, not a task: a busy async runtime must not
//! look like a pause, and its lateness is what the user's own programs feel. With each
//! late wake-up it notes how long it waited for a CPU, and whether the server was
//! stopped and continued (SIGCONT), so a stall of the server alone is told apart.

pub mod episode;
pub mod held;
pub mod memory;
pub mod pmset;
#[cfg_attr(target_os = "macos", path = "power_macos.rs")]
#[cfg_attr(not(target_os = "macos"), path = "power_other.rs")]
mod power;
pub mod sleep;
#[cfg_attr(target_os = "linux", path = "wait_linux.rs")]
#[cfg_attr(not(target_os = "linux"), path = "wait_other.rs")]
mod wait;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, SystemTime},
};

use crate::attribution::{Stall, cause::Evidence};

/// The lateness that makes a stall: `threshold_ratio` of the sentinel's own periods.
/// Never a multiple of the sampling interval: the sentinel runs at its own pace, and a
/// freeze that lets it run once a second (real-time hogs under the kernel's fair
/// server) is a freeze whether the sampler looks every 0.2 s or every 5 s.
pub fn threshold(pause: &pmon_proto::config::Pause) -> Duration {
    Duration::from_millis(u64::from(pause.sentinel_interval_ms)).mul_f64(pause.threshold_ratio)
}

/// Where the sentinel reports a freeze; false once nobody listens (the engine is gone).
pub type Report = Box<dyn Fn(Stall) -> bool + Send>;
/// Where the sentinel asks for a sample at once (memory moves fast); false once nobody
/// listens.
pub type Urge = Box<dyn Fn() -> bool + Send>;

/// The running sentinel thread.
#[derive(Debug)]
pub struct Sentinel {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Sentinel {
    /// Starts ticking every `interval`; a tick late by at least `threshold_ms` (read
    /// each tick: a reloaded configuration may change it) is a stall, and stalls less
    /// than `merge` apart are reported (to the engine) as one; when memory moves fast
    /// it asks for a sample through `urge`.
    pub fn spawn(
        interval: Duration,
        threshold_ms: Arc<AtomicU64>,
        merge: Duration,
        report: Report,
        urge: Urge,
    ) -> std::io::Result<Sentinel> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        // Set by the signal handler when the server is continued after a stop.
        let continued = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGCONT, Arc::clone(&continued))?;
        let thread = std::thread::Builder::new().name("pmon-sentinel".into()).spawn(move || {
            let root = std::path::Path::new("/");
            let held = held::HeldReader::open(root);
            let ticks = Ticks {
                interval,
                threshold_ms: &threshold_ms,
                report: &report,
                urge: &urge,
                stop: &flag,
                continued: &continued,
                held: &held,
                root,
            };
            ticks.run(episode::Episodes::new(merge));
        })?;
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

/// During a freeze, a wake-up late by this fraction of the stall threshold still
/// belongs to it: a starved machine lets the sentinel run now and then, somewhat late.
const LAGGING: u32 = 4;
/// The counters of what can hold the server up alone (`held`) are read every this many
/// ticks while no freeze is under way (once a second at the default period: /proc/stat
/// is not free), and at every late tick: a freeze is charged from the reading before it
/// to the reading at its last late tick, not to when it is reported (the merge period
/// later), so that background steal or throttling after it does not count.
const HELD_EVERY: u32 = 10;

struct Ticks<'a> {
    interval: Duration,
    threshold_ms: &'a AtomicU64,
    report: &'a Report,
    urge: &'a Urge,
    stop: &'a AtomicBool,
    continued: &'a AtomicBool,
    held: &'a held::HeldReader,
    root: &'a std::path::Path,
}

impl Ticks<'_> {
    fn run(&self, mut episodes: episode::Episodes) {
        let own = wait::OwnWait::open();
        // One reading a tick: the end of one is the start of the next (what lies
        // between is this loop's own work, where a wait belongs to the stall it prolongs).
        let mut waited_before = own.total();
        // Read at an on-time tick, so before any freeze that the next ticks find.
        let mut held_before = self.held.read();
        // The reading at the latest late tick of the freeze under way.
        let mut held_late: Option<held::Counters> = None;
        let mut memory = memory::Urges::open(self.root, self.held.memory_group());
        let mut ticks: u32 = 0;
        // Each tick is measured from the end of the one before, and sleeps only what is
        // left of its period after the loop's own work: a thread preempted while it
        // works (not asleep) is late all the same, and the freeze that holds it there
        // must count (real-time hogs often catch it right after it wakes).
        let mut start = match sleep::now() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("pause detection is off: {e}");
                return;
            }
        };
        while !self.stop.load(Ordering::Relaxed) {
            ticks = ticks.wrapping_add(1);
            if ticks.is_multiple_of(HELD_EVERY) {
                memory.regroup(self.held.memory_group());
                if !episodes.is_open() {
                    held_before = self.held.read();
                }
            }
            let worked = sleep::now().map_or(Duration::ZERO, |r| r.monotonic.saturating_sub(start.monotonic));
            std::thread::sleep(self.interval.saturating_sub(worked));
            let Ok(end) = sleep::now() else { continue };
            let waited_after = own.total();
            let waited = waited_after.zip(waited_before).map(|(after, before)| after.saturating_sub(before));
            waited_before = waited_after;
            let threshold = Duration::from_millis(self.threshold_ms.load(Ordering::Relaxed));
            // When the stall ended: read now, before consulting the (slow) power log.
            let now = SystemTime::now();
            let begun = std::mem::replace(&mut start, end);
            let mut gap = sleep::classify(begun, end, self.interval, threshold);
            if let sleep::Gap::Stall { duration } = gap {
                // Where the clocks alone cannot tell (macOS), the power log can: a stall
                // that overlaps a sleep or wake there is a sleep.
                let events = power::recent_events();
                gap = sleep::classify_with_pmset(begun, end, self.interval, threshold, &events, (now - duration, now));
                // Reading the (slow) power log is this thread's own doing, no freeze.
                start = sleep::now().unwrap_or(end);
            }
            let tick = end.monotonic.saturating_sub(begun.monotonic);
            tracing::trace!(tick_ms = tick.as_secs_f64() * 1000.0, ?gap, "sentinel tick");
            if let Some(why) = memory.tick(end.monotonic, tick) {
                tracing::debug!("memory moves fast ({why}): sampling at once");
                if !(self.urge)() {
                    return;
                }
            }
            let late = matches!(gap, sleep::Gap::Stall { .. });
            let lateness = tick.saturating_sub(self.interval);
            let closed = self.step(&mut episodes, gap, (now, end.monotonic), lateness, threshold, waited);
            if let Some(e) = closed {
                let closing = held_late.take().unwrap_or_else(|| self.held.read());
                let reported = self.report(e, &held_before, &closing);
                held_before = closing;
                if !reported {
                    return;
                }
            }
            if late {
                held_late = Some(self.held.read());
            }
        }
        if let Some(e) = episodes.flush() {
            let closing = held_late.take().unwrap_or_else(|| self.held.read());
            self.report(e, &held_before, &closing);
        }
    }

    /// A tick that ended at wall time `now`, monotonic `mono`, `lateness` late, into the
    /// episodes; returns an episode that closed.
    fn step(
        &self,
        episodes: &mut episode::Episodes,
        gap: sleep::Gap,
        (now, mono): (SystemTime, Duration),
        lateness: Duration,
        threshold: Duration,
        waited: Option<Duration>,
    ) -> Option<episode::Episode> {
        match gap {
            sleep::Gap::Stall { duration } => episodes.late(now, mono, duration, waited),
            sleep::Gap::OnTime => {
                if !episodes.is_open() {
                    // A stop too short to be a stall says nothing about a later one.
                    self.continued.store(false, Ordering::Relaxed);
                }
                if lateness >= threshold / 2 {
                    episodes.half_late(now, mono, lateness, waited, threshold)
                } else if lateness >= threshold / LAGGING {
                    episodes.lagging(now, mono, lateness, waited)
                } else {
                    episodes.on_time(mono)
                }
            }
            sleep::Gap::Slept { asleep } => {
                tracing::info!(asleep_ms = asleep.as_millis() as u64, "the machine slept: not a pause");
                // A freeze under way before the sleep ended with it.
                episodes.flush()
            }
        }
    }

    /// Tells the engine about a freeze, with how the server's own counters grew from
    /// `before` to `closing`; false once the engine is gone.
    fn report(&self, e: episode::Episode, before: &held::Counters, closing: &held::Counters) -> bool {
        let held = self.held.held(before, closing);
        let evidence = Evidence {
            continued: self.continued.swap(false, Ordering::Relaxed),
            sentinel_waited: e.waited,
            throttled: held.throttled,
            steal: held.steal,
            limit_hits: held.limit_hits,
            freezer: held.freezer,
            oom_kills: held.oom_kills,
            unknown: held.unknown,
        };
        let stall =
            Stall { from: e.from, to: e.to, stalled: e.stalled, longest_gap: e.longest, gaps: e.gaps, evidence };
        (self.report)(stall)
    }
}
