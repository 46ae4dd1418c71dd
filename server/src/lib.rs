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

pub mod collect;
pub mod command;
pub mod cost;
pub mod engine;
pub mod forensics;
pub mod hub;
pub mod listen;
pub mod notify;
pub mod pause;
pub mod service;
pub mod store;

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
    /// Reflection could not be built from the descriptor sets.
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The gRPC server failed.
    #[error("gRPC server error: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Runs the server until `shutdown` completes, then stops cleanly: new watchers are
/// refused, streams end, the sampler stops, and the socket is removed.
pub async fn run(options: Options, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    let (claim, listener) = listen::claim(&options.data_dir)?;
    let collector = collect::open(options.config.sampling.source)?;
    let source = collector.name();
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
    let notifier = Notifier::new(options.config.alerts.clone(), options.config.learning_mode, store.clone());
    let forensics = Forensics::new(
        options.data_dir.clone(),
        store.clone(),
        Duration::from_secs_f64(options.config.pause.step_timeout_seconds),
        notifier.clone(),
    );
    let parts = Parts { hub: Arc::clone(&hub), store: store.clone(), next_event_id, forensics, notifier };
    let (engine, status) = Engine::spawn(collector, options.config.clone(), parts).map_err(ServerError::Thread)?;
    let sentinel = Sentinel::spawn(
        Duration::from_millis(u64::from(options.config.pause.sentinel_interval_ms)),
        engine.threshold_ms(),
        engine.messages(),
    )
    .map_err(ServerError::Thread)?;
    let pruning = tokio::spawn(prune_periodically(store.clone(), options.config.retention.clone()));

    let service = service::Service::new(
        Arc::clone(&hub),
        status,
        store,
        ServerInfo {
            started_at,
            source,
            data_dir: options.data_dir.clone(),
            config: options.config,
            config_path: options.config_path,
            config_file_exists: options.config_file_exists,
        },
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
    let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
    let signal = {
        let hub = Arc::clone(&hub);
        async move {
            shutdown.await;
            tracing::info!("shutting down");
            health.set_not_serving::<PauseMonitorServer<service::Service>>().await;
            // Ends every watcher stream, so graceful shutdown is not held open by them.
            hub.close();
            let _ = stopping_tx.send(true);
        }
    };
    let serve = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(PauseMonitorServer::new(service))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), signal);
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
    // Joining waits for at most the sample in progress and one sentinel tick; then the
    // writer finishes what is queued (bounded: forensics still running hold the store).
    let stopped = tokio::task::spawn_blocking(move || {
        sentinel.stop();
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

/// Applies retention every `prune_interval_hours`, starting one interval after start.
async fn prune_periodically(store: Store, retention: pmon_proto::config::Retention) {
    let every = Duration::from_secs_f64(retention.prune_interval_hours * 3600.0);
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        ticks.tick().await;
        let (store, policy) = (store.clone(), PrunePolicy::from_config(&retention, SystemTime::now()));
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
