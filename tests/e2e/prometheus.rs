//! The fleet path (`deploy/prometheus/`): a real Prometheus scraping two real pmon
//! servers, its HTTP API asked what it holds, and the alert rules checked and unit
//! tested by promtool. The Prometheus server and promtool come from the Debian package
//! `prometheus`, which scripts/test unpacks into `.tools/`.

#[path = "../shared/prometheus.rs"]
mod prom;

use std::{path::Path, process::Command, time::Duration};

use prom::{api, deploy, query, tool};

use crate::support::{FAST, Server, eventually};

fn run_promtool(args: &[&str], dir: &Path) -> String {
    let out = Command::new(tool("promtool")).args(args).current_dir(dir).output().expect("run promtool");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {args:?}: {said}");
    said
}

#[test]
fn the_shipped_configuration_and_alert_rules_pass_promtool_and_their_unit_tests() {
    let dir = deploy("");
    assert!(run_promtool(&["check", "rules", "rules.yml"], &dir).contains("SUCCESS: 4 rules found"));
    assert!(run_promtool(&["test", "rules", "rules.test.yml"], &dir).contains("SUCCESS"));
    assert!(run_promtool(&["check", "config", "prometheus.yml"], &dir).contains("valid prometheus config"));
}

#[test]
fn a_real_prometheus_scrapes_two_servers_and_sees_one_of_them_pause() {
    let args = ["--metrics", "127.0.0.1:0"];
    let (a, b) = (
        Server::start_with(tempfile::tempdir().expect("tempdir"), FAST, &args),
        Server::start_with(tempfile::tempdir().expect("tempdir"), FAST, &args),
    );
    let targets = [a.logged_address("serving metrics"), b.logged_address("serving metrics")];
    let dir = tempfile::tempdir().expect("tempdir");
    let (_prometheus, address) = prom::start(dir.path(), &targets);
    let log = || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();

    let mut both = targets.to_vec();
    both.sort();
    assert_eq!(prom::wait_up(&address, 2, Duration::from_secs(60)), both, "{}", log());
    let samples = query(&address, "pmon_samples_total");
    assert_eq!(samples.len(), 2, "{samples:?}");
    assert!(samples.iter().all(|(_, v)| *v > 0.0), "{samples:?}");

    let rules = api(&address, "/api/v1/rules").expect("rules");
    let loaded: Vec<&str> = rules["data"]["groups"][0]["rules"]
        .as_array()
        .expect("the pmon group")
        .iter()
        .filter(|r| r["health"] == "ok")
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(loaded, ["PmonPauseRecorded", "PmonCriticalStress", "PmonDown", "PmonSamplingFailing"]);

    // A pause of the first server alone (stopped for 3 s): recorded by it, counted
    // as a suspension (not a freeze of the machine), on its series only.
    a.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(3));
    a.signal(libc::SIGCONT);
    let counted = eventually(Duration::from_secs(60), || {
        let s = query(&address, "pmon_server_suspensions_total");
        (s.len() == 2 && s.iter().any(|(_, v)| *v >= 1.0)).then_some(s)
    })
    .unwrap_or_else(|| panic!("the suspension within 60 s:\n{}", log()));
    let value = |instance: &str| counted.iter().find(|(i, _)| i == instance).map(|(_, v)| *v);
    assert_eq!(value(&targets[0]), Some(1.0), "{counted:?}");
    assert_eq!(value(&targets[1]), Some(0.0), "{counted:?}");
    let pauses = query(&address, "pmon_pauses_total");
    assert!(pauses.iter().all(|(_, v)| *v == 0.0), "a server stopped is no freeze of the machine: {pauses:?}");
}
