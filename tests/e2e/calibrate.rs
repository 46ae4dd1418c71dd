//! `pmon calibrate` against a server whose store holds a known distribution.

use std::{
    sync::Arc,
    time::{Duration, SystemTime},
};

use pmon_proto::{
    time::timestamp,
    v1::{Sample, Tier},
};
use pmon_server::store::{Op, Store};

use crate::support::{FAST, Server};

/// ~11 h of rows every 5 s, ending an hour ago: max scores 20.00 … 29.99 evenly, and one
/// sample in 500 taken 1.5 s after the one before.
fn fill(data_dir: &std::path::Path) {
    std::fs::create_dir_all(data_dir).expect("data dir");
    let (store, writer, _) = Store::open(data_dir).expect("store");
    let end = SystemTime::now() - Duration::from_secs(3600);
    const ROWS: u64 = 8000;
    for i in 0..ROWS {
        let at = end - Duration::from_secs(5 * (ROWS - i));
        let sample = Sample {
            sequence: i + 1,
            time: Some(timestamp(at)),
            tier: Tier::Sentinel as i32,
            max_score: 20.0 + (i % 1000) as f64 / 100.0,
            elapsed_ms: Some(if i % 500 == 499 { 1500.0 } else { 1000.0 }),
            ..Default::default()
        };
        store.submit(Op::History(Arc::new(sample), 3));
        if i % 500 == 499 {
            store.flush().expect("flush");
        }
    }
    store.flush().expect("flush");
    assert_eq!(store.lost_writes(), 0);
    drop(store);
    assert!(writer.join_within(Duration::from_secs(10)));
}

#[test]
fn calibrate_proposes_thresholds_from_the_recorded_distribution_and_applies_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    fill(&dir.path().join("data"));
    let server = Server::start_in(dir, "");
    let a = server.pmon_json(&["calibrate", "--days", "1", "--json"]);
    assert!(a["hours"].as_f64().is_some_and(|h| h > 11.0), "{a}");
    assert_eq!(a["elevated_threshold"].as_f64(), Some(30.0), "{a}");
    assert_eq!(a["critical_threshold"].as_f64(), Some(40.0), "{a}");
    assert_eq!(a["pause_threshold_ratio"].as_f64(), Some(6.3), "{a}");
    assert!(a["score"]["p99"].as_f64().is_some_and(|p| (29.0..=30.0).contains(&p)), "{a}");

    let out = server.pmon(&["calibrate", "--days", "1", "--apply"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("tiers.elevated_threshold  50 → 30") && text.contains("is reloading"), "{text}");
    let file = std::fs::read_to_string(server.dir.path().join("config.toml")).expect("config");
    assert!(file.contains("elevated_threshold = 30") && file.contains("threshold_ratio = 6.3"), "{file}");
    // The server took it: its running configuration says so.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let shown = String::from_utf8_lossy(&server.pmon(&["config", "show"]).stdout).into_owned();
        if shown.contains("elevated_threshold = 30.0") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not reloaded: {shown}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn calibrate_with_too_little_history_says_how_much_more_it_needs() {
    let server = Server::start(FAST);
    server.wait_samples(2);
    let out = server.pmon(&["calibrate"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("6 h needed") && text.contains("h more"), "{text}");
    let out = server.pmon(&["calibrate", "--apply"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("not enough history"));
}
