//! The store on a real SQLite file in a temporary directory.

use std::{sync::Arc, time::Duration};

use pmon_proto::v1::{Culprit, Rogue, Tier};

use super::*;

const DAY: i64 = 86_400_000;
const NOW: i64 = 1_800_000_000_000;

fn sample(sequence: u64, at_ms: i64) -> Arc<Sample> {
    Arc::new(Sample {
        sequence,
        time: Some(timestamp_ms(at_ms)),
        tier: Tier::Sentinel as i32,
        max_score: 12.5,
        process_count: 300,
        rogues: vec![Rogue { pid: 7, command: "hog".into(), score: 12.5, ..Default::default() }; 4],
        ..Default::default()
    })
}

fn event(id: u64, kind: EventKind, started_at_ms: i64) -> Op {
    Op::OpenEvent(NewEvent {
        id,
        kind,
        started_at_ms,
        ended_at_ms: Some(started_at_ms + 3000),
        peak_score: 40.0,
        peak_tier: Tier::Elevated as i32,
        stall_ms: (kind == EventKind::Pause).then_some(3000.0),
        culprits: vec![],
        artefact_dir: String::new(),
        attribution: None,
    })
}

/// Opens a store, runs `write` on it, waits until everything is written, and reopens
/// it (so start-up recovery runs too).
fn written(dir: &Path, write: impl FnOnce(&Store)) -> (Store, Writer, u64) {
    let (store, writer, _) = Store::open(dir).expect("open");
    write(&store);
    store.flush().expect("flush");
    assert_eq!(store.lost_writes(), 0, "nothing dropped or failed");
    drop(store);
    assert!(writer.join_within(Duration::from_secs(10)), "writer finished");
    Store::open(dir).expect("reopen")
}

#[test]
fn events_samples_and_history_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _w, next) = written(dir.path(), |s| {
        s.submit(event(1, EventKind::Escalation, NOW));
        s.submit(Op::EventSample { event_id: 1, reason: "entry", sample: sample(10, NOW) });
        let culprits = |command: &str| {
            vec![Culprit { rogue: Some(Rogue { command: command.into(), ..Rogue::default() }), ..Culprit::default() }]
        };
        let (critical, elevated) = (Tier::Critical as i32, Tier::Elevated as i32);
        s.submit(Op::Peak {
            event_id: 1,
            peak_score: 90.0,
            peak_tier: critical,
            culprits: culprits("a"),
            groups: vec![],
        });
        let storm = ProcessGroup { kind: "tree".into(), name: "make[5] and 48 children".into(), ..Default::default() };
        s.submit(Op::Peak {
            event_id: 1,
            peak_score: 50.0,
            peak_tier: elevated,
            culprits: culprits("b"),
            groups: vec![storm],
        });
        s.submit(Op::History(sample(10, NOW), 3));
        s.submit(Op::History(sample(11, NOW + 5000), 3));
    });
    assert_eq!(next, 2, "ids continue after the highest");
    let got = store.read(|c, d| read::get_event(c, d, 1)).expect("event");
    let e = got.event.expect("event");
    assert_eq!((e.peak_score, e.peak_tier), (90.0, Tier::Critical as i32), "a lower peak never lowers it");
    let named = e.culprits.first().and_then(|c| c.rogue.as_ref()).map(|r| r.command.as_str());
    assert_eq!(named, Some("b"), "the culprits of the latest peak");
    let groups: Vec<&str> = e.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(groups, ["make[5] and 48 children"], "and its groups");
    assert_eq!(got.samples.len(), 1);
    assert_eq!(got.samples[0].sample.as_ref().map(|s| s.sequence), Some(10));

    let (at, _) = store.read(|c, _| read::query_history(c, HistoryQuery::At(NOW + 4999))).expect("at");
    assert_eq!(at.len(), 1);
    assert_eq!(at[0].top_rogues.len(), 3, "rows keep only the top rogues");
    assert_eq!(at[0].time, Some(timestamp_ms(NOW)));
    let (range, cut) = store
        .read(|c, _| read::query_history(c, HistoryQuery::Range { start: NOW, end: NOW + DAY, limit: 1 }))
        .expect("range");
    assert_eq!((range.len(), cut), (1, true));
}

