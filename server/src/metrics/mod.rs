//! Fleet metrics (SPEC §7): an OpenMetrics text endpoint an existing Prometheus scrapes,
//! so many machines are watched without pmon growing an aggregator of its own.
//!
//! ```text
//! engine status (watch) ─┐
//! hub (watchers, missed) ─┤
//! store (lost writes) ────┼─► Snapshot (read at each scrape) ─► OpenMetrics text ─► http
//! pause stalls (engine) ──┘
//! ```
//!
//! Everything is read when scraped, nothing is kept per process: the top rogue is one
//! series labelled by its command, replaced when another process leads, so the
//! endpoint's cardinality stays fixed however many pids come and go. A figure the
//! server does not have (no sample yet, CPU not measured yet) is left out, never 0.

pub mod http;

use std::sync::Arc;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::{Registry, Unit},
};
use tokio::sync::watch;

use crate::{
    engine::{EngineStatus, stalls::PauseStalls},
    hub::Hub,
    store::Store,
};

/// The longest command label: commands are short, but a label must stay bounded.
const MAX_COMMAND_LEN: usize = 64;

/// What one scrape reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Highest rogue score of the latest sample; `None` before the first.
    pub max_score: Option<f64>,
    /// What the tier follows in the latest sample: the higher of `max_score` and the
    /// machine figure; `None` before the first.
    pub stress: Option<f64>,
    /// The machine's stress figure of the latest sample; `None` before the first.
    pub machine_stress: Option<f64>,
    /// Current tier, 1 to 3.
    pub tier: i64,
    /// Samples taken.
    pub samples: u64,
    /// Collections that failed.
    pub failed_samples: u64,
    /// Samples watchers missed because they read too slowly.
    pub watcher_missed_samples: u64,
    /// Database writes lost (writer behind, disk full, file unwritable).
    pub lost_writes: u64,
    /// Connected watchers.
    pub watchers: u64,
    /// Pause durations.
    pub pauses: PauseStalls,
    /// The server's CPU use, % of one core, once measured.
    pub cpu_percent: Option<f64>,
    /// The server's CPU time in total, seconds.
    pub cpu_seconds: f64,
    /// Mean CPU time per sample, seconds, once measured.
    pub sample_cpu_seconds: Option<f64>,
    /// The server's resident memory, where the platform reports it.
    pub resident_bytes: Option<u64>,
    /// The top rogue of the latest sample: its command and score.
    pub top_rogue: Option<(String, f64)>,
    /// Pauses of the server alone.
    pub suspensions: u64,
    /// Ticks of the sampler that panicked (and were recovered from).
    pub sampler_panics: u64,
    /// Forensic steps or captures that panicked.
    pub forensic_panics: u64,
    /// The latest pause: its event id, its first culprit and its cause.
    pub last_pause: Option<(u64, String, &'static str)>,
}

impl Snapshot {
    /// The figures of an engine status, the hub (watchers, missed samples), the store
    /// (lost writes) and the process (resident bytes).
    pub fn read(
        status: &EngineStatus,
        (watchers, missed): (usize, u64),
        lost_writes: u64,
        resident_bytes: Option<u64>,
    ) -> Snapshot {
        let latest = status.latest.as_deref();
        Snapshot {
            max_score: latest.map(|s| s.max_score),
            stress: latest.map(|s| s.stress),
            machine_stress: latest.and_then(|s| s.machine.as_ref()).map(|m| m.score),
            tier: status.tier as i64,
            samples: status.sample_count,
            failed_samples: status.failed_samples,
            watcher_missed_samples: missed,
            lost_writes,
            watchers: watchers as u64,
            pauses: status.pause_stalls.clone(),
            cpu_percent: status.cost.cpu_percent,
            cpu_seconds: status.cost.cpu_total.as_secs_f64(),
            sample_cpu_seconds: status.cost.mean_sample_cpu.map(|d| d.as_secs_f64()),
            resident_bytes,
            top_rogue: latest.and_then(|s| s.rogues.first()).map(|r| (command_label(&r.command), r.score)),
            suspensions: status.suspensions,
            sampler_panics: status.sampler_panics,
            forensic_panics: status.forensic_panics,
            last_pause: status.last_pause.as_ref().map(|p| {
                use pmon_proto::v1::StallCause;
                let cause = match p.cause {
                    StallCause::ServerSuspended => "server_suspended",
                    StallCause::ServerFrozen => "server_frozen",
                    StallCause::ServerThrottled => "server_throttled",
                    StallCause::HostSteal => "host_steal",
                    StallCause::Machine | StallCause::Unspecified => "machine",
                };
                (p.event_id, p.culprit.as_deref().map_or_else(String::new, command_label), cause)
            }),
        }
    }

