//! The fleet path (`deploy/prometheus/`): a real Prometheus scraping two real pmon
//! servers, its HTTP API asked what it holds, and the alert rules checked and unit
//! tested by promtool. The Prometheus server and promtool come from the Debian package
//! `prometheus`, which scripts/test unpacks into `.tools/`.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use crate::support::{FAST, KillOnDrop, Server, eventually, repo};

/// A tool of the unpacked Debian package, or from PATH.
fn tool(name: &str) -> PathBuf {
    let unpacked = repo().join(".tools/prometheus/usr/bin").join(name);
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name));
    std::iter::once(unpacked)
        .chain(on_path)
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name}: scripts/test unpacks it from the Debian package prometheus into .tools/"))
}

fn deploy(file: &str) -> PathBuf {
    repo().join("deploy/prometheus").join(file)
}

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

/// Percent-encodes a query for a URL.
fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET path` from Prometheus' HTTP API, as JSON. HTTP/1.0, so the answer is the body
/// up to the close, never chunked.
fn api(address: &str, path: &str) -> Option<Value> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200").then(|| serde_json::from_str(body).ok()).flatten()
}

/// The instant vector of a query: (instance, value) per series.
fn query(address: &str, promql: &str) -> Vec<(String, f64)> {
    let Some(answer) = api(address, &format!("/api/v1/query?query={}", encode(promql))) else { return Vec::new() };
    let series = answer["data"]["result"].as_array().cloned().unwrap_or_default();
    let mut out: Vec<(String, f64)> = series
        .iter()
        .filter_map(|s| {
            let instance = s["metric"]["instance"].as_str()?.to_string();
            Some((instance, s["value"][1].as_str()?.parse().ok()?))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Prometheus scraping `targets` every second with the shipped rules.
fn prometheus(dir: &Path, targets: &[String]) -> (KillOnDrop, String) {
    let config = dir.join("prometheus.yml");
    let rules = deploy("rules.yml");
    let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: \
             pmon\n    static_configs:\n      - targets: [{}]\n",
            rules.display(),
            targets.join(", ")
        ),
    )
    .expect("write the configuration");
    let address = format!("127.0.0.1:{}", free_port());
    let child = Command::new(tool("prometheus"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg(format!("--web.listen-address={address}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).expect("log"))
        .spawn()
        .expect("start prometheus");
    (KillOnDrop(child), address)
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
    let (_prometheus, address) = prometheus(dir.path(), &targets);
    let log = || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();

    let mut both = targets.to_vec();
    both.sort();
    let up = eventually(Duration::from_secs(60), || {
        let up = query(&address, "up{job=\"pmon\"}");
        (up.len() == 2 && up.iter().all(|(_, v)| *v == 1.0)).then_some(up)
    })
    .unwrap_or_else(|| panic!("both servers up within 60 s:\n{}", log()));
    assert_eq!(up.iter().map(|(i, _)| i.clone()).collect::<Vec<_>>(), both);
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
