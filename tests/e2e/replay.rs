//! `pmon-server --source replay:PATH`: a capture made elsewhere drives the real engine,
//! as fast as possible, with the same events every time — checked against the expected
//! events kept in fixtures/macos/replay/ (`PMON_BLESS=1` rewrites them after a
//! deliberate change). `--record` writes pmon's own recording, which replays the same.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::support::{bin, json_u64, pmon, wait_exit};

fn repo(path: &str) -> PathBuf {
    crate::support::repo().join(path)
}

/// `pmon-server --source replay:CAPTURE --replay-speed max EXTRA…` on a fresh data
/// directory, in UTC (a `top` log's times are local to where it was captured).
fn replay(data: &Path, capture: &Path, extra: &[&str]) -> Command {
    // Built-in defaults: an empty configuration file.
    std::fs::write(data.with_extension("toml"), "").expect("write config");
    let mut source = std::ffi::OsString::from("replay:");
    source.push(capture);
    let mut command = Command::new(bin("pmon-server"));
    command
        .arg("--config")
        .arg(data.with_extension("toml"))
        .arg("--data-dir")
        .arg(data)
        .arg("--source")
        .arg(source)
        .args(["--replay-speed", "max", "--log", "warn"])
        .args(extra)
        .env("TZ", "UTC")
        .stdin(Stdio::null());
    command
}

/// Replays with --keep-serving and returns the recorded events once `samples` samples
/// are in, reduced to what must not change between runs.
fn events_of(capture: &Path, extra: &[&str], samples: u64) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut server: Child = replay(&data, capture, &[&["--keep-serving"], extra].concat())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start pmon-server");
    let data_arg = data.to_str().expect("utf-8 path");
    let deadline = Instant::now() + Duration::from_secs(20);
    // The capture is replayed at once; wait until its last sample is in.
    loop {
        let out = pmon(&["--data-dir", data_arg, "status", "--json"]);
        let status: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if json_u64(&status["sampleCount"]) == samples {
            break;
        }
        assert!(Instant::now() < deadline, "the replay did not finish within 20 s: {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = pmon(&["--data-dir", data_arg, "events", "--json"]);
    let events: Value = serde_json::from_slice(&out.stdout).expect("events JSON");
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child.
    unsafe { libc::kill(i32::try_from(server.id()).expect("pid"), libc::SIGTERM) };
    assert!(wait_exit(&mut server, Duration::from_secs(15)).is_some_and(|s| s.success()));
    reduce(&events)
}

/// Kind, times, peak and culprits (pid, command, score to 3 decimals, why) of each event.
fn reduce(events: &Value) -> Value {
    let round = |v: &Value| v.as_f64().map(|x| (x * 1000.0).round() / 1000.0);
    let events = events["events"].as_array().cloned().unwrap_or_default();
    Value::Array(
        events
            .iter()
            .map(|e| {
                let culprits: Vec<Value> = e["culprits"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        let r = &c["rogue"];
                        json!({"pid": r["pid"], "command": r["command"], "score": round(&r["score"]), "why": c["why"]})
                    })
                    .collect();
                json!({
                    "kind": e["kind"], "startedAt": e["startedAt"], "endedAt": e["endedAt"],
                    "peakScore": round(&e["peakScore"]), "peakTier": e["peakTier"], "culprits": culprits,
                })
            })
            .collect(),
    )
}

fn check_expected(events: &Value, name: &str) {
    let path = repo(&format!("fixtures/macos/replay/{name}"));
    let text = serde_json::to_string_pretty(events).expect("JSON") + "\n";
    if std::env::var_os("PMON_BLESS").is_some() {
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(&path, &text).expect("bless");
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(text, expected, "replayed events differ from {}", path.display());
}

#[test]
fn a_top_capture_replays_to_the_same_events_every_time() {
    let capture = repo("fixtures/macos/top/stream_pmon_stats.log");
    let first = events_of(&capture, &[], 4);
    let second = events_of(&capture, &[], 4);
    assert_eq!(first, second, "deterministic");
    assert_eq!(first[0]["culprits"][0]["command"], "mds_stores", "{first}");
    check_expected(&first, "stream_pmon_stats.events.json");
}

/// Ten recorded seconds replayed in a blink: the escalation still closes after the
/// 5 s hysteresis, because the engine runs on the recording's clock.
#[test]
fn an_escalation_ends_on_the_recorded_clock_not_the_replay_speed() {
    let capture = repo("fixtures/macos/top/stream_escalation_ends.log");
    let first = events_of(&capture, &[], 10);
    assert_eq!(events_of(&capture, &[], 10), first, "deterministic");
    assert_eq!(first[0]["startedAt"], "2026-11-20T14:03:11+00:00", "{first}");
    assert_eq!(first[0]["endedAt"], "2026-11-20T14:03:19+00:00", "5 s below the threshold after 14:03:14: {first}");
    check_expected(&first, "stream_escalation_ends.events.json");
}

#[test]
fn a_finished_replay_prints_one_summary_line_and_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = repo("fixtures/macos/top/stream_pmon_stats.log");
    let out = replay(&dir.path().join("data"), &capture, &[]).output().expect("run pmon-server");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = format!(
        "replay of {} (top log): 4 samples read, 1 event recorded (1 escalation, 0 pauses), 0 lines could not be parsed\n",
        capture.display()
    );
    assert_eq!(stdout, line);

    let plist = repo("fixtures/macos/powermetrics/stream_nul_after_each.plist");
    let out = replay(&dir.path().join("data2"), &plist, &[]).output().expect("run pmon-server");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("(powermetrics stream): 3 samples read"), "{out:?}");

    let junk = dir.path().join("junk.txt");
    std::fs::write(&junk, "not a capture\n").expect("write");
    let out = replay(&dir.path().join("data3"), &junk, &[]).output().expect("run pmon-server");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("junk.txt") && err.contains("Processes:"), "says what is accepted: {err}");
}

#[test]
fn a_recording_replays_to_the_same_events_as_its_capture() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recording = dir.path().join("capture.pmon.jsonl");
    let capture = repo("fixtures/macos/top/stream_pmon_stats.log");
    let rec = recording.to_str().expect("utf-8 path");
    let from_capture = events_of(&capture, &["--record", rec], 4);
    let text = std::fs::read_to_string(&recording).expect("recording written");
    assert_eq!(text.lines().count(), 5, "a header and 4 samples: {text}");
    assert_eq!(events_of(&recording, &[], 4), from_capture);
}
