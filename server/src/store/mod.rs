//! The evidence store: SQLite (bundled) through diesel, in WAL mode, with the schema
//! managed by embedded migrations so users keep their data across upgrades.
//!
//! ```text
//! engine / forensics ── try_send(Op) ──► [bounded queue] ──► writer thread ── batches in one transaction
//! RPC updates ───────── send(Op + reply) ─┘                      (the only writer)
//! RPC queries ───────── reader connection (WAL: reads never wait for the writer)
//! ```
//!
//! The engine never waits on the disk: if the queue is full, the op is dropped and
//! counted. A write that fails (disk full, file unwritable) is counted too, the writer
//! goes on with the next batch, and what was committed before stays. `GetStatus`
//! reports both, with the latest reason.

mod prune;
pub mod read;
mod schema;
mod write;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
        mpsc::{self, SyncSender, TrySendError},
    },
    thread::JoinHandle,
    time::SystemTime,
};

use diesel::{Connection, SqliteConnection, connection::SimpleConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use pmon_proto::v1::{Culprit, EventKind, EventStatus, Finding, ProcessGroup, Sample};
use prost::Message;

pub use prune::{PrunePolicy, PruneReport};
pub use read::{EventFilter, HistoryQuery};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Ops queued before the engine starts dropping them (a few minutes of 4 Hz samples).
const QUEUE: usize = 1024;

/// The database file inside the data directory.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("data.db")
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened.
    #[error("cannot open database {path}: {source}")]
    Open {
        /// The file.
        path: String,
        /// Why.
        source: diesel::ConnectionError,
    },
    /// Migrating the schema failed.
    #[error("cannot bring the database schema up to date: {0}")]
    Migrate(String),
    /// A query failed.
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    /// No event with that id.
    #[error("no event with id {0}")]
    NotFound(u64),
    /// The writer is gone (shutting down, or it failed).
    #[error("the database writer has stopped")]
    WriterGone,
    /// A stored blob could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(#[from] prost::DecodeError),
    /// Artefact files could not be listed or removed.
    #[error("artefact files: {0}")]
    Files(#[from] std::io::Error),
}

/// What an escalation or pause event is when it is first written.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Id allocated by the engine.
    pub id: u64,
    /// Pause or escalation.
    pub kind: EventKind,
    /// When it began, ms since the epoch.
    pub started_at_ms: i64,
    /// When it ended (pauses are written once over).
    pub ended_at_ms: Option<i64>,
    /// Peak score so far.
    pub peak_score: f64,
    /// Peak tier so far.
    pub peak_tier: i32,
    /// Pause: the stall.
    pub stall_ms: Option<f64>,
    /// Culprits so far.
    pub culprits: Vec<Culprit>,
    /// Artefact directory relative to the data directory (pauses), set from the start
    /// so pruning finds it even if forensics never finish.
    pub artefact_dir: String,
    /// A pause's attribution beyond the culprits, or an escalation's groups (boxed: it
    /// is large, and most writes are not new pauses).
    pub attribution: Option<Box<Attribution>>,
}

/// A pause's attribution, or an escalation's groups, as stored: the [`Event`](pmon_proto::v1::Event) fields that
/// hold it, kept as an `Event` with only those set, so the contract defines the format.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Attribution {
    /// Machine freeze or the server alone.
    pub cause: pmon_proto::v1::StallCause,
    /// The evidence for it.
    pub cause_detail: String,
    /// Where the blame was looked for.
    pub window: Option<pmon_proto::v1::StallWindow>,
    /// Who waited.
    pub victims: Vec<pmon_proto::v1::ProcessUse>,
    /// Groups blamed together.
    pub groups: Vec<ProcessGroup>,
    /// Who the threads waited on (macOS stack report), added when forensics finish.
    pub wait_chains: Vec<pmon_proto::v1::WaitChain>,
    /// Apps whose main thread hung over the stack report.
    pub app_hangs: Vec<pmon_proto::v1::AppHang>,
}

impl Attribution {
    fn encode(&self) -> Vec<u8> {
        pmon_proto::v1::Event {
            cause: self.cause as i32,
            cause_detail: self.cause_detail.clone(),
            window: self.window,
            victims: self.victims.clone(),
            groups: self.groups.clone(),
            wait_chains: self.wait_chains.clone(),
            app_hangs: self.app_hangs.clone(),
            ..Default::default()
        }
        .encode_to_vec()
    }

    /// An escalation's: the groups blamed together, if any (none stores nothing).
    pub fn of_groups(groups: &[ProcessGroup]) -> Option<Self> {
        (!groups.is_empty()).then(|| Self { groups: groups.to_vec(), ..Self::default() })
    }

    fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let e = pmon_proto::v1::Event::decode(bytes)?;
        Ok(Self {
            cause: e.cause(),
            cause_detail: e.cause_detail,
            window: e.window,
            victims: e.victims,
            groups: e.groups,
            wait_chains: e.wait_chains,
            app_hangs: e.app_hangs,
        })
    }

    /// Sets the attribution fields of `event` from what `encode` wrote.
    fn decode_into(bytes: &[u8], event: &mut pmon_proto::v1::Event) -> Result<(), StoreError> {
        let stored = pmon_proto::v1::Event::decode(bytes)?;
        event.cause = stored.cause;
        event.cause_detail = stored.cause_detail;
        event.window = stored.window;
        event.victims = stored.victims;
        event.groups = stored.groups;
        event.wait_chains = stored.wait_chains;
        event.app_hangs = stored.app_hangs;
        Ok(())
    }
}

/// A write. The engine's ops are fire-and-forget; RPC ops carry a reply channel.
#[derive(Debug)]
pub enum Op {
    /// A compact history row for a sample.
    History(Arc<Sample>, u32),
    /// A new event.
    OpenEvent(NewEvent),
    /// A sample kept with an event.
    EventSample { event_id: u64, reason: &'static str, sample: Arc<Sample> },
    /// A higher peak, and the culprits and groups so far: an escalation still open shows
    /// who drove it up, not only who was there when it began.
    Peak { event_id: u64, peak_score: f64, peak_tier: i32, culprits: Vec<Culprit>, groups: Vec<ProcessGroup> },
    /// An escalation ended, with its culprits and groups.
    CloseEvent { event_id: u64, ended_at_ms: i64, culprits: Vec<Culprit>, groups: Vec<ProcessGroup> },
    /// A forensic step's result.
    Finding { event_id: u64, finding: Finding },
    /// A pause's stack report was read: who waited on whom, and the culprits with the
    /// root of the waits first.
    Waits {
        event_id: u64,
        chains: Vec<pmon_proto::v1::WaitChain>,
        hangs: Vec<pmon_proto::v1::AppHang>,
        culprits: Vec<Culprit>,
    },
    /// The size of an event's artefacts once forensics are done.
    Artefacts { event_id: u64, bytes: u64 },
    /// A notification was sent (or not).
    Notification { event_id: Option<u64>, sent_at_ms: i64, title: String, body: String, error: Option<String> },
    /// A person's review of an event.
    Update { id: u64, status: Option<EventStatus>, notes: Option<String>, reply: mpsc::Sender<Result<(), StoreError>> },
    /// Retention.
    Prune { policy: PrunePolicy, dry_run: bool, reply: mpsc::Sender<Result<PruneReport, StoreError>> },
    /// Replies once everything queued before it is written.
    Flush(mpsc::Sender<Result<(), StoreError>>),
}

/// Writes lost since start and the latest reason, shared by the handles and the writer.
#[derive(Debug, Default)]
struct Losses {
    /// Dropped because the queue was full.
    dropped: AtomicU64,
    /// Failed in the database.
    failed: AtomicU64,
    latest: Mutex<Option<(SystemTime, String)>>,
}

impl Losses {
    fn record(&self, counter: &AtomicU64, count: u64, why: impl FnOnce() -> String) {
        counter.fetch_add(count, Ordering::Relaxed);
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner) = Some((SystemTime::now(), why()));
    }

    /// Counts `count` writes the database refused, for `why`; returns how many it has
    /// refused since start.
    fn failed(&self, count: u64, why: &impl std::fmt::Display) -> u64 {
        self.record(&self.failed, count, || why.to_string());
        self.failed.load(Ordering::Relaxed)
    }
}

/// A handle to the store, shared by the engine, forensics and the gRPC service.
#[derive(Clone)]
pub struct Store {
    tx: SyncSender<Op>,
    losses: Arc<Losses>,
    reader: Arc<Mutex<SqliteConnection>>,
    data_dir: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("data_dir", &self.data_dir).field("lost_writes", &self.lost_writes()).finish()
    }
}

/// The writer thread; dropping every [`Store`] handle ends it after the queue drains.
#[derive(Debug)]
pub struct Writer(JoinHandle<()>);

impl Writer {
    /// Waits until everything queued is written and every handle is gone, at most
    /// `limit`; true if it finished.
    pub fn join_within(self, limit: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while !self.0.is_finished() {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if self.0.join().is_err() {
            tracing::error!("the database writer panicked");
        }
        true
    }
}

fn connect(path: &Path) -> Result<SqliteConnection, StoreError> {
    let mut conn = SqliteConnection::establish(&path.to_string_lossy())
        .map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
    // WAL: readers never block the writer nor each other. NORMAL: a crash can lose the
    // last transactions but never corrupts the database. Foreign keys: deleting an event
    // deletes its samples and findings.
    conn.batch_execute(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
    )?;
    Ok(conn)
}

impl Store {
    /// Opens (creating or upgrading) `data.db` in the data directory, closes events a
    /// crash left open, and starts the writer. Returns the store, the writer, and the
    /// next free event id.
    pub fn open(data_dir: &Path) -> Result<(Store, Writer, u64), StoreError> {
        let path = db_path(data_dir);
        let mut conn = connect(&path)?;
        conn.run_pending_migrations(MIGRATIONS).map_err(|e| StoreError::Migrate(e.to_string()))?;
        let recovered = write::close_dangling(&mut conn)?;
        if recovered > 0 {
            tracing::info!(recovered, "closed events left open by an unclean stop");
        }
        let next_id = read::max_event_id(&mut conn)? + 1;
        let reader = connect(&path)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let losses = Arc::new(Losses::default());
        let writer_losses = Arc::clone(&losses);
        let dir = data_dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("pmon-store".into())
            .spawn(move || write::run(conn, &rx, &dir, &writer_losses))
            .map_err(StoreError::Files)?;
        let store = Store { tx, losses, reader: Arc::new(Mutex::new(reader)), data_dir: data_dir.to_path_buf() };
        Ok((store, Writer(thread), next_id))
    }

