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

use std::{
    future::Future,
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use pmon_proto::{config::Config, v1::pause_monitor_server::PauseMonitorServer};
use tokio_stream::wrappers::UnixListenerStream;

use crate::{
    engine::{Engine, Parts},
    forensics::Forensics,
    hub::Hub,
    notify::Notifier,
    pause::Sentinel,
    service::ServerInfo,
    store::{PrunePolicy, Store},
};

/// How long watchers get to finish after shutdown begins before the server closes
/// anyway (a watcher that stopped reading would otherwise hold it open).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How long the writer gets to finish queued writes at shutdown.
const WRITER_GRACE: Duration = Duration::from_secs(3);

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

/// Runs the server until `shutdown` completes, then stops cleanly: new watchers are
/// refused, streams end, the sampler stops, and the socket is removed. Each item of
/// `reloads` (SIGHUP in production) reloads the configuration file.
pub async fn run(
    options: Options,
    shutdown: impl Future<Output = ()>,
    reloads: impl futures_util::Stream<Item = ()> + Send + Unpin + 'static,
) -> Result<(), ServerError> {
    let (claim, listener) = listen::claim(&options.data_dir)?;
    let tcp = options.remote.as_ref().map(remote::prepare).transpose()?;
    let scrapes = options.metrics.as_deref().map(metrics::http::bind).transpose()?;
    let collector: Box<dyn collect::Collector> = match &options.replay {
        Some(replay) => Box::new(collect::replay::Replay::open(&replay.path, replay.speed)?),
        None => collect::open(
            options.config.sampling.source,
            Duration::from_secs_f64(options.config.sampling.interval_seconds),
        )?,
    };
    let source = collector.name();
    let recorder = match &options.record {
        Some(path) => Some(
            collect::recording::Recorder::create(path, source)
                .map_err(|source| ServerError::Record { path: path.display().to_string(), source })?,
        ),
        None => None,
    };
    let sampling = &options.config.sampling;
    let started_at = SystemTime::now();
    // Start time in nanoseconds: distinct for every run of a server.
    let instance = started_at.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let hub = Arc::new(Hub::new(
        Duration::from_secs_f64(sampling.ring_buffer_seconds),
        options.config.watchers.queue_samples as usize,
        instance,
    ));
    let (store, writer, next_event_id) = Store::open(&options.data_dir)?;
    // A replay's stress happened elsewhere, earlier: recorded, never announced here.
    let silent = options.config.learning_mode || options.replay.is_some();
    let notifier = Notifier::new(options.config.alerts.clone(), silent, store.clone());
    let forensics = Forensics::new(
        options.data_dir.clone(),
        store.clone(),
        Duration::from_secs_f64(options.config.pause.step_timeout_seconds),
        notifier.clone(),
    );
    let notifier_handle = notifier.clone();
    let capture = forensics.clone();
    let parts = Parts { hub: Arc::clone(&hub), store: store.clone(), next_event_id, forensics, notifier, recorder };
    let (engine, status) = Engine::spawn(collector, options.config.clone(), parts).map_err(ServerError::Thread)?;
    // A replay is about the machine that made the capture: this one's stalls are not
    // part of it.
    let sentinel = match options.replay {
        Some(_) => None,
        None => Some(
            Sentinel::spawn(
                Duration::from_millis(u64::from(options.config.pause.sentinel_interval_ms)),
                engine.threshold_ms(),
                Duration::from_secs_f64(options.config.pause.merge_seconds),
                engine.messages(),
            )
            .map_err(ServerError::Thread)?,
        ),
    };
    let live: service::LiveConfig = Arc::new(std::sync::RwLock::new(service::Live {
        config: options.config.clone(),
        file_exists: options.config_file_exists,
        error: None,
        loaded_at: SystemTime::now(),
    }));
    let pruning = tokio::spawn(prune_periodically(store.clone(), Arc::clone(&live)));
    let reloading =
        tokio::spawn(reload_on(reloads, options.clone(), Arc::clone(&live), engine.messages(), notifier_handle));
    let replay_done = replay_finished(status.clone(), options.replay.as_ref().is_some_and(|r| !r.keep_serving));

    let scraping = scrapes.map(|scrapes| {
        let address = scrapes.address;
        if address.ip().is_loopback() {
            tracing::info!(%address, "serving metrics at /metrics (no authentication)");
        } else {
            tracing::warn!(%address, "serving metrics at /metrics, reachable from the network without authentication");
        }
        tokio::spawn(
            scrapes.serve(metrics::registry(status.clone(), Arc::clone(&hub), store.clone()), std::future::pending()),
        )
    });
    let service = service::Service::new(
        Arc::clone(&hub),
        status,
        store,
        ServerInfo { started_at, source, data_dir: options.data_dir.clone(), live, config_path: options.config_path },
    );
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<PauseMonitorServer<service::Service>>().await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pmon_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    // grpcurl 1.8 speaks only v1alpha reflection; newer clients use v1.
    let (reflection_v1, reflection_v1alpha) = (reflection().build_v1()?, reflection().build_v1alpha()?);

    tracing::info!(socket = %claim.socket.display(), source, "pmon-server listening");
    if let Some(tcp) = &tcp {
        tracing::info!(address = %tcp.address, tls = tcp.tls, "listening on TCP (bearer token required)");
    }
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let mut tcp_stopping = stopping.clone();
    let signal = {
        let hub = Arc::clone(&hub);
        async move {
            tokio::select! {
                () = shutdown => {}
                () = replay_done => {}
            }
            tracing::info!("shutting down");
            health.set_not_serving::<PauseMonitorServer<service::Service>>().await;
            // Ends every watcher stream, so graceful shutdown is not held open by them.
            hub.close();
            let _ = stopping_tx.send(true);
        }
    };
    // The same services on both listeners; only TCP asks for the token.
    let routes = tonic::service::Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(watch::Routes::new(service, options.config.limits.max_request_bytes as usize));
    let serve_unix = tonic::transport::Server::builder()
        .add_routes(routes.clone())
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), signal);
    let serve_tcp = async move {
        match tcp {
            Some(tcp) => tcp.serve(routes, async move { _ = tcp_stopping.wait_for(|s| *s).await }).await,
            None => Ok(()),
        }
    };
    let serve = async { tokio::try_join!(serve_unix, serve_tcp).map(|_| ()) };
    let result = tokio::select! {
        r = serve => r.map_err(ServerError::from),
        () = async {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!("connections still open {SHUTDOWN_GRACE:?} after shutdown began; closing them");
            Ok(())
        }
    };

    pruning.abort();
    if let Some(scraping) = scraping {
        scraping.abort();
    }
    reloading.abort();
    // Joining waits for at most the sample in progress and one sentinel tick; a capture
    // under way ends within a moment, recording what it did not finish; then the writer
    // finishes what is queued.
    let stopped = tokio::task::spawn_blocking(move || {
        if let Some(sentinel) = sentinel {
            sentinel.stop();
        }
        capture.stop();
        // Its store handle too must go for the writer to finish.
        drop(capture);
        engine.stop();
        writer.join_within(WRITER_GRACE)
    });
    match stopped.await {
        Ok(true) => {}
        Ok(false) => tracing::warn!("database writes still queued after {WRITER_GRACE:?} were not waited for"),
        Err(_) => tracing::error!("the sampler could not be stopped cleanly"),
    }
    drop(claim);
    tracing::info!("pmon-server stopped");
    result
}

/// Completes when a replay has reached the end of its capture and the server should
/// stop; prints the replay's one summary line (also when it keeps serving).
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
