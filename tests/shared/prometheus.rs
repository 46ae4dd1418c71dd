//! A real Prometheus for the tests, from the Debian package `prometheus` that
//! scripts/test unpacks into `.tools/` (or from PATH), and its HTTP API. Shared by the
//! end-to-end tests and the stall lab.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

/// The repository root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// A file of `deploy/prometheus/`.
pub fn deploy(file: &str) -> PathBuf {
    repo().join("deploy/prometheus").join(file)
}

/// A tool of the unpacked Debian package, or from PATH.
pub fn tool(name: &str) -> PathBuf {
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
pub fn api(address: &str, path: &str) -> Option<Value> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200").then(|| serde_json::from_str(body).ok()).flatten()
}

/// The instant vector of a query: (instance, value) per series.
pub fn query(address: &str, promql: &str) -> Vec<(String, f64)> {
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Prometheus scraping `targets` every second with the shipped rules.
pub fn start(dir: &Path, targets: &[String]) -> (Running, String) {
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
    (Running(child), address)
}

/// A running Prometheus; killed and reaped on drop.
pub struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        // Failing means it already exited; the wait reaps it either way.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until every target is up in Prometheus; returns the instances, sorted.
pub fn wait_up(address: &str, targets: usize, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    loop {
        let up = query(address, "up{job=\"pmon\"}");
        if up.len() == targets && up.iter().all(|(_, v)| *v == 1.0) {
            return up.into_iter().map(|(i, _)| i).collect();
        }
        assert!(Instant::now() < deadline, "{targets} targets up within {limit:?}: {up:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
