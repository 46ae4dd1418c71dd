//! The metrics endpoint (`--metrics HOST:PORT`): scraped over plain HTTP as Prometheus
//! does, and checked by `promtool check metrics`.

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use crate::support::{FAST, Server};

/// `GET /metrics` with these extra header lines; the whole answer.
fn scrape(address: &str, headers: &str) -> String {
    let mut stream = TcpStream::connect(address).expect("connect to the metrics endpoint");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {address}\r\n{headers}\r\n").expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
}

/// The body of an HTTP answer, after checking its status line and content type.
fn body<'a>(answer: &'a str, content_type: &str) -> &'a str {
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    // Header names are case-insensitive (hyper writes them in lower case).
    assert!(head.to_ascii_lowercase().contains(&format!("content-type: {content_type}")), "{head}");
    body
}

fn value(body: &str, name: &str) -> f64 {
    let line =
        body.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("no {name}:\n{body}"));
    line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("not a number: {line}"))
}

/// promtool from PATH or from where scripts/test unpacks it.
fn promtool() -> Option<PathBuf> {
    let unpacked = crate::support::repo().join(".tools/prometheus/usr/bin/promtool");
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("promtool"));
    std::iter::once(unpacked).chain(on_path).find(|p| p.is_file())
}

#[test]
fn the_endpoint_serves_the_listed_metrics_in_both_text_formats() {
    let server = Server::start_with(tempfile::tempdir().expect("tempdir"), FAST, &["--metrics", "127.0.0.1:0"]);
    server.wait_samples(3);
    let address = server.logged_address("serving metrics");
    assert!(server.log().contains("no authentication"), "{}", server.log());

    let answer = scrape(&address, "");
    let text = body(&answer, "text/plain; version=0.0.4");
    assert!(value(text, "pmon_samples_total") >= 3.0, "{text}");
    assert_eq!(value(text, "pmon_tier"), 1.0, "{text}");
    assert!((0.0..=100.0).contains(&value(text, "pmon_max_score")), "{text}");
    assert!(value(text, "pmon_self_cpu_seconds_total") > 0.0, "{text}");
    for name in [
        "pmon_pauses_total",
        "pmon_pause_duration_seconds_count",
        "pmon_watcher_missed_samples_total",
        "pmon_lost_writes_total",
    ] {
        value(text, name);
    }
    let rogues = text.lines().filter(|l| l.starts_with("pmon_top_rogue_score{command=")).count();
    assert_eq!(rogues, 1, "one top rogue series:\n{text}");

    let accept = "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n";
    let answer = scrape(&address, accept);
    let openmetrics = body(&answer, "application/openmetrics-text; version=1.0.0");
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
    assert!(openmetrics.contains("# TYPE pmon_samples counter\n"), "{openmetrics}");

    let promtool =
        promtool().expect("promtool: scripts/test unpacks it from the Debian package prometheus into .tools/");
    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    check.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("feed promtool");
    let out = check.wait_with_output().expect("promtool");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}\n{text}");
}

#[test]
fn a_bad_metrics_address_stops_the_server_saying_what_is_expected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = vec!["--metrics".to_string(), "no-port-here".to_string()];
    let mut child = crate::support::spawn_server_with(dir.path(), FAST, &args);
    let status = crate::support::wait_exit(&mut child, Duration::from_secs(15)).expect("refuses");
    assert!(!status.success());
    let log = std::fs::read_to_string(dir.path().join("server.log")).expect("log");
    assert!(log.contains("cannot serve metrics on no-port-here") && log.contains("HOST:PORT"), "{log}");
}
