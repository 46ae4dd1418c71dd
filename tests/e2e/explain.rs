//! `pmon explain FILE`: the real binary on each stack-report fixture, on a report piped
//! in, and on files that are no report.

use std::{
    io::Write,
    process::{Command, Stdio},
};

use serde_json::Value;

use crate::support::bin;

fn fixture(path: &str) -> String {
    crate::support::repo().join("fixtures/macos").join(path).display().to_string()
}

fn explain(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin("pmon")).arg("explain").args(args).output().expect("run pmon explain");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn each_report_names_the_root_threads_process_first_and_marks_main_threads() {
    let cases = [
        ("spindump/watchdog_windowserver_v40.txt", "culprit: WindowServer [153] main thread 0x3e2"),
        ("spindump/legacy_wide_padded.txt", "culprit: mds [371] thread 0x1b02"),
        ("spindump/no_queue_labels_base64.txt", "culprit: smd [245] thread 0x3001"),
        ("spindump/tailspin_decoded_stall.txt", "culprit: mds_stores [412] thread 0x9b2"),
        ("spindump/shutdown_stall_idle_daemon.txt", "culprit: SyncHelper [902] main thread 0x3f20"),
        ("spindump/unfair_lock_chain.txt", "culprit: Photos [3310] thread 0x5e02"),
    ];
    for (file, first) in cases {
        let (ok, out, err) = explain(&[&fixture(file)]);
        assert!(ok, "{file}: {err}");
        assert_eq!(out.lines().next(), Some(first), "{file}:\n{out}");
        assert!(out.contains("main thread"), "{file}: main threads are marked:\n{out}");
    }
    let (_, out, _) = explain(&[&fixture("spindump/watchdog_windowserver_v40.txt")]);
    for line in [
        "  why: 23 threads of 3 processes waited on WindowServer [153] main thread 0x3e2 (12/12 samples in waitForStamp (AMDRadeonX5000))",
        "    Safari [2210]: 9 threads (its main thread among them), 98 samples waiting",
        "    kernel_task [0]: 8 threads, 96 samples waiting",
        "    Dock [301]: 6 threads (its main thread among them), 72 samples waiting",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in:\n{out}");
    }
}

#[test]
fn json_gives_the_culprit_and_the_chain_to_scripts() {
    let (ok, out, err) = explain(&["--json", &fixture("spindump/watchdog_windowserver_v40.txt")]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(v["format"], "spindump");
    assert_eq!((v["culprit"]["process"].as_str(), v["culprit"]["pid"].as_u64()), (Some("WindowServer"), Some(153)));
    assert_eq!((v["culprit"]["thread"].as_str(), v["culprit"]["main"].as_bool()), (Some("0x3e2"), Some(true)));
    let waiters = v["waitChains"][0]["waiters"].as_array().expect("waiters");
    let threads: u64 = waiters.iter().filter_map(|w| w["threads"].as_u64()).sum();
    assert_eq!(threads, 23);
    assert!(v["appHangs"].as_array().is_some_and(|h| !h.is_empty()), "{v}");
}

#[test]
fn a_report_on_stdin_is_read_like_a_file() {
    let text = std::fs::read(fixture("sample/activity_monitor_mail.txt")).expect("fixture");
    let mut child = Command::new(bin("pmon"))
        .args(["explain", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().expect("stdin").write_all(&text).expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.starts_with("culprit: none: a sample report does not say which thread waits on which"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("  Mail [812] main thread 12789423: hung 2453/2453 samples")), "{out}");
}

#[test]
fn an_idle_daemon_is_neither_culprit_nor_hung() {
    let (ok, out, err) = explain(&[&fixture("spindump/shutdown_stall_idle_daemon.txt")]);
    assert!(ok, "{err}");
    assert!(!out.contains("securityd"), "securityd waits for its next message:\n{out}");
    let (ok, out, err) = explain(&["--json", &fixture("spindump/shutdown_stall_idle_daemon.txt")]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(v["culprit"]["process"], "SyncHelper");
    assert_eq!(v["waitChains"][0]["waiters"][0]["process"], "launchd");
}

#[test]
fn a_report_with_no_chain_says_so_names_no_culprit_and_keeps_busy_hangs() {
    for (file, hung) in [("spindump/busy_main_thread.txt", 1), ("spindump/no_chain_idle.txt", 0)] {
        let (ok, out, err) = explain(&[&fixture(file)]);
        assert!(ok, "{file}: {err}");
        let first = out.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("culprit: none: no process in this report is blocked by another ("),
            "{file}:\n{out}"
        );
        let (ok, out, err) = explain(&["--json", &fixture(file)]);
        assert!(ok, "{file}: {err}");
        let v: Value = serde_json::from_str(&out).expect("one JSON document");
        assert!(v["culprit"].is_null() && v["why"].is_null(), "{file}: {v}");
        assert_eq!(v["waitChains"].as_array().map(Vec::len), Some(0), "{file}: {v}");
        assert_eq!(v["appHangs"].as_array().map(Vec::len), Some(hung), "{file}: {v}");
    }
    let (_, out, _) = explain(&[&fixture("spindump/busy_main_thread.txt")]);
    assert!(
        out.lines().any(|l| l.starts_with("  Numbers [4127] main thread 0x1b0e2: hung 50/50 samples, mostly busy in")),
        "{out}"
    );
}

#[test]
fn bytes_that_are_no_report_get_one_clear_line_and_a_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let binary = dir.path().join("trace.tailspin");
    // Bytes of every value, as in a binary trace someone passed by mistake.
    std::fs::write(&binary, (0..=255u8).cycle().take(5000).collect::<Vec<u8>>()).expect("write");
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "Process: is what the doctor said\nno threads here\n").expect("write");
    let missing = dir.path().join("absent.txt");
    for (file, says) in [
        (&binary, "spindump -i FILE -stdout"),
        (&notes, "no process in it has a thread with a call tree"),
        (&missing, "cannot read"),
    ] {
        let (ok, out, err) = explain(&[file.to_str().expect("utf-8")]);
        assert!(!ok && out.is_empty(), "{}: {out}", file.display());
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("pmon: ") && err.contains(says) && !err.contains("panicked"), "{err}");
    }
}
