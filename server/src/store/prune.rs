//! Retention (SPEC §3.5): history older than `samples_days`, events older than
//! `events_days`, then the oldest data until the total is under `max_bytes`. A pinned
//! or unreviewed event is never removed, whatever its age or the cap. Artefact
//! directories go with their events.

use std::path::Path;

use diesel::{
    Connection, ExpressionMethods, QueryDsl, QueryableByName, RunQueryDsl, SqliteConnection, sql_types::BigInt,
};

use super::{
    StoreError,
    schema::{events, history},
};

/// What to keep.
#[derive(Debug, Clone, Copy)]
pub struct PrunePolicy {
    /// Now, ms since the epoch.
    pub now_ms: i64,
    /// History rows older than this many days go.
    pub samples_days: f64,
    /// Reviewed and dismissed events older than this many days go.
    pub events_days: f64,
    /// Cap on database bytes in use plus artefact bytes.
    pub max_bytes: u64,
}

impl PrunePolicy {
    /// The configured retention, as of `now`.
    pub fn from_config(r: &pmon_proto::config::Retention, now: std::time::SystemTime) -> Self {
        let now_ms =
            now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Self { now_ms, samples_days: r.samples_days, events_days: r.events_days, max_bytes: r.max_bytes }
    }
}

/// What pruning removed, or would remove on a dry run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Removed events.
    pub removed_event_ids: Vec<u64>,
    /// Removed history rows.
    pub history_rows_removed: u64,
    /// Bytes freed (records and artefacts).
    pub bytes_freed: u64,
    /// Events past their age kept because pinned or unreviewed.
    pub kept_protected: u64,
}

const DAY_MS: f64 = 86_400_000.0;
/// Statuses pruning may remove: the person has looked and let go.
const PRUNABLE: [&str; 2] = ["dismissed", "reviewed"];

#[derive(QueryableByName)]
struct Size {
    #[diesel(sql_type = BigInt)]
    bytes: i64,
}

#[derive(QueryableByName)]
struct Candidate {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    started_at_ms: i64,
    #[diesel(sql_type = BigInt)]
    bytes: i64,
}

