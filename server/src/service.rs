//! The `pmon.v1.PauseMonitor` service. Handlers never touch engine state: they read
//! the engine's latest status (a watch channel) or subscribe to the hub.

use std::{path::PathBuf, pin::Pin, sync::Arc, time::SystemTime};

use futures_util::{Stream, StreamExt};
use pmon_proto::{
    config::Config,
    time::timestamp,
    v1::{
        GetConfigRequest, GetConfigResponse, GetStatusRequest, GetStatusResponse, ServerCost, WatchSamplesRequest,
        WatchSamplesResponse, pause_monitor_server::PauseMonitor,
    },
};
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::{cost, engine::EngineStatus, hub::Hub};

/// Facts fixed at start.
#[derive(Debug)]
pub struct ServerInfo {
    /// When the server started.
    pub started_at: SystemTime,
    /// The collector's name.
    pub source: &'static str,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The configuration in force.
    pub config: Config,
    /// Where it was read from.
    pub config_path: PathBuf,
    /// Whether that file existed.
    pub config_file_exists: bool,
}

/// The service implementation.
#[derive(Debug, Clone)]
pub struct Service {
    hub: Arc<Hub>,
    status: watch::Receiver<EngineStatus>,
    info: Arc<ServerInfo>,
}

impl Service {
    /// A service over a running engine's hub and status.
    pub fn new(hub: Arc<Hub>, status: watch::Receiver<EngineStatus>, info: ServerInfo) -> Self {
        Self { hub, status, info: Arc::new(info) }
    }
}

type SampleStream = Pin<Box<dyn Stream<Item = Result<WatchSamplesResponse, Status>> + Send>>;

#[tonic::async_trait]
impl PauseMonitor for Service {
    type WatchSamplesStream = SampleStream;

    async fn watch_samples(
        &self,
        request: Request<WatchSamplesRequest>,
    ) -> Result<Response<Self::WatchSamplesStream>, Status> {
        let request = request.into_inner();
        // Sequence numbers from another run of the server mean nothing here.
        let after = request.after_sequence.filter(|_| request.server_instance.is_none_or(|i| i == self.hub.instance()));
        let subscription =
            self.hub.subscribe(after).ok_or_else(|| Status::unavailable("pmon-server is shutting down"))?;
        let stream = subscription.into_stream(Arc::clone(&self.hub)).map(Ok);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_status(&self, _: Request<GetStatusRequest>) -> Result<Response<GetStatusResponse>, Status> {
        if self.status.has_changed().is_err() {
            // The sampler thread is gone (it panicked): say so rather than serve a
            // status that silently stopped moving.
            return Err(Status::unavailable("the sampler stopped; see the pmon-server log and restart the server"));
        }
        let s = self.status.borrow().clone();
        let memory = cost::memory();
        let latest = s.latest.as_deref();
        Ok(Response::new(GetStatusResponse {
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: Some(timestamp(self.info.started_at)),
            source: self.info.source.to_string(),
            tier: s.tier as i32,
            max_score: latest.map(|l| l.max_score),
            sample_count: s.sample_count,
            last_sequence: latest.map(|l| l.sequence),
            last_sample_time: latest.and_then(|l| l.time),
            process_count: latest.map(|l| l.process_count),
            top_rogue: latest.and_then(|l| l.rogues.first().cloned()),
            interval_seconds: s.interval.as_secs_f64(),
            watchers: u32::try_from(self.hub.watchers()).unwrap_or(u32::MAX),
            failed_samples: s.failed_samples,
            cost: Some(ServerCost {
                cpu_percent: s.cost.cpu_percent,
                cpu_total_micros: u64::try_from(s.cost.cpu_total.as_micros()).unwrap_or(u64::MAX),
                resident_bytes: memory.resident,
                peak_resident_bytes: memory.peak,
                last_sample_cpu_micros: s
                    .cost
                    .last_sample_cpu
                    .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
                mean_sample_cpu_micros: s.cost.mean_sample_cpu.map(|d| d.as_secs_f64() * 1e6),
                watcher_missed_samples: self.hub.missed_total(),
            }),
            data_dir: self.info.data_dir.display().to_string(),
            server_instance: self.hub.instance(),
        }))
    }

    async fn get_config(&self, _: Request<GetConfigRequest>) -> Result<Response<GetConfigResponse>, Status> {
        Ok(Response::new(GetConfigResponse {
            config_toml: self.info.config.to_toml(),
            config_path: self.info.config_path.display().to_string(),
            config_file_exists: self.info.config_file_exists,
        }))
    }
}
