//! The engine: one OS thread owns all sampling state and runs the pipeline once per
//! interval.
//!
//! ```text
//! collector ──► score::evaluate ──► TierManager ──► Sample ──► hub (ring + watchers)
//!                                                      └──────► status (watch channel)
//! ```
//!
//! A plain thread rather than a task: collecting blocks on /proc reads, and the sampler
//! must keep its pace whatever the async runtime is doing. It never waits on a watcher
//! (the hub's broadcast does not block) and nothing waits on it but shutdown.

pub mod ring;
pub mod score;
pub mod tier;

use std::{
    sync::{
        Arc,
        mpsc::{self, RecvTimeoutError},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use pmon_proto::{
    config::Config,
    time::timestamp,
    v1::{Sample, Tier},
};
use tokio::sync::watch;

use crate::{
    collect::{Collector, RawSample},
    cost::{self, CostFigures, CostMeter},
    hub::Hub,
};

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
    /// The server's own cost.
    pub cost: CostFigures,
}

/// The running sampler thread.
#[derive(Debug)]
pub struct Engine {
    thread: JoinHandle<()>,
    stop: mpsc::Sender<()>,
}

impl Engine {
    /// Starts sampling at once (the first sample is taken immediately).
    pub fn spawn(
        collector: Box<dyn Collector>,
        config: Config,
        hub: Arc<Hub>,
    ) -> std::io::Result<(Engine, watch::Receiver<EngineStatus>)> {
        let (stop, stop_rx) = mpsc::channel();
        let now = Instant::now();
        let meter = CostMeter::new(now, cost::process_cpu_time());
        let (status_tx, status_rx) = watch::channel(EngineStatus {
            sample_count: 0,
            failed_samples: 0,
            latest: None,
            tier: Tier::Sentinel,
            interval: Duration::from_secs_f64(config.sampling.interval_seconds),
            cost: meter.figures(),
        });
        let sampler =
            Sampler { tiers: tier::TierManager::new(&config.tiers), config, collector, hub, meter, status_tx };
        let thread = std::thread::Builder::new().name("pmon-sampler".into()).spawn(move || sampler.run(&stop_rx))?;
        Ok((Engine { thread, stop }, status_rx))
    }

    /// Stops after the sample in progress, if any, and waits for the thread.
    pub fn stop(self) {
        let _ = self.stop.send(());
        if self.thread.join().is_err() {
            tracing::error!("the sampler thread panicked");
        }
    }
}

struct Sampler {
    config: Config,
    collector: Box<dyn Collector>,
    hub: Arc<Hub>,
    tiers: tier::TierManager,
    meter: CostMeter,
    status_tx: watch::Sender<EngineStatus>,
}

impl Sampler {
    fn run(mut self, stop: &mpsc::Receiver<()>) {
        let normal = Duration::from_secs_f64(self.config.sampling.interval_seconds);
        let fast = Duration::from_secs_f64(self.config.sampling.elevated_interval_seconds);
        let (mut sequence, mut failed) = (0u64, 0u64);
        let mut due = Instant::now();
        loop {
            match stop.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
            let started = Instant::now();
            let cpu_before = cost::thread_cpu_time();
            let latest = match self.collector.collect() {
                Ok(raw) => {
                    sequence += 1;
                    let sample = Arc::new(self.evaluate(sequence, raw, started));
                    self.hub.publish(started, Arc::clone(&sample));
                    Some(sample)
                }
                Err(e) => {
                    failed += 1;
                    // A persistent failure would repeat every interval: log the first
                    // and then one in a hundred.
                    if failed % 100 == 1 {
                        tracing::warn!(failed, "sample failed: {e}");
                    }
                    None
                }
            };
            let interval = if self.tiers.tier() == Tier::Sentinel { normal } else { fast };
            self.meter.record(
                Instant::now(),
                cost::process_cpu_time(),
                cost::thread_cpu_time().saturating_sub(cpu_before),
            );
            let cost = self.meter.figures();
            let tier = self.tiers.tier();
            self.status_tx.send_modify(|s| {
                s.sample_count = sequence;
                s.failed_samples = failed;
                if latest.is_some() {
                    s.latest = latest;
                }
                s.tier = tier;
                s.interval = interval;
                s.cost = cost;
            });
            // Fixed rate, not fixed delay; after a stall, carry on from now rather than
            // firing a burst of catch-up samples.
            due += interval;
            let now = Instant::now();
            if due < now {
                due = now;
            }
        }
    }

    /// Scores a collection, steps the tiers, and builds the sample that travels.
    fn evaluate(&mut self, sequence: u64, raw: RawSample, now: Instant) -> Sample {
        let scored = score::evaluate(&raw.processes, &self.config);
        let actions = self.tiers.update(scored.max_score, now);
        for action in &actions {
            tracing::info!(score = scored.max_score, top = ?scored.rogues.first().map(|r| &r.command), "{}", action.as_str_name());
        }
        Sample {
            sequence,
            time: Some(timestamp(raw.time)),
            elapsed_ms: raw.elapsed.map(|e| e.as_secs_f64() * 1000.0),
            tier: self.tiers.tier() as i32,
            tier_actions: actions.into_iter().map(|a| a as i32).collect(),
            max_score: scored.max_score,
            process_count: u32::try_from(raw.processes.len()).unwrap_or(u32::MAX),
            system: Some(raw.system),
            rogues: scored.rogues,
        }
    }
}
