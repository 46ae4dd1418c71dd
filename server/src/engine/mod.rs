//! The engine: one OS thread owns all sampling state and runs the pipeline once per
//! interval.
//!
//! ```text
//! collector ──► score::evaluate ──► TierManager ──► Sample ──► hub (ring + watchers)
//!                                                      ├──────► status (watch channel)
//!                                                      └──────► Tracker ──► store (history, events)
//! sentinel thread ── Msg::Pause ──► freeze ring ──► attribution (Recent) ──► Tracker ──► store (pause event) ──► forensics
//! ```
//!
//! A plain thread rather than a task: collecting blocks on /proc reads, and the sampler
//! must keep its pace whatever the async runtime is doing. It never waits on a watcher
//! (the hub's broadcast does not block) and nothing waits on it but shutdown.

mod cgroups;
pub mod events;
#[cfg_attr(target_os = "linux", path = "priority_linux.rs")]
#[cfg_attr(target_os = "macos", path = "priority_macos.rs")]
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), path = "priority_other.rs")]
mod priority;
pub mod ring;
pub mod score;
pub mod tier;
mod zombies;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::{self, RecvTimeoutError},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use pmon_proto::{
    config::Config,
    time::timestamp,
    v1::{Sample, Tier, TierAction},
};
use tokio::sync::watch;

use crate::{
    attribution::{self, Recent, Stall},
    collect::{CollectError, Collector, RawSample, SourceHealth, rates, recording::Recorder, replay::Summary},
    cost::{self, CostFigures, CostMeter},
    forensics::Forensics,
    hub::Hub,
    notify::Notifier,
    store::Store,
};

/// What the sampler thread is told.
#[derive(Debug)]
pub enum Msg {
    /// Stop after the sample in progress.
    Stop,
    /// A reloaded configuration, in force from the next sample.
    Reconfigure(Box<Config>),
    /// The sentinel saw a freeze (one or several late wake-ups close together), now over.
    Pause(Box<Stall>),
}

/// What the engine reports after every sample, for `GetStatus`.
#[derive(Debug, Clone)]
pub struct EngineStatus {
    /// Samples taken.
    pub sample_count: u64,
    /// Collections that failed.
    pub failed_samples: u64,
    /// The latest sample.
    pub latest: Option<Arc<Sample>>,
    /// Current tier.
    pub tier: Tier,
    /// Current interval.
    pub interval: Duration,
    /// Pauses recorded since start.
    pub pauses: u64,
    /// Their durations, as histogram buckets (for the metrics endpoint).
    pub pause_stalls: crate::metrics::PauseStalls,
    /// The server's own cost.
    pub cost: CostFigures,
    /// Restarts of the source's child process.
    pub source: SourceHealth,
    /// Escalations opened since start (ELEVATED entries).
    pub escalations: u64,
    /// A replay that reached the end of its capture, and what it read.
    pub finished: Option<Summary>,
    /// How the sampler thread is scheduled, in words.
    pub sampler_priority: String,
    /// Whether hogs cannot starve it.
    pub sampler_protected: bool,
    /// The latest pause and whom it blames, as its event does.
    pub last_pause: Option<LastPause>,
    /// Pauses that were the server alone held up, not the machine.
    pub suspensions: u64,
}

/// The latest pause, for the metrics endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct LastPause {
    /// Its event.
    pub event_id: u64,
    /// Its first culprit's command, if it names one.
    pub culprit: Option<String>,
    /// Machine freeze or the server alone.
    pub cause: pmon_proto::v1::StallCause,
}

/// The running sampler thread.
#[derive(Debug)]
pub struct Engine {
    thread: JoinHandle<()>,
    tx: mpsc::Sender<Msg>,
    /// The stall threshold in force (it follows the sampling interval), milliseconds.
    threshold_ms: Arc<AtomicU64>,
}

/// What the engine needs besides its collector.
#[derive(Debug)]
pub struct Parts {
    /// Watchers.
    pub hub: Arc<Hub>,
    /// Evidence.
    pub store: Store,
    /// The first free event id.
    pub next_event_id: u64,
    /// Runs forensics on pauses.
    pub forensics: Forensics,
    /// Announces stress.
    pub notifier: Notifier,
    /// Writes every collected sample to pmon's own recording (`--record`).
    pub recorder: Option<Recorder>,
}

