//! Starting the real `pmon-server` binary on a temporary data directory and talking to
//! it the way users do: the `pmon` binary, grpcurl, and the generated client.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant, SystemTime},
};

use serde_json::Value;
use tempfile::TempDir;

/// Samples five times a second, so tests see several samples quickly.
pub const FAST: &str = "[sampling]\ninterval_seconds = 0.2\nelevated_interval_seconds = 0.2\n";

/// The repository's root (this package is its `tests/` folder): fixtures, snapshots and
/// `.tools/` are found from here.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// A built binary of the workspace, next to this test's own directory
/// (`target/<profile>/deps/e2e-…` → `target/<profile>/NAME`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let path = exe.parent().and_then(Path::parent).expect("target dir").join(name);
    let built = std::fs::metadata(&path).and_then(|m| m.modified()).unwrap_or_else(|_| {
        panic!("{} is not built; run scripts/test (or `cargo build --workspace` before `cargo test`)", path.display())
    });
    // Cargo lists every file a binary was built from in its dep-info file: only the
    // files compiled for this platform, so an edit to macOS-only code does not make the
    // Linux binary look stale.
    let dep_info = path.with_extension("d");
    let listed = std::fs::read_to_string(&dep_info)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}; run scripts/test", dep_info.display()));
    let newest = newest_source(&listed);
    assert!(
        built >= newest,
        "{} is older than the sources; run scripts/test (or `cargo build --workspace` first)",
        path.display()
    );
    path
}

/// The newest modification time among the files of a dep-info file
/// (`target: file file\ with\ space …`).
fn newest_source(dep_info: &str) -> SystemTime {
    let files = dep_info.lines().next().and_then(|l| l.split_once(": ")).map_or("", |(_, files)| files);
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut file = String::new();
    let mut escaped = false;
    for c in files.chars().chain(std::iter::once(' ')) {
        match c {
            '\\' if !escaped => escaped = true,
            ' ' if !escaped => {
                if let Ok(m) = std::fs::metadata(&file).and_then(|m| m.modified()) {
                    newest = newest.max(m);
                }
                file.clear();
            }
            _ => {
                file.push(c);
                escaped = false;
            }
        }
    }
    newest
}

/// A running `pmon-server` on its own temporary data directory; killed on drop.
pub struct Server {
    pub(crate) child: Child,
    /// Command-line arguments beyond the config and data directory.
    pub(crate) args: Vec<String>,
    /// Holds the data directory, config and log.
    pub dir: TempDir,
    /// The server runs in a mount namespace of its own (see `namespace.rs`): its files
    /// are reached through /proc/PID/root.
    pub(crate) namespaced: bool,
}

