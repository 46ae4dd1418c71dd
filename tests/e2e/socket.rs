//! The socket and data directory: modes, stale sockets, one server per directory,
//! clean shutdown.

use std::{os::unix::fs::PermissionsExt, time::Duration};

use crate::support::{FAST, Server, Watch, spawn_server, wait_exit};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn socket_is_0600_inside_a_0700_directory() {
    let server = Server::start(FAST);
    assert_eq!(mode(&server.data_dir()), 0o700);
    assert_eq!(mode(&server.socket()), 0o600);
}

#[test]
fn a_stale_socket_from_a_crashed_server_is_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    // A socket file nobody listens on, as a killed server leaves behind.
    drop(std::os::unix::net::UnixListener::bind(data.join("daemon.sock")).expect("bind"));
    assert!(data.join("daemon.sock").exists());
    let server = Server::start_in(dir, FAST);
    server.wait_samples(1);
    assert!(server.log().contains("replaced a stale socket"), "{}", server.log());
}

#[test]
fn a_second_server_on_the_same_directory_refuses_to_start() {
    let first = Server::start(FAST);
    let other = tempfile::tempdir().expect("tempdir");
    // Same data directory, its own config and log.
    std::os::unix::fs::symlink(first.data_dir(), other.path().join("data")).expect("symlink");
    let mut second = spawn_server(other.path(), FAST);
    let status = wait_exit(&mut second, Duration::from_secs(10)).expect("second server must exit");
    assert!(!status.success());
    let log = std::fs::read_to_string(other.path().join("server.log")).expect("log");
    assert!(log.contains("another pmon-server") && log.contains(&format!("(pid {})", first.pid())), "{log}");
    // The first one is untouched.
    first.wait_samples(2);
    assert!(first.socket().exists());
}

#[test]
fn a_live_socket_is_never_stolen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    // Something live on the socket that does not hold the lock.
    let live = std::os::unix::net::UnixListener::bind(data.join("daemon.sock")).expect("bind");
    let mut server = spawn_server(dir.path(), FAST);
    let status = wait_exit(&mut server, Duration::from_secs(10)).expect("server must refuse");
    assert!(!status.success());
    let log = std::fs::read_to_string(dir.path().join("server.log")).expect("log");
    assert!(log.contains("already running"), "{log}");
    assert!(data.join("daemon.sock").exists());
    drop(live);
}

#[test]
fn sigterm_ends_watchers_stops_cleanly_and_removes_the_socket() {
    let mut server = Server::start(FAST);
    let mut watch = Watch::start(&server, &[]);
    watch.next_sample(Duration::from_secs(10));
    server.signal(libc::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "exit {status}:\n{}", server.log());
    assert!(!server.socket().exists(), "socket left behind");
    assert!(server.log().contains("pmon-server stopped"));
    // The watcher saw its stream end and exited (non-zero: the server went away).
    let watch_status = watch.wait_exit(Duration::from_secs(5)).expect("watcher exits");
    assert_eq!(watch_status.code(), Some(1));
}
