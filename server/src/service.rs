//! The `pmon.v1.PauseMonitor` service. Handlers never touch engine state: they read
//! the engine's latest status (a watch channel) or subscribe to the hub.

use std::{path::PathBuf, sync::Arc, time::SystemTime};

use futures_util::Stream;
use pmon_proto::{
    config::{Config, Limits},
    time::timestamp,
    v1::{
        EventKind, EventStatus, GetConfigRequest, GetConfigResponse, GetEventRequest, GetEventResponse,
        GetStatusRequest, GetStatusResponse, ListEventsRequest, ListEventsResponse, PruneRequest, PruneResponse,
        QueryHistoryRequest, QueryHistoryResponse, ServerCost, UpdateEventRequest, UpdateEventResponse,
        WatchSamplesRequest, WatchSamplesResponse, pause_monitor_server::PauseMonitor, query_history_request::Query,
    },
};
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::{
    cost,
    engine::EngineStatus,
    hub::{EncodedResponse, Hub},
    store::{EventFilter, HistoryQuery, PrunePolicy, Store, StoreError},
};

/// The configuration in force, replaced by a reload (SIGHUP).
#[derive(Debug, Clone)]
pub struct Live {
    /// The configuration.
    pub config: Config,
    /// Whether it was read from the file (false: built-in defaults).
    pub file_exists: bool,
    /// Why the last reload was refused, if it was.
    pub error: Option<String>,
    /// When `config` was loaded.
    pub loaded_at: SystemTime,
}

/// Shared between the reloader and the service.
pub type LiveConfig = Arc<std::sync::RwLock<Live>>;

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
    pub live: LiveConfig,
    /// Where it was read from.
    pub config_path: PathBuf,
    /// The TCP listener, for a watching machine.
    pub remote: Option<pmon_proto::v1::RemoteAccess>,
}

/// The service implementation.
#[derive(Debug, Clone)]
pub struct Service {
    hub: Arc<Hub>,
    status: watch::Receiver<EngineStatus>,
    store: Store,
    info: Arc<ServerInfo>,
}

impl Service {
    /// A service over a running engine's hub, status and store.
    pub fn new(hub: Arc<Hub>, status: watch::Receiver<EngineStatus>, store: Store, info: ServerInfo) -> Self {
        Self { hub, status, store, info: Arc::new(info) }
    }

    fn live(&self) -> Live {
        self.info.live.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The request limits in force (a reload may change them).
    fn limits(&self) -> Limits {
        self.info.live.read().unwrap_or_else(std::sync::PoisonError::into_inner).config.limits.clone()
    }

    /// Runs a blocking store call off the async thread.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Status> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(store))
            .await
            .map_err(|_| Status::internal("the query task failed; see the pmon-server log"))?
            .map_err(store_status)
    }
}

/// Page sizes when a request leaves them unset (never above the configured limit).
const DEFAULT_EVENTS: u32 = 50;
const DEFAULT_ROWS: u32 = 10_000;

/// A request's page size: the default when unset, refused above the limit.
fn page_arg(asked: u32, default: u32, max: u32, key: &str) -> Result<u32, Status> {
    match asked {
        0 => Ok(default.min(max)),
        n if n <= max => Ok(n),
        n => Err(Status::invalid_argument(format!("limit {n} is too large; accepted: 1 to {max} (limits.{key})"))),
    }
}

const STATUSES: &str = "EVENT_STATUS_UNREVIEWED, EVENT_STATUS_REVIEWED, EVENT_STATUS_PINNED, EVENT_STATUS_DISMISSED";
const KINDS: &str = "EVENT_KIND_ESCALATION, EVENT_KIND_PAUSE (or unset for both)";

/// The one place store errors become gRPC statuses.
fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::NotFound(id) => {
            Status::not_found(format!("no event with id {id}; list the ids with ListEvents (pmon events)"))
        }
        StoreError::WriterGone => Status::unavailable("pmon-server is shutting down"),
        other => {
            tracing::error!("store: {other}");
            Status::internal(format!("{other}; see the pmon-server log"))
        }
    }
}

fn status_arg(value: i32) -> Result<EventStatus, Status> {
    EventStatus::try_from(value)
        .map_err(|_| Status::invalid_argument(format!("unknown event status {value}; accepted: {STATUSES}")))
}

fn time_arg(ts: Option<&pbjson_types::Timestamp>, what: &str) -> Result<Option<i64>, Status> {
    match ts {
        None => Ok(None),
        Some(t) if (0..1_000_000_000).contains(&t.nanos) => Ok(Some(crate::store::ms(Some(t)))),
        Some(_) => Err(Status::invalid_argument(format!("{what}: nanos must be 0 to 999999999"))),
    }
}

