//! Queries, on the reader connection.

use std::path::Path;

use diesel::{ExpressionMethods, OptionalExtension, QueryDsl, Queryable, RunQueryDsl, SqliteConnection, dsl::max};
use pmon_proto::v1::{
    Event, EventKind, EventSample, EventStatus, GetEventResponse, HistoryRow, Notification, Sample, Tier,
};
use prost::Message;

use super::{
    StoreError, decode_culprits, kind_name, parse_outcome, parse_status,
    schema::{event_samples, events, findings, history, notifications},
    status_name, timestamp_ms,
};

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only these statuses (empty: all).
    pub statuses: Vec<EventStatus>,
    /// Only this kind.
    pub kind: Option<EventKind>,
    /// Started at or after, ms.
    pub since_ms: Option<i64>,
    /// Started before, ms.
    pub until_ms: Option<i64>,
    /// Page size.
    pub limit: u32,
    /// Only ids below this.
    pub before_id: Option<u64>,
}

/// Which history rows.
#[derive(Debug, Clone, Copy)]
pub enum HistoryQuery {
    /// The row in force at this instant, ms.
    At(i64),
    /// Rows in [start, end), ms, at most `limit`.
    Range { start: i64, end: i64, limit: u32 },
}

#[derive(Queryable)]
struct EventRow {
    id: i64,
    kind: String,
    status: String,
    notes: String,
    started_at_ms: i64,
    ended_at_ms: Option<i64>,
    peak_score: f64,
    peak_tier: i32,
    stall_ms: Option<f64>,
    culprits: Vec<u8>,
    artefact_dir: String,
    _artefact_bytes: i64,
    attribution: Option<Vec<u8>>,
}

impl EventRow {
    /// The API's event; `culprits` limits how many culprits are decoded.
    fn into_event(self, culprits: usize) -> Result<Event, StoreError> {
        let mut all = decode_culprits(&self.culprits)?;
        all.truncate(culprits);
        let mut event = Event {
            id: self.id.unsigned_abs(),
            kind: if self.kind == kind_name(EventKind::Pause) { EventKind::Pause } else { EventKind::Escalation }
                as i32,
            status: parse_status(&self.status) as i32,
            notes: self.notes,
            started_at: Some(timestamp_ms(self.started_at_ms)),
            ended_at: self.ended_at_ms.map(timestamp_ms),
            peak_score: self.peak_score,
            peak_tier: Tier::try_from(self.peak_tier).unwrap_or(Tier::Unspecified) as i32,
            stall_ms: self.stall_ms,
            culprits: all,
            artefact_dir: self.artefact_dir,
            ..Event::default()
        };
        if let Some(bytes) = &self.attribution {
            super::Attribution::decode_into(bytes, &mut event)?;
        }
        Ok(event)
    }
}

/// The highest event id so far (0 for none).
pub(super) fn max_event_id(c: &mut SqliteConnection) -> Result<u64, StoreError> {
    let id: Option<i64> = events::table.select(max(events::id)).first(c)?;
    Ok(id.unwrap_or(0).unsigned_abs())
}

/// A page of events, newest first, and the cursor of the next page if there is one.
pub fn list_events(c: &mut SqliteConnection, f: &EventFilter) -> Result<(Vec<Event>, Option<u64>), StoreError> {
    let mut q = events::table.into_boxed();
    if !f.statuses.is_empty() {
        q = q.filter(events::status.eq_any(f.statuses.iter().map(|s| status_name(*s)).collect::<Vec<_>>()));
    }
    if let Some(kind) = f.kind {
        q = q.filter(events::kind.eq(kind_name(kind)));
    }
    if let Some(since) = f.since_ms {
        q = q.filter(events::started_at_ms.ge(since));
    }
    if let Some(until) = f.until_ms {
        q = q.filter(events::started_at_ms.lt(until));
    }
    if let Some(before) = f.before_id {
        q = q.filter(events::id.lt(i64::try_from(before).unwrap_or(i64::MAX)));
    }
    // One more than asked tells whether another page exists.
    let rows: Vec<EventRow> = q.order(events::id.desc()).limit(i64::from(f.limit) + 1).load(c)?;
    let more = rows.len() > f.limit as usize;
    let events: Vec<Event> =
        rows.into_iter().take(f.limit as usize).map(|r| r.into_event(1)).collect::<Result<_, _>>()?;
    let next = if more { events.last().map(|e| e.id) } else { None };
    Ok((events, next))
}

