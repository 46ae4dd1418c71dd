//! The macOS `top` and `powermetrics` sources, end to end on any OS: a stand-in tool,
//! first on PATH, prints a capture written in the tool's exact format
//! (fixtures/macos/) at the pace it is asked for, and the real server streams what it
//! says, survives the tool being killed and stops it when it stops.

use std::{
    ffi::OsString,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::support::{Server, Watch, json_u64};

/// Writes `<dir>/bin/top`: it checks it was asked for what pmon asks `top` for, records
/// its pid in `<dir>/top.pids`, prints `capture` (under fixtures/macos/top/) one sample
/// per `-s` seconds, then waits as a live `top -l 0` would.
pub(crate) fn top_stand_in(dir: &Path, capture: &str) -> PathBuf {
    let capture = crate::support::repo().join("fixtures/macos/top").join(capture);
    let script = format!(
        r#"#!/bin/sh
if [ "$1 $2 $3 $5 $6" != "-l 0 -s -stats pid,command,cpu,state,mem,cmprs,threads,csw,sysbsd,pageins" ]; then
  echo "stand-in top: unexpected arguments: $*" >&2
  exit 2
fi
echo $$ >> '{pids}'
first=1
while IFS= read -r line; do
  case "$line" in Processes:*) [ "$first" = 1 ] || sleep "$4"; first=0 ;; esac
  printf '%s\n' "$line"
done < '{capture}'
exec sleep 600
"#,
        pids = dir.join("top.pids").display(),
        capture = capture.display(),
    );
    install(dir, "top", &script)
}

/// Writes `<dir>/bin/powermetrics`: it checks its arguments, records its pid in
/// `<dir>/powermetrics.pids`, prints the capture's documents (each with its `\n\0`)
/// one per `-i` milliseconds, then waits.
fn powermetrics_stand_in(dir: &Path) -> PathBuf {
    let capture = crate::support::repo().join("fixtures/macos/powermetrics/stream_nul_after_each.plist");
    let bytes = std::fs::read(&capture).expect("capture");
    let mut cat = Vec::new();
    for (i, doc) in bytes.split_inclusive(|b| *b == 0).enumerate() {
        let file = dir.join(format!("document{i}"));
        std::fs::write(&file, doc).expect("write document");
        cat.push(format!("cat '{}'", file.display()));
    }
    let script = format!(
        r#"#!/bin/sh
if [ "$1 $2 $3 $5 $6 $7" != "-f plist -i --samplers tasks,thermal,cpu_power,gpu_power,disk --show-process-io" ]; then
  echo "stand-in powermetrics: unexpected arguments: $*" >&2
  exit 2
fi
echo $$ >> '{pids}'
pace=$(( $4 / 1000 ))
{documents}
exec sleep 600
"#,
        pids = dir.join("powermetrics.pids").display(),
        documents = cat.join("\nsleep \"$pace\"\n"),
    );
    install(dir, "powermetrics", &script)
}

fn install(dir: &Path, name: &str, script: &str) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("bin dir");
    let path = bin.join(name);
    std::fs::write(&path, script).expect("write stand-in");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    bin
}

/// A server with `bin` first on its PATH.
fn start(dir: tempfile::TempDir, bin: &Path, config: &str) -> Server {
    let mut path = OsString::from(bin);
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    Server::start_with_env(dir, config, &[("PATH", &path)])
}

fn stand_in_pids(dir: &Path, tool: &str) -> Vec<i32> {
    let text = std::fs::read_to_string(dir.join(format!("{tool}.pids"))).unwrap_or_default();
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> Option<Value>) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn rogue(sample: &Value, pid: u64) -> Value {
    let rogues = sample["rogues"].as_array().cloned().unwrap_or_default();
    rogues.into_iter().find(|r| r["pid"].as_u64() == Some(pid)).unwrap_or_else(|| panic!("no rogue {pid} in {sample}"))
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn top_source_streams_the_capture_and_survives_top_being_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = top_stand_in(dir.path(), "stream_pmon_stats.log");
    let mut server = start(dir, &bin, "[sampling]\nsource = \"top\"\ninterval_seconds = 1\n");
    let dir = server.dir.path().to_path_buf();

    let watch = Watch::start(&server, &[]);
    let samples: Vec<Value> = (0..4).map(|_| watch.next_sample(Duration::from_secs(15))).collect();

    // First sample: levels only — top's first %CPU means nothing and rates need two.
    let first = &samples[0];
    assert_eq!(first["processCount"], 7, "{first}");
    assert_eq!(first["tier"], "TIER_SENTINEL", "{first}");
    let mds = rogue(first, 666);
    assert_eq!(mds["command"], "mds_stores");
    assert_eq!(mds["state"], "PROCESS_STATE_STUCK");
    assert!(mds["factors"]["cpuPercent"].is_null(), "{mds}");
    assert_eq!(json_u64(&mds["factors"]["memBytes"]), 4096 << 20);
    assert!((mds["score"].as_f64().expect("score") - 27.5).abs() < 1e-6, "stuck 20 + 4 GiB 7.5: {mds}");

    // Second sample, one second later: the stuck pager at full CPU is ELEVATED.
    let second = &samples[1];
    assert_eq!(second["tier"], "TIER_ELEVATED", "{second}");
    assert_eq!(second["tierActions"][0], "TIER_ACTION_ELEVATED_ENTRY", "{second}");
    let top = &second["rogues"][0];
    assert_eq!(top["pid"], 666, "{second}");
    assert_eq!(top["factors"]["cpuPercent"], 100.0);
    // Rates are over the real time between samples, which the stand-in keeps at ~1 s.
    let pageins = top["factors"]["pageinsPerSec"].as_f64().expect("page-ins rate");
    assert!((1000.0..=2500.0).contains(&pageins), "about 1 500/s: {top}");
    assert!(top["factors"]["cmprsBytes"].is_null(), "N/A in the capture is unavailable: {top}");
    let score = top["score"].as_f64().expect("score");
    assert!((60.0..75.0).contains(&score), "ELEVATED, not CRITICAL: {top}");
    // The capture's zombie has been one for a second only: every exiting process is,
    // for a moment, so it is no rogue until it has stayed unreaped for 5 s.
    let rogues = second["rogues"].as_array().expect("rogues");
    assert!(rogues.iter().all(|r| r["pid"] != 4321), "a young zombie is no rogue: {second}");
    assert!(samples[2..].iter().all(|s| s["tier"] == "TIER_ELEVATED"), "{samples:?}");

    let status = server.status();
    assert_eq!(status["source"], "top");
    assert_eq!(json_u64(&status["sourceRestarts"]), 0, "{status}");

    kill_restart_stop(&mut server, &dir, "top");
}

