//! `pmon status`, `pmon watch`, `pmon config` and a real CPU hog.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use crate::support::{FAST, KillOnDrop, Server, Watch, json_u64, pmon, spawn_server, wait_exit};

#[test]
fn status_json_reports_tier_sample_count_and_own_cost() {
    let server = Server::start(FAST);
    let status = server.wait_samples(3);
    assert_eq!(status["source"], "proc");
    assert!(status["tier"].as_str().is_some_and(|t| t.starts_with("TIER_")), "{status}");
    assert!(json_u64(&status["sampleCount"]) >= 3);
    assert!(json_u64(&status["processCount"]) > 0);
    let cost = &status["cost"];
    assert!(json_u64(&cost["cpuTotalMicros"]) > 0, "{cost}");
    assert!(json_u64(&cost["residentBytes"]) > 1_000_000, "{cost}");
    assert!(cost["meanSampleCpuMicros"].as_f64().is_some_and(|m| m > 0.0), "{cost}");
    assert_eq!(status["dataDir"], server.data_dir().to_str().expect("utf-8"));

    let line = server.pmon(&["status"]);
    let text = String::from_utf8_lossy(&line.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("samples") && text.contains("self "), "{text}");
}

#[test]
fn watch_json_yields_samples_with_strictly_increasing_sequences() {
    let server = Server::start(FAST);
    let out = server.pmon(&["watch", "--json", "--count", "3"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let items: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(items.len(), 3);
    let seqs: Vec<u64> = items.iter().map(|i| json_u64(&i["sample"]["sequence"])).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(items.iter().all(|i| json_u64(&i["sequence"]) == json_u64(&i["sample"]["sequence"])));
}

fn rogue(sample: &Value, pid: u32) -> Option<&Value> {
    sample["rogues"].as_array()?.iter().find(|r| r["pid"].as_u64() == Some(u64::from(pid)))
}

#[test]
fn a_cpu_hog_becomes_a_rogue_explained_by_cpu_and_disappears_after_it_exits() {
    let server = Server::start(FAST);
    server.wait_samples(1);
    let mut hog = KillOnDrop(
        Command::new("sh").args(["-c", "while :; do :; done"]).stdin(Stdio::null()).spawn().expect("start hog"),
    );
    let pid = hog.id();
    // Every sample after this one was taken with the hog running.
    let after = json_u64(&server.status()["lastSequence"]);
    let watch = Watch::start(&server, &["--after", &after.to_string()]);

    let mut found = None;
    for n in 1..=3 {
        let sample = watch.next_sample(Duration::from_secs(10));
        if let Some(r) = rogue(&sample, pid).filter(|r| r["explanation"][0]["factor"] == "FACTOR_CPU") {
            found = Some((n, r.clone()));
            break;
        }
    }
    let (n, r) = found.unwrap_or_else(|| panic!("hog {pid} not a cpu rogue within 3 samples"));
    assert!(r["factors"]["cpuPercent"].as_f64().is_some_and(|c| c > 30.0), "sample {n}: {r}");
    assert!(r["selectedBy"].as_array().is_some_and(|b| b.iter().any(|f| f == "FACTOR_CPU")), "{r}");

    hog.kill().expect("kill hog");
    hog.wait().expect("reap hog");
    // Gone within 3 samples, and it stays gone.
    let listed: Vec<bool> = (0..5).map(|_| rogue(&watch.next_sample(Duration::from_secs(10)), pid).is_some()).collect();
    let first_gone = listed.iter().position(|l| !l).unwrap_or(usize::MAX);
    assert!(first_gone < 3, "hog {pid} still listed 3 samples after it exited: {listed:?}");
    assert!(listed[first_gone..].iter().all(|l| !l), "hog {pid} came back: {listed:?}");
}

#[test]
fn an_unreachable_server_gets_one_line_saying_where_and_how_to_start_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("nothing-here");
    let out = pmon(&["--data-dir", data.to_str().expect("utf-8"), "status"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("{}/daemon.sock", data.display())), "{err}");
    assert!(err.contains("start it with: pmon-server --data-dir"), "{err}");
}

#[test]
fn an_invalid_config_stops_the_server_naming_the_line_and_key() {
    for (config, want) in [
        ("# comment\n[sampling]\ninterval = 2\n", ["config.toml:3:1", "unknown field `interval`"]),
        (
            "[tiers]\nelevated_threshold = 80\ncritical_threshold = 60\n",
            ["config.toml:3:1", "tiers.critical_threshold"],
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = spawn_server(dir.path(), config);
        let status = wait_exit(&mut child, Duration::from_secs(10)).expect("server should refuse to start");
        assert!(!status.success());
        let log = std::fs::read_to_string(dir.path().join("server.log")).expect("log");
        for w in want {
            assert!(log.contains(w), "missing {w:?} in:\n{log}");
        }
        assert!(!dir.path().join("data/daemon.sock").exists());
    }
}

#[test]
fn config_show_prints_what_the_server_runs_with() {
    let server = Server::start(FAST);
    let out = server.pmon(&["config", "show"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("interval_seconds = 0.2"), "{text}");
    assert!(text.contains("critical_threshold = 75.0"), "{text}");
    let path = server.dir.path().join("config.toml");
    assert!(text.starts_with(&format!("# {}\n", path.display())), "{text}");
}

#[test]
fn an_elevated_tier_switches_to_the_faster_interval() {
    // Any process with any memory scores above 0.001: the first sample enters ELEVATED.
    let server = Server::start(
        "[sampling]\ninterval_seconds = 2.0\nelevated_interval_seconds = 0.1\n\
         [tiers]\nelevated_threshold = 0.001\ncritical_threshold = 100\n",
    );
    let watch = Watch::start(&server, &[]);
    let first = watch.next_sample(Duration::from_secs(10));
    assert_eq!(first["tier"], "TIER_ELEVATED", "{first}");
    assert_eq!(first["tierActions"][0], "TIER_ACTION_ELEVATED_ENTRY", "{first}");
    // The next samples come 0.1 s apart (generously: under 1 s), not 2 s.
    let gaps: Vec<f64> =
        (0..5).map(|_| watch.next_sample(Duration::from_secs(10))["elapsedMs"].as_f64().expect("elapsedMs")).collect();
    assert!(gaps.iter().all(|g| *g < 1000.0), "{gaps:?}");
    let status = server.status();
    assert_eq!(status["tier"], "TIER_ELEVATED");
    assert_eq!(status["intervalSeconds"].as_f64(), Some(0.1));
}

#[test]
fn connect_wins_over_a_data_dir_in_the_environment() {
    let server = Server::start(FAST);
    let socket = format!("unix://{}", server.socket().display());
    let out = Command::new(crate::support::bin("pmon"))
        .args(["--connect", &socket, "status", "--json"])
        .env("PMON_DATA_DIR", "/nonexistent/pmon")
        .output()
        .expect("run pmon");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_server_takes_its_data_dir_from_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("from-env");
    let mut child = Command::new(crate::support::bin("pmon-server"))
        .env("PMON_DATA_DIR", &data)
        .env("PMON_CONFIG", dir.path().join("absent.toml"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // An explicitly named config file that does not exist is refused, not ignored.
    let status = wait_exit(&mut child, Duration::from_secs(10)).expect("must refuse");
    assert!(!status.success());
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err).expect("read");
    assert!(err.contains("absent.toml") && err.contains("does not exist"), "{err}");

    std::fs::write(dir.path().join("present.toml"), FAST).expect("write config");
    let mut child = Command::new(crate::support::bin("pmon-server"))
        .env("PMON_DATA_DIR", &data)
        .env("PMON_CONFIG", dir.path().join("present.toml"))
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let socket = data.join("daemon.sock");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !socket.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = pmon(&["--data-dir", data.to_str().expect("utf-8"), "status", "--json"]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn config_path_follows_the_environment() {
    let out = Command::new(crate::support::bin("pmon"))
        .args(["config", "path"])
        .env("PMON_CONFIG", "/etc/pmon-test/config.toml")
        .output()
        .expect("run pmon");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "/etc/pmon-test/config.toml\n");
    let out = Command::new(crate::support::bin("pmon"))
        .args(["config", "path"])
        .env_remove("PMON_CONFIG")
        .env("XDG_CONFIG_HOME", "/xdg")
        .output()
        .expect("run pmon");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "/xdg/pause-monitor/config.toml\n");
}