#[test]
fn a_pauses_attribution_reads_back_whole_and_an_escalation_has_none() {
    use pmon_proto::v1::{ProcessGroup, ProcessUse, StallCause, StallWindow};
    let dir = tempfile::tempdir().expect("tempdir");
    let attribution = Attribution {
        cause: StallCause::Machine,
        cause_detail: "the sentinel waited 3.80 s".into(),
        window: Some(StallWindow { samples: 9, gaps: 4, longest_gap_ms: 950.0, ..Default::default() }),
        victims: vec![ProcessUse {
            pid: 77,
            command: "editor".into(),
            run_delay_ms: Some(3500.0),
            ..Default::default()
        }],
        groups: vec![ProcessGroup { kind: "tree".into(), name: "make[5] and 3 children".into(), ..Default::default() }],
        ..Attribution::default()
    };
    let (store, _w, _) = written(dir.path(), |s| {
        let Op::OpenEvent(mut pause) = event(1, EventKind::Pause, NOW) else { unreachable!() };
        pause.attribution = Some(Box::new(attribution.clone()));
        s.submit(Op::OpenEvent(pause));
        s.submit(event(2, EventKind::Escalation, NOW));
    });
    let e = store.read(|c, _| read::event(c, 1)).expect("pause");
    assert_eq!(e.cause, StallCause::Machine as i32);
    assert_eq!(e.cause_detail, attribution.cause_detail);
    assert_eq!(e.window, attribution.window);
    assert_eq!((e.victims, e.groups), (attribution.victims, attribution.groups));
    let e = store.read(|c, _| read::event(c, 2)).expect("escalation");
    assert_eq!((e.cause, e.window, e.victims.len()), (StallCause::Unspecified as i32, None, 0));
}

#[test]
fn a_stack_reports_waits_join_the_pause_and_lead_its_culprits_without_losing_the_rest() {
    use pmon_proto::v1::{AppHang, StackThread, StallCause, WaitChain};
    let dir = tempfile::tempdir().expect("tempdir");
    let root =
        StackThread { process: "WindowServer".into(), pid: Some(153), thread: "0x3e2".into(), ..Default::default() };
    let chain = WaitChain {
        root: Some(root.clone()),
        why: "23 threads of 3 processes waited on it".into(),
        ..Default::default()
    };
    let hang = AppHang { doing: "mach_msg2_trap".into(), ..Default::default() };
    let led = Culprit { why: chain.why.clone(), waited_on: Some(root), ..Culprit::default() };
    let (store, _w, _) = written(dir.path(), |s| {
        let Op::OpenEvent(mut pause) = event(1, EventKind::Pause, NOW) else { unreachable!() };
        pause.attribution = Some(Box::new(Attribution {
            cause: StallCause::Machine,
            cause_detail: "froze".into(),
            ..Attribution::default()
        }));
        pause.culprits = vec![Culprit {
            rogue: Some(Rogue { pid: 611, command: "backupd".into(), ..Rogue::default() }),
            ..Culprit::default()
        }];
        let before = pause.culprits.clone();
        s.submit(Op::OpenEvent(pause));
        let culprits = std::iter::once(led.clone()).chain(before).collect();
        s.submit(Op::Waits { event_id: 1, chains: vec![chain.clone()], hangs: vec![hang.clone()], culprits });
    });
    let e = store.read(|c, _| read::event(c, 1)).expect("pause");
    assert_eq!((e.wait_chains, e.app_hangs), (vec![chain], vec![hang]));
    assert_eq!((e.cause, e.cause_detail.as_str()), (StallCause::Machine as i32, "froze"), "the attribution is kept");
    assert_eq!(e.culprits.len(), 2);
    assert_eq!(e.culprits[0], led);
    assert_eq!(e.culprits[1].rogue.as_ref().map(|r| r.command.as_str()), Some("backupd"));
}

