//! A server in a mount namespace of its own, where the tests make the operating system
//! misbehave for it alone: files bind-mounted over /proc, a tiny filesystem as its data
//! directory. Needs root and util-linux's unshare and nsenter (part of every Debian).

use std::process::Command;

use tempfile::TempDir;

use crate::support::{Server, server_command};

/// Fails the test unless this machine lets it give a server a mount namespace (the
/// tests that need one are ignored by default; scripts/test runs them as root).
pub fn require() {
    let works = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(works, "this test needs root and unshare(1) to give the server a mount namespace");
}

impl Server {
    /// Starts a server in a private mount namespace after running the shell commands
    /// `setup` there (as root: mounts that only the server sees), then `wrapper` (a
    /// command that execs the rest, e.g. setpriv), if any. `$DATA` in `setup` is the
    /// data directory.
    pub fn start_namespaced(dir: TempDir, config: &str, setup: &str, wrapper: &[&str]) -> Server {
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        let mut prefix: Vec<String> =
            ["unshare", "--mount", "--propagation", "private", "sh", "-c"].into_iter().map(String::from).collect();
        prefix.push(format!("DATA='{}'\n{setup}\nexec \"$@\"", data.display()));
        prefix.push("sh".into());
        prefix.extend(wrapper.iter().map(|w| (*w).to_string()));
        let child = server_command(dir.path(), config, &[], &prefix).spawn().expect("spawn unshare pmon-server");
        let mut server = Server { child, args: vec![], dir, namespaced: true };
        server.wait_ready();
        server
    }

    /// Runs `nsenter --mount` into the server's namespace with `args`; panics on failure.
    pub fn in_namespace(&self, args: &[&str]) {
        let out = Command::new("nsenter")
            .args(["--target", &self.pid().to_string(), "--mount", "--"])
            .args(args)
            .output()
            .expect("nsenter");
        assert!(out.status.success(), "nsenter {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
