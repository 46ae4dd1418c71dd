//! `pmon tui` in a real terminal: tmux runs it against a real server while a CPU hog
//! runs, and the test reads the screen (`tmux capture-pane`) and presses keys
//! (`tmux send-keys`) as a person would.

use std::{
    net::{Shutdown, TcpListener},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use crate::support::{KillOnDrop, Server, bin, json_u64};

/// The hog's process name: a symlink to `sh` under this name makes the kernel's `comm`
/// say so, which no other process on the machine does.
const HOG: &str = "pmon-tui-hog";

/// A tmux server of its own (own socket, no user configuration) running one pane.
pub(crate) struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// Starts `command` in a detached `width`×`height` session.
    pub(crate) fn start(dir: &Path, command: &str, (width, height): (u16, u16)) -> Tmux {
        let tmux = Tmux { socket: dir.join("tmux.sock") };
        let (w, h) = (width.to_string(), height.to_string());
        let out = tmux.run(&["new-session", "-d", "-s", "tui", "-x", &w, "-y", &h, command]);
        assert!(out.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&out.stderr));
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        let socket = self.socket.to_str().expect("utf-8 path");
        Command::new(tmux_binary())
            .args(["-S", socket, "-f", "/dev/null"])
            .args(args)
            .env("TERM", "xterm-256color")
            .stdin(Stdio::null())
            .output()
            .expect("run tmux")
    }

    /// The pane's text now.
    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "tui"]).stdout).into_owned()
    }

    /// Presses keys (tmux key names: `Enter`, `Escape`, `e`, …).
    pub(crate) fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "tui"];
        args.extend_from_slice(keys);
        assert!(self.run(&args).status.success(), "send-keys {keys:?}");
    }

    /// Types text literally.
    fn type_text(&self, text: &str) {
        assert!(self.run(&["send-keys", "-t", "tui", "-l", text]).status.success(), "type {text:?}");
    }

    /// Waits until the screen satisfies `ok`; panics with the screen after `limit`.
    pub(crate) fn wait(&self, what: &str, limit: Duration, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "no {what} on screen within {limit:?}:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn wait_for(&self, text: &str, limit: Duration) -> String {
        self.wait(&format!("{text:?}"), limit, |s| s.contains(text))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// tmux, or a failure that says how to get it.
pub(crate) fn tmux_binary() -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("tmux"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("tmux is not installed: the terminal test needs it (scripts/test installs it as root; or: apt-get install tmux)")
    })
}

/// A hog that works in bursts and sleeps 50 ms between them: about a third of a core,
/// plenty to rank among the busiest processes, without starving the hogs of tests
/// running beside it.
fn hog(dir: &Path) -> KillOnDrop {
    let link = dir.join(HOG);
    std::os::unix::fs::symlink("/bin/sh", &link).expect("symlink the hog");
    let bursts = "while :; do i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 0.05; done";
    let child = Command::new(&link).args(["-c", bursts]).stdin(Stdio::null()).spawn().expect("start the hog");
    KillOnDrop(child)
}

fn event_status(server: &Server) -> (String, String) {
    let page = server.pmon_json(&["events", "--json"]);
    let event = &page["events"][0];
    (event["status"].as_str().unwrap_or_default().to_string(), event["notes"].as_str().unwrap_or_default().to_string())
}

#[test]
fn the_dashboard_shows_the_hog_marks_an_event_and_survives_a_server_restart() {
    tmux_binary();
    // Rogues by CPU only, at most ten: two cores leave room for at most five processes
    // busier than the hog's third of one, so it is among the ten busiest whatever else
    // runs, and ten rows fit the table.
    let mut server = Server::start(
        "[sampling]\ninterval_seconds = 0.25\nelevated_interval_seconds = 0.25\n\
         [rogues.cpu]\ncount = 10\n[rogues.mem]\ncount = 0\n[rogues.pageins]\ncount = 0\n\
         [rogues.cmprs]\ncount = 0\n[rogues.csw]\ncount = 0\n[rogues.sysbsd]\ncount = 0\n\
         [rogues.states]\ncount = 0\n[suspects]\npatterns = [\"pmon-tui-*\"]\n",
    );
    let work = tempfile::tempdir().expect("tempdir");
    let hog = hog(work.path());
    let pid = hog.0.id().to_string();
    let command = format!(
        "{} --data-dir {} tui 2>{}; echo pmon exited $?; sleep 600",
        bin("pmon").display(),
        server.data_dir().display(),
        work.path().join("tui.err").display()
    );
    let tmux = Tmux::start(work.path(), &command, (160, 48));

    // The gauge, the tier and the hog in the rogue table, flagged as a known suspect.
    let screen = tmux.wait("the hog in the rogue table", Duration::from_secs(20), |s| {
        s.contains("● live") && s.contains(&format!("!{HOG}")) && s.contains(&pid)
    });
    for part in ["stress", "top score", "procs", "rogues", "stress, last", "elevated 50 · critical 75", "Hz"] {
        assert!(screen.contains(part), "missing {part:?}:\n{screen}");
    }
    assert!(["SENTINEL", "ELEVATED", "CRITICAL"].iter().any(|t| screen.contains(t)), "no tier:\n{screen}");

    // A 3 s stall of the server becomes a pause event, listed on the dashboard.
    server.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(3));
    server.signal(libc::SIGCONT);
    tmux.wait_for("#1    pause", Duration::from_secs(15));

    review_the_pause(&tmux, &server);

    // The server goes away: the dashboard says so, and comes back live with it.
    server.stop();
    tmux.wait_for("reconnecting", Duration::from_secs(10));
    server.start_again();
    let instance = json_u64(&server.status()["serverInstance"]);
    assert_ne!(instance, 0);
    tmux.wait("live data again", Duration::from_secs(20), |s| {
        s.contains("● live") && !s.contains("reconnecting") && s.contains(&format!("!{HOG}"))
    });

    // Down to 80×24 the dashboard redraws whole: every part still there.
    tmux.run(&["resize-window", "-t", "tui", "-x", "80", "-y", "24"]);
    let screen = tmux.wait("the dashboard at 80×24", Duration::from_secs(10), |s| {
        s.lines().count() <= 24 && s.contains("rogues (") && s.contains("q quit · ? help")
    });
    for part in ["● live", "stress", "top score", "why ", "recent events", "#1    pause"] {
        assert!(screen.contains(part), "missing {part:?} at 80×24:\n{screen}");
    }

    tmux.keys(&["q"]);
    let screen = tmux.wait_for("pmon exited", Duration::from_secs(10));
    assert!(screen.contains("pmon exited 0"), "{screen}");
    let err = std::fs::read_to_string(work.path().join("tui.err")).unwrap_or_default();
    assert!(err.is_empty(), "pmon tui wrote to stderr: {err}");
}

