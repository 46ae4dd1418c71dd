//! 1 000 clients connecting, watching, asking and leaving, over the socket and over TLS:
//! the server ends with the descriptors, threads, tasks, watchers and memory it started
//! with.

use std::time::{Duration, Instant};

use pmon_proto::{
    endpoint::{Credentials, Endpoint},
    v1::{GetStatusRequest, WatchSamplesRequest},
};

use crate::{
    remote::{Pki, port},
    support::{Server, eventually, json_u64},
};

/// What a server holds: descriptors, resident memory, threads, async tasks.
#[derive(Debug, Clone, Copy)]
struct Usage {
    fds: usize,
    rss_kb: u64,
    threads: u64,
    tasks: u64,
}

/// What the server holds now. Descriptors and memory come from /proc; the collector's
/// descriptors on other processes' /proc files are left out: they follow the machine's
/// process count (other tests start and end processes), not the connections. Tasks
/// come from the server's status, whose own request's tasks count each time alike.
fn usage(server: &Server) -> Usage {
    let pid = server.pid();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fd dir")
        .flatten()
        .filter(|fd| std::fs::read_link(fd.path()).map_or(true, |target| !target.starts_with("/proc")))
        .count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {status}"))
    };
    let tasks = json_u64(&server.status()["cost"]["tasks"]);
    Usage { fds, rss_kb: field("VmRSS:"), threads: field("Threads:"), tasks }
}

/// One client's life: connect, watch one item, ask the status, go.
async fn visit(endpoint: &Endpoint) {
    let mut client = endpoint.connect().await.expect("connect");
    let mut stream = client
        .watch_samples(WatchSamplesRequest { after_sequence: None, server_instance: None })
        .await
        .expect("watch")
        .into_inner();
    tokio::time::timeout(Duration::from_secs(10), stream.message()).await.expect("an item in time").expect("ok");
    client.get_status(GetStatusRequest {}).await.expect("status");
}

/// `n` visits, alternating between the two addresses. The runtime is dropped at the
/// end, which closes the connections its background tasks still hold, as a client
/// process that exits would.
fn cycles(n: usize, local: &Endpoint, remote: &Endpoint) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        for i in 0..n {
            visit(if i % 2 == 0 { local } else { remote }).await;
        }
    });
}

/// Waits until the server reports no watchers (it notices a gone client on its next send).
fn wait_no_watchers(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while json_u64(&server.status()["watchers"]) > 0 {
        assert!(Instant::now() < deadline, "watchers still counted 20 s after every client left");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_thousand_connect_and_disconnect_cycles_leak_nothing() {
    let pki = Pki::new();
    let server = pki.server(&[]);
    let local = Endpoint::local(&server.data_dir());
    let remote: Endpoint = format!("https://localhost:{}", port(&server)).parse().expect("valid");
    let credentials = Credentials {
        token_file: Some(pki.path("token")),
        ca_file: Some(pki.path("ca.pem")),
        ..Credentials::default()
    };
    let remote = remote.with_credentials(credentials).expect("credentials");
    // Warm up: buffers, TLS session state and the allocator settle in the first cycles.
    cycles(100, &local, &remote);
    wait_no_watchers(&server);
    let before = usage(&server);
    cycles(1000, &local, &remote);
    wait_no_watchers(&server);
    // A connection's task ends once the server has seen its client go; the runtime's
    // spare blocking threads end after 10 s idle.
    let settled = |u: &Usage| u.tasks <= before.tasks && u.threads <= before.threads;
    let after = eventually(Duration::from_secs(20), || Some(usage(&server)).filter(settled)).unwrap_or_else(|| {
        panic!("tasks or threads leaked: {before:?} before, {:?} after 1000 cycles", usage(&server))
    });
    println!("1000 cycles: {before:?} -> {after:?}");
    assert!(after.fds <= before.fds + 2, "descriptors: {before:?} before, {after:?} after 1000 cycles");
    assert!(after.rss_kb <= before.rss_kb + 4096, "resident memory: {before:?} before, {after:?} after 1000 cycles");
    let status = server.status();
    assert_eq!(json_u64(&status["watchers"]), 0, "{status}");
}
