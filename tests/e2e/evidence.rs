//! Pauses, escalations and the evidence store, end to end.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::support::{KillOnDrop, Server, eventually, integrity, json_u64};

fn events(server: &Server, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["events", "--json"];
    all.extend_from_slice(args);
    server.pmon_json(&all)["events"].as_array().cloned().unwrap_or_default()
}

fn show(server: &Server, id: u64) -> Value {
    server.pmon_json(&["events", "show", &id.to_string(), "--json"])
}

/// Stops the server process for `stop`; returns how long it really was stopped.
fn stall(server: &Server, stop: Duration) -> Duration {
    server.signal(libc::SIGSTOP);
    let stopped = Instant::now();
    std::thread::sleep(stop);
    server.signal(libc::SIGCONT);
    stopped.elapsed()
}

/// A stop of the server alone is a pause event of its own kind: no machine froze, so it
/// names no culprit (the faults and stall-lab tests make real freezes).
#[test]
fn a_3_s_sigstop_becomes_a_pause_of_the_server_alone_with_forensics_and_artefacts() {
    let server = Server::start("");
    server.wait_samples(2);
    let real = stall(&server, Duration::from_secs(3));
    let resumed = Instant::now();
    // Recorded once the sentinel has been on time for `pause.merge_seconds` (2 s).
    let event = eventually(Duration::from_secs(5), || events(&server, &["--kind", "pause"]).into_iter().next())
        .unwrap_or_else(|| panic!("no pause event within 5 s:\n{}", server.log()));
    assert!(resumed.elapsed() <= Duration::from_secs(5));
    let recorded = Duration::from_secs_f64(event["stallMs"].as_f64().expect("stallMs") / 1000.0);
    let error = recorded.as_secs_f64() - real.as_secs_f64();
    assert!(error.abs() <= 0.3, "recorded {recorded:?} for a {real:?} stop");
    assert_eq!(event["kind"], "EVENT_KIND_PAUSE");
    assert_eq!(event["status"], "EVENT_STATUS_UNREVIEWED");

    // Forensics run in the background: wait for all five Linux steps.
    let id = json_u64(&event["id"]);
    let full = eventually(Duration::from_secs(30), || {
        let full = show(&server, id);
        (full["findings"].as_array().map_or(0, Vec::len) >= 5).then_some(full)
    })
    .unwrap_or_else(|| panic!("forensics incomplete: {}", show(&server, id)));
    let steps: Vec<&str> =
        full["findings"].as_array().expect("findings").iter().filter_map(|f| f["step"].as_str()).collect();
    assert_eq!(steps, ["psi", "kernel-log", "stuck-processes", "memory", "processes"]);
    assert_eq!(full["event"]["cause"], "STALL_CAUSE_SERVER_SUSPENDED", "{full}");
    assert!(full["event"]["causeDetail"].as_str().is_some_and(|d| d.contains("SIGSTOP")), "{full}");
    assert!(full["event"]["culprits"].is_null(), "a stop of the server blames nobody: {full}");
    assert_eq!(full["event"]["window"]["gaps"], 1, "{full}");
    assert!(full["samples"].as_array().is_some_and(|s| s.iter().all(|s| s["reason"] == "ring")));
    let dir = full["event"]["artefactDir"].as_str().expect("artefact dir");
    assert!(server.data_dir().join(dir).join("processes.tsv").is_file(), "{dir}");
    assert!(full["artefacts"].as_array().is_some_and(|a| a.iter().any(|f| f == "processes.tsv")));

    let report = server.pmon(&["events", "show", &id.to_string()]);
    let text = String::from_utf8_lossy(&report.stdout);
    for part in
        ["Pause", "not a machine freeze", "none: the machine did not freeze", "Forensics", "psi", "Artefacts in"]
    {
        assert!(text.contains(part), "missing {part:?} in:\n{text}");
    }
}

#[test]
fn a_quiet_minute_records_no_pause() {
    let server = Server::start("");
    std::thread::sleep(Duration::from_secs(60));
    let pauses = events(&server, &["--kind", "pause"]);
    assert!(pauses.is_empty(), "{pauses:?}\n{}", server.log());
    assert_eq!(json_u64(&server.status()["pauses"]), 0);
}

/// A hog that burns CPU and keeps touching memory it grows by 128 MiB every ~0.2 s up to
/// 1.5 GiB: its score rises for a few seconds (so peaks are recorded) and ends above
/// what CPU alone can score.
fn hog() -> KillOnDrop {
    let script = "import time\nchunks = []\nwhile True:\n    if len(chunks) < 12:\n        chunks.append(bytearray(128 << 20))\n    end = time.monotonic() + 0.2\n    while time.monotonic() < end:\n        for b in chunks:\n            for i in range(0, len(b), 4096):\n                b[i] = (b[i] + 1) & 255\n";
    KillOnDrop(Command::new("python3").args(["-c", script]).stdin(Stdio::null()).spawn().expect("start python3 hog"))
}

