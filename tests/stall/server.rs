//! The real `pmon-server` on a temporary data directory, driven with the real `pmon`.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime},
};

use serde_json::Value;
use tempfile::TempDir;

/// The lab's sampling: five times a second.
const FAST: &str = "[sampling]\ninterval_seconds = 0.2\nelevated_interval_seconds = 0.2\n";

/// How pmon-server runs in a scenario: every scenario runs both ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// The lab's: as root, sampling every 0.2 s (its sampler at real-time priority).
    Lab,
    /// Where people run it: the built-in defaults (1 s sampling), as an ordinary user
    /// (`nobody`, through setpriv), as a systemd user unit or a LaunchAgent does.
    Defaults,
}

impl Setup {
    /// Its name in the lab's table.
    pub fn name(self) -> &'static str {
        match self {
            Setup::Lab => "lab",
            Setup::Defaults => "defaults",
        }
    }

    /// The configuration file: the lab's fast sampling, or empty (every default).
    fn config(self) -> &'static str {
        match self {
            Setup::Lab => FAST,
            Setup::Defaults => "",
        }
    }

    /// Samples taken before a stall: a few seconds of lead-up for the attribution.
    fn warm_up_samples(self) -> u64 {
        match self {
            Setup::Lab => 10,
            Setup::Defaults => 4,
        }
    }

    /// What runs the server binary: itself as root, or setpriv dropping to `nobody`.
    fn runner(self) -> Vec<&'static str> {
        match self {
            Setup::Lab => vec![],
            Setup::Defaults => vec!["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"],
        }
    }
}

/// The uid and gid of `nobody`, whom the defaults run as.
const NOBODY: (u32, u32) = (65534, 65534);

/// A built binary of the workspace next to this test's directory
/// (`target/<profile>/deps/stall-…` → `target/<profile>/NAME`), refused when older than
/// the files cargo lists in its dep-info (a stale binary would test old code).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let path = exe.parent().and_then(Path::parent).expect("target dir").join(name);
    let built = std::fs::metadata(&path).and_then(|m| m.modified()).unwrap_or_else(|_| {
        panic!("{} is not built; run scripts/stall-lab (or `cargo build --workspace --bins` first)", path.display())
    });
    let dep_info = std::fs::read_to_string(path.with_extension("d"))
        .unwrap_or_else(|e| panic!("cannot read the dep-info of {}: {e}", path.display()));
    // `target: file file\ with\ space …`: split at unescaped spaces.
    let files = dep_info.lines().next().and_then(|l| l.split_once(": ")).map_or("", |(_, f)| f);
    let newest = files
        .replace("\\ ", "\0")
        .split_whitespace()
        .filter_map(|f| std::fs::metadata(f.replace('\0', " ")).and_then(|m| m.modified()).ok())
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    assert!(built >= newest, "{} is older than its sources; run scripts/stall-lab", path.display());
    path
}

/// A running `pmon-server`; killed and reaped on drop, pass or fail.
pub struct Server {
    child: Child,
    dir: TempDir,
    setup: Setup,
}

impl Server {
    /// Starts a server and waits until it has a lead-up of samples.
    pub fn start(setup: Setup) -> Server {
        Server::start_with(setup, &[])
    }

    /// Starts a server with extra arguments (e.g. `--metrics HOST:PORT`).
    pub fn start_with(setup: Setup, args: &[&str]) -> Server {
        Server::launch(setup, |server, _| {
            let mut command = match setup.runner().split_first() {
                Some((runner, options)) => {
                    let mut command = Command::new(runner);
                    command.args(options).arg(server);
                    command
                }
                None => Command::new(server),
            };
            command.args(args);
            command
        })
    }

    /// Starts a server inside the cgroup-v1 directory `cgroup`, running a copy of the
    /// binary made from inside it: the copy's page cache, and so the server's own code,
    /// is charged to that cgroup and reclaimed under its pressure.
    pub fn start_in_cgroup(setup: Setup, cgroup: &Path) -> Server {
        Server::launch(setup, |server, dir| {
            let copy = dir.join("pmon-server");
            let mut command = Command::new("sh");
            command
                .args(["-c", r#"echo $$ > "$1/cgroup.procs" && cp "$2" "$3" && shift 3 && exec "$@""#, "sh"])
                .arg(cgroup)
                .arg(server)
                .arg(&copy)
                .args(setup.runner())
                .arg(&copy);
            command
        })
    }

    /// Starts `pmon-server --config … --data-dir …` through `command` (given the binary
    /// and the temporary directory), then waits for its socket and its warm-up samples.
    fn launch(setup: Setup, command: impl FnOnce(&Path, &Path) -> Command) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        if setup == Setup::Defaults {
            // The ordinary user makes its data directory in there.
            std::os::unix::fs::chown(dir.path(), Some(NOBODY.0), Some(NOBODY.1)).expect("chown the temporary dir");
        }
        let config = dir.path().join("config.toml");
        std::fs::write(&config, setup.config()).expect("write config");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let child = command(&bin("pmon-server"), dir.path())
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .env("PMON_LOG", std::env::var("PMON_LAB_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn pmon-server");
        let mut server = Server { child, dir, setup };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let socket = self.data_dir().join("daemon.sock");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("pmon-server exited early ({status}):\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "pmon-server did not listen within 20 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        let warm_up = self.setup.warm_up_samples();
        while json_u64(&self.pmon_json(&["status", "--json"])["sampleCount"]) < warm_up {
            assert!(Instant::now() < deadline, "fewer than {warm_up} samples after 20 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's pid: the child's, which setpriv and sh exec into.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `pmon --data-dir <this server's> ARGS`, its output parsed as JSON.
    pub fn pmon_json(&self, args: &[&str]) -> Value {
        let out = Command::new(bin("pmon"))
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(args)
            .env_remove("PMON_DATA_DIR")
            .env_remove("PMON_CONFIG")
            .stdin(Stdio::null())
            .output()
            .expect("run pmon");
        assert!(out.status.success(), "pmon {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("pmon {args:?} is not JSON: {e}"))
    }

    /// The ids of the pause events recorded so far.
    pub fn pause_ids(&self) -> BTreeSet<u64> {
        let page = self.pmon_json(&["events", "--kind", "pause", "--limit", "1000", "--json"]);
        page["events"].as_array().map_or(&[][..], Vec::as_slice).iter().map(|e| json_u64(&e["id"])).collect()
    }

    /// Sends `signal` to the server.
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.pid()).expect("pid fits");
        // SAFETY: kill has no memory-safety preconditions; the pid is our own child.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill({pid}, {signal}) failed");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGKILL also ends a stopped server.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A number from proto3 JSON, where 64-bit integers are strings and a field at its
/// default (0) is left out.
pub fn json_u64(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not a number: {v}")),
        Value::Number(n) => n.as_u64().unwrap_or_else(|| panic!("not a u64: {v}")),
        Value::Null => 0,
        other => panic!("not a number: {other}"),
    }
}
