//! The daemon assembled from named parts: sampling (collector, engine, sentinel,
//! forensics, store), the gRPC routes, the metrics endpoint, serving until shutdown,
//! and stopping in order.
//!
//! ```text
//! run ─► Sampling::start ─► routes ─► serve (socket + TCP) ◄─ shutdown
//!          │                  └─ metrics endpoint
//!          └─ stop: sentinel, captures, engine, then the writer drains
//! ```

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use pmon_proto::v1::pause_monitor_server::PauseMonitorServer;
use tokio::{sync::watch, task::JoinHandle};
use tokio_stream::wrappers::UnixListenerStream;

use super::{Options, ServerError, prune_periodically, reload_on, replay_finished};
use crate::{
    collect,
    engine::{Engine, EngineStatus, Parts},
    forensics::Forensics,
    hub::Hub,
    listen, metrics,
    notify::Notifier,
    pause::Sentinel,
    remote,
    service::{self, ServerInfo},
    store::{Store, Writer},
};

/// How long watchers get to finish after shutdown begins before the server closes
/// anyway (a watcher that stopped reading would otherwise hold it open).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How long the writer gets to finish queued writes at shutdown.
const WRITER_GRACE: Duration = Duration::from_secs(3);

/// Runs the server until `shutdown` completes, then stops cleanly: new watchers are
/// refused, streams end, the sampler stops, and the socket is removed. Each item of
/// `reloads` (SIGHUP in production) reloads the configuration file.
pub async fn run(
    options: Options,
    shutdown: impl Future<Output = ()>,
    reloads: impl futures_util::Stream<Item = ()> + Send + Unpin + 'static,
) -> Result<(), ServerError> {
    let (claim, listener) = listen::claim(&options.data_dir)?;
    let tcp = options.remote.as_ref().map(|r| remote::prepare(r, &options.data_dir)).transpose()?;
    if let Some(access) = tcp.as_ref().and_then(|l| l.access.as_ref()) {
        // Once, when the certificate or token was just made: then a person is setting
        // this up and reads it. `pmon status` shows it whenever asked.
        if access.created {
            eprintln!("pmon-server: {}", access.describe());
        }
        tracing::info!(fingerprint = ?access.fingerprint, "listening on {}", access.address);
    }
    let scrapes = options.metrics.as_deref().map(metrics::http::bind).transpose()?;
    let started_at = SystemTime::now();
    let sampling = Sampling::start(&options, started_at)?;
    let live: service::LiveConfig = Arc::new(std::sync::RwLock::new(service::Live {
        config: options.config.clone(),
        file_exists: options.config_file_exists,
        error: None,
        loaded_at: SystemTime::now(),
    }));
    let background = [
        tokio::spawn(prune_periodically(sampling.store.clone(), Arc::clone(&live))),
        tokio::spawn(reload_on(
            reloads,
            options.clone(),
            Arc::clone(&live),
            sampling.engine.messages(),
            sampling.notifier.clone(),
        )),
    ];
    let scraping = scrapes.map(|scrapes| serve_metrics(scrapes, &sampling));
    let replay_done =
        replay_finished(sampling.status.clone(), options.replay.as_ref().is_some_and(|r| !r.keep_serving));
    let info = ServerInfo {
        started_at,
        source: sampling.source,
        data_dir: options.data_dir.clone(),
        live,
        config_path: options.config_path.clone(),
        remote: tcp.as_ref().map(remote::Listener::remote_access),
    };
    let service =
        service::Service::new(Arc::clone(&sampling.hub), sampling.status.clone(), sampling.store.clone(), info);
    let (health, routes) = routes(service, options.config.limits.max_request_bytes as usize).await?;
    tracing::info!(socket = %claim.socket.display(), source = sampling.source, "pmon-server listening");
    let hub = Arc::clone(&sampling.hub);
    let signal = async move {
        tokio::select! {
            () = shutdown => {}
            () = replay_done => {}
        }
        tracing::info!("shutting down");
        health.set_not_serving::<PauseMonitorServer<service::Service>>().await;
        // Ends every watcher stream, so graceful shutdown is not held open by them.
        hub.close();
    };
    let result = serve(listener, tcp, routes, signal).await;
    for task in background.iter().chain(scraping.as_ref()) {
        task.abort();
    }
    sampling.stop().await;
    drop(claim);
    tracing::info!("pmon-server stopped");
    result
}

/// Everything that samples and records, started before anything is served.
struct Sampling {
    source: &'static str,
    hub: Arc<Hub>,
    store: Store,
    writer: Writer,
    notifier: Notifier,
    capture: Forensics,
    engine: Engine,
    status: watch::Receiver<EngineStatus>,
    sentinel: Option<Sentinel>,
}