impl Engine {
    /// Starts sampling at once (the first sample is taken immediately).
    pub fn spawn(
        collector: Box<dyn Collector>,
        config: Config,
        parts: Parts,
    ) -> std::io::Result<(Engine, watch::Receiver<EngineStatus>)> {
        let (tx, rx) = mpsc::channel();
        let now = Instant::now();
        let meter = CostMeter::new(now, cost::process_cpu_time());
        let (status_tx, status_rx) = watch::channel(EngineStatus {
            sample_count: 0,
            failed_samples: 0,
            latest: None,
            tier: Tier::Sentinel,
            interval: Duration::from_secs_f64(config.sampling.interval_seconds),
            pauses: 0,
            pause_stalls: crate::metrics::PauseStalls::default(),
            cost: meter.figures(),
            source: SourceHealth::default(),
            escalations: 0,
            finished: None,
            sampler_priority: "not started yet".into(),
            sampler_protected: false,
            last_pause: None,
            suspensions: 0,
        });
        // Set before the sentinel starts: a threshold of 0 would make its first tick a stall.
        let threshold_ms =
            Arc::new(AtomicU64::new((config.sampling.interval_seconds * config.pause.threshold_ratio * 1000.0) as u64));
        let sampler = Sampler {
            tiers: tier::TierManager::new(&config.tiers),
            tracker: events::Tracker::new(&config, parts.next_event_id),
            recent: Recent::default(),
            pending: Vec::new(),
            cgroups: cgroups::Cgroups::new(collector.name() == "proc"),
            zombies: zombies::Zombies::default(),
            cpus: rates::online_cpus(),
            notifier: parts.notifier,
            critical_since: None,
            threshold_ms: Arc::clone(&threshold_ms),
            pauses: 0,
            config,
            collector,
            hub: parts.hub,
            store: parts.store,
            forensics: parts.forensics,
            recorder: parts.recorder,
            escalations: 0,
            meter,
            status_tx,
        };
        let thread = std::thread::Builder::new().name("pmon-sampler".into()).spawn(move || sampler.run(&rx))?;
        Ok((Engine { thread, tx, threshold_ms }, status_rx))
    }

    /// Where the pause sentinel reports stalls.
    pub fn messages(&self) -> mpsc::Sender<Msg> {
        self.tx.clone()
    }

    /// The stall threshold in force, kept current by the sampler, for the sentinel.
    pub fn threshold_ms(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.threshold_ms)
    }

    /// Stops after the sample in progress, if any, and waits for the thread.
    pub fn stop(self) {
        let _ = self.tx.send(Msg::Stop);
        if self.thread.join().is_err() {
            tracing::error!("the sampler thread panicked");
        }
    }
}

struct Sampler {
    config: Config,
    collector: Box<dyn Collector>,
    hub: Arc<Hub>,
    store: Store,
    forensics: Forensics,
    tiers: tier::TierManager,
    tracker: events::Tracker,
    /// What every process consumed and waited lately, for attributing pauses.
    recent: Recent,
    /// Freezes reported, attributed once the next sample is in.
    pending: Vec<Stall>,
    /// The control groups of busy processes, for naming the unit behind a pause.
    cgroups: cgroups::Cgroups,
    /// When each zombie was first seen, so fresh ones do not score for their state.
    zombies: zombies::Zombies,
    /// CPUs online: no sample's CPU total may exceed them.
    cpus: u32,
    notifier: Notifier,
    /// When the current CRITICAL stretch began, and whether it was announced.
    critical_since: Option<(Instant, bool)>,
    threshold_ms: Arc<AtomicU64>,
    pauses: u64,
    recorder: Option<Recorder>,
    escalations: u64,
    meter: CostMeter,
    status_tx: watch::Sender<EngineStatus>,
}