/// One event with all its culprits.
pub fn event(c: &mut SqliteConnection, id: u64) -> Result<Event, StoreError> {
    let row: Option<EventRow> = events::table.find(i64::try_from(id).unwrap_or(i64::MAX)).first(c).optional()?;
    row.ok_or(StoreError::NotFound(id))?.into_event(usize::MAX)
}

/// One event with its samples, findings, artefact listing and notifications.
pub fn get_event(c: &mut SqliteConnection, data_dir: &Path, id: u64) -> Result<GetEventResponse, StoreError> {
    let event = event(c, id)?;
    let key = i64::try_from(id).unwrap_or(i64::MAX);
    let samples = event_samples::table
        .filter(event_samples::event_id.eq(key))
        .order(event_samples::sequence.asc())
        .select((event_samples::reason, event_samples::sample))
        .load::<(String, Vec<u8>)>(c)?
        .into_iter()
        .map(|(reason, bytes)| Ok(EventSample { reason, sample: Some(Sample::decode(bytes.as_slice())?) }))
        .collect::<Result<_, StoreError>>()?;
    let findings = findings::table
        .filter(findings::event_id.eq(key))
        .order(findings::id.asc())
        .select((findings::step, findings::outcome, findings::summary, findings::detail, findings::elapsed_ms))
        .load::<(String, String, String, String, f64)>(c)?
        .into_iter()
        .map(|(step, outcome, summary, detail, elapsed_ms)| pmon_proto::v1::Finding {
            step,
            outcome: parse_outcome(&outcome),
            summary,
            detail,
            elapsed_ms,
        })
        .collect();
    let notifications = notifications::table
        .filter(notifications::event_id.eq(key))
        .order(notifications::id.asc())
        .select((
            notifications::sent_at_ms,
            notifications::title,
            notifications::body,
            notifications::delivered,
            notifications::error,
        ))
        .load::<(i64, String, String, bool, String)>(c)?
        .into_iter()
        .map(|(sent, title, body, delivered, error)| Notification {
            sent_at: Some(timestamp_ms(sent)),
            title,
            body,
            delivered,
            error,
        })
        .collect();
    let artefacts =
        if event.artefact_dir.is_empty() { Vec::new() } else { list_files(&data_dir.join(&event.artefact_dir))? };
    Ok(GetEventResponse { event: Some(event), samples, findings, artefacts, notifications })
}

/// Files under a directory, relative to it, sorted; a missing directory has none.
fn list_files(dir: &Path) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    Ok(out)
}

/// History rows, oldest first, and whether a range was cut at its limit.
pub fn query_history(c: &mut SqliteConnection, q: HistoryQuery) -> Result<(Vec<HistoryRow>, bool), StoreError> {
    let (blobs, truncated): (Vec<Vec<u8>>, bool) = match q {
        HistoryQuery::At(at) => {
            let row: Option<Vec<u8>> = history::table
                .filter(history::taken_at_ms.le(at))
                .order(history::taken_at_ms.desc())
                .select(history::row)
                .first(c)
                .optional()?;
            (row.into_iter().collect(), false)
        }
        HistoryQuery::Range { start, end, limit } => {
            let mut rows: Vec<Vec<u8>> = history::table
                .filter(history::taken_at_ms.ge(start))
                .filter(history::taken_at_ms.lt(end))
                .order(history::taken_at_ms.asc())
                .select(history::row)
                .limit(i64::from(limit) + 1)
                .load(c)?;
            let truncated = rows.len() > limit as usize;
            rows.truncate(limit as usize);
            (rows, truncated)
        }
    };
    let rows = blobs.iter().map(|b| HistoryRow::decode(b.as_slice())).collect::<Result<_, _>>()?;
    Ok((rows, truncated))
}