impl Server {
    /// Starts a server with this configuration text and waits until it accepts.
    pub fn start(config: &str) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        Server::start_in(dir, config)
    }

    /// Starts a server in a prepared directory (its `data/` may already hold things).
    pub fn start_in(dir: TempDir, config: &str) -> Server {
        Server::start_with(dir, config, &[])
    }

    /// Starts a server with extra command-line arguments.
    pub fn start_with(dir: TempDir, config: &str, args: &[&str]) -> Server {
        Server::start_full(dir, config, args, &[])
    }

    /// Starts a server in a prepared directory with extra environment variables
    /// (e.g. a PATH that puts stand-in tools first).
    pub fn start_with_env(dir: TempDir, config: &str, env: &[(&str, &std::ffi::OsStr)]) -> Server {
        Server::start_full(dir, config, &[], env)
    }

    fn start_full(dir: TempDir, config: &str, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Server {
        let args: Vec<String> = args.iter().map(|a| (*a).to_string()).collect();
        let mut command = server_command(dir.path(), config, &args, &[]);
        command.envs(env.iter().copied());
        let child = command.spawn().expect("spawn pmon-server");
        let mut server = Server { child, args, dir, namespaced: false };
        server.wait_ready();
        server
    }

    /// The data directory as this process reaches it.
    pub fn data_dir(&self) -> PathBuf {
        let data = self.dir.path().join("data");
        if self.namespaced {
            let inside = data.strip_prefix("/").expect("absolute temporary directory");
            return Path::new("/proc").join(self.pid().to_string()).join("root").join(inside);
        }
        data
    }

    pub fn socket(&self) -> PathBuf {
        self.data_dir().join("daemon.sock")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub(crate) fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("pmon-server exited early ({status}):\n{}", self.log());
            }
            if std::os::unix::net::UnixStream::connect(self.socket()).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("pmon-server did not listen within 20 s:\n{}", self.log());
    }

    /// The TCP address the server says it listens on (`--listen`, port 0 allowed).
    pub fn tcp_address(&self) -> String {
        self.logged_address("listening on TCP")
    }

    /// The `address=` of the first log line containing `marker`, waiting for it (the
    /// socket accepts before the rest of start-up is logged).
    pub fn logged_address(&self, marker: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| l.contains(marker)) {
                let rest = &line[line.find("address=").expect("address in the log line") + "address=".len()..];
                return rest.split_whitespace().next().expect("an address").to_string();
            }
            assert!(Instant::now() < deadline, "nothing logged {marker:?} within 20 s:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `pmon --data-dir <this server's> ARGS`.
    pub fn pmon(&self, args: &[&str]) -> Output {
        let data = self.data_dir();
        let mut full = vec!["--data-dir", data.to_str().expect("utf-8 path")];
        full.extend_from_slice(args);
        pmon(&full)
    }

    /// `pmon status --json`, parsed.
    pub fn status(&self) -> Value {
        let out = self.pmon(&["status", "--json"]);
        assert!(out.status.success(), "pmon status failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("status is JSON")
    }

    /// Waits until the server has taken at least `n` samples.
    pub fn wait_samples(&self, n: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = self.status();
            if json_u64(&status["sampleCount"]) >= n {
                return status;
            }
            assert!(Instant::now() < deadline, "fewer than {n} samples after 20 s: {status}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A client from the generated stubs over the socket.
    pub async fn client(&self) -> pmon_proto::endpoint::Client {
        pmon_proto::endpoint::Endpoint::local(&self.data_dir()).connect().await.expect("connect")
    }

    /// Sends a signal to the server.
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.pid()).expect("pid fits");
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill failed");
    }

    /// Stops the server (SIGTERM) and starts it again on the same directory and config.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Stops the server (SIGTERM) and waits for a clean exit.
    pub fn stop(&mut self) {
        self.signal(libc::SIGTERM);
        let status = self.wait_exit(Duration::from_secs(15));
        assert!(status.success(), "stop: {status}\n{}", self.log());
    }

    /// Starts a stopped server again on the same directory and config.
    pub fn start_again(&mut self) {
        let config = std::fs::read_to_string(self.dir.path().join("config.toml")).expect("config");
        // A namespaced server's mounts ended with it: it starts again in the ordinary one.
        self.namespaced = false;
        self.child = spawn_server_with(self.dir.path(), &config, &self.args);
        self.wait_ready();
    }

    /// Kills the server with SIGKILL and starts it again on the same directory.
    pub fn crash_and_restart(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.wait_exit(Duration::from_secs(15));
        let config = std::fs::read_to_string(self.dir.path().join("config.toml")).expect("config");
        self.child = spawn_server_with(self.dir.path(), &config, &self.args);
        self.wait_ready();
    }

    /// `pmon ARGS --json`-style output of this server, parsed.
    pub fn pmon_json(&self, args: &[&str]) -> Value {
        let out = self.pmon(args);
        assert!(out.status.success(), "pmon {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("pmon {args:?} is not JSON: {e}"))
    }

    /// Waits for the server to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        wait_exit(&mut self.child, limit)
            .unwrap_or_else(|| panic!("pmon-server still running after {limit:?}:\n{}", self.log()))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `pmon-server --config <dir>/config.toml --data-dir <dir>/data`, logging to
/// `<dir>/server.log`; does not wait.
pub fn spawn_server(dir: &Path, config: &str) -> Child {
    spawn_server_with(dir, config, &[])
}

/// [`spawn_server`] with extra command-line arguments.
pub fn spawn_server_with(dir: &Path, config: &str, args: &[String]) -> Child {
    server_command(dir, config, args, &[]).spawn().expect("spawn pmon-server")
}

/// The command [`spawn_server_with`] runs (it writes the config and creates the log),
/// run through `prefix` if it is not empty.
pub(crate) fn server_command(dir: &Path, config: &str, args: &[String], prefix: &[String]) -> Command {
    let config_path = dir.join("config.toml");
    std::fs::write(&config_path, config).expect("write config");
    let log = std::fs::File::create(dir.join("server.log")).expect("log file");
    let mut command = match prefix.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(bin("pmon-server"));
            c
        }
        None => Command::new(bin("pmon-server")),
    };
    command
        .arg("--config")
        .arg(&config_path)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(args)
        .env("PMON_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    command
}

/// Waits for a child to exit; `None` if it is still running after `limit`.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `pmon ARGS` with no inherited data-dir setting.
pub fn pmon(args: &[&str]) -> Output {
    Command::new(bin("pmon"))
        .args(args)
        .env_remove("PMON_DATA_DIR")
        .env_remove("PMON_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run pmon")
}

/// A number from proto3 JSON, where 64-bit integers are strings.
pub fn json_u64(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not a number: {v}")),
        Value::Number(n) => n.as_u64().unwrap_or_else(|| panic!("not a u64: {v}")),
        // proto3 JSON leaves out fields at their default, 0.
        Value::Null => 0,
        other => panic!("not a number: {other}"),
    }
}

/// A long-running `pmon … watch --json` whose lines arrive on a channel.
pub struct Watch {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watch {
    pub fn start(server: &Server, extra: &[&str]) -> Watch {
        let data = server.data_dir();
        let mut child = Command::new(bin("pmon"))
            .arg("--data-dir")
            .arg(&data)
            .args(["watch", "--json"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn pmon watch");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watch { child, lines }
    }

    /// The next stream item, parsed; panics after `limit`.
    pub fn next(&self, limit: Duration) -> Value {
        let line = self.lines.recv_timeout(limit).unwrap_or_else(|e| panic!("no watch line within {limit:?}: {e}"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad JSON line {line:?}: {e}"))
    }

    /// The next sample (skipping `missed` items).
    pub fn next_sample(&self, limit: Duration) -> Value {
        loop {
            let item = self.next(limit);
            if !item["sample"].is_null() {
                return item["sample"].clone();
            }
        }
    }

    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        wait_exit(&mut self.child, limit)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process that is killed and reaped when the test ends, pass or fail, so a
/// failing test never leaves a hog burning the machine under the tests after it.
pub struct KillOnDrop(pub std::process::Child);

impl std::ops::Deref for KillOnDrop {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits up to `limit` for `f` to return something.
pub fn eventually<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SQLite's own verdict on a database file (`ok` when sound), read with another
/// SQLite than the server's (Python's).
pub fn integrity(db: &Path) -> String {
    let check = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA integrity_check').fetchone()[0])",
        ])
        .arg(db)
        .output()
        .expect("python3 sqlite3");
    assert!(check.status.success(), "integrity check: {}", String::from_utf8_lossy(&check.stderr));
    String::from_utf8_lossy(&check.stdout).trim().to_string()
}