/// From the dashboard: the events screen, the pause's incident report, marked reviewed
/// with a note (through UpdateEvent: the CLI sees it), then back a screen at a time
/// with Esc, and the keys with ?.
fn review_the_pause(tmux: &Tmux, server: &Server) {
    tmux.keys(&["e"]);
    tmux.wait_for("events (1)", Duration::from_secs(10));
    tmux.keys(&["Enter"]);
    tmux.wait_for("Pause 1 (unreviewed)", Duration::from_secs(10));
    tmux.wait_for("Culprits", Duration::from_secs(5));

    // Marked reviewed with a note, through UpdateEvent: the CLI sees it.
    tmux.keys(&["r"]);
    tmux.wait_for("Pause 1 (reviewed)", Duration::from_secs(10));
    tmux.keys(&["n"]);
    tmux.type_text("seen in the tui");
    tmux.keys(&["Enter"]);
    tmux.wait_for("notes: seen in the tui", Duration::from_secs(10));
    assert_eq!(event_status(server), ("EVENT_STATUS_REVIEWED".into(), "seen in the tui".into()));

    // Esc goes back a screen at a time; ? shows the keys.
    tmux.keys(&["Escape"]);
    tmux.wait_for("events (1)", Duration::from_secs(5));
    tmux.keys(&["Escape"]);
    tmux.wait_for("rogues (", Duration::from_secs(5));
    tmux.keys(&["?"]);
    tmux.wait_for("any key closes", Duration::from_secs(5));
    tmux.keys(&["Escape"]);
    tmux.wait("the help closed", Duration::from_secs(5), |s| !s.contains("any key closes"));
}

/// Forwards TCP connections on a loopback port to the server's Unix socket, as an SSH
/// tunnel to a remote machine would; returns the port.
fn forward_tcp_to(socket: PathBuf) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("local addr").port();
    std::thread::spawn(move || {
        for tcp in listener.incoming().map_while(Result::ok) {
            let Ok(unix) = UnixStream::connect(&socket) else { continue };
            let (mut tcp_in, mut unix_out) = (tcp.try_clone().expect("clone tcp"), unix.try_clone().expect("clone"));
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut tcp_in, &mut unix_out);
                let _ = unix_out.shutdown(Shutdown::Both);
            });
            let (mut unix_in, mut tcp_out) = (unix, tcp);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut unix_in, &mut tcp_out);
                let _ = tcp_out.shutdown(Shutdown::Both);
            });
        }
    });
    port
}

#[test]
fn the_dashboard_works_the_same_over_tcp() {
    tmux_binary();
    let server = Server::start("[sampling]\ninterval_seconds = 0.25\n");
    let port = forward_tcp_to(server.socket());
    let work = tempfile::tempdir().expect("tempdir");
    let command =
        format!("{} --connect http://127.0.0.1:{port} tui; echo pmon exited $?; sleep 600", bin("pmon").display());
    let tmux = Tmux::start(work.path(), &command, (100, 30));
    let screen = tmux.wait("live samples over TCP", Duration::from_secs(20), |s| {
        s.contains("● live") && s.contains("procs") && s.contains("Hz")
    });
    assert!(screen.contains(&format!("http://127.0.0.1:{port}")), "{screen}");
    tmux.keys(&["e"]);
    tmux.wait_for("no events match", Duration::from_secs(10));
    tmux.keys(&["q"]);
    tmux.wait_for("pmon exited 0", Duration::from_secs(10));
}
