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
mod groups;
#[cfg_attr(target_os = "linux", path = "priority_linux.rs")]
#[cfg_attr(target_os = "macos", path = "priority_macos.rs")]
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), path = "priority_other.rs")]
mod priority;
mod sampler;
pub mod score;
pub mod stalls;
mod stress;
pub mod tier;
mod zombies;

use std::{
    sync::{Arc, atomic::AtomicU64, mpsc},
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime},
};

use pmon_proto::{
    config::Config,
    v1::{Sample, Tier},
};
use tokio::sync::watch;

use crate::{
    attribution::{Recent, Stall},
    collect::{Collector, SourceHealth, rates, recording::Recorder, replay::Summary},
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
    /// Sample at once: memory moves fast, and a freeze may follow before the next sample.
    SampleNow,
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
    pub pause_stalls: stalls::PauseStalls,
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
    /// Samples lost to a panic in the sampler (each one caught, and sampling went on).
    pub sampler_panics: u64,
    /// When the latest of them was, and what it said.
    pub last_sampler_panic: Option<(SystemTime, String)>,
    /// Forensic steps (or captures) that panicked, each recorded with its event.
    pub forensic_panics: u64,
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
    /// The stall threshold in force (a reload may change it), milliseconds.
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
            pause_stalls: stalls::PauseStalls::default(),
            cost: meter.figures(),
            source: SourceHealth::default(),
            escalations: 0,
            finished: None,
            sampler_priority: "not started yet".into(),
            sampler_protected: false,
            last_pause: None,
            suspensions: 0,
            sampler_panics: 0,
            last_sampler_panic: None,
            forensic_panics: 0,
        });
        // Set before the sentinel starts: a threshold of 0 would make its first tick a stall.
        let threshold_ms = Arc::new(AtomicU64::new(crate::pause::threshold(&config.pause).as_millis() as u64));
        let sampler = sampler::Sampler {
            tiers: tier::TierManager::new(&config.tiers),
            tracker: events::Tracker::new(&config, parts.next_event_id),
            recent: Recent::default(),
            pending: Vec::new(),
            contention: stress::Contention::new(),
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
            counts: sampler::Counts::default(),
            injected_panics: sampler::injected_panics(),
        };
        let thread = std::thread::Builder::new().name("pmon-sampler".into()).spawn(move || sampler.run(&rx))?;
        Ok((Engine { thread, tx, threshold_ms }, status_rx))
    }

    /// Where the pause sentinel reports stalls.
    pub fn messages(&self) -> mpsc::Sender<Msg> {
        self.tx.clone()
    }

    /// Where the sentinel reports freezes: as `Msg::Pause`, attributed after the next
    /// sample; false once the sampler is gone.
    pub fn pause_reports(&self) -> crate::pause::Report {
        let tx = self.tx.clone();
        Box::new(move |stall| tx.send(Msg::Pause(Box::new(stall))).is_ok())
    }

    /// Where the sentinel asks for a sample at once; false once the sampler is gone.
    pub fn sample_requests(&self) -> crate::pause::Urge {
        let tx = self.tx.clone();
        Box::new(move || tx.send(Msg::SampleNow).is_ok())
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