#[test]
fn an_event_left_open_by_a_crash_is_closed_at_its_last_sample() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _w, _) = written(dir.path(), |s| {
        s.submit(Op::OpenEvent(NewEvent {
            id: 5,
            kind: EventKind::Escalation,
            started_at_ms: NOW,
            ended_at_ms: None,
            peak_score: 60.0,
            peak_tier: 2,
            stall_ms: None,
            culprits: vec![],
            artefact_dir: String::new(),
            attribution: None,
        }));
        s.submit(Op::EventSample { event_id: 5, reason: "critical", sample: sample(3, NOW + 7000) });
    });
    let e = store.read(|c, _| read::event(c, 5)).expect("event");
    assert_eq!(e.ended_at, Some(timestamp_ms(NOW + 7000)));
}

#[test]
fn updating_an_unknown_event_says_not_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _w, _) = Store::open(dir.path()).expect("open");
    assert!(matches!(store.update_event(99, Some(EventStatus::Pinned), None), Err(StoreError::NotFound(99))));
}

#[test]
fn pruning_keeps_pinned_and_unreviewed_removes_artefacts_and_dry_run_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = NOW - 100 * DAY;
    let (store, _w, _) = written(dir.path(), |s| {
        for (id, status) in [(1, None), (2, Some("pinned")), (3, Some("reviewed")), (4, Some("dismissed"))] {
            let artefacts = format!("events/old-{id}");
            std::fs::create_dir_all(dir.path().join(&artefacts)).expect("mkdir");
            std::fs::write(dir.path().join(&artefacts).join("kernel-log.txt"), "x").expect("write");
            let Op::OpenEvent(e) = event(id, EventKind::Pause, old) else { unreachable!() };
            s.submit(Op::OpenEvent(NewEvent { artefact_dir: artefacts, ..e }));
            s.submit(Op::Artefacts { event_id: id, bytes: 1 });
            if let Some(st) = status {
                let parsed = parse_status(st);
                let (tx, _rx) = mpsc::channel();
                s.submit(Op::Update { id, status: Some(parsed), notes: None, reply: tx });
            }
        }
        s.submit(event(5, EventKind::Escalation, NOW - DAY));
        s.submit(Op::History(sample(1, old), 3));
        s.submit(Op::History(sample(2, NOW - DAY), 3));
    });
    let policy = PrunePolicy { now_ms: NOW, samples_days: 30.0, events_days: 90.0, max_bytes: 1 << 40 };
    let dry = store.prune(policy, true).expect("dry run");
    assert_eq!(dry.removed_event_ids, vec![4, 3], "dismissed first, then reviewed");
    assert_eq!((dry.history_rows_removed, dry.kept_protected), (1, 2));
    assert!(dir.path().join("events/old-3").exists(), "a dry run removes nothing");
    let listed = |store: &Store| -> Vec<u64> {
        let f = EventFilter { limit: 100, ..EventFilter::default() };
        store.read(|c, _| read::list_events(c, &f)).expect("list").0.iter().map(|e| e.id).collect()
    };
    assert_eq!(listed(&store), vec![5, 4, 3, 2, 1]);

    let real = store.prune(policy, false).expect("prune");
    assert_eq!(real, dry, "the dry run predicted exactly this");
    assert_eq!(listed(&store), vec![5, 2, 1]);
    assert!(!dir.path().join("events/old-3").exists() && !dir.path().join("events/old-4").exists());
    assert!(dir.path().join("events/old-1").exists() && dir.path().join("events/old-2").exists());

    // A directory no event points to (a capture cut short by a crash) goes too.
    std::fs::create_dir_all(dir.path().join("events/20260101T000000Z-77")).expect("mkdir");
    store.prune(policy, false).expect("prune");
    assert!(!dir.path().join("events/20260101T000000Z-77").exists());
    assert!(dir.path().join("events/old-1").exists());
}