/// Applies (or, with `dry_run`, only computes) the policy.
pub(super) fn run(
    c: &mut SqliteConnection,
    data_dir: &Path,
    policy: &PrunePolicy,
    dry_run: bool,
) -> Result<PruneReport, StoreError> {
    let mut report = PruneReport::default();
    let history_cutoff = policy.now_ms - (policy.samples_days * DAY_MS) as i64;
    let events_cutoff = policy.now_ms - (policy.events_days * DAY_MS) as i64;

    // Prunable events, oldest first: dismissed before reviewed, each with its size.
    let candidates: Vec<Candidate> = diesel::sql_query(
        "SELECT id, started_at_ms, artefact_bytes + length(culprits) + length(notes) + coalesce(length(attribution), 0) \
             + COALESCE((SELECT SUM(length(sample)) FROM event_samples WHERE event_id = events.id), 0) \
             + COALESCE((SELECT SUM(length(detail) + length(summary)) FROM findings WHERE event_id = events.id), 0) \
             AS bytes \
         FROM events WHERE status IN ('dismissed', 'reviewed') AND ended_at_ms IS NOT NULL \
         ORDER BY status = 'reviewed', started_at_ms",
    )
    .load(c)?;
    report.kept_protected = events::table
        .filter(events::started_at_ms.lt(events_cutoff))
        .filter(events::status.ne_all(PRUNABLE))
        .count()
        .get_result::<i64>(c)?
        .unsigned_abs();

    let mut remove: Vec<&Candidate> = candidates.iter().filter(|e| e.started_at_ms < events_cutoff).collect();
    let aged: Vec<(i64, i64)> = history_rows(c, Some(history_cutoff))?;
    report.history_rows_removed = aged.len() as u64;
    let mut freed: u64 = remove.iter().map(|e| e.bytes.unsigned_abs()).sum::<u64>()
        + aged.iter().map(|r| r.1.unsigned_abs()).sum::<u64>();

    // Over the cap: more events (oldest prunable first), then the oldest history.
    let total = used_bytes(c)?;
    let mut history_until = history_cutoff;
    if total.saturating_sub(freed) > policy.max_bytes {
        for e in candidates.iter().filter(|e| e.started_at_ms >= events_cutoff) {
            if total.saturating_sub(freed) <= policy.max_bytes {
                break;
            }
            freed += e.bytes.unsigned_abs();
            remove.push(e);
        }
        if total.saturating_sub(freed) > policy.max_bytes {
            for (at, bytes) in history_rows(c, None)?.into_iter().filter(|(at, _)| *at >= history_cutoff) {
                if total.saturating_sub(freed) <= policy.max_bytes {
                    break;
                }
                freed += bytes.unsigned_abs();
                report.history_rows_removed += 1;
                history_until = at + 1;
            }
        }
    }
    report.removed_event_ids = remove.iter().map(|e| e.id.unsigned_abs()).collect();
    report.bytes_freed = freed;
    if dry_run {
        return Ok(report);
    }

    let ids: Vec<i64> = remove.iter().map(|e| e.id).collect();
    // Rows go in one transaction; files only once it is committed.
    let dirs = c.transaction::<_, diesel::result::Error, _>(|c| {
        let dirs: Vec<String> = events::table.filter(events::id.eq_any(&ids)).select(events::artefact_dir).load(c)?;
        diesel::delete(events::table.filter(events::id.eq_any(&ids))).execute(c)?;
        diesel::delete(history::table.filter(history::taken_at_ms.lt(history_until))).execute(c)?;
        Ok(dirs)
    })?;
    remove_orphans(c, data_dir)?;
    for dir in dirs.iter().filter(|d| !d.is_empty()) {
        match std::fs::remove_dir_all(data_dir.join(dir)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(dir, "cannot remove artefacts of a pruned event: {e}"),
        }
    }
    Ok(report)
}

/// Removes artefact directories (`events/<time>-<id>`) whose event no longer exists,
/// e.g. left by a capture cut short by a crash.
fn remove_orphans(c: &mut SqliteConnection, data_dir: &Path) -> Result<(), StoreError> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("events")) else { return Ok(()) };
    let known: std::collections::HashSet<String> = events::table
        .filter(events::artefact_dir.ne(""))
        .select(events::artefact_dir)
        .load::<String>(c)?
        .into_iter()
        .collect();
    for entry in entries.flatten() {
        let name = format!("events/{}", entry.file_name().to_string_lossy());
        if entry.path().is_dir() && !known.contains(&name) {
            tracing::info!(dir = name, "removing artefacts that belong to no event");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

/// (time, approximate bytes) of history rows, oldest first; only those before
/// `before` if given.
fn history_rows(c: &mut SqliteConnection, before: Option<i64>) -> Result<Vec<(i64, i64)>, StoreError> {
    // Row blob plus the fixed columns and b-tree overhead, roughly.
    let size = diesel::dsl::sql::<BigInt>("length(row) + 40");
    let mut q = history::table.select((history::taken_at_ms, size)).order(history::taken_at_ms.asc()).into_boxed();
    if let Some(before) = before {
        q = q.filter(history::taken_at_ms.lt(before));
    }
    Ok(q.load(c)?)
}

/// Database bytes in use (pages not on the free list) plus every event's artefacts.
pub(super) fn used_bytes(c: &mut SqliteConnection) -> Result<u64, StoreError> {
    let db: Size = diesel::sql_query(
        "SELECT (page_count - freelist_count) * page_size AS bytes \
         FROM pragma_page_count(), pragma_freelist_count(), pragma_page_size()",
    )
    .get_result(c)?;
    let artefacts: Size =
        diesel::sql_query("SELECT COALESCE(SUM(artefact_bytes), 0) AS bytes FROM events").get_result(c)?;
    Ok(db.bytes.unsigned_abs() + artefacts.bytes.unsigned_abs())
}
