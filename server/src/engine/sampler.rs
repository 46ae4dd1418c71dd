//! The sampler thread's loop: wait for the interval (or a message), take a sample,
//! publish it, attribute the freezes reported meanwhile.
//!
//! ```text
//! loop: message? ─► reconfigure | queue a pause | sample now | stop
//!       tick (supervised) ─► collect ─► evaluate ─► hub, tracker, store ─► pauses ─► status
//!         └─ panic ─► logged, counted (status, metrics), next tick after a backoff
//! ```
//!
//! Every tick runs under `catch_unwind`: a bug that panics in one sample loses that
//! sample, not sampling. The next tick waits a backoff (1 s, doubling to 30 s while
//! ticks keep panicking), so a panic on every sample cannot spin a CPU.

use std::{
    panic::AssertUnwindSafe,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{self, RecvTimeoutError},
    },
    time::{Duration, Instant, SystemTime},
};

use pmon_proto::{
    config::Config,
    time::timestamp,
    v1::{Sample, Tier, TierAction},
};
use tokio::sync::watch;

use super::{EngineStatus, LastPause, Msg, cgroups, events, groups, priority, score, stress, tier, zombies};
use crate::{
    attribution::{self, Recent, Stall},
    collect::{CollectError, Collector, RawSample, rates, recording::Recorder},
    cost::{self, CostMeter},
    forensics::Forensics,
    hub::Hub,
    notify::Notifier,
    store::Store,
};

/// The first wait after a panicking tick; it doubles while ticks keep panicking.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait after a panicking tick.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub(super) struct Sampler {
    pub config: Config,
    pub collector: Box<dyn Collector>,
    pub hub: Arc<Hub>,
    pub store: Store,
    pub forensics: Forensics,
    pub tiers: tier::TierManager,
    pub tracker: events::Tracker,
    /// What every process consumed and waited lately, for attributing pauses.
    pub recent: Recent,
    /// Freezes reported, attributed once the next sample is in.
    pub pending: Vec<Stall>,
    /// The control groups of busy processes, for naming the unit behind a pause.
    pub cgroups: cgroups::Cgroups,
    /// When each zombie was first seen, so fresh ones do not score for their state.
    pub zombies: zombies::Zombies,
    /// The machine's waiting totals over the last window, for its stress figure.
    pub contention: stress::Contention,
    /// CPUs online: no sample's CPU total may exceed them.
    pub cpus: u32,
    pub notifier: Notifier,
    /// When the current CRITICAL stretch began, and whether it was announced.
    pub critical_since: Option<(Instant, bool)>,
    pub threshold_ms: Arc<AtomicU64>,
    pub pauses: u64,
    pub recorder: Option<Recorder>,
    pub escalations: u64,
    pub meter: CostMeter,
    pub status_tx: watch::Sender<EngineStatus>,
    /// Samples taken, collections that failed, and failures in a row (a lasting one
    /// is logged when it starts, every hundredth time, and when it ends).
    pub counts: Counts,
    /// Test-only (debug builds): ticks still to panic on purpose, from
    /// `PMON_TEST_SAMPLER_PANICS`, to show that sampling recovers.
    pub injected_panics: u32,
}

#[derive(Debug, Default)]
pub(super) struct Counts {
    sequence: u64,
    failed: u64,
    failing: u64,
    panics: u64,
    /// The wait after the latest panicking tick, while ticks keep panicking.
    backoff: Option<Duration>,
}

/// How a tick ended.
enum Tick {
    Sampled,
    /// A replay reached the end of its capture.
    Finished,
}

/// The panics to inject, from `PMON_TEST_SAMPLER_PANICS`; always 0 in release builds.
pub(super) fn injected_panics() -> u32 {
    if !cfg!(debug_assertions) {
        return 0;
    }
    std::env::var("PMON_TEST_SAMPLER_PANICS").ok().and_then(|n| n.parse().ok()).unwrap_or(0)
}

