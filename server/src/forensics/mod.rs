//! Forensics (SPEC §3.7): what a pause leaves behind, captured right after it.
//!
//! ```text
//! pause ──► Forensics::start ──► thread: each platform step (own thread, timeout)
//!                                    │        ├─► Finding ─► store
//!                                    │        └─► stack report: its root leads the culprits ─► store
//!                                    ├─► notify (at once; on macOS after spindump, naming the root)
//!                                    └─► artefacts ─► events/<UTC time>-<id>/ ─► store
//! ```
//!
//! A step that fails, panics or runs out of time is recorded as such and the others go
//! on; the engine never waits for any of it. A panic is caught on the step's own thread,
//! and the one-capture-at-a-time flag is an atomic released by a drop guard, so nothing a
//! step does can block the captures of later pauses. When the server stops mid-capture, the step under
//! way is recorded as interrupted and those not yet run as not run, so an event never
//! looks complete when it is not, and shutdown does not wait for a step stuck in the
//! kernel. The ring buffer itself is not dumped to disk: its samples are already in the
//! database with the event.

pub mod kmsg;
pub mod oslog;
#[cfg_attr(target_os = "linux", path = "linux.rs")]
#[cfg_attr(target_os = "macos", path = "macos.rs")]
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), path = "other.rs")]
mod platform;
pub mod reports;
pub mod waits;

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    time::{Duration, Instant, SystemTime},
};

use pmon_proto::v1::{Finding, FindingOutcome, Sample};

use crate::{
    attribution::{Stall, Verdict},
    notify::Notifier,
    store::{Op, Store},
};

/// What a step produced.
#[derive(Debug, Default)]
pub struct Output {
    /// One line for a person.
    pub summary: String,
    /// The evidence.
    pub detail: String,
    /// Raw files to keep: (file name, contents).
    pub artefacts: Vec<(String, Vec<u8>)>,
    /// Who the threads waited on, when the step read a stack report.
    pub waits: Option<pmon_spindump::Analysis>,
}

/// A forensic step's work, which may block.
pub type StepWork = Box<dyn FnOnce() -> Result<Output, String> + Send>;

