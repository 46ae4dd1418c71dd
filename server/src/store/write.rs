//! The writer thread: the only connection that writes.

use std::{
    path::Path,
    sync::mpsc::Receiver,
    time::{Duration, Instant},
};

use diesel::{
    Connection, ExpressionMethods, OptionalExtension, QueryDsl, RunQueryDsl, SqliteConnection,
    sql_types::{BigInt, Double, Integer},
};
use pmon_proto::v1::{HistoryRow, Sample};
use prost::Message;

use super::{
    Losses, NewEvent, Op, StoreError, kind_name, ms, prune,
    schema::{event_samples, events, findings, history, notifications},
    status_name,
};

/// Ops written per transaction at most: a burst after a stall is written in a few
/// transactions rather than one per op (one fsync each in WAL mode is what costs).
const BATCH: usize = 256;

/// Writes ops until every sender is gone.
pub(super) fn run(conn: SqliteConnection, rx: &Receiver<Op>, data_dir: &Path, losses: &Losses) {
    let mut writer = Writer { conn, losses, failing: None, refused: 0 };
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let mut plain = Vec::with_capacity(batch.len());
        for op in batch {
            match op {
                // Ops with a reply run on their own, so the answer is theirs alone; what
                // was queued before them is written first.
                Op::Update { id, status, notes, reply } => {
                    writer.batch(std::mem::take(&mut plain));
                    let _ = reply.send(update(&mut writer.conn, id, status, notes));
                }
                Op::Prune { policy, dry_run, reply } => {
                    writer.batch(std::mem::take(&mut plain));
                    let _ = reply.send(prune::run(&mut writer.conn, data_dir, &policy, dry_run));
                }
                Op::Flush(reply) => {
                    writer.batch(std::mem::take(&mut plain));
                    let _ = reply.send(Ok(()));
                }
                other => plain.push(other),
            }
        }
        writer.batch(plain);
    }
}

/// How often a database that keeps refusing writes is logged again.
const STILL_FAILING_LOG: Duration = Duration::from_secs(60);

struct Writer<'a> {
    conn: SqliteConnection,
    losses: &'a Losses,
    /// The database refuses writes (full, unwritable): logged when it starts, once a
    /// minute while it lasts, and when it ends, however many batches fail meanwhile.
    failing: Option<Failing>,
    /// Single writes refused by a constraint since start (logged one in a hundred).
    refused: u64,
}

struct Failing {
    since: Instant,
    lost: u64,
    logged: Instant,
}

/// Whether a write was refused on its own (a constraint), rather than by a database
/// that refuses every write (full, unwritable, I/O error).
fn refused_alone(e: &StoreError) -> bool {
    use diesel::result::{DatabaseErrorKind as Kind, Error::DatabaseError};
    matches!(
        e,
        StoreError::Query(DatabaseError(
            Kind::UniqueViolation | Kind::ForeignKeyViolation | Kind::NotNullViolation | Kind::CheckViolation,
            _
        ))
    )
}

impl Writer<'_> {
    /// Writes fire-and-forget ops in one transaction. A write a constraint refuses is
    /// counted and the others are still committed; any other failure loses the batch.
    fn batch(&mut self, ops: Vec<Op>) {
        if ops.is_empty() {
            return;
        }
        let count = ops.len() as u64;
        let (losses, refused) = (self.losses, &mut self.refused);
        let (mut refused_here, mut failure) = (0, None);
        let result = self.conn.transaction::<_, diesel::result::Error, _>(|c| {
            for op in ops {
                match apply(c, op) {
                    Ok(()) => {}
                    Err(e) if refused_alone(&e) => {
                        refused_here += 1;
                        *refused += 1;
                        losses.failed(1, &e);
                        if *refused % 100 == 1 {
                            tracing::warn!(refused = *refused, "database write refused: {e}");
                        }
                    }
                    // SQLite may have rolled the transaction back already (it does on
                    // some full-disk and I/O errors): stop rather than write the rest
                    // outside any transaction.
                    Err(e) => {
                        failure = Some(e.to_string());
                        return Err(diesel::result::Error::RollbackTransaction);
                    }
                }
            }
            Ok(())
        });
        match result {
            Ok(()) => self.succeeded(),
            // A failed commit (where a full disk usually shows in WAL mode) has no
            // failure of its own; those refused alone are counted already.
            Err(e) => self.failed(count - refused_here, &failure.unwrap_or_else(|| StoreError::Query(e).to_string())),
        }
    }

    fn failed(&mut self, lost: u64, why: &str) {
        let total = self.losses.failed(lost, &why);
        let now = Instant::now();
        match &mut self.failing {
            None => {
                tracing::warn!(failed_writes = total, "database writes failing, {lost} lost: {why}");
                self.failing = Some(Failing { since: now, lost, logged: now });
            }
            Some(f) => {
                f.lost += lost;
                if now.duration_since(f.logged) >= STILL_FAILING_LOG {
                    let secs = now.duration_since(f.since).as_secs();
                    tracing::warn!(
                        failed_writes = total,
                        "database writes still failing, {} lost in {secs} s: {why}",
                        f.lost
                    );
                    f.logged = now;
                }
            }
        }
    }

    fn succeeded(&mut self) {
        if let Some(f) = self.failing.take() {
            let secs = f.since.elapsed().as_secs();
            tracing::info!("database writes succeed again ({} lost in {secs} s)", f.lost);
        }
    }
}