    /// Writes every metric in the OpenMetrics text format.
    fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.encode_sampling(encoder)?;
        self.encode_pauses(encoder)?;
        self.encode_own(encoder)
    }

    /// Sampling and its consumers: score, tier, samples, watchers, writes.
    fn encode_sampling(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        gauge(encoder, "pmon_max_score", "Highest rogue score of the latest sample, 0 to 100", None, self.max_score)?;
        let stress = "What the tier follows: the higher of pmon_max_score and pmon_machine_stress, 0 to 100";
        gauge(encoder, "pmon_stress", stress, None, self.stress)?;
        let machine = "The machine's stress from the kernel's accounting of waiting, 0 to 100";
        gauge(encoder, "pmon_machine_stress", machine, None, self.machine_stress)?;
        gauge(encoder, "pmon_tier", "Stress tier: 1 SENTINEL, 2 ELEVATED, 3 CRITICAL", None, Some(self.tier))?;
        counter(encoder, "pmon_samples", "Samples taken since the server started", self.samples)?;
        counter(encoder, "pmon_failed_samples", "Collections that failed", self.failed_samples)?;
        counter(
            encoder,
            "pmon_watcher_missed_samples",
            "Samples watchers missed because they read too slowly",
            self.watcher_missed_samples,
        )?;
        counter(
            encoder,
            "pmon_lost_writes",
            "Database writes lost: the writer fell behind, the disk was full or the file unwritable",
            self.lost_writes,
        )?;
        gauge(encoder, "pmon_watchers", "Connected WatchSamples streams", None, Some(self.watchers as i64))?;
        Ok(())
    }

    /// Pauses, what blamed the latest, and the parts that survived a panic.
    fn encode_pauses(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        counter(
            encoder,
            "pmon_pauses",
            "Freezes of the machine recorded (pauses of the server alone are pmon_server_suspensions)",
            self.pauses.count(),
        )?;
        counter(
            encoder,
            "pmon_server_suspensions",
            "Pauses that were pmon-server alone stopped or not scheduled, not the machine",
            self.suspensions,
        )?;
        counter(
            encoder,
            "pmon_sampler_panics",
            "Samples lost to a panic in the sampler, each caught, logged and recovered from",
            self.sampler_panics,
        )?;
        counter(
            encoder,
            "pmon_forensic_panics",
            "Forensic steps or captures that panicked, each recorded with its event",
            self.forensic_panics,
        )?;
        if let Some((id, culprit, cause)) = &self.last_pause {
            let mut family = encoder.encode_descriptor(
                "pmon_last_pause_event",
                "Event id of the latest pause, labelled by its first culprit (as the event names it) and cause",
                None,
                MetricType::Gauge,
            )?;
            let labels = [("culprit", culprit.as_str()), ("cause", *cause)];
            ConstGauge::new(i64::try_from(*id).unwrap_or(i64::MAX)).encode(family.encode_family(&labels)?)?;
        }
        let mut histogram = encoder.encode_descriptor(
            "pmon_pause_duration",
            "How long each recorded pause lasted",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        histogram.encode_histogram::<NoLabelSet>(
            self.pauses.sum_seconds(),
            self.pauses.count(),
            &self.pauses.buckets(),
            None,
        )?;
        Ok(())
    }

    /// The server's own cost, and the latest top rogue.
    fn encode_own(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        gauge(encoder, "pmon_self_cpu_percent", "The server's own CPU use, % of one core", None, self.cpu_percent)?;
        ConstCounter::new(self.cpu_seconds).encode(encoder.encode_descriptor(
            "pmon_self_cpu",
            "The server's own CPU time",
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?)?;
        gauge(
            encoder,
            "pmon_self_sample_cpu",
            "The server's mean CPU time per sample",
            Some(&Unit::Seconds),
            self.sample_cpu_seconds,
        )?;
        gauge(
            encoder,
            "pmon_self_resident",
            "The server's resident memory",
            Some(&Unit::Bytes),
            self.resident_bytes.map(|b| b as i64),
        )?;
        if let Some((command, score)) = &self.top_rogue {
            let mut family = encoder.encode_descriptor(
                "pmon_top_rogue_score",
                "Score of the latest sample's top rogue, labelled by its command (one series)",
                None,
                MetricType::Gauge,
            )?;
            let labels = [("command", command.as_str())];
            ConstGauge::new(*score).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// A command as a label value: bounded in length; the encoder escapes the rest.
fn command_label(command: &str) -> String {
    command.chars().take(MAX_COMMAND_LEN).collect()
}

/// Reads a [`Snapshot`] at each scrape.
#[derive(Debug)]
struct Live {
    status: watch::Receiver<EngineStatus>,
    hub: Arc<Hub>,
    store: Store,
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = {
            let status = self.status.borrow();
            let hub = (self.hub.watchers(), self.hub.missed_total());
            Snapshot::read(&status, hub, self.store.lost_writes(), crate::cost::memory().resident)
        };
        snapshot.encode(&mut encoder)
    }
}

/// One gauge, left out when its value is unknown.
fn gauge<V: prometheus_client::encoding::EncodeGaugeValue + std::fmt::Debug + Send + Sync + 'static>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: Option<V>,
) -> Result<(), std::fmt::Error> {
    match value {
        Some(v) => ConstGauge::new(v).encode(encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?),
        None => Ok(()),
    }
}
fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    ConstCounter::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
}

/// The registry the endpoint encodes: the live figures of this server.
pub fn registry(status: watch::Receiver<EngineStatus>, hub: Arc<Hub>, store: Store) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Live { status, hub, store }));
    registry
}

/// A registry in the OpenMetrics text format.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String cannot fail; a collector error would leave a partial body,
    // which the scraper rejects for the missing `# EOF`.
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::warn!("cannot encode the metrics: {e}");
    }
    text
}

/// The same exposition in the Prometheus text format (0.0.4), for clients that do
/// not ask for OpenMetrics (curl, `promtool check metrics`, older scrapers).
pub fn encode_prometheus_text(registry: &Registry) -> String {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut text, registry) {
        tracing::warn!("cannot encode the metrics: {e}");
    }
    text
}

#[cfg(test)]
mod tests;