#[test]
fn the_byte_cap_removes_the_oldest_prunable_data_first_but_never_protected_events() {
    const ROWS: u64 = 500; // below the writer's queue, so every row is written
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _w, _) = written(dir.path(), |s| {
        s.submit(event(1, EventKind::Pause, NOW - DAY));
        s.submit(event(2, EventKind::Pause, NOW - DAY));
        let (tx, _rx) = mpsc::channel();
        s.submit(Op::Update { id: 2, status: Some(EventStatus::Reviewed), notes: None, reply: tx });
        for i in 0..ROWS {
            s.submit(Op::History(sample(i, NOW - DAY + i as i64 * 5000), 3));
        }
    });
    let history = |store: &Store| {
        store
            .read(|c, _| read::query_history(c, HistoryQuery::Range { start: 0, end: i64::MAX, limit: 10_000 }))
            .expect("history")
            .0
    };
    assert_eq!(history(&store).len() as u64, ROWS);
    // A little over the cap: the reviewed event goes, then history from the oldest row.
    let used = store.read(|c, _| prune::used_bytes(c)).expect("size");
    let policy = PrunePolicy { now_ms: NOW, samples_days: 30.0, events_days: 90.0, max_bytes: used - 8000 };
    let r = store.prune(policy, false).expect("prune");
    assert_eq!(r.removed_event_ids, vec![2]);
    let removed = r.history_rows_removed;
    assert!((1..ROWS).contains(&removed), "some, not all, history goes: {removed}");
    let left = history(&store);
    assert_eq!(left.len() as u64, ROWS - removed);
    let oldest_left = left.first().and_then(|r| r.time).map(|t| ms(Some(&t)));
    assert_eq!(oldest_left, Some(NOW - DAY + removed as i64 * 5000), "the oldest rows went first");

    // Far below what is stored: all prunable data goes; the unreviewed event stays.
    let r = store.prune(PrunePolicy { max_bytes: 1024, ..policy }, false).expect("prune");
    assert_eq!(r.history_rows_removed, ROWS - removed);
    assert!(history(&store).is_empty());
    let f = EventFilter { limit: 100, ..EventFilter::default() };
    let left: Vec<u64> = store.read(|c, _| read::list_events(c, &f)).expect("list").0.iter().map(|e| e.id).collect();
    assert_eq!(left, vec![1]);
}

#[test]
fn listing_filters_and_pages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _w, _) = written(dir.path(), |s| {
        for id in 1..=7 {
            let kind = if id % 2 == 0 { EventKind::Pause } else { EventKind::Escalation };
            s.submit(event(id, kind, NOW + id as i64 * 1000));
        }
    });
    let page = |f: EventFilter| -> (Vec<u64>, Option<u64>) {
        let (e, next) = store.read(|c, _| read::list_events(c, &f)).expect("list");
        (e.iter().map(|e| e.id).collect(), next)
    };
    assert_eq!(page(EventFilter { limit: 3, ..Default::default() }), (vec![7, 6, 5], Some(5)));
    assert_eq!(page(EventFilter { limit: 3, before_id: Some(5), ..Default::default() }), (vec![4, 3, 2], Some(2)));
    assert_eq!(
        page(EventFilter { limit: 10, kind: Some(EventKind::Pause), ..Default::default() }),
        (vec![6, 4, 2], None)
    );
    let window =
        EventFilter { limit: 10, since_ms: Some(NOW + 2000), until_ms: Some(NOW + 4000), ..Default::default() };
    assert_eq!(page(window), (vec![3, 2], None));
}

#[test]
fn a_write_a_constraint_refuses_is_lost_alone_and_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _w, _) = Store::open(dir.path()).expect("open");
    assert_eq!(store.problem(), None);
    store.submit(Op::History(sample(1, NOW), 3));
    // No event 99: the foreign key refuses this one write.
    store.submit(Op::EventSample { event_id: 99, reason: "entry", sample: sample(2, NOW + 1000) });
    store.submit(Op::History(sample(3, NOW + 2000), 3));
    store.flush().expect("flush");
    assert_eq!(store.lost_writes(), 1);
    let (_, why) = store.problem().expect("the reason is kept");
    assert!(why.contains("FOREIGN KEY"), "{why}");
    let (rows, _) = store
        .read(|c, _| read::query_history(c, HistoryQuery::Range { start: 0, end: i64::MAX, limit: 10 }))
        .expect("history");
    assert_eq!(rows.len(), 2, "the rest of the batch is committed");
}