fn range_arg(start: Option<i64>, end: Option<i64>, names: (&str, &str)) -> Result<(), Status> {
    match (start, end) {
        (Some(s), Some(e)) if s >= e => {
            Err(Status::invalid_argument(format!("inverted time range: {} must be before {}", names.0, names.1)))
        }
        _ => Ok(()),
    }
}

impl Service {
    /// Admits a watcher: resume point checked, `limits.max_watchers` enforced, then its
    /// stream of encoded items (served by `watch::Routes`).
    pub fn watch(
        &self,
        request: WatchSamplesRequest,
    ) -> Result<impl Stream<Item = EncodedResponse> + Send + use<>, Status> {
        // Sequence numbers from another run of the server mean nothing here.
        let after = request.after_sequence.filter(|_| request.server_instance.is_none_or(|i| i == self.hub.instance()));
        // Checked and subscribed with nothing in between that could yield: on the
        // server's one thread no other request slips in, so the limit holds exactly.
        let max = self.limits().max_watchers;
        if self.hub.watchers() >= max as usize {
            return Err(Status::resource_exhausted(format!(
                "{max} watchers are connected, the most this server accepts (limits.max_watchers); \
                 close one or raise the limit"
            )));
        }
        let subscription =
            self.hub.subscribe(after).ok_or_else(|| Status::unavailable("pmon-server is shutting down"))?;
        Ok(subscription.into_stream(Arc::clone(&self.hub)))
    }
}

#[tonic::async_trait]
impl PauseMonitor for Service {
    type WatchSamplesStream = futures_util::stream::Empty<Result<WatchSamplesResponse, Status>>;

    /// The generated server never calls this: `watch::Routes` takes the method's path
    /// first and serves it with `Service::watch`, whose items are encoded once for all
    /// watchers. The trait still requires the method.
    async fn watch_samples(
        &self,
        _: Request<WatchSamplesRequest>,
    ) -> Result<Response<Self::WatchSamplesStream>, Status> {
        tracing::error!("a WatchSamples call reached the generated server instead of watch::Routes");
        Err(Status::internal("WatchSamples reached the wrong route; see the pmon-server log"))
    }

