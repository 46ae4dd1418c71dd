//! When a pause is announced: at once where no step reads a stack report, and on macOS
//! after the step that does, naming the root of its chain of waits first.

use pmon_proto::v1::{Culprit, EventKind, ProcessUse, StallCause, StallWindow, Tier};

use super::*;
use crate::store::NewEvent;

const WATCHDOG: &str = include_str!("../../../fixtures/macos/spindump/watchdog_windowserver_v40.txt");

/// A pause blaming `hog`, stored as its event, and the forensics that will run for it.
fn setup(dir: &std::path::Path) -> (Forensics, Store, Pause) {
    let (store, _writer, _) = Store::open(dir).expect("store");
    let notifier = Notifier::new(pmon_proto::config::Alerts::default(), false, store.clone());
    let forensics = Forensics::new(dir.to_path_buf(), store.clone(), Duration::from_secs(5), notifier);
    let hog = Culprit {
        why: "cpu 3.00 s in the 3.00 s stall".into(),
        usage: Some(ProcessUse { pid: 4242, command: "hog".into(), ..ProcessUse::default() }),
        ..Culprit::default()
    };
    let verdict = Verdict {
        cause: StallCause::Machine,
        cause_detail: "others waited".into(),
        window: StallWindow::default(),
        culprits: vec![hog.clone()],
        victims: vec![],
        groups: vec![],
    };
    store.submit(Op::OpenEvent(NewEvent {
        id: 1,
        kind: EventKind::Pause,
        started_at_ms: 1_000,
        ended_at_ms: Some(4_000),
        peak_score: 0.0,
        peak_tier: Tier::Sentinel as i32,
        stall_ms: Some(3_000.0),
        culprits: vec![hog],
        artefact_dir: "events/1".into(),
        attribution: None,
    }));
    let pause = Pause {
        ended_at: SystemTime::UNIX_EPOCH + Duration::from_secs(4),
        stall: Duration::from_secs(3),
        stalled: Duration::from_secs(3),
        verdict,
        ring: vec![],
        dir: dir.join("events/1"),
        limit: Duration::from_secs(5),
    };
    (forensics, store, pause)
}

/// The bodies of the pause's "stalled" notifications, once the store has them.
fn announced(store: &Store) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        store.flush().expect("flush");
        let event = store.read(|c, dir| crate::store::read::get_event(c, dir, 1)).expect("event");
        let bodies: Vec<String> =
            event.notifications.iter().filter(|n| n.title.contains("stalled")).map(|n| n.body.clone()).collect();
        if !bodies.is_empty() || Instant::now() > deadline {
            return bodies;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ok(summary: &'static str) -> StepWork {
    Box::new(move || Ok(Output { summary: summary.into(), ..Output::default() }))
}

#[test]
fn the_root_of_a_stack_reports_chain_is_named_in_the_announcement() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (forensics, store, pause) = setup(dir.path());
    let spindump: StepWork = Box::new(|| {
        let (summary, detail, waits) = waits::report(WATCHDOG);
        Ok(Output { summary, detail, waits, ..Output::default() })
    });
    let steps: Vec<Step> = vec![("tailspin", ok("saved")), ("spindump", spindump), ("system-log", ok("read"))];
    let first = Arc::new(std::sync::Mutex::new(None));
    let told = Arc::clone(&first);
    let led: Led = Box::new(move |culprits| {
        *told.lock().expect("lock") = culprits.first().and_then(pmon_proto::format::culprit_command);
    });
    forensics.run_steps(1, &pause, (steps, Some("spindump")), &led);
    assert_eq!(first.lock().expect("lock").as_deref(), Some("WindowServer"), "the status is told the root too");
    let bodies = announced(&store);
    assert_eq!(bodies.len(), 1, "announced once: {bodies:?}");
    assert!(bodies[0].starts_with("top suspect WindowServer[153]"), "the chain's root, not the hog: {}", bodies[0]);
}

#[test]
fn without_a_stack_report_the_attributions_answer_is_announced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (forensics, store, pause) = setup(dir.path());
    // The step that reads waits failed: the answer stands as it was.
    let failed: StepWork = Box::new(|| Err("tailspin needs root".into()));
    let called = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&called);
    let led: Led = Box::new(move |_| flag.store(true, Ordering::Relaxed));
    forensics.run_steps(1, &pause, (vec![("spindump", failed), ("system-log", ok("read"))], Some("spindump")), &led);
    assert!(!called.load(Ordering::Relaxed), "no report: nothing led");
    let bodies = announced(&store);
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert!(bodies[0].starts_with("top suspect hog[4242]"), "{}", bodies[0]);
}
