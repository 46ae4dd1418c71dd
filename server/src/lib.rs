//! `pmon-server`: samples every process, scores stress, tracks tiers and streams it all
//! over gRPC on a Unix socket.
//!
//! ```text
//!  ┌───────────── sampler thread (engine) ─────────────┐
//!  │ collect ─► score ─► tiers ─► Sample ──────────────┼─► hub: ring + broadcast ─► WatchSamples streams
//!  │                              └─► Tracker ─────────┼─► store writer (SQLite) ◄─ event/history RPCs
//!  └──────▲────────────────────────────────┬──────────┘
//!         │ Msg::Pause                     └─► status (watch) ─► GetStatus
//!  sentinel thread (pause)      forensics + notify threads ─► store, events/<time>-<id>/
//!  listen: data dir 0700, lock, socket 0600 ─► tonic server (+ reflection, health)
//! ```
//!
//! [`run`] takes its configuration and a shutdown future, so tests start it on a
//! temporary directory and `main` passes SIGINT/SIGTERM.

pub mod attribution;
pub mod collect;
pub mod command;
pub mod cost;
mod daemon;
pub mod engine;
pub mod forensics;
pub mod hub;
pub mod listen;
pub mod metrics;
pub mod notify;
mod panics;
pub mod pause;
pub mod remote;
pub mod ring;
pub mod service;
pub mod store;
pub mod watch;

#[cfg(test)]
mod real_captures;

pub use daemon::run;

use std::{
    path::PathBuf,
    time::{Duration, SystemTime},
};

use pmon_proto::config::Config;

use crate::{
    notify::Notifier,
    store::{PrunePolicy, Store},
};

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Options {
    /// Data directory (socket, lock, database, event artefacts).
    pub data_dir: PathBuf,
    /// Configuration in force.
    pub config: Config,
    /// Where it came from.
    pub config_path: PathBuf,
    /// Whether that file existed.
    pub config_file_exists: bool,
    /// Whether the path was named (flag or environment): then it must exist.
    pub config_explicit: bool,
    /// Command-line settings that win over the file, at start and on every reload.
    pub overrides: Overrides,
    /// The TCP listener, when one is asked for.
    pub remote: Option<remote::Settings>,
    /// `HOST:PORT` of the metrics endpoint, when one is asked for.
    pub metrics: Option<String>,
    /// Replay a capture instead of sampling this machine (`--source replay:PATH`).
    pub replay: Option<ReplayOptions>,
    /// Write every sample to pmon's own recording (`--record PATH`).
    pub record: Option<PathBuf>,
}

/// How to replay a capture.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The capture: a `top -l` log, a `powermetrics -f plist` stream or a pmon recording.
    pub path: PathBuf,
    /// Recorded pace times a factor, or as fast as possible.
    pub speed: collect::replay::Speed,
    /// Keep serving after the capture ends (otherwise the server stops, exit status 0).
    pub keep_serving: bool,
}

/// Settings given on the command line.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--interval`.
    pub interval_seconds: Option<f64>,
    /// `--source`.
    pub source: Option<pmon_proto::config::SourceKind>,
}

/// Loads the configuration file, applies the overrides and checks the result: what
/// happens at start and on every reload. Returns it and whether the file existed.
pub fn load_config(path: &std::path::Path, explicit: bool, overrides: &Overrides) -> Result<(Config, bool), String> {
    let (mut config, exists) = Config::load(path, explicit).map_err(|e| e.to_string())?;
    if let Some(interval) = overrides.interval_seconds {
        config.sampling.interval_seconds = interval;
        // Elevated sampling is never slower than normal sampling.
        config.sampling.elevated_interval_seconds = config.sampling.elevated_interval_seconds.min(interval);
    }
    if let Some(source) = overrides.source {
        config.sampling.source = source;
    }
    config.check().map_err(|e| format!("invalid command-line setting: {e}"))?;
    Ok((config, exists))
}