/// A forensic step: a name and the work.
pub type Step = (&'static str, StepWork);

/// Told the culprits once a stack report's root has joined them (the engine's status,
/// and so `/metrics`, name the same first culprit as the event).
pub type Led = Box<dyn Fn(&[pmon_proto::v1::Culprit]) + Send>;

/// What the steps know about the pause.
#[derive(Debug, Clone)]
pub struct Pause {
    /// When the freeze ended.
    pub ended_at: SystemTime,
    /// How long it lasted, from its first late wake-up to its last.
    pub stall: Duration,
    /// The sentinel's lateness over it, summed (what is announced).
    pub stalled: Duration,
    /// Who the event blames.
    pub verdict: Verdict,
    /// The ring as it was frozen (oldest first).
    pub ring: Vec<Arc<Sample>>,
    /// The event's artefact directory, for tools that write their own files.
    pub dir: PathBuf,
    /// How long a step may take: tools a step runs are killed after this.
    pub limit: Duration,
}

/// Starts forensics for pauses.
#[derive(Debug, Clone)]
pub struct Forensics {
    /// Set while a capture runs: one at a time, so a burst of pauses does not pile
    /// /proc scans and tools onto a machine that is already struggling.
    busy: Arc<AtomicBool>,
    /// Set when the server stops: captures end at once.
    stopping: Arc<AtomicBool>,
    /// Steps and captures that panicked since start.
    panics: Arc<AtomicU64>,
    data_dir: PathBuf,
    store: Store,
    step_timeout: Duration,
    notifier: Notifier,
}

impl Forensics {
    /// Forensics writing under `data_dir/events/`.
    pub fn new(data_dir: PathBuf, store: Store, step_timeout: Duration, notifier: Notifier) -> Self {
        Self {
            busy: Arc::default(),
            stopping: Arc::default(),
            panics: Arc::default(),
            data_dir,
            store,
            step_timeout,
            notifier,
        }
    }

    /// Steps and captures that panicked since start.
    pub fn panics(&self) -> u64 {
        self.panics.load(Ordering::Relaxed)
    }

    /// Ends captures under way (their remaining steps are recorded as not run) and
    /// makes later ones record only that; called when the server stops.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    /// Runs every step for event `id` in the background.
    pub fn start(&self, id: u64, stall: &Stall, (verdict, ring): (Verdict, Vec<Arc<Sample>>), led: Led) {
        let this = self.clone();
        let ended_at = stall.to;
        let dir = self.data_dir.join("events").join(dir_name(ended_at, id));
        let span = stall.to.duration_since(stall.from).unwrap_or(stall.stalled);
        let pause =
            Pause { ended_at, stall: span, stalled: stall.stalled, verdict, ring, dir, limit: self.step_timeout };
        let spawned =
            std::thread::Builder::new().name("pmon-forensics".into()).spawn(move || this.run(id, &pause, &led));
        if let Err(e) = spawned {
            tracing::error!(event = id, "cannot start forensics: {e}");
        }
    }

    fn run(&self, id: u64, pause: &Pause, led: &Led) {
        self.run_steps(id, pause, (platform::steps(pause), platform::WAITS_STEP), led);
    }

    /// Runs `steps`, announcing the pause at once, or, when one of them (`waits_step`)
    /// reads who waited on whom, right after it with the chain's root leading.
    fn run_steps(&self, id: u64, pause: &Pause, (steps, waits_step): (Vec<Step>, Option<&str>), led: &Led) {
        let mut announced = false;
        if waits_step.is_none() {
            self.announce(id, pause, None, &mut announced);
        }
        let Some(_capture) = Capture::start(&self.busy) else {
            self.announce(id, pause, None, &mut announced);
            self.failed(id, "skipped: the capture of an earlier pause was still running".into());
            return;
        };
        // Each step's work is caught on its own thread; this catches the bookkeeping
        // around them, so even a bug there is recorded and leaves later pauses alone.
        let captured = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.capture(id, pause, (steps, waits_step), (led, &mut announced))
        }));
        // Whatever became of the step that reads waits, the pause is announced.
        self.announce(id, pause, None, &mut announced);
        if let Err(payload) = captured {
            let why = crate::panics::message(payload.as_ref());
            tracing::error!(event = id, "forensics panicked: {why}");
            self.panics.fetch_add(1, Ordering::Relaxed);
            self.failed(id, format!("failed: the capture panicked ({why})"));
        }
    }

    /// Announces the pause once: with `culprits` where a stack report's root joined
    /// the attribution's answer, else with the answer as it is.
    fn announce(&self, id: u64, pause: &Pause, culprits: Option<Vec<pmon_proto::v1::Culprit>>, announced: &mut bool) {
        if std::mem::replace(announced, true) {
            return;
        }
        match culprits {
            Some(culprits) => {
                let verdict = Verdict { culprits, ..pause.verdict.clone() };
                self.notifier.pause(id, pause.stalled, &verdict);
            }
            None => self.notifier.pause(id, pause.stalled, &pause.verdict),
        }
    }

    /// Records that the capture as a whole did not happen.
    fn failed(&self, id: u64, summary: String) {
        let finding = Finding {
            step: "forensics".into(),
            outcome: FindingOutcome::Failed as i32,
            summary,
            detail: String::new(),
            elapsed_ms: 0.0,
        };
        self.store.submit(Op::Finding { event_id: id, finding });
    }

    fn capture(
        &self,
        id: u64,
        pause: &Pause,
        (steps, waits_step): (Vec<Step>, Option<&str>),
        (led_to, announced): (&Led, &mut bool),
    ) {
        let dir = &pause.dir;
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::warn!(event = id, "cannot create {}: {e}", dir.display());
        }
        let (mut failed_steps, mut interrupted) = (0, false);
        for (step, work) in steps {
            let started = Instant::now();
            let (outcome, output, stopped) = self.step(id, step, work);
            interrupted |= stopped;
            if outcome != FindingOutcome::Ok {
                failed_steps += 1;
            }
            for (file, contents) in &output.artefacts {
                if let Err(e) = std::fs::write(dir.join(file), contents) {
                    tracing::warn!(event = id, file, "cannot write artefact: {e}");
                }
            }
            let mut led = None;
            if let Some(analysis) = output.waits {
                let culprits = waits::lead(&pause.verdict.culprits, &analysis, &pause.ring);
                let (chains, hangs) = (analysis.chains, analysis.hangs);
                led_to(&culprits);
                led = Some(culprits.clone());
                self.store.submit(Op::Waits { event_id: id, chains, hangs, culprits });
            }
            if waits_step == Some(step) {
                self.announce(id, pause, led, announced);
            }
            let finding = Finding {
                step: step.to_string(),
                outcome: outcome as i32,
                summary: output.summary,
                detail: output.detail,
                elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
            };
            self.store.submit(Op::Finding { event_id: id, finding });
        }
        // Tools write files of their own too: count what is actually there.
        let bytes = std::fs::read_dir(dir)
            .map(|entries| entries.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
            .unwrap_or(0);
        self.store.submit(Op::Artefacts { event_id: id, bytes });
        if interrupted {
            tracing::warn!(event = id, failed_steps, "forensics interrupted: the server is stopping");
            return;
        }
        tracing::info!(event = id, failed_steps, "forensics complete");
        self.notifier.forensics_done(id, failed_steps);
    }

    /// Runs one step: how it ended, what it produced, and whether the server stopped.
    fn step(&self, id: u64, step: &str, work: StepWork) -> (FindingOutcome, Output, bool) {
        let said = |summary: String| Output { summary, ..Output::default() };
        if self.stopping.load(Ordering::Relaxed) {
            return (FindingOutcome::Failed, said("not run: the server stopped during the capture".into()), true);
        }
        match run_with_timeout(work, self.step_timeout, &self.stopping) {
            StepEnd::Done(Ok(out)) => (FindingOutcome::Ok, out, false),
            StepEnd::Done(Err(why)) | StepEnd::NotStarted(why) => {
                (FindingOutcome::Failed, Output { summary: why.clone(), detail: why, ..Output::default() }, false)
            }
            StepEnd::Panicked(why) => {
                tracing::error!(event = id, step, "forensic step panicked: {why}");
                self.panics.fetch_add(1, Ordering::Relaxed);
                let summary = "failed: the step panicked".to_string();
                (FindingOutcome::Failed, Output { summary, detail: why, ..Output::default() }, false)
            }
            StepEnd::TimedOut => {
                (FindingOutcome::TimedOut, said(format!("no result within {:?}", self.step_timeout)), false)
            }
            StepEnd::Stopped => {
                (FindingOutcome::Failed, said("interrupted: the server stopped during this step".into()), true)
            }
        }
    }
}