impl Sampler {
    pub fn run(mut self, rx: &mpsc::Receiver<Msg>) {
        self.protect();
        let mut due = Instant::now();
        let mut last_started = due;
        // A replay's samples are placed on the engine's clock by their recorded time.
        let anchor = due;
        loop {
            match rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(Msg::Pause(stall)) => {
                    // Sample first: the readings that cover the end of the stall may not
                    // have been taken yet (a slow interval), and the blame needs them.
                    self.pending.push(*stall);
                    due = Instant::now();
                    continue;
                }
                Ok(Msg::SampleNow) => {
                    due = Instant::now();
                    continue;
                }
                Ok(Msg::Reconfigure(config)) => {
                    let threshold = crate::pause::threshold(&config.pause).as_millis() as u64;
                    self.threshold_ms.store(threshold, Ordering::Relaxed);
                    self.tiers.reconfigure(&config.tiers);
                    self.tracker.reconfigure(&config);
                    self.config = *config;
                    // A shorter interval brings the next sample forward (never back).
                    due = due.min(last_started + self.interval());
                    continue;
                }
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            }
            let started = Instant::now();
            last_started = started;
            match std::panic::catch_unwind(AssertUnwindSafe(|| self.tick(started, anchor))) {
                Ok(Tick::Sampled) => self.counts.backoff = None,
                Ok(Tick::Finished) => {
                    // Nothing more to sample: serve what there is until told to stop.
                    while let Ok(msg) = rx.recv() {
                        if matches!(msg, Msg::Stop) {
                            return;
                        }
                    }
                    return;
                }
                Err(payload) => {
                    due = Instant::now() + self.panicked(&crate::panics::message(payload.as_ref()));
                    continue;
                }
            }
            due = self.next_due(due, started);
        }
    }

    /// Raises the sampler's scheduling priority as configured, and says how it runs.
    fn protect(&mut self) {
        let (priority, protected) = if self.collector.recorded_offset().is_some() {
            // A replay reads a file at its own pace: nothing to protect it from.
            ("ordinary priority: replaying a capture".to_string(), false)
        } else if self.config.sampling.protect_sampler {
            priority::protect_sampler()
        } else {
            ("ordinary priority: sampling.protect_sampler is off".to_string(), false)
        };
        if protected || !cfg!(target_os = "linux") {
            tracing::info!("sampler: {priority}");
        } else {
            tracing::warn!("sampler: {priority}");
        }
        self.status_tx.send_modify(|s| {
            s.sampler_priority = priority;
            s.sampler_protected = protected;
        });
    }

    /// Fixed rate, not fixed delay. After a late sample, the next is one interval after
    /// it, not at once: a catch-up sample milliseconds after a late one would rate every
    /// process over a span too short to mean anything.
    fn next_due(&self, due: Instant, started: Instant) -> Instant {
        let interval = self.interval();
        let now = Instant::now();
        // A self-paced source (a replay) waits in `collect`: no second wait here.
        if self.collector.self_paced() {
            return now;
        }
        let next = due + interval;
        if next < now { started + interval } else { next }
    }

    /// A tick panicked: log it, count it, and return how long to wait before the next.
    fn panicked(&mut self, why: &str) -> Duration {
        let backoff = self.counts.backoff.map_or(FIRST_BACKOFF, |b| (b * 2).min(MAX_BACKOFF));
        self.counts.backoff = Some(backoff);
        self.counts.panics += 1;
        let panics = self.counts.panics;
        tracing::error!(panics, "the sampler panicked: {why}; sampling again in {backoff:?}");
        let at = SystemTime::now();
        self.status_tx.send_modify(|s| {
            s.sampler_panics = panics;
            s.last_sampler_panic = Some((at, why.to_string()));
        });
        backoff
    }

    /// One sample: collect, evaluate, publish, then the pauses reported meanwhile and
    /// the status.
    fn tick(&mut self, started: Instant, anchor: Instant) -> Tick {
        let cpu_before = cost::thread_cpu_time();
        if self.injected_panics > 0 && self.counts.sequence > 0 {
            self.injected_panics -= 1;
            panic!("injected by PMON_TEST_SAMPLER_PANICS (a test of the sampler's recovery)");
        }
        let latest = match self.collector.collect() {
            Ok(raw) => Some(self.publish(raw, started, anchor)),
            Err(CollectError::Finished) => {
                let (summary, escalations) = (self.collector.replay_summary(), self.escalations);
                self.status_tx.send_modify(|s| {
                    s.escalations = escalations;
                    s.finished = summary;
                });
                return Tick::Finished;
            }
            Err(e) => {
                self.counts.failed += 1;
                self.counts.failing += 1;
                if self.counts.failing % 100 == 1 {
                    tracing::warn!(failed = self.counts.failed, failing = self.counts.failing, "sample failed: {e}");
                }
                None
            }
        };
        // After the sample, taken or failed: a failing source must not hold back the
        // freezes reported meanwhile.
        for stall in std::mem::take(&mut self.pending) {
            self.pause(&stall);
        }
        self.update_status(latest, cpu_before);
        Tick::Sampled
    }

    /// A collection taken: recorded, evaluated, published to watchers and the store.
    fn publish(&mut self, raw: RawSample, started: Instant, anchor: Instant) -> Arc<Sample> {
        if self.counts.failing > 0 {
            tracing::info!("sampling works again after {} failed samples", self.counts.failing);
            self.counts.failing = 0;
        }
        self.counts.sequence += 1;
        self.record(&raw);
        let at = self.collector.recorded_offset().map_or(started, |offset| anchor + offset);
        let (sample, actions) = self.evaluate(self.counts.sequence, raw, at);
        let sample = Arc::new(sample);
        self.hub.publish(at, Arc::clone(&sample));
        let taken = sample.time.as_ref().and_then(pmon_proto::time::system_time).unwrap_or_else(SystemTime::now);
        let lead_up = Duration::from_secs_f64(self.config.pause.lead_up_seconds);
        let server = std::process::id();
        let (recent, hub, cgroups) = (&self.recent, &self.hub, &mut self.cgroups);
        let mut blame = |since: SystemTime| {
            let own_cgroup = cgroups.of(server);
            attribution::escalation((since, taken), lead_up, (recent, &hub.frozen()), server, own_cgroup.as_deref())
        };
        for op in self.tracker.on_sample(&sample, &actions, at, &mut blame) {
            self.store.submit(op);
        }
        self.announce(&sample, &actions, at);
        self.escalations += u64::from(actions.contains(&TierAction::ElevatedEntry));
        sample
    }

    /// The cost and the status after a tick.
    fn update_status(&mut self, latest: Option<Arc<Sample>>, cpu_before: Duration) {
        let interval = self.interval();
        self.meter.record(Instant::now(), cost::process_cpu_time(), cost::thread_cpu_time().saturating_sub(cpu_before));
        let (cost, tier, source) = (self.meter.figures(), self.tiers.tier(), self.collector.health());
        let (sequence, failed, forensic_panics) = (self.counts.sequence, self.counts.failed, self.forensics.panics());
        self.status_tx.send_modify(|s| {
            s.sample_count = sequence;
            s.failed_samples = failed;
            if latest.is_some() {
                s.latest = latest;
            }
            s.tier = tier;
            s.interval = interval;
            s.pauses = self.pauses;
            s.cost = cost;
            s.source = source;
            s.escalations = self.escalations;
            s.forensic_panics = forensic_panics;
        });
    }

    /// The sampling interval of the current tier: faster while elevated or critical.
    fn interval(&self) -> Duration {
        let sampling = &self.config.sampling;
        Duration::from_secs_f64(if self.tiers.tier() == Tier::Sentinel {
            sampling.interval_seconds
        } else {
            sampling.elevated_interval_seconds
        })
    }

    /// Appends a collected sample to the recording, if one is being made. A recording
    /// that cannot be written is given up (and said so), never the sampling.
    fn record(&mut self, raw: &RawSample) {
        if let Some(recorder) = &mut self.recorder
            && let Err(e) = recorder.write(raw)
        {
            tracing::error!("recording stopped: cannot write it: {e}");
            self.recorder = None;
        }
    }

    /// Notifications about stress: ELEVATED entry, and CRITICAL once it has lasted
    /// `critical_duration_seconds` (once per stretch).
    fn announce(&mut self, sample: &Sample, actions: &[TierAction], now: Instant) {
        let event = self.tracker.open_event();
        if actions.contains(&TierAction::ElevatedEntry) {
            self.notifier.elevated(event, sample, self.tracker.culprits());
        }
        if sample.tier != Tier::Critical as i32 {
            self.critical_since = None;
            return;
        }
        let (since, announced) = self.critical_since.get_or_insert((now, false));
        let lasted = now.saturating_duration_since(*since);
        if !*announced && lasted.as_secs_f64() >= self.config.alerts.critical_duration_seconds {
            *announced = true;
            self.notifier.critical(event, sample, lasted, self.tracker.culprits());
        }
    }

    /// Records a freeze: freezes the ring, attributes it, starts forensics.
    fn pause(&mut self, stall: &Stall) {
        let ring = self.hub.frozen();
        let lead_up = Duration::from_secs_f64(self.config.pause.lead_up_seconds);
        let server = std::process::id();
        let own_cgroup = self.cgroups.of(server);
        let verdict = attribution::attribute(stall, &self.recent, &ring, lead_up, server, own_cgroup.as_deref());
        let ended_at = stall.to;
        let (id, ops) = self
            .tracker
            .on_pause(&ring, stall, &verdict, |id| format!("events/{}", crate::forensics::dir_name(ended_at, id)));
        for op in ops {
            self.store.submit(op);
        }
        self.pauses += 1;
        let top = verdict.culprits.first().and_then(|c| c.usage.as_ref()).map(|u| format!("{}[{}]", u.command, u.pid));
        let stall_ms = stall.stalled.as_millis() as u64;
        let alone = pmon_proto::format::server_alone(verdict.cause as i32);
        if alone {
            tracing::warn!(event = id, stall_ms, "pause of pmon-server alone: {}", verdict.cause_detail);
        } else {
            tracing::warn!(event = id, stall_ms, ?top, "pause: the machine stalled: {}", verdict.cause_detail);
        }
        let last = LastPause {
            event_id: id,
            culprit: verdict.culprits.first().and_then(pmon_proto::format::culprit_command),
            cause: verdict.cause,
        };
        // A stack report's root, once it leads the culprits, is the pause's first culprit
        // in the status (and `/metrics`) too.
        let status = self.status_tx.clone();
        let led: crate::forensics::Led = Box::new(move |culprits| {
            status.send_modify(|s| {
                if let Some(last) = s.last_pause.as_mut().filter(|p| p.event_id == id) {
                    last.culprit = culprits.first().and_then(pmon_proto::format::culprit_command);
                }
            });
        });
        self.forensics.start(id, stall, (verdict, ring), led);
        self.status_tx.send_modify(|s| {
            s.pauses = self.pauses;
            // The durations are the machine's freezes; the server's own are counted apart.
            if alone {
                s.suspensions += 1;
            } else {
                s.pause_stalls.observe(stall.stalled);
            }
            s.last_pause = Some(last);
        });
    }

    /// Scores a collection, steps the tiers, and builds the sample that travels.
    fn evaluate(&mut self, sequence: u64, mut raw: RawSample, now: Instant) -> (Sample, Vec<TierAction>) {
        rates::bound_cpu(&mut raw.processes, self.cpus);
        let cgroups = &mut self.cgroups;
        self.recent.add(raw.time, &raw.processes, &raw.system, &mut |pid| cgroups.of(pid));
        let recent = &self.recent;
        cgroups.retain(|pid| recent.alive(pid));
        let grace = Duration::from_secs_f64(self.config.rogues.states.zombie_grace_seconds);
        let young = self.zombies.young(&raw.processes, now, grace);
        let mut scored = score::evaluate(&raw.processes, &self.config, &young);
        let elapsed = raw.elapsed.map(|e| e.as_secs_f64());
        if let Some(group) = groups::rogue(&raw.processes, elapsed, &self.config, std::process::id()) {
            scored.add(group);
        }
        let window = Duration::from_secs_f64(self.config.stress.window_seconds);
        let measured = self.contention.measure(raw.time, &raw.processes, &raw.system, self.cpus, window);
        let machine = stress::assess(measured, &self.config.stress);
        let stress = scored.max_score.max(machine.score);
        let actions = self.tiers.update(stress, now);
        for action in &actions {
            let top = scored.rogues.first().map(pmon_proto::format::rogue_name);
            tracing::info!(stress, score = scored.max_score, machine = %machine.reason, ?top, "{}", action.as_str_name());
        }
        let sample = Sample {
            sequence,
            time: Some(timestamp(raw.time)),
            elapsed_ms: raw.elapsed.map(|e| e.as_secs_f64() * 1000.0),
            tier: self.tiers.tier() as i32,
            tier_actions: actions.iter().map(|a| *a as i32).collect(),
            max_score: scored.max_score,
            process_count: u32::try_from(raw.processes.len()).unwrap_or(u32::MAX),
            system: Some(raw.system),
            rogues: scored.rogues,
            machine: Some(machine),
            stress,
        };
        (sample, actions)
    }
}