#[test]
fn a_hog_opens_an_escalation_that_names_it_and_closes_after_the_hysteresis() {
    let server = Server::start(
        // Memory weighs 40 and counts in full at 1 GiB, and the zombie state scores
        // nothing: the threshold (45) is out of reach of anything but a busy process
        // with a gigabyte resident, i.e. this hog, whatever else runs on the machine
        // (CPU alone scores at most 22.5; a compiler at 400 MiB about 37).
        "[sampling]\ninterval_seconds = 0.25\nelevated_interval_seconds = 0.25\n\
         [scoring.weights]\nmem = 40\n[scoring.divisors]\nmem_bytes = 1073741824\n\
         [scoring.state_scores]\nzombie = 0\n\
         [tiers]\nelevated_threshold = 45\ncritical_threshold = 95\nhysteresis_seconds = 1\n\
         [events]\npeak_tracking_seconds = 0\n[alerts]\nelevated_entered = true\n",
    );
    let mut hog = hog();
    let pid = u64::from(hog.id());
    let open = eventually(Duration::from_secs(20), || events(&server, &["--kind", "escalation"]).into_iter().next());
    let open = open.unwrap_or_else(|| panic!("no escalation opened:\n{}", server.log()));
    let id = json_u64(&open["id"]);
    // Let it grow, so peaks are recorded, then stop the hog.
    std::thread::sleep(Duration::from_secs(3));
    hog.kill().expect("kill hog");
    hog.wait().expect("reap hog");
    let closed = eventually(Duration::from_secs(20), || {
        let full = show(&server, id);
        full["event"]["endedAt"].is_string().then_some(full)
    })
    .unwrap_or_else(|| panic!("escalation {id} never closed: {}", show(&server, id)));
    let event = &closed["event"];
    let top = &event["culprits"][0]["rogue"];
    assert_eq!(json_u64(&top["pid"]), pid, "{event}");
    assert!(top["factors"]["cpuPercent"].as_f64().is_some_and(|c| c > 30.0), "{top}");
    assert!(top["factors"]["memBytes"].is_string(), "{top}");
    let reasons: Vec<&str> =
        closed["samples"].as_array().expect("samples").iter().filter_map(|s| s["reason"].as_str()).collect();
    assert_eq!(reasons.first(), Some(&"entry"), "{reasons:?}");
    assert!(reasons.contains(&"peak"), "a rising score keeps peak samples: {reasons:?}");
    assert_eq!(reasons.last(), Some(&"exit"), "{reasons:?}");
    // Announced (delivered or not, on this machine) and stored with the event.
    let notes = closed["notifications"].as_array().cloned().unwrap_or_default();
    assert!(notes.iter().any(|n| n["title"].as_str().is_some_and(|t| t.contains("stress rising"))), "{closed}");
    let entry_score = closed["samples"][0]["sample"]["maxScore"].as_f64().expect("entry score");
    assert!(event["peakScore"].as_f64().is_some_and(|p| p > entry_score && p >= 45.0), "{event}");
}