    /// Queues a write without waiting; a full queue drops it and counts it.
    pub fn submit(&self, op: Op) {
        match self.tx.try_send(op) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.losses
                    .record(&self.losses.dropped, 1, || "the database writer fell behind; writes dropped".into());
            }
            Err(TrySendError::Disconnected(_)) => {
                self.losses.record(&self.losses.dropped, 1, || "the database writer has stopped".into());
            }
        }
    }

    /// Writes that were dropped (queue full) or failed since start.
    pub fn lost_writes(&self) -> u64 {
        self.losses.dropped.load(Ordering::Relaxed) + self.losses.failed.load(Ordering::Relaxed)
    }

    /// Why the latest lost write was lost, and when; `None` if none was.
    pub fn problem(&self) -> Option<(SystemTime, String)> {
        self.losses.latest.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Sends an op that carries a reply and waits for it (blocking: call from a
    /// blocking context).
    fn request<T>(&self, make: impl FnOnce(mpsc::Sender<Result<T, StoreError>>) -> Op) -> Result<T, StoreError> {
        let (reply, answer) = mpsc::channel();
        self.tx.send(make(reply)).map_err(|_| StoreError::WriterGone)?;
        answer.recv().map_err(|_| StoreError::WriterGone)?
    }

    /// Sets an event's status and/or notes. Blocking.
    pub fn update_event(&self, id: u64, status: Option<EventStatus>, notes: Option<String>) -> Result<(), StoreError> {
        self.request(|reply| Op::Update { id, status, notes, reply })
    }

    /// Applies retention. Blocking.
    pub fn prune(&self, policy: PrunePolicy, dry_run: bool) -> Result<PruneReport, StoreError> {
        self.request(|reply| Op::Prune { policy, dry_run, reply })
    }

    /// Waits until every op submitted before this call is written. Blocking.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.request(Op::Flush)
    }

    /// Runs a read query on the reader connection. Blocking.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&mut SqliteConnection, &Path) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut conn, &self.data_dir)
    }
}

/// The database spelling of a kind.
pub(crate) fn kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Pause => "pause",
        EventKind::Escalation | EventKind::Unspecified => "escalation",
    }
}

/// The database spelling of a status. Kept apart from the display words
/// (`pmon_proto::format`) on purpose: stored values must never change with wording.
pub fn status_name(status: EventStatus) -> &'static str {
    match status {
        EventStatus::Reviewed => "reviewed",
        EventStatus::Pinned => "pinned",
        EventStatus::Dismissed => "dismissed",
        EventStatus::Unreviewed | EventStatus::Unspecified => "unreviewed",
    }
}

fn parse_status(s: &str) -> EventStatus {
    match s {
        "reviewed" => EventStatus::Reviewed,
        "pinned" => EventStatus::Pinned,
        "dismissed" => EventStatus::Dismissed,
        _ => EventStatus::Unreviewed,
    }
}

fn outcome_name(outcome: i32) -> &'static str {
    use pmon_proto::v1::FindingOutcome;
    match FindingOutcome::try_from(outcome) {
        Ok(FindingOutcome::Ok) => "ok",
        Ok(FindingOutcome::TimedOut) => "timed_out",
        _ => "failed",
    }
}

fn parse_outcome(s: &str) -> i32 {
    use pmon_proto::v1::FindingOutcome;
    (match s {
        "ok" => FindingOutcome::Ok,
        "timed_out" => FindingOutcome::TimedOut,
        _ => FindingOutcome::Failed,
    }) as i32
}

/// Culprits as consecutive length-delimited messages (a list without a wrapper type).
fn encode_culprits(culprits: &[Culprit]) -> Vec<u8> {
    let mut buf = Vec::new();
    for c in culprits {
        // Encoding into a Vec cannot run out of room.
        let _ = c.encode_length_delimited(&mut buf);
    }
    buf
}

fn decode_culprits(mut bytes: &[u8]) -> Result<Vec<Culprit>, StoreError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        out.push(Culprit::decode_length_delimited(&mut bytes)?);
    }
    Ok(out)
}

/// Milliseconds since the epoch of a protobuf timestamp (0 for none).
pub fn ms(ts: Option<&pbjson_types::Timestamp>) -> i64 {
    ts.map_or(0, |t| t.seconds.saturating_mul(1000).saturating_add(i64::from(t.nanos / 1_000_000)))
}

/// The protobuf timestamp of milliseconds since the epoch.
pub fn timestamp_ms(ms: i64) -> pbjson_types::Timestamp {
    pbjson_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

#[cfg(test)]
mod tests;