fn apply(c: &mut SqliteConnection, op: Op) -> Result<(), StoreError> {
    match op {
        Op::History(sample, top) => insert_history(c, &sample, top),
        Op::OpenEvent(e) => open_event(c, e),
        Op::EventSample { event_id, reason, sample } => {
            diesel::insert_into(event_samples::table)
                .values((
                    event_samples::event_id.eq(id(event_id)),
                    event_samples::reason.eq(reason),
                    event_samples::sequence.eq(i64::try_from(sample.sequence).unwrap_or(i64::MAX)),
                    event_samples::taken_at_ms.eq(ms(sample.time.as_ref())),
                    event_samples::sample.eq(sample.encode_to_vec()),
                ))
                .execute(c)?;
            Ok(())
        }
        Op::Peak { event_id, peak_score, peak_tier, culprits, groups } => {
            // Never lower a peak, whatever order ops arrive in.
            diesel::sql_query(
                "UPDATE events SET peak_score = MAX(peak_score, ?), peak_tier = MAX(peak_tier, ?), culprits = ?, \
                 attribution = ? WHERE id = ?",
            )
            .bind::<Double, _>(peak_score)
            .bind::<Integer, _>(peak_tier)
            .bind::<diesel::sql_types::Binary, _>(super::encode_culprits(&culprits))
            .bind::<diesel::sql_types::Nullable<diesel::sql_types::Binary>, _>(
                super::Attribution::of_groups(&groups).map(|a| a.encode()),
            )
            .bind::<BigInt, _>(id(event_id))
            .execute(c)?;
            Ok(())
        }
        Op::CloseEvent { event_id, ended_at_ms, culprits, groups } => {
            diesel::update(events::table.find(id(event_id)))
                .set((
                    events::ended_at_ms.eq(ended_at_ms),
                    events::culprits.eq(super::encode_culprits(&culprits)),
                    events::attribution.eq(super::Attribution::of_groups(&groups).map(|a| a.encode())),
                ))
                .execute(c)?;
            Ok(())
        }
        Op::Finding { event_id, finding } => {
            diesel::insert_into(findings::table)
                .values((
                    findings::event_id.eq(id(event_id)),
                    findings::step.eq(finding.step),
                    findings::outcome.eq(super::outcome_name(finding.outcome)),
                    findings::summary.eq(finding.summary),
                    findings::detail.eq(finding.detail),
                    findings::elapsed_ms.eq(finding.elapsed_ms),
                ))
                .execute(c)?;
            Ok(())
        }
        Op::Waits { event_id, chains, hangs, culprits } => add_waits(c, event_id, chains, hangs, &culprits),
        Op::Artefacts { event_id, bytes } => {
            diesel::update(events::table.find(id(event_id)))
                .set(events::artefact_bytes.eq(i64::try_from(bytes).unwrap_or(i64::MAX)))
                .execute(c)?;
            Ok(())
        }
        Op::Notification { event_id, sent_at_ms, title, body, error } => {
            diesel::insert_into(notifications::table)
                .values((
                    notifications::event_id.eq(event_id.map(id)),
                    notifications::sent_at_ms.eq(sent_at_ms),
                    notifications::title.eq(title),
                    notifications::body.eq(body),
                    notifications::delivered.eq(error.is_none()),
                    notifications::error.eq(error.unwrap_or_default()),
                ))
                .execute(c)?;
            Ok(())
        }
        // Handled by `run` with their reply channels.
        Op::Update { .. } | Op::Prune { .. } | Op::Flush(_) => Ok(()),
    }
}