/// `20261121T201405Z-42`: sorts by time, names the event.
pub fn dir_name(at: SystemTime, id: u64) -> String {
    let secs = at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let stamp = chrono::DateTime::from_timestamp(secs, 0)
        .map_or_else(|| "unknown".into(), |t| t.format("%Y%m%dT%H%M%SZ").to_string());
    format!("{stamp}-{id}")
}

/// The one capture under way; dropping it (even while unwinding) lets the next start.
struct Capture<'a>(&'a AtomicBool);

impl<'a> Capture<'a> {
    /// `None` when another capture holds the flag.
    fn start(busy: &'a AtomicBool) -> Option<Self> {
        busy.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).ok().map(|_| Self(busy))
    }
}

impl Drop for Capture<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// How a step ended.
#[derive(Debug, PartialEq)]
enum StepEnd<T> {
    Done(T),
    /// It panicked; the panic's message.
    Panicked(String),
    /// Its thread could not be started; why.
    NotStarted(String),
    TimedOut,
    /// The server began stopping first.
    Stopped,
}

/// How often a step's wait looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// Runs `work` on its own thread, waiting at most `limit` or until `stopping` is set
/// (the thread is left to finish on its own: a step stuck in the kernel cannot be
/// cancelled).
fn run_with_timeout<T: Send + 'static>(
    work: Box<dyn FnOnce() -> T + Send>,
    limit: Duration,
    stopping: &AtomicBool,
) -> StepEnd<T> {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new().name("pmon-forensic-step".into()).spawn(move || {
        // A step is a closure over owned data that is dropped with it: nothing shared is
        // left half-changed by an unwind, so asserting unwind safety is sound.
        let end = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
            Ok(out) => StepEnd::Done(out),
            Err(payload) => StepEnd::Panicked(crate::panics::message(payload.as_ref())),
        };
        let _ = tx.send(end);
    });
    if let Err(e) = spawned {
        return StepEnd::NotStarted(format!("cannot start a thread for the step: {e}"));
    }
    let deadline = Instant::now() + limit;
    loop {
        if stopping.load(Ordering::Relaxed) {
            return StepEnd::Stopped;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(STOP_CHECK)) {
            Ok(end) => return end,
            Err(mpsc::RecvTimeoutError::Timeout) if !left.is_zero() => {}
            Err(_) => return StepEnd::TimedOut,
        }
    }
}