impl Sampling {
    fn start(options: &Options, started_at: SystemTime) -> Result<Sampling, ServerError> {
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
        // Start time in nanoseconds: distinct for every run of a server.
        let instance =
            started_at.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let sampling = &options.config.sampling;
        let ring = Duration::from_secs_f64(sampling.ring_buffer_seconds);
        let hub = Arc::new(Hub::new(ring, options.config.watchers.queue_samples as usize, instance));
        let (store, writer, next_event_id) = Store::open(&options.data_dir)?;
        // A replay's stress happened elsewhere, earlier: recorded, never announced here.
        let silent = options.config.learning_mode || options.replay.is_some();
        let notifier = Notifier::new(options.config.alerts.clone(), silent, store.clone());
        let step_timeout = Duration::from_secs_f64(options.config.pause.step_timeout_seconds);
        let capture = Forensics::new(options.data_dir.clone(), store.clone(), step_timeout, notifier.clone());
        let parts = Parts {
            hub: Arc::clone(&hub),
            store: store.clone(),
            next_event_id,
            forensics: capture.clone(),
            notifier: notifier.clone(),
            recorder,
        };
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
                    engine.pause_reports(),
                    engine.sample_requests(),
                )
                .map_err(ServerError::Thread)?,
            ),
        };
        Ok(Sampling { source, hub, store, writer, notifier, capture, engine, status, sentinel })
    }

    /// Joining waits for at most the sample in progress and one sentinel tick; a
    /// capture under way ends within a moment, recording what it did not finish; then
    /// the writer finishes what is queued.
    async fn stop(self) {
        let Sampling { sentinel, capture, engine, writer, store, hub, notifier, .. } = self;
        // Every store handle must go for the writer to finish.
        drop((store, hub, notifier));
        let stopped = tokio::task::spawn_blocking(move || {
            if let Some(sentinel) = sentinel {
                sentinel.stop();
            }
            capture.stop();
            drop(capture);
            engine.stop();
            writer.join_within(WRITER_GRACE)
        });
        match stopped.await {
            Ok(true) => {}
            Ok(false) => tracing::warn!("database writes still queued after {WRITER_GRACE:?} were not waited for"),
            Err(_) => tracing::error!("the sampler could not be stopped cleanly"),
        }
    }
}

/// The metrics endpoint, served in the background.
fn serve_metrics(scrapes: metrics::http::MetricsListener, sampling: &Sampling) -> JoinHandle<()> {
    let address = scrapes.address;
    if address.ip().is_loopback() {
        tracing::info!(%address, "serving metrics at /metrics (no authentication)");
    } else {
        tracing::warn!(%address, "serving metrics at /metrics, reachable from the network without authentication");
    }
    let registry = metrics::registry(sampling.status.clone(), Arc::clone(&sampling.hub), sampling.store.clone());
    tokio::spawn(scrapes.serve(registry, std::future::pending()))
}

/// The same services on both listeners (only TCP asks for the token): pmon's API,
/// health, and reflection for grpcurl.
async fn routes(
    service: service::Service,
    max_request_bytes: usize,
) -> Result<(tonic_health::server::HealthReporter, tonic::service::Routes), ServerError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<PauseMonitorServer<service::Service>>().await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pmon_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    // grpcurl 1.8 speaks only v1alpha reflection; newer clients use v1.
    let (reflection_v1, reflection_v1alpha) = (reflection().build_v1()?, reflection().build_v1alpha()?);
    let routes = tonic::service::Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(crate::watch::Routes::new(service, max_request_bytes));
    Ok((health, routes))
}

/// Serves the socket (and TCP, if any) until `signal`, then gives open connections
/// `SHUTDOWN_GRACE` before closing them.
async fn serve(
    listener: tokio::net::UnixListener,
    tcp: Option<remote::Listener>,
    routes: tonic::service::Routes,
    signal: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    if let Some(tcp) = &tcp {
        tracing::info!(address = %tcp.address, tls = tcp.tls, "listening on TCP (bearer token required)");
    }
    let (stopping_tx, mut stopping) = watch::channel(false);
    let mut tcp_stopping = stopping.clone();
    let signal = async move {
        signal.await;
        let _ = stopping_tx.send(true);
    };
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
    tokio::select! {
        r = serve => r.map_err(ServerError::from),
        () = async {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!("connections still open {SHUTDOWN_GRACE:?} after shutdown began; closing them");
            Ok(())
        }
    }
}