#[test]
fn a_mark_survives_a_restart_and_a_kill_leaves_a_sound_database_that_keeps_every_closed_event() {
    // Always elevated: an escalation is open, and every sample is written, at all times.
    let mut server = Server::start(
        "[sampling]\ninterval_seconds = 0.25\nelevated_interval_seconds = 0.25\n\
         [tiers]\nelevated_threshold = 0.001\ncritical_threshold = 100\n",
    );
    server.wait_samples(2);
    stall(&server, Duration::from_secs(1));
    let event = eventually(Duration::from_secs(5), || events(&server, &["--kind", "pause"]).into_iter().next())
        .unwrap_or_else(|| panic!("no pause:\n{}", server.log()));
    let id = json_u64(&event["id"]).to_string();
    let out = server.pmon(&["events", "mark", &id, "pinned", "--notes", "the backup job"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    server.restart();
    let e = &show(&server, id.parse().expect("id"))["event"];
    assert_eq!((e["status"].as_str(), e["notes"].as_str()), (Some("EVENT_STATUS_PINNED"), Some("the backup job")));

    // Kill -9 while an escalation is open and samples are being written.
    server.wait_samples(4);
    server.crash_and_restart();
    assert_eq!(integrity(&server.data_dir().join("data.db")), "ok");
    let e = &show(&server, id.parse().expect("id"))["event"];
    assert_eq!(e["status"], "EVENT_STATUS_PINNED", "the pause survived");
    // One escalation per run: the two earlier ones (one cut by a restart, one by the
    // kill) are closed at their last sample; only the current run's is open.
    let escalations = eventually(Duration::from_secs(10), || {
        let e = events(&server, &["--kind", "escalation"]);
        (e.len() >= 3).then_some(e)
    })
    .unwrap_or_else(|| panic!("escalations: {:?}", events(&server, &["--kind", "escalation"])));
    let open: Vec<u64> = escalations.iter().filter(|e| !e["endedAt"].is_string()).map(|e| json_u64(&e["id"])).collect();
    assert_eq!(open, vec![json_u64(&escalations[0]["id"])], "only the newest is open: {escalations:?}");
}

#[test]
fn bad_requests_get_clear_codes_from_the_cli() {
    let server = Server::start("");
    let out = server.pmon(&["events", "show", "999"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("NotFound") && err.contains("no event with id 999"), "{err}");

    let out = server.pmon(&["events", "mark", "1", "bogus"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("unreviewed") && err.contains("pinned") && err.contains("dismissed"), "{err}");

    let out = server.pmon(&["events", "--since", "tomorow"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("tomorow") && err.contains("min ago"), "{err}");

    let out = server.pmon(&["events", "--since", "1 min ago", "--until", "1 hour ago"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("InvalidArgument") && err.contains("inverted time range"), "{err}");

    let dry = server.pmon_json(&["prune", "--dry-run", "--json"]);
    assert_eq!(dry["dryRun"], true);
}

#[test]
fn a_rogue_matching_a_suspects_pattern_is_flagged_in_watch_and_in_events() {
    let server = Server::start(
        "[sampling]\ninterval_seconds = 0.25\nelevated_interval_seconds = 0.25\n\
         [tiers]\nelevated_threshold = 15\ncritical_threshold = 90\nhysteresis_seconds = 1\n\
         [suspects]\npatterns = [\"pmon-susp*\"]\n",
    );
    // A busy loop under a name of its own: comm is the name of the file executed, cut to
    // 15 characters; a symlink gives it (a copy could be busy when forked elsewhere).
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = dir.path().join("pmon-suspect-hog");
    std::os::unix::fs::symlink("/bin/sh", &exe).expect("symlink sh");
    let hog =
        KillOnDrop(Command::new(&exe).args(["-c", "while :; do :; done"]).stdin(Stdio::null()).spawn().expect("hog"));
    let pid = u64::from(hog.id());

    let watch = crate::support::Watch::start(&server, &[]);
    let flagged = (0..20).find_map(|_| {
        let sample = watch.next_sample(Duration::from_secs(10));
        sample["rogues"].as_array()?.iter().find(|r| r["pid"].as_u64() == Some(pid)).cloned()
    });
    let rogue = flagged.unwrap_or_else(|| panic!("hog {pid} never a rogue"));
    assert_eq!(rogue["command"], "pmon-suspect-ho");
    assert_eq!(rogue["suspect"], true, "{rogue}");

    let event = eventually(Duration::from_secs(20), || {
        events(&server, &["--kind", "escalation"]).into_iter().find(|e| {
            show(&server, json_u64(&e["id"]))["event"]["culprits"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["rogue"]["pid"].as_u64() == Some(pid)))
        })
    })
    .unwrap_or_else(|| panic!("no escalation names the hog:\n{}", server.log()));
    let report = server.pmon(&["events", "show", &json_u64(&event["id"]).to_string()]);
    let text = String::from_utf8_lossy(&report.stdout);
    let line = text.lines().find(|l| l.contains("pmon-suspect-ho")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("known suspect"), "{line}");
}

#[test]
fn learning_mode_records_events_but_sends_no_notification() {
    let server = Server::start(
        "learning_mode = true\n[sampling]\ninterval_seconds = 0.2\nelevated_interval_seconds = 0.2\n\
         [tiers]\nelevated_threshold = 0.001\ncritical_threshold = 0.002\n\
         [alerts]\nelevated_entered = true\ncritical_duration_seconds = 0.2\nmin_interval_seconds = 0\n",
    );
    let event = eventually(Duration::from_secs(10), || events(&server, &["--kind", "escalation"]).into_iter().next())
        .unwrap_or_else(|| panic!("no escalation:\n{}", server.log()));
    std::thread::sleep(Duration::from_secs(2));
    let full = show(&server, json_u64(&event["id"]));
    assert!(full["samples"].as_array().is_some_and(|s| s.len() > 3), "still recorded: {full}");
    assert!(full["notifications"].as_array().is_none_or(Vec::is_empty), "{full}");
}

#[test]
fn sustained_critical_stress_is_announced_once_with_its_event() {
    // Every sample scores above both thresholds: CRITICAL from the first one on.
    let server = Server::start(
        "[sampling]\ninterval_seconds = 0.2\nelevated_interval_seconds = 0.2\n\
         [tiers]\nelevated_threshold = 0.001\ncritical_threshold = 0.002\n\
         [alerts]\ncritical_duration_seconds = 0.5\nmin_interval_seconds = 0\n",
    );
    let event = eventually(Duration::from_secs(10), || events(&server, &["--kind", "escalation"]).into_iter().next())
        .unwrap_or_else(|| panic!("no escalation:\n{}", server.log()));
    let id = json_u64(&event["id"]);
    let notes = eventually(Duration::from_secs(10), || {
        let n = show(&server, id)["notifications"].as_array().cloned().unwrap_or_default();
        (!n.is_empty()).then_some(n)
    })
    .unwrap_or_else(|| panic!("no notification: {}", show(&server, id)));
    std::thread::sleep(Duration::from_secs(1));
    let notes_later = show(&server, id)["notifications"].as_array().cloned().unwrap_or_default();
    assert_eq!(notes_later.len(), 1, "announced once per stretch: {notes_later:?}");
    let title = notes[0]["title"].as_str().unwrap_or("");
    assert!(title.starts_with("pmon: critical stress for"), "{title}");
}
