//! Storage figures (SPEC §8), through the real store on a real SQLite file.
//!
//! ```text
//! cargo bench -p pmon-server --bench store
//! ```
//!
//! - Bytes per day: one simulated day at the default settings (a history row every 5 s
//!   at tier SENTINEL, plus a few escalations and pauses with their samples) written
//!   through `Store::submit`, then the database size (file plus WAL after a checkpoint).
//! - Then 29 more days of history and 10 000 events, and timed queries: the history
//!   row at an instant, a day's range, and 100 events out of 10 000, each the median of
//!   repeated runs. Next to each, a reference measured in the same run: the same rows
//!   read with plain SQL and not decoded, so the ratio shows what the API adds.
//!
//! Samples look like a 300-process machine's: 15 rogues with explanations, full
//! system figures.

use std::{
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use diesel::{QueryableByName, RunQueryDsl, sql_types::Binary};
use pmon_proto::v1::{
    Culprit, EventKind, Factor, FactorShare, MachineStress, Pressure, ProcessFactors, ProcessState, Rogue, Sample,
    StressFactor, StressShare, SystemFigures, Tier,
};
use pmon_server::store::{
    EventFilter, HistoryQuery, NewEvent, Op, Store,
    read::{list_events, query_history},
    timestamp_ms,
};

const DAY_MS: i64 = 86_400_000;
const HISTORY_EVERY_MS: i64 = 5_000;
const START_MS: i64 = 1_800_000_000_000;
const EVENTS: u64 = 10_000;

fn rogue(i: u32) -> Rogue {
    let share = |factor: Factor, points: f64| FactorShare {
        factor: factor as i32,
        normalized: points / 25.0,
        weight: 25.0,
        points,
    };
    Rogue {
        pid: 1000 + i,
        command: format!("process-{i}"),
        state: ProcessState::Sleeping as i32,
        score: 20.0 - f64::from(i),
        selected_by: vec![Factor::Cpu as i32, Factor::Mem as i32],
        factors: Some(ProcessFactors {
            cpu_percent: Some(42.5 - f64::from(i)),
            pageins_per_sec: Some(3.0),
            mem_bytes: Some(512 << 20),
            cmprs_bytes: Some(0),
            csw_per_sec: Some(1200.0),
            sysbsd_per_sec: Some(5400.0),
            threads: Some(12),
            // As on Linux: no per-process disk figures.
            ..ProcessFactors::default()
        }),
        explanation: vec![share(Factor::Cpu, 9.5), share(Factor::Mem, 0.9), share(Factor::Csw, 0.1)],
        suspect: false,
        group: None,
    }
}

fn sample(sequence: u64, at_ms: i64) -> Arc<Sample> {
    let psi = Pressure {
        some_avg10_percent: 1.5,
        full_avg10_percent: Some(0.2),
        some_total_micros: 123_456_789,
        full_total_micros: Some(2_345_678),
    };
    Arc::new(Sample {
        sequence,
        time: Some(timestamp_ms(at_ms)),
        elapsed_ms: Some(1000.3),
        tier: Tier::Sentinel as i32,
        tier_actions: vec![],
        max_score: 20.0,
        stress: 20.0,
        // As a quiet Linux machine's: every factor measured, none near its ramp.
        machine: Some(MachineStress {
            score: 3.1,
            factors: [
                (StressFactor::CpuWait, 0.12),
                (StressFactor::IoSome, 2.5),
                (StressFactor::MemoryAvailable, 56.0),
            ]
            .into_iter()
            .map(|(factor, value)| StressShare {
                factor: factor as i32,
                value,
                points: value,
                detail: format!("{value:.1} of something over the last 3.0 s"),
            })
            .collect(),
            reason: "io: some task waited on I/O 3% of the last 3.0 s (PSI)".into(),
        }),
        process_count: 300,
        system: Some(SystemFigures {
            load_1m: Some(1.2),
            load_5m: Some(0.9),
            load_15m: Some(0.7),
            mem_total_bytes: Some(16 << 30),
            mem_available_bytes: Some(9 << 30),
            swap_total_bytes: Some(2 << 30),
            swap_used_bytes: Some(1 << 20),
            pageins_per_sec: Some(4.0),
            swapins_per_sec: Some(0.0),
            swapouts_per_sec: Some(0.0),
            cpu_pressure: Some(psi),
            memory_pressure: Some(psi),
            io_pressure: Some(psi),
            // As on Linux: the macOS-only figures are unset.
            ..SystemFigures::default()
        }),
        rogues: (0..15).map(rogue).collect(),
    })
}

fn event(id: u64, kind: EventKind, at_ms: i64) -> NewEvent {
    let culprits = (0..5)
        .map(|i| Culprit {
            rogue: Some(rogue(i)),
            samples_seen: 20,
            why: "cpu 42.5% (90% of it)".into(),
            ..Culprit::default()
        })
        .collect();
    NewEvent {
        id,
        kind,
        started_at_ms: at_ms,
        ended_at_ms: Some(at_ms + 30_000),
        peak_score: 60.0,
        peak_tier: Tier::Elevated as i32,
        stall_ms: (kind == EventKind::Pause).then_some(3000.0),
        culprits,
        artefact_dir: String::new(),
        attribution: None,
    }
}

/// Submits every op, waiting for the writer every few hundred so none is dropped.
fn write(store: &Store, ops: impl IntoIterator<Item = Op>) -> Result<()> {
    for (i, op) in ops.into_iter().enumerate() {
        store.submit(op);
        if i % 512 == 511 {
            store.flush().context("flush")?;
        }
    }
    store.flush().context("flush")?;
    anyhow::ensure!(store.lost_writes() == 0, "writes were lost");
    Ok(())
}

/// One day from `day_start`: history at defaults, 4 escalations (20 kept samples each)
/// and 2 pauses (30 ring samples each). Event ids start at `first_id`.
fn day(day_start: i64, first_id: u64) -> Vec<Op> {
    let mut ops: Vec<Op> = (0..DAY_MS / HISTORY_EVERY_MS)
        .map(|i| Op::History(sample(i as u64, day_start + i * HISTORY_EVERY_MS), 3))
        .collect();
    for e in 0..6u64 {
        let kind = if e < 4 { EventKind::Escalation } else { EventKind::Pause };
        let at = day_start + e as i64 * 3_600_000;
        ops.push(Op::OpenEvent(event(first_id + e, kind, at)));
        let (reason, kept) = if e < 4 { ("critical", 20) } else { ("ring", 30) };
        for s in 0..kept {
            ops.push(Op::EventSample { event_id: first_id + e, reason, sample: sample(s, at + s as i64 * 1000) });
        }
    }
    ops
}

fn db_bytes(dir: &std::path::Path) -> u64 {
    ["data.db", "data.db-wal"].iter().filter_map(|f| std::fs::metadata(dir.join(f)).ok()).map(|m| m.len()).sum()
}

/// Median wall time of `runs` calls.
fn median(runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok(times[runs / 2])
}

#[derive(QueryableByName)]
struct Blob {
    #[diesel(sql_type = Binary)]
    row: Vec<u8>,
}

/// Total bytes of loaded blobs: the reference reads the rows it loads.
fn bytes(rows: &[Blob]) -> usize {
    rows.iter().map(|b| b.row.len()).sum()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Writes a day at defaults (and measures its bytes), then 30 days of history and
/// the rest of the events; returns the bytes of the one day.
fn fill(store: &Store, dir: &std::path::Path) -> Result<u64> {
    let t = Instant::now();
    write(store, day(START_MS, 1))?;
    store.read(|c, _| Ok(diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)").execute(c)?)).context("checkpoint")?;
    let per_day = db_bytes(dir);
    println!(
        "bytes per day at defaults: {:.2} MB ({} history rows, 6 events) in {:.1} s",
        per_day as f64 / 1e6,
        DAY_MS / HISTORY_EVERY_MS,
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    for d in 1..30 {
        write(store, day(START_MS + d * DAY_MS, 1 + d as u64 * 6))?;
    }
    let first = 1 + 30 * 6;
    write(store, (first..=EVENTS).map(|id| Op::OpenEvent(event(id, EventKind::Pause, START_MS + id as i64 * 60_000))))?;
    println!(
        "30 days of history + {EVENTS} events written in {:.1} s; database {:.1} MB",
        t.elapsed().as_secs_f64(),
        db_bytes(dir) as f64 / 1e6
    );
    Ok(per_day)
}

fn main() -> Result<()> {
    let dir = tempfile::tempdir().context("temporary directory")?;
    let (store, _writer, _) = Store::open(dir.path()).context("open store")?;
    println!(
        "pmon store: figures through the real store (SQLite, WAL), medians; reference = same rows by plain SQL, not decoded"
    );

    let per_day = fill(&store, dir.path())?;

    // The row in force at instants spread over the 30 days.
    let mut k = 0i64;
    let mut next_instant = || {
        k += 1;
        START_MS + (k * 7_919_993) % (30 * DAY_MS)
    };
    let at = median(201, || {
        black_box(store.read(|c, _| query_history(c, HistoryQuery::At(next_instant())))?);
        Ok(())
    })?;
    let at_ref = median(201, || {
        let at = next_instant();
        let q = format!("SELECT row FROM history WHERE taken_at_ms <= {at} ORDER BY taken_at_ms DESC LIMIT 1");
        black_box(bytes(&store.read(|c, _| Ok(diesel::sql_query(q).load::<Blob>(c)?))?));
        Ok(())
    })?;
    let day_start = START_MS + 12 * DAY_MS;
    let range = median(11, || {
        let q = HistoryQuery::Range { start: day_start, end: day_start + DAY_MS, limit: 100_000 };
        let (rows, _) = store.read(|c, _| query_history(c, q))?;
        anyhow::ensure!(rows.len() as i64 == DAY_MS / HISTORY_EVERY_MS, "a day's rows");
        Ok(())
    })?;
    let range_ref = median(11, || {
        let q = format!(
            "SELECT row FROM history WHERE taken_at_ms >= {day_start} AND taken_at_ms < {}",
            day_start + DAY_MS
        );
        black_box(bytes(&store.read(|c, _| Ok(diesel::sql_query(q).load::<Blob>(c)?))?));
        Ok(())
    })?;
    let list = median(201, || {
        let f = EventFilter { limit: 100, ..EventFilter::default() };
        let (events, _) = store.read(|c, _| list_events(c, &f))?;
        anyhow::ensure!(events.len() == 100, "a page of 100");
        Ok(())
    })?;
    let list_paused = median(201, || {
        let f = EventFilter {
            limit: 100,
            kind: Some(EventKind::Pause),
            before_id: Some(EVENTS / 2),
            ..EventFilter::default()
        };
        black_box(store.read(|c, _| list_events(c, &f))?);
        Ok(())
    })?;
    let list_ref = median(201, || {
        black_box(bytes(&store.read(|c, _| {
            Ok(diesel::sql_query("SELECT culprits AS row FROM events ORDER BY id DESC LIMIT 100").load::<Blob>(c)?)
        })?));
        Ok(())
    })?;

    println!();
    println!("{:<44} {:>10} {:>12} {:>7} {:>8}", "query", "median ms", "reference ms", "ratio", "target");
    let row = |name: &str, d: Duration, r: Duration, target: &str| {
        println!("{name:<44} {:>10.3} {:>12.3} {:>7.2} {target:>8}", ms(d), ms(r), ms(d) / ms(r));
    };
    row("QueryHistory at an instant (30 days)", at, at_ref, "50 ms");
    row("QueryHistory one day's range (17 280 rows)", range, range_ref, "200 ms");
    row("ListEvents 100 of 10 000", list, list_ref, "10 ms");
    row("ListEvents 100 pauses before id 5 000", list_paused, list_ref, "10 ms");
    println!("bytes per day at defaults: {:.2} MB (target 20 MB)", per_day as f64 / 1e6);
    Ok(())
}