/// A pause's stack report was read: its chains and hangs join the stored attribution,
/// and the culprits (the root of the waits first) replace the event's.
fn add_waits(
    c: &mut SqliteConnection,
    event_id: u64,
    chains: Vec<pmon_proto::v1::WaitChain>,
    hangs: Vec<pmon_proto::v1::AppHang>,
    culprits: &[pmon_proto::v1::Culprit],
) -> Result<(), StoreError> {
    let target = events::table.find(id(event_id));
    let stored: Option<Option<Vec<u8>>> = target.select(events::attribution).first(c).optional()?;
    let Some(stored) = stored else { return Err(StoreError::NotFound(event_id)) };
    let mut attribution = stored.as_deref().map(super::Attribution::decode).transpose()?.unwrap_or_default();
    attribution.wait_chains = chains;
    attribution.app_hangs = hangs;
    diesel::update(target)
        .set((events::attribution.eq(attribution.encode()), events::culprits.eq(super::encode_culprits(culprits))))
        .execute(c)?;
    Ok(())
}

fn id(event_id: u64) -> i64 {
    i64::try_from(event_id).unwrap_or(i64::MAX)
}

fn insert_history(c: &mut SqliteConnection, sample: &Sample, top: u32) -> Result<(), StoreError> {
    let row = HistoryRow {
        time: sample.time,
        tier: sample.tier,
        max_score: sample.max_score,
        process_count: sample.process_count,
        top_rogues: sample.rogues.iter().take(top as usize).cloned().collect(),
        system: sample.system,
        elapsed_ms: sample.elapsed_ms,
        machine: sample.machine.clone(),
        stress: sample.stress,
    };
    // Two samples in the same millisecond cannot happen at the sampling rates allowed;
    // replacing keeps a clock step from failing the write.
    diesel::replace_into(history::table)
        .values((
            history::taken_at_ms.eq(ms(sample.time.as_ref())),
            history::tier.eq(sample.tier),
            history::max_score.eq(sample.max_score),
            history::process_count.eq(i32::try_from(sample.process_count).unwrap_or(i32::MAX)),
            history::row.eq(row.encode_to_vec()),
        ))
        .execute(c)?;
    Ok(())
}

fn open_event(c: &mut SqliteConnection, e: NewEvent) -> Result<(), StoreError> {
    diesel::insert_into(events::table)
        .values((
            events::id.eq(id(e.id)),
            events::kind.eq(kind_name(e.kind)),
            events::started_at_ms.eq(e.started_at_ms),
            events::ended_at_ms.eq(e.ended_at_ms),
            events::peak_score.eq(e.peak_score),
            events::peak_tier.eq(e.peak_tier),
            events::stall_ms.eq(e.stall_ms),
            events::culprits.eq(super::encode_culprits(&e.culprits)),
            events::artefact_dir.eq(e.artefact_dir),
            events::attribution.eq(e.attribution.as_deref().map(super::Attribution::encode)),
        ))
        .execute(c)?;
    Ok(())
}

fn update(
    c: &mut SqliteConnection,
    event_id: u64,
    status: Option<pmon_proto::v1::EventStatus>,
    notes: Option<String>,
) -> Result<(), StoreError> {
    let target = events::table.find(id(event_id));
    let exists = target.select(events::id).first::<i64>(c).optional()?.is_some();
    if !exists {
        return Err(StoreError::NotFound(event_id));
    }
    if let Some(status) = status {
        diesel::update(target).set(events::status.eq(status_name(status))).execute(c)?;
    }
    if let Some(notes) = notes {
        diesel::update(target).set(events::notes.eq(notes)).execute(c)?;
    }
    Ok(())
}

/// Events a crash left open end at their last kept sample (or their start).
pub(super) fn close_dangling(c: &mut SqliteConnection) -> Result<usize, StoreError> {
    Ok(diesel::sql_query(
        "UPDATE events SET ended_at_ms = COALESCE( \
             (SELECT MAX(taken_at_ms) FROM event_samples WHERE event_id = events.id), started_at_ms) \
         WHERE ended_at_ms IS NULL",
    )
    .execute(c)?)
}