/// Kills the stand-in: the server carries on, restarts it and says so; stopping the
/// server then stops the restarted one.
fn kill_restart_stop(server: &mut Server, dir: &Path, tool: &str) {
    let killed = stand_in_pids(dir, tool)[0];
    // SAFETY: kill has no memory-safety preconditions; the pid is the stand-in's.
    assert_eq!(unsafe { libc::kill(killed, libc::SIGKILL) }, 0);
    let status = wait_for("a restart in status", Duration::from_secs(15), || {
        let s = server.status();
        (json_u64(&s["sourceRestarts"]) >= 1).then_some(s)
    });
    let problem = status["sourceProblem"].as_str().unwrap_or_default();
    assert!(problem.contains(&format!("{tool} exited")) && problem.contains("restarting in"), "{status}");
    assert!(status["sourceProblemAt"].is_string(), "{status}");
    let after_kill = json_u64(&status["sampleCount"]);
    wait_for("samples from the restarted tool", Duration::from_secs(15), || {
        let s = server.status();
        (json_u64(&s["sampleCount"]) > after_kill).then_some(s)
    });
    let line = server.pmon(&["status"]);
    let line = String::from_utf8_lossy(&line.stdout);
    assert!(line.contains(&format!("{tool} restarted once (last: {tool} exited")), "{line}");
    let pids = stand_in_pids(dir, tool);
    assert!(pids.len() >= 2, "started again: {pids:?}");

    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(15)).success(), "{}", server.log());
    let running = *pids.last().expect("a pid");
    wait_for("the stand-in to end with the server", Duration::from_secs(5), || {
        (!alive(running)).then_some(Value::Null)
    });
}

#[test]
fn powermetrics_source_streams_the_capture_and_survives_powermetrics_being_killed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = powermetrics_stand_in(dir.path());
    let mut server = start(dir, &bin, "[sampling]\nsource = \"powermetrics\"\ninterval_seconds = 1\n");
    let dir = server.dir.path().to_path_buf();

    let watch = Watch::start(&server, &[]);
    let samples: Vec<Value> = (0..3).map(|_| watch.next_sample(Duration::from_secs(15))).collect();
    assert!(samples.iter().all(|s| s["processCount"] == 3), "ALL_TASKS is no process: {samples:?}");
    // powermetrics measures the interval itself: its elapsed_ns is the sample's.
    assert!((samples[0]["elapsedMs"].as_f64().expect("elapsed") - 1002.113).abs() < 1e-6, "{}", samples[0]);
    let first = rogue(&samples[0], 812);
    assert!((first["factors"]["cpuPercent"].as_f64().expect("cpu") - 1.25).abs() < 1e-9, "12.5 ms/s: {first}");
    // Second document: mds_stores at 998.7 ms/s paging in 1 800.5 pages/s.
    let second = &samples[1];
    let top = &second["rogues"][0];
    assert_eq!((top["pid"].as_u64(), top["command"].as_str()), (Some(812), Some("mds_stores")), "{second}");
    assert!((top["factors"]["cpuPercent"].as_f64().expect("cpu") - 99.87).abs() < 1e-9, "{top}");
    assert_eq!(top["factors"]["pageinsPerSec"], 1800.5);
    assert!(top["factors"]["memBytes"].is_null() && top["factors"]["cswPerSec"].is_null(), "not measured: {top}");
    assert!((top["score"].as_f64().expect("score") - (25.0 * 0.9987 + 15.0)).abs() < 1e-9, "{top}");
    // mds_stores alone (40) stays below ELEVATED; the third document's heavy thermal
    // pressure is machine stress that enters it (2 of 3 on the heat ramp: 66.7).
    assert!(samples[..2].iter().all(|s| s["tier"] == "TIER_SENTINEL"), "{samples:?}");
    assert_eq!(samples[2]["tier"], "TIER_ELEVATED", "{}", samples[2]);
    assert_eq!(samples[2]["machine"]["reason"], "thermal: thermal pressure heavy", "{}", samples[2]);
    assert_eq!(rogue(&samples[2], 5120)["command"], "Google Chrome Helper (Renderer)");
    // The machine figures powermetrics adds: thermal pressure, GPU busy (1 − idle_ratio)
    // and disk throughput.
    let system = &samples[0]["system"];
    assert_eq!(system["thermalPressure"], "THERMAL_PRESSURE_NOMINAL", "{system}");
    assert!((system["gpuBusyPercent"].as_f64().expect("gpu") - 13.7886).abs() < 1e-3, "{system}");
    assert_eq!(system["diskReadBytesPerSec"], 48211.6, "{system}");

    let status = server.status();
    assert_eq!(status["source"], "powermetrics");
    kill_restart_stop(&mut server, &dir, "powermetrics");
}