impl Sampler {
    fn run(mut self, rx: &mpsc::Receiver<Msg>) {
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
        let (mut sequence, mut failed) = (0u64, 0u64);
        // Failures in a row: a lasting one is logged when it starts, every hundredth
        // time, and when it ends, not every interval.
        let mut failing = 0u64;
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
                Ok(Msg::Reconfigure(config)) => {
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
            let cpu_before = cost::thread_cpu_time();
            let latest = match self.collector.collect() {
                Ok(raw) => {
                    if failing > 0 {
                        tracing::info!("sampling works again after {failing} failed samples");
                        failing = 0;
                    }
                    sequence += 1;
                    self.record(&raw);
                    let at = self.collector.recorded_offset().map_or(started, |offset| anchor + offset);
                    let (sample, actions) = self.evaluate(sequence, raw, at);
                    let sample = Arc::new(sample);
                    self.hub.publish(at, Arc::clone(&sample));
                    for op in self.tracker.on_sample(&sample, &actions, at) {
                        self.store.submit(op);
                    }
                    self.announce(&sample, &actions, at);
                    self.escalations += u64::from(actions.contains(&TierAction::ElevatedEntry));
                    Some(sample)
                }
                Err(CollectError::Finished) => {
                    let summary = self.collector.replay_summary();
                    let escalations = self.escalations;
                    self.status_tx.send_modify(|s| {
                        s.escalations = escalations;
                        s.finished = summary;
                    });
                    // Nothing more to sample: serve what there is until told to stop.
                    loop {
                        match rx.recv() {
                            Ok(Msg::Stop) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                }
                Err(e) => {
                    failed += 1;
                    failing += 1;
                    if failing % 100 == 1 {
                        tracing::warn!(failed, failing, "sample failed: {e}");
                    }
                    None
                }
            };
            // After the sample, taken or failed: a failing source must not hold back the
            // freezes reported meanwhile.
            for stall in std::mem::take(&mut self.pending) {
                self.pause(&stall);
            }
            let interval = self.interval();
            let ratio = self.config.pause.threshold_ratio;
            // A stall is a sentinel wake-up `ratio` sampling intervals late.
            self.threshold_ms.store((interval.as_secs_f64() * ratio * 1000.0) as u64, Ordering::Relaxed);
            self.meter.record(
                Instant::now(),
                cost::process_cpu_time(),
                cost::thread_cpu_time().saturating_sub(cpu_before),
            );
            let cost = self.meter.figures();
            let tier = self.tiers.tier();
            let source = self.collector.health();
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
            });
            // Fixed rate, not fixed delay. After a late sample, the next is one interval
            // after it, not at once: a catch-up sample milliseconds after a late one
            // would rate every process over a span too short to mean anything.
            due += interval;
            let now = Instant::now();
            if due < now {
                due = started + interval;
            }
            // A self-paced source (a replay) waits in `collect`: no second wait here.
            if self.collector.self_paced() {
                due = now;
            }
        }
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
            self.notifier.elevated(event, sample);
        }
        if sample.tier != Tier::Critical as i32 {
            self.critical_since = None;
            return;
        }
        let (since, announced) = self.critical_since.get_or_insert((now, false));
        let lasted = now.saturating_duration_since(*since);
        if !*announced && lasted.as_secs_f64() >= self.config.alerts.critical_duration_seconds {
            *announced = true;
            self.notifier.critical(event, sample, lasted);
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
        match verdict.cause {
            pmon_proto::v1::StallCause::ServerSuspended => {
                tracing::warn!(event = id, stall_ms, "pause of pmon-server alone: {}", verdict.cause_detail);
            }
            _ => tracing::warn!(event = id, stall_ms, ?top, "pause: the machine stalled: {}", verdict.cause_detail),
        }
        let last = LastPause {
            event_id: id,
            culprit: verdict.culprits.first().and_then(|c| c.usage.as_ref()).map(|u| u.command.clone()),
            cause: verdict.cause,
        };
        self.forensics.start(id, stall, verdict, ring);
        self.status_tx.send_modify(|s| {
            s.pauses = self.pauses;
            // The durations are the machine's freezes; the server's own are counted apart.
            if last.cause == pmon_proto::v1::StallCause::ServerSuspended {
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
        let scored = score::evaluate(&raw.processes, &self.config, &young);
        let actions = self.tiers.update(scored.max_score, now);
        for action in &actions {
            tracing::info!(score = scored.max_score, top = ?scored.rogues.first().map(|r| &r.command), "{}", action.as_str_name());
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
        };
        (sample, actions)
    }
}