#[cfg(test)]
#[path = "announce_tests.rs"]
mod announce_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_past_its_time_is_abandoned_and_one_in_time_returns() {
        let slow: Box<dyn FnOnce() -> u32 + Send> = Box::new(|| {
            std::thread::sleep(Duration::from_secs(2));
            1
        });
        let running = AtomicBool::new(false);
        assert_eq!(run_with_timeout(slow, Duration::from_millis(50), &running), StepEnd::TimedOut);
        assert_eq!(run_with_timeout(Box::new(|| 7), Duration::from_secs(5), &running), StepEnd::Done(7));
    }

    #[test]
    fn stopping_ends_the_wait_for_a_stuck_step_at_once() {
        let stuck: Box<dyn FnOnce() -> u32 + Send> = Box::new(|| {
            std::thread::sleep(Duration::from_secs(30));
            1
        });
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stopping);
        let setter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            flag.store(true, Ordering::Relaxed);
        });
        assert_eq!(run_with_timeout(stuck, Duration::from_secs(60), &stopping), StepEnd::Stopped);
        setter.join().expect("setter");
    }

    #[test]
    fn a_panicking_step_is_reported_as_a_panic_not_a_time_out() {
        let boom: Box<dyn FnOnce() -> u32 + Send> = Box::new(|| {
            let text = "héllo";
            // The kind of slip the oslog step once made: a byte index inside a character.
            text.get(..2).map_or_else(|| panic!("byte 2 is not a char boundary of {text}"), |s| s.len() as u32)
        });
        let running = AtomicBool::new(false);
        match run_with_timeout(boom, Duration::from_secs(5), &running) {
            StepEnd::Panicked(why) => assert!(why.contains("not a char boundary"), "{why}"),
            other => panic!("expected a panic, got {other:?}"),
        }
    }

    #[test]
    fn a_panicking_step_is_recorded_as_such_and_the_next_capture_still_runs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, _writer, _) = Store::open(dir.path()).expect("store");
        let notifier = Notifier::new(pmon_proto::config::Alerts::default(), true, store.clone());
        let forensics = Forensics::new(dir.path().to_path_buf(), store, Duration::from_secs(5), notifier);
        let boom: StepWork = Box::new(|| panic!("a parser sliced inside a character"));
        let (outcome, output, stopped) = forensics.step(1, "spindump", boom);
        assert_eq!(
            (outcome, output.summary.as_str(), stopped),
            (FindingOutcome::Failed, "failed: the step panicked", false)
        );
        assert!(output.detail.contains("sliced inside a character"), "{}", output.detail);
        let fine: StepWork = Box::new(|| Ok(Output { summary: "read".into(), ..Output::default() }));
        assert_eq!(forensics.step(2, "spindump", fine).0, FindingOutcome::Ok);
        assert!(Capture::start(&forensics.busy).is_some(), "nothing held the capture flag");
    }

    #[test]
    fn a_capture_that_unwinds_frees_the_next_one() {
        let busy = AtomicBool::new(false);
        let first = Capture::start(&busy).expect("free");
        assert!(Capture::start(&busy).is_none(), "one capture at a time");
        drop(first);
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _held = Capture::start(&busy).expect("free again");
            panic!("a step's bookkeeping failed");
        }));
        assert!(unwound.is_err());
        assert!(Capture::start(&busy).is_some(), "a panic while capturing must not block later pauses");
    }

    #[test]
    fn directory_names_sort_by_time() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_755_445);
        assert_eq!(dir_name(at, 42), "20251121T200405Z-42");
    }
}