    async fn get_status(&self, _: Request<GetStatusRequest>) -> Result<Response<GetStatusResponse>, Status> {
        if self.status.has_changed().is_err() {
            // The sampler thread is gone (it panicked): say so rather than serve a
            // status that silently stopped moving.
            return Err(Status::unavailable("the sampler stopped; see the pmon-server log and restart the server"));
        }
        let s = self.status.borrow().clone();
        let live = self.live();
        let memory = cost::memory();
        let latest = s.latest.as_deref();
        let store_problem = self.store.problem();
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
            machine: latest.and_then(|l| l.machine.clone()),
            stress: latest.map(|l| l.stress),
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
                tasks: tokio::runtime::Handle::current().metrics().num_alive_tasks() as u64,
            }),
            data_dir: self.info.data_dir.display().to_string(),
            server_instance: self.hub.instance(),
            lost_writes: self.store.lost_writes(),
            pauses: s.pauses,
            config_error: live.error.unwrap_or_default(),
            config_loaded_at: Some(timestamp(live.loaded_at)),
            source_restarts: s.source.restarts,
            source_problem: s.source.last_problem.as_ref().map(|p| p.1.clone()).unwrap_or_default(),
            source_problem_at: s.source.last_problem.as_ref().map(|p| timestamp(p.0)),
            store_problem: store_problem.as_ref().map(|p| p.1.clone()).unwrap_or_default(),
            store_problem_at: store_problem.as_ref().map(|p| timestamp(p.0)),
            sampler_priority: s.sampler_priority.clone(),
            sampler_protected: s.sampler_protected,
            sampler_panics: s.sampler_panics,
            last_sampler_panic: s.last_sampler_panic.as_ref().map(|p| p.1.clone()).unwrap_or_default(),
            last_sampler_panic_at: s.last_sampler_panic.as_ref().map(|p| timestamp(p.0)),
            forensic_panics: s.forensic_panics,
            remote_access: self.info.remote.clone(),
        }))
    }

    async fn list_events(&self, request: Request<ListEventsRequest>) -> Result<Response<ListEventsResponse>, Status> {
        let r = request.into_inner();
        let statuses = r
            .statuses
            .iter()
            .map(|s| status_arg(*s))
            .filter(|s| !matches!(s, Ok(EventStatus::Unspecified)))
            .collect::<Result<Vec<_>, _>>()?;
        let kind = match EventKind::try_from(r.kind) {
            Ok(EventKind::Unspecified) => None,
            Ok(k) => Some(k),
            Err(_) => {
                return Err(Status::invalid_argument(format!("unknown event kind {}; accepted: {KINDS}", r.kind)));
            }
        };
        let since_ms = time_arg(r.since.as_ref(), "since")?;
        let until_ms = time_arg(r.until.as_ref(), "until")?;
        range_arg(since_ms, until_ms, ("since", "until"))?;
        let limit = page_arg(r.limit, DEFAULT_EVENTS, self.limits().max_events_page, "max_events_page")?;
        let filter = EventFilter { statuses, kind, since_ms, until_ms, limit, before_id: r.before_id };
        let (events, next_before_id) =
            self.blocking(move |s| s.read(|c, _| crate::store::read::list_events(c, &filter))).await?;
        Ok(Response::new(ListEventsResponse { events, next_before_id }))
    }

    async fn get_event(&self, request: Request<GetEventRequest>) -> Result<Response<GetEventResponse>, Status> {
        let id = request.into_inner().id;
        let event = self.blocking(move |s| s.read(|c, dir| crate::store::read::get_event(c, dir, id))).await?;
        Ok(Response::new(event))
    }

    async fn update_event(
        &self,
        request: Request<UpdateEventRequest>,
    ) -> Result<Response<UpdateEventResponse>, Status> {
        let r = request.into_inner();
        let status = match status_arg(r.status)? {
            EventStatus::Unspecified => None,
            s => Some(s),
        };
        let max_notes = self.limits().max_notes_bytes;
        if let Some(notes) = &r.notes
            && notes.len() > max_notes as usize
        {
            return Err(Status::invalid_argument(format!(
                "notes are {} bytes; accepted: at most {max_notes} (limits.max_notes_bytes)",
                notes.len()
            )));
        }
        if status.is_none() && r.notes.is_none() {
            return Err(Status::invalid_argument(format!("nothing to change: give a status ({STATUSES}) or notes")));
        }
        let (id, notes) = (r.id, r.notes);
        let event = self
            .blocking(move |s| {
                s.update_event(id, status, notes)?;
                s.read(|c, _| crate::store::read::event(c, id))
            })
            .await?;
        Ok(Response::new(UpdateEventResponse { event: Some(event) }))
    }

    async fn query_history(
        &self,
        request: Request<QueryHistoryRequest>,
    ) -> Result<Response<QueryHistoryResponse>, Status> {
        let r = request.into_inner();
        let limit = page_arg(r.limit, DEFAULT_ROWS, self.limits().max_history_rows, "max_history_rows")?;
        let query = match r.query {
            Some(Query::At(at)) => HistoryQuery::At(time_arg(Some(&at), "at")?.unwrap_or(0)),
            Some(Query::Range(range)) => {
                let start = time_arg(range.start.as_ref(), "range.start")?;
                let end = time_arg(range.end.as_ref(), "range.end")?;
                range_arg(start, end, ("range.start", "range.end"))?;
                HistoryQuery::Range { start: start.unwrap_or(0), end: end.unwrap_or(i64::MAX), limit }
            }
            None => return Err(Status::invalid_argument("give either `at` (an instant) or `range` (start and end)")),
        };
        let (rows, truncated) =
            self.blocking(move |s| s.read(|c, _| crate::store::read::query_history(c, query))).await?;
        Ok(Response::new(QueryHistoryResponse { rows, truncated }))
    }

    async fn prune(&self, request: Request<PruneRequest>) -> Result<Response<PruneResponse>, Status> {
        let dry_run = request.into_inner().dry_run;
        let retention = self.live().config.retention;
        let policy = PrunePolicy::from_config(&retention, SystemTime::now());
        let report = self.blocking(move |s| s.prune(policy, dry_run)).await?;
        Ok(Response::new(PruneResponse {
            removed_event_ids: report.removed_event_ids,
            history_rows_removed: report.history_rows_removed,
            bytes_freed: report.bytes_freed,
            events_kept_protected: report.kept_protected,
            dry_run,
        }))
    }

    async fn get_config(&self, _: Request<GetConfigRequest>) -> Result<Response<GetConfigResponse>, Status> {
        let live = self.live();
        Ok(Response::new(GetConfigResponse {
            config_toml: live.config.to_toml(),
            config_path: self.info.config_path.display().to_string(),
            config_file_exists: live.file_exists,
        }))
    }
}
