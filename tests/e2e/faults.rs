//! Faults under a running server: processes exiting while they are read, /proc files
//! cut short, garbled or unreadable, a database file that cannot be written, a full
//! disk, SIGKILL, SIGTERM in the middle of a forensics capture. In each the server keeps
//! serving (or stops promptly), says what is wrong in its status and log, and keeps
//! everything it had committed.
//!
//! The faults are the operating system's, not simulated inside the server: where /proc
//! or the disk must misbehave, the server runs in a mount namespace of its own in which
//! files are bind-mounted over /proc and its data directory is a small tmpfs. That needs
//! root and unshare(1); without them those tests print a notice and pass.

use std::{
    io::Write,
    os::unix::fs::PermissionsExt,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    namespace,
    support::{FAST, KillOnDrop, Server, eventually, integrity, json_u64},
};

/// Every sample is elevated, so every sample writes a history row: writes never pause.
const ALWAYS_WRITING: &str = "[sampling]\ninterval_seconds = 0.1\nelevated_interval_seconds = 0.1\n\
                              [tiers]\nelevated_threshold = 0.001\ncritical_threshold = 100\n";

/// The times of the server's history rows, oldest first.
fn history(server: &Server) -> Vec<String> {
    let rows = server.pmon_json(&["history", "--format", "json"]);
    rows["rows"]
        .as_array()
        .map(|rows| rows.iter().filter_map(|r| r["time"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// Asserts `now` still begins with every row of `before`.
fn kept(before: &[String], now: &[String]) {
    assert!(now.len() >= before.len() && now[..before.len()] == *before, "rows lost: had {before:?}, now {now:?}");
}

/// Waits for a status in which `f` holds.
fn status_where(server: &Server, limit: Duration, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    eventually(limit, || Some(server.status()).filter(&f))
        .unwrap_or_else(|| panic!("no {what} within {limit:?}: {}\n{}", server.status(), server.log()))
}

fn text(server: &Server, args: &[&str]) -> String {
    let out = server.pmon(args);
    assert!(out.status.success(), "pmon {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The server answers: a status, two watched samples, the history.
fn serving(server: &Server) {
    let n = json_u64(&server.status()["sampleCount"]);
    server.wait_samples(n + 3);
    let watched = text(server, &["watch", "--json", "--count", "2"]);
    assert_eq!(watched.lines().count(), 2, "{watched}");
}

fn logged(server: &Server, what: &str) {
    eventually(Duration::from_secs(5), || server.log().contains(what).then_some(()))
        .unwrap_or_else(|| panic!("{what:?} not logged:\n{}", server.log()));
}

#[test]
#[ignore = "needs root and unshare(1) for a mount namespace: scripts/test runs it as root"]
fn a_full_disk_loses_only_new_writes_and_writing_resumes_when_there_is_room() {
    namespace::require();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_namespaced(dir, ALWAYS_WRITING, "mount -t tmpfs -o size=16m pmon-full \"$DATA\"", &[]);
    server.wait_samples(10);
    let before = history(&server);
    assert!(before.len() >= 5, "{before:?}");

    let filler_path = server.data_dir().join("filler");
    let mut filler = std::fs::File::create(&filler_path).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    let full = loop {
        if let Err(e) = filler.write_all(&chunk) {
            break e;
        }
    };
    assert_eq!(full.raw_os_error(), Some(libc::ENOSPC), "{full}");
    let status = status_where(&server, Duration::from_secs(10), "lost write", |s| json_u64(&s["lostWrites"]) > 0);
    assert!(status["storeProblem"].as_str().is_some_and(|p| p.contains("full")), "{status}");
    assert!(status["storeProblemAt"].is_string(), "{status}");
    serving(&server);
    assert!(text(&server, &["status"]).contains("WRITES LOST"));
    logged(&server, "database or disk is full");
    let during = history(&server);
    kept(&before, &during);

    drop(filler);
    std::fs::remove_file(&filler_path).expect("remove filler");
    let after = eventually(Duration::from_secs(15), || Some(history(&server)).filter(|h| h.len() >= during.len() + 5))
        .unwrap_or_else(|| panic!("no new rows once there was room:\n{}", server.log()));
    kept(&during, &after);
    logged(&server, "database writes succeed again");
    assert_eq!(integrity(&server.data_dir().join("data.db")), "ok");
}

/// Lowers (or lifts) the file size limit of a running process: writes at offsets past
/// it fail with EFBIG, on files it already has open too.
fn limit_file_size(pid: u32, bytes: u64) {
    let pid = i32::try_from(pid).expect("pid");
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: prlimit writes the current limit into `limit`, which outlives the call.
    assert_eq!(unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, std::ptr::null(), &mut limit) }, 0);
    limit.rlim_cur = bytes.min(limit.rlim_max);
    // SAFETY: prlimit only reads `limit`.
    let set = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &limit, std::ptr::null_mut()) };
    assert_eq!(set, 0, "prlimit: {}", std::io::Error::last_os_error());
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[test]
fn a_database_file_that_cannot_be_written_costs_only_new_writes() {
    let server = Server::start(ALWAYS_WRITING);
    server.wait_samples(10);
    // Past this offset nothing can be written: the log (far shorter) still can, the
    // write-ahead log (appended to until it reaches 4 MB) cannot.
    let limit = size(&server.dir.path().join("server.log")) + 32 * 1024;
    let wal = server.data_dir().join("data.db-wal");
    eventually(Duration::from_secs(20), || (size(&wal) > limit + 64 * 1024).then_some(()))
        .unwrap_or_else(|| panic!("the write-ahead log stays at {} bytes", size(&wal)));
    let before = history(&server);
    limit_file_size(server.pid(), limit);

    let status = status_where(&server, Duration::from_secs(10), "lost write", |s| json_u64(&s["lostWrites"]) > 0);
    let problem = status["storeProblem"].as_str().unwrap_or_default().to_string();
    assert!(problem.contains("I/O error"), "{status}");
    serving(&server);
    logged(&server, &problem);
    let during = history(&server);
    kept(&before, &during);

    limit_file_size(server.pid(), libc::RLIM_INFINITY);
    let after = eventually(Duration::from_secs(15), || Some(history(&server)).filter(|h| h.len() >= during.len() + 5))
        .unwrap_or_else(|| panic!("no new rows once writable again:\n{}", server.log()));
    kept(&during, &after);
    logged(&server, "database writes succeed again");
    assert_eq!(integrity(&server.data_dir().join("data.db")), "ok");
}

#[test]
#[ignore = "needs root and unshare(1) for a mount namespace: scripts/test runs it as root"]
fn proc_files_cut_short_garbled_or_unreadable_are_reported_and_sampling_goes_on() {
    namespace::require();
    let dir = tempfile::tempdir().expect("tempdir");
    let garbled = KillOnDrop(Command::new("sleep").arg("600").spawn().expect("sleep"));
    let (pid, t) = (garbled.id(), dir.path().to_path_buf());
    std::fs::write(t.join("stat"), format!("{pid} (sle")).expect("stat");
    std::fs::write(t.join("meminfo"), "MemTotal:       16318412 kB\nMemFr").expect("meminfo");
    std::fs::write(t.join("loadavg"), "").expect("loadavg");
    std::fs::create_dir(t.join("sealed")).expect("sealed");
    std::fs::set_permissions(t.join("sealed"), std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let t = t.display();
    let setup = format!(
        "mount --bind {t}/stat /proc/{pid}/stat\nmount --bind {t}/meminfo /proc/meminfo\n\
         mount --bind {t}/loadavg /proc/loadavg"
    );
    // Root without capabilities: a directory of mode 000 is closed to it.
    let server =
        Server::start_namespaced(dir, FAST, &setup, &["setpriv", "--bounding-set", "-all", "--inh-caps", "-all"]);

    let status = server.wait_samples(5);
    assert_eq!(json_u64(&status["failedSamples"]), 0, "{status}");
    let problem = status["sourceProblem"].as_str().unwrap_or_default();
    assert!(problem.contains(&format!("pid {pid} skipped: /proc/{pid}/stat")), "{status}");
    assert!(text(&server, &["status"]).contains(&format!("s ago: pid {pid} skipped")));
    logged(&server, &format!("pid {pid} skipped"));
    let sample: Value = serde_json::from_str(text(&server, &["watch", "--json", "--count", "1"]).trim()).expect("JSON");
    let system = &sample["sample"]["system"];
    assert_eq!(json_u64(&system["memTotalBytes"]), 16_318_412 * 1024, "{sample}");
    assert!(system["memAvailableBytes"].is_null() && system["load1m"].is_null(), "unavailable, not 0: {sample}");
    let before = history(&server);

    // /proc itself becomes unreadable: whole samples fail, and say why.
    server.in_namespace(&["mount", "--bind", &format!("{t}/sealed"), "/proc"]);
    let status = status_where(&server, Duration::from_secs(10), "failed sample", |s| json_u64(&s["failedSamples"]) > 0);
    let problem = status["sourceProblem"].as_str().unwrap_or_default();
    assert!(problem.contains("cannot list processes in /proc") && problem.contains("ermission denied"), "{status}");
    logged(&server, "sample failed: cannot list processes in /proc");
    kept(&before, &history(&server));

    server.in_namespace(&["umount", "/proc"]);
    serving(&server);
    logged(&server, "sampling works again after");
    let failed = json_u64(&server.status()["failedSamples"]);
    server.wait_samples(json_u64(&server.status()["sampleCount"]) + 5);
    assert_eq!(json_u64(&server.status()["failedSamples"]), failed, "sampling recovered");
}

#[test]
fn processes_exiting_while_they_are_read_are_not_failures() {
    let server = Server::start("[sampling]\ninterval_seconds = 0.05\nelevated_interval_seconds = 0.05\n");
    let start = json_u64(&server.wait_samples(2)["sampleCount"]);
    // Processes that live about a millisecond each, for 40 samples: many are listed and
    // gone before their files are read, or gone between two of their files. At the
    // lowest priority, so tests running alongside keep their CPU.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let churn = Command::new("nice")
            .args(["-n", "19", "sh", "-c", "i=0; while [ $i -lt 200 ]; do /bin/true; i=$((i+1)); done"])
            .status()
            .expect("sh");
        assert!(churn.success());
        let status = server.status();
        if json_u64(&status["sampleCount"]) >= start + 40 {
            break status;
        }
        assert!(Instant::now() < deadline, "fewer than 40 samples in 60 s: {status}");
    };
    assert_eq!(json_u64(&status["failedSamples"]), 0, "{status}");
    assert!(status["sourceProblem"].is_null(), "{status}");
}

#[test]
fn sigkill_while_writing_keeps_every_committed_row() {
    let mut server = Server::start(ALWAYS_WRITING);
    server.wait_samples(20);
    let before = history(&server);
    server.crash_and_restart();
    kept(&before, &history(&server));
    assert_eq!(integrity(&server.data_dir().join("data.db")), "ok");
    let status = server.wait_samples(2);
    assert_eq!(json_u64(&status["lostWrites"]), 0, "{status}");
    assert!(status["storeProblem"].is_null(), "{status}");
}

#[test]
#[ignore = "needs root and unshare(1) for a mount namespace: scripts/test runs it as root"]
fn sigterm_during_a_capture_stops_at_once_and_records_what_was_not_captured() {
    namespace::require();
    assert!(
        Path::new("/proc/pressure/cpu").exists(),
        "this test needs a kernel with pressure stall information (/proc/pressure)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("pressure");
    assert!(Command::new("mkfifo").arg(&fifo).status().expect("mkfifo").success());
    // 1 Hz: only a stall of 2 s is a pause, so a loaded machine makes none of its own.
    let mut server = Server::start_namespaced(dir, "[pause]\nstep_timeout_seconds = 300\n", "true", &[]);
    server.wait_samples(2);
    // From now on opening /proc/pressure/cpu blocks (a FIFO nobody writes to), as reading
    // a hung file does. The sampler reads it through the descriptor it opened at start;
    // the capture's first step opens it afresh and is stuck.
    server.in_namespace(&["mount", "--bind", fifo.to_str().expect("utf-8"), "/proc/pressure/cpu"]);
    let n = json_u64(&server.status()["sampleCount"]);
    server.wait_samples(n + 2);

    server.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(3));
    server.signal(libc::SIGCONT);
    let event = eventually(Duration::from_secs(5), || {
        let events = server.pmon_json(&["events", "--json", "--kind", "pause"]);
        events["events"].as_array()?.iter().find(|e| e["stallMs"].as_f64().is_some_and(|ms| ms >= 2500.0)).cloned()
    })
    .unwrap_or_else(|| panic!("no pause:\n{}", server.log()));
    let id = json_u64(&event["id"]).to_string();
    std::thread::sleep(Duration::from_secs(1));
    let shown = server.pmon_json(&["events", "show", &id, "--json"]);
    assert!(shown["findings"].as_array().is_none_or(Vec::is_empty), "the first step is stuck: {shown}");

    let asked = Instant::now();
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).success(), "{}", server.log());
    let log = server.log();
    assert!(asked.elapsed() < Duration::from_secs(3), "stopping took {:?}:\n{log}", asked.elapsed());
    assert!(log.contains("forensics interrupted") && !log.contains("were not waited for"), "{log}");

    server.start_again();
    assert_eq!(integrity(&server.data_dir().join("data.db")), "ok");
    let shown = server.pmon_json(&["events", "show", &id, "--json"]);
    assert!(shown["event"]["stallMs"].as_f64().is_some_and(|ms| ms >= 2500.0), "{shown}");
    let findings: Vec<(&str, &str)> = shown["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| (f["step"].as_str().unwrap_or_default(), f["summary"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(findings.len(), 5, "{shown}");
    assert_eq!(findings[0], ("psi", "interrupted: the server stopped during this step"), "{shown}");
    assert!(findings[1..].iter().all(|(_, s)| *s == "not run: the server stopped during the capture"), "{shown}");
}

#[test]
fn a_sampler_that_panics_is_logged_counted_and_samples_again_after_a_backoff() {
    // A debug build's test-only hook: the next two samples after the first panic.
    let panics = std::ffi::OsStr::new("2");
    let server =
        Server::start_with_env(tempfile::tempdir().expect("tempdir"), FAST, &[("PMON_TEST_SAMPLER_PANICS", panics)]);
    let status = eventually(Duration::from_secs(20), || {
        let s = server.status();
        (json_u64(&s["samplerPanics"]) == 2 && json_u64(&s["sampleCount"]) >= 4).then_some(s)
    })
    .unwrap_or_else(|| panic!("sampling did not come back after two panics: {}\n{}", server.status(), server.log()));
    assert!(status["lastSamplerPanic"].as_str().is_some_and(|p| p.contains("PMON_TEST_SAMPLER_PANICS")), "{status}");
    assert!(status["lastSamplerPanicAt"].is_string(), "{status}");
    logged(&server, "the sampler panicked");
    logged(&server, "sampling again in 2s");
    let line = text(&server, &["status"]);
    assert!(line.contains("SAMPLER PANICKED 2 times, recovered"), "{line}");
    // And it goes on sampling at its pace.
    let later = server.wait_samples(json_u64(&status["sampleCount"]) + 3);
    assert_eq!(json_u64(&later["samplerPanics"]), 2, "{later}");
}