/// Settings that are read once at start: a reload that changes them says so, and the
/// configuration reported as in force keeps their running values.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    [
        ("sampling.source", old.sampling.source != new.sampling.source),
        ("sampling.ring_buffer_seconds", old.sampling.ring_buffer_seconds != new.sampling.ring_buffer_seconds),
        ("watchers.queue_samples", old.watchers.queue_samples != new.watchers.queue_samples),
        ("limits.max_request_bytes", old.limits.max_request_bytes != new.limits.max_request_bytes),
        ("pause.sentinel_interval_ms", old.pause.sentinel_interval_ms != new.pause.sentinel_interval_ms),
        ("pause.step_timeout_seconds", old.pause.step_timeout_seconds != new.pause.step_timeout_seconds),
        ("pause.merge_seconds", old.pause.merge_seconds != new.pause.merge_seconds),
        ("sampling.protect_sampler", old.sampling.protect_sampler != new.sampling.protect_sampler),
        ("retention.prune_interval_hours", old.retention.prune_interval_hours != new.retention.prune_interval_hours),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect()
}

/// `new` with the running values of the settings read only at start.
fn keep_start_only(old: &Config, mut new: Config) -> Config {
    new.sampling.source = old.sampling.source;
    new.sampling.ring_buffer_seconds = old.sampling.ring_buffer_seconds;
    new.watchers.queue_samples = old.watchers.queue_samples;
    new.limits.max_request_bytes = old.limits.max_request_bytes;
    new.pause.sentinel_interval_ms = old.pause.sentinel_interval_ms;
    new.pause.step_timeout_seconds = old.pause.step_timeout_seconds;
    new.pause.merge_seconds = old.pause.merge_seconds;
    new.sampling.protect_sampler = old.sampling.protect_sampler;
    new.retention.prune_interval_hours = old.retention.prune_interval_hours;
    new
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The data directory or socket could not be claimed.
    #[error(transparent)]
    Listen(#[from] listen::ListenError),
    /// The configured source cannot run here.
    #[error(transparent)]
    Collect(#[from] collect::CollectError),
    /// The sampler or sentinel thread could not be started.
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The recording could not be created.
    #[error("cannot write the recording {path}: {source}")]
    Record {
        /// The file asked for.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Reflection could not be built from the descriptor sets.
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The TCP listener cannot start.
    #[error(transparent)]
    Remote(#[from] remote::RemoteError),
    /// The metrics endpoint cannot start.
    #[error(transparent)]
    Metrics(#[from] metrics::http::MetricsError),
    /// The gRPC server failed.
    #[error("gRPC server error: {0}")]
    Transport(#[from] tonic::transport::Error),
}

async fn replay_finished(mut status: tokio::sync::watch::Receiver<engine::EngineStatus>, stop: bool) {
    let status = match status.wait_for(|s| s.finished.is_some()).await {
        Ok(s) => s.clone(),
        // The sampler is gone: nothing will finish.
        Err(_) => return std::future::pending().await,
    };
    if let Some(summary) = &status.finished {
        println!("{}", summary_line(summary, status.escalations, status.pauses));
    }
    if !stop {
        std::future::pending::<()>().await;
    }
}

/// `replay of PATH (top log): 4 samples read, 1 event recorded (1 escalation, 0 pauses), 0 lines could not be parsed`
fn summary_line(s: &collect::replay::Summary, escalations: u64, pauses: u64) -> String {
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "replay of {} ({}): {} read, {} recorded ({}, {}), {} could not be parsed",
        s.path.display(),
        s.format,
        plural(s.samples, "sample", "samples"),
        plural(escalations + pauses, "event", "events"),
        plural(escalations, "escalation", "escalations"),
        plural(pauses, "pause", "pauses"),
        plural(s.unparsed, &s.unit[..s.unit.len() - 1], s.unit),
    )
}

/// Applies retention every `prune_interval_hours` (read at start), starting one interval
/// after start, with the retention settings in force at each run.
async fn prune_periodically(store: Store, live: service::LiveConfig) {
    let retention = || live.read().unwrap_or_else(std::sync::PoisonError::into_inner).config.retention.clone();
    let every = Duration::from_secs_f64(retention().prune_interval_hours * 3600.0);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        ticks.tick().await;
        let (store, policy) = (store.clone(), PrunePolicy::from_config(&retention(), SystemTime::now()));
        match tokio::task::spawn_blocking(move || store.prune(policy, false)).await {
            Ok(Ok(r)) => tracing::info!(
                events = r.removed_event_ids.len(),
                history_rows = r.history_rows_removed,
                bytes = r.bytes_freed,
                "pruned"
            ),
            Ok(Err(e)) => tracing::warn!("pruning failed: {e}"),
            Err(_) => tracing::warn!("the pruning task failed"),
        }
    }
}

/// Reloads the configuration on each request. A valid one goes to the engine (from its
/// next sample), the notifier and the service; an invalid one changes nothing and its
/// reason is logged and reported by `GetStatus`.
async fn reload_on(
    mut reloads: impl futures_util::Stream<Item = ()> + Unpin,
    options: Options,
    live: service::LiveConfig,
    engine: std::sync::mpsc::Sender<engine::Msg>,
    notifier: Notifier,
) {
    use futures_util::StreamExt;
    while reloads.next().await.is_some() {
        let (path, explicit, overrides) =
            (options.config_path.clone(), options.config_explicit, options.overrides.clone());
        let loaded = tokio::task::spawn_blocking(move || load_config(&path, explicit, &overrides))
            .await
            .unwrap_or_else(|_| Err("the reload task failed".into()));
        let mut live = live.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        match loaded {
            Ok((config, file_exists)) => {
                let restart = needs_restart(&live.config, &config);
                if !restart.is_empty() {
                    tracing::warn!("changed settings that take effect only after a restart: {}", restart.join(", "));
                }
                let config = keep_start_only(&live.config, config);
                notifier.reconfigure(config.alerts.clone(), config.learning_mode || options.replay.is_some());
                if engine.send(engine::Msg::Reconfigure(Box::new(config.clone()))).is_err() {
                    return;
                }
                *live = service::Live { config, file_exists, error: None, loaded_at: SystemTime::now() };
                tracing::info!(path = %options.config_path.display(), "configuration reloaded");
            }
            Err(e) => {
                tracing::error!("configuration not reloaded, the previous one stays in force: {e}");
                live.error = Some(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replay_summary_counts_in_words() {
        let summary = collect::replay::Summary {
            path: PathBuf::from("pm.plist"),
            format: "powermetrics stream",
            samples: 1,
            unparsed: 1,
            unit: "documents",
        };
        assert_eq!(
            summary_line(&summary, 2, 1),
            "replay of pm.plist (powermetrics stream): 1 sample read, 3 events recorded (2 escalations, 1 pause), \
             1 document could not be parsed"
        );
    }

    #[test]
    fn a_reload_keeps_command_line_overrides_and_start_only_settings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "[sampling]\ninterval_seconds = 3\nring_buffer_seconds = 60\n[tiers]\nelevated_threshold = 40\n",
        )
        .expect("write");
        let overrides = Overrides { interval_seconds: Some(0.5), source: None };
        let (config, exists) = load_config(&path, true, &overrides).expect("valid");
        assert!(exists);
        assert_eq!(config.sampling.interval_seconds, 0.5, "--interval wins over the file");
        assert_eq!(config.sampling.elevated_interval_seconds, 0.25);
        assert_eq!(config.tiers.elevated_threshold, 40.0);

        let running = Config::default();
        assert_eq!(needs_restart(&running, &config), vec!["sampling.ring_buffer_seconds"]);
        let in_force = keep_start_only(&running, config);
        assert_eq!(in_force.sampling.ring_buffer_seconds, 30.0, "reported as running, not as written");
        assert_eq!(in_force.tiers.elevated_threshold, 40.0, "the rest takes effect");
    }
}
