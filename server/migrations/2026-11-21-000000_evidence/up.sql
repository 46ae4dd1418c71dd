-- Events: escalations (tier-2 entry to exit) and pauses (the machine stalled).
-- Times are milliseconds since the Unix epoch. Protobuf blobs hold what the API serves
-- as is (culprits, samples, history rows): compact, and versioned by the .proto file.
CREATE TABLE events (
    id INTEGER PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('escalation', 'pause')),
    status TEXT NOT NULL DEFAULT 'unreviewed'
        CHECK (status IN ('unreviewed', 'reviewed', 'pinned', 'dismissed')),
    notes TEXT NOT NULL DEFAULT '',
    started_at_ms BIGINT NOT NULL,
    ended_at_ms BIGINT,
    peak_score DOUBLE NOT NULL,
    peak_tier INTEGER NOT NULL,
    stall_ms DOUBLE,
    culprits BLOB NOT NULL,          -- length-delimited pmon.v1.Culprit messages
    artefact_dir TEXT NOT NULL DEFAULT '',
    artefact_bytes BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX events_by_start ON events (started_at_ms);

CREATE TABLE event_samples (
    id INTEGER PRIMARY KEY NOT NULL,
    event_id BIGINT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    reason TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    taken_at_ms BIGINT NOT NULL,
    sample BLOB NOT NULL             -- pmon.v1.Sample
);
CREATE INDEX event_samples_by_event ON event_samples (event_id, sequence);

CREATE TABLE findings (
    id INTEGER PRIMARY KEY NOT NULL,
    event_id BIGINT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    step TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'failed', 'timed_out')),
    summary TEXT NOT NULL,
    detail TEXT NOT NULL,
    elapsed_ms DOUBLE NOT NULL
);
CREATE INDEX findings_by_event ON findings (event_id);

CREATE TABLE notifications (
    id INTEGER PRIMARY KEY NOT NULL,
    event_id BIGINT REFERENCES events (id) ON DELETE CASCADE,
    sent_at_ms BIGINT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    delivered BOOLEAN NOT NULL,
    error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX notifications_by_event ON notifications (event_id);

-- One compact row per kept sample, clustered by time so a range or an instant is one
-- index walk.
CREATE TABLE history (
    taken_at_ms BIGINT PRIMARY KEY NOT NULL,
    tier INTEGER NOT NULL,
    max_score DOUBLE NOT NULL,
    process_count INTEGER NOT NULL,
    row BLOB NOT NULL                -- pmon.v1.HistoryRow
) WITHOUT ROWID;
