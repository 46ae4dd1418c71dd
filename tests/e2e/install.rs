//! `pmon install` / `pmon uninstall` on Linux, end to end: the real `pmon` in a temporary
//! HOME and XDG directories, with a stand-in `systemctl` first on PATH (the user's own
//! systemd must not be touched by a test) that keeps the unit's state in a file and logs
//! every call, or that answers like a session without a user manager.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use tempfile::TempDir;

use crate::support::bin;

const UNIT: &str = "pmon-server.service";

/// A temporary home with a stand-in `systemctl`.
struct Home {
    dir: TempDir,
    /// PATH for pmon, when not the stand-in's directory before the test's own PATH.
    path: Option<std::ffi::OsString>,
}

impl Home {
    /// A home whose PATH has no `systemctl` at all (a container without systemd).
    fn without_systemctl() -> Home {
        let home = Home::new(true);
        std::fs::remove_file(home.dir.path().join("bin/systemctl")).expect("remove stand-in");
        Home { path: Some(home.dir.path().join("bin").into_os_string()), ..home }
    }

    fn new(reachable: bool) -> Home {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin_dir = dir.path().join("bin");
        std::fs::create_dir(&bin_dir).expect("bin dir");
        let unreachable = if reachable { "" } else { "echo 'Failed to connect to bus: No medium found' >&2; exit 1" };
        let script = format!(
            r#"#!/bin/sh
echo "$*" >> '{log}'
[ "$1" = "--user" ] || {{ echo "stand-in systemctl: not --user: $*" >&2; exit 2; }}
shift
{unreachable}
case "$1 $2 $3" in
  "show --property=Version ") echo Version=252 ;;
  "daemon-reload  ") ;;
  "is-enabled {UNIT} ") if [ -e '{state}' ]; then echo enabled; else echo disabled; exit 1; fi ;;
  "is-active {UNIT} ") if [ -e '{state}' ]; then echo active; else echo inactive; exit 3; fi ;;
  "enable --now {UNIT}") [ -e '{unit}' ] || {{ echo "Unit {UNIT} not found." >&2; exit 1; }}; touch '{state}' ;;
  "disable --now {UNIT}") rm -f '{state}' ;;
  "restart {UNIT} ") [ -e '{state}' ] || exit 1 ;;
  *) echo "stand-in systemctl: unexpected: $*" >&2; exit 2 ;;
esac
"#,
            log = dir.path().join("systemctl.log").display(),
            state = dir.path().join("enabled").display(),
            unit = dir.path().join("config/systemd/user").join(UNIT).display(),
        );
        let path = bin_dir.join("systemctl");
        std::fs::write(&path, script).expect("write stand-in");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Home { dir, path: None }
    }

    fn unit(&self) -> PathBuf {
        self.dir.path().join("config/systemd/user").join(UNIT)
    }

    fn enabled(&self) -> bool {
        self.dir.path().join("enabled").exists()
    }

    /// The stand-in's calls so far, one per line.
    fn calls(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir.path().join("systemctl.log")).unwrap_or_default();
        log.lines().map(str::to_string).collect()
    }

    /// The calls that change something (not the questions install asks first).
    fn changing_calls(&self) -> Vec<String> {
        let questions = ["--user show", "--user is-enabled", "--user is-active"];
        self.calls().into_iter().filter(|c| !questions.iter().any(|q| c.starts_with(q))).collect()
    }

    fn pmon(&self, args: &[&str]) -> Output {
        let inherited = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![self.dir.path().join("bin")];
        paths.extend(std::env::split_paths(&inherited));
        let path = self.path.clone().unwrap_or_else(|| std::env::join_paths(paths).expect("PATH"));
        Command::new(bin("pmon"))
            .args(args)
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env("PATH", path)
            .env_remove("PMON_DATA_DIR")
            .env_remove("PMON_CONFIG")
            // Under sudo, install refuses to put a user's service in root's home.
            .env_remove("SUDO_USER")
            .stdin(Stdio::null())
            .output()
            .expect("run pmon")
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn lines(out: &Output) -> Vec<String> {
    assert!(out.status.success(), "pmon failed: {}{}", stdout(out), String::from_utf8_lossy(&out.stderr));
    stdout(out).lines().map(str::to_string).collect()
}

#[test]
fn install_twice_then_uninstall_twice_says_what_it_did_and_then_that_nothing_is_left_to_do() {
    let home = Home::new(true);
    let unit = format!("~/config/systemd/user/{UNIT}");
    assert_eq!(
        lines(&home.pmon(&["install"])),
        [
            "created ~/data/pause-monitor".to_string(),
            format!("wrote {unit}"),
            "ran systemctl --user daemon-reload".to_string(),
            format!("ran systemctl --user enable --now {UNIT}"),
        ]
    );
    let text = std::fs::read_to_string(home.unit()).expect("unit written");
    let exec = format!("ExecStart={}", bin("pmon-server").display());
    assert!(text.lines().any(|l| l == exec), "{exec} not in:\n{text}");
    assert!(home.enabled());
    let before = home.changing_calls().len();

    assert_eq!(lines(&home.pmon(&["install"])), ["already installed, nothing to do"]);
    assert_eq!(home.changing_calls().len(), before, "a second install changed something: {:?}", home.calls());

    assert_eq!(
        lines(&home.pmon(&["uninstall"])),
        [
            format!("ran systemctl --user disable --now {UNIT}"),
            format!("removed {unit}"),
            "ran systemctl --user daemon-reload".into()
        ]
    );
    assert!(!home.unit().exists() && !home.enabled());
    assert_eq!(lines(&home.pmon(&["uninstall"])), ["not installed, nothing to do"]);
}

#[test]
fn a_changed_unit_is_reloaded_and_the_running_service_restarted() {
    let home = Home::new(true);
    lines(&home.pmon(&["install"]));
    let other = home.dir.path().join("other-pmon-server");
    std::fs::copy(bin("pmon-server"), &other).expect("copy server");
    let out = home.pmon(&["install", "--server", other.to_str().expect("utf-8"), "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let actions: Vec<String> = report["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| {
            format!(
                "{} {}",
                a["action"].as_str().unwrap_or(""),
                a["path"].as_str().or(a["command"].as_str()).unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            format!("wrote {}", home.unit().display()),
            "ran systemctl --user daemon-reload".into(),
            format!("ran systemctl --user restart {UNIT}"),
        ]
    );
    assert_eq!((report["dryRun"].as_bool(), report["exitCode"].as_u64()), (Some(false), Some(0)));
    let text = std::fs::read_to_string(home.unit()).expect("unit");
    assert!(text.contains(&format!("ExecStart={}", other.display())), "{text}");
}

#[test]
fn a_dry_run_prints_the_unit_and_the_commands_and_changes_nothing() {
    let home = Home::new(true);
    let out = stdout(&home.pmon(&["install", "--dry-run"]));
    assert!(out.contains(&format!("would write ~/config/systemd/user/{UNIT}:\n")), "{out}");
    assert!(out.contains("Restart=on-failure"), "{out}");
    assert!(out.contains(&format!("would run systemctl --user enable --now {UNIT}")), "{out}");
    assert!(!home.unit().exists() && !home.dir.path().join("data").exists());
    assert!(home.changing_calls().is_empty(), "{:?}", home.calls());

    lines(&home.pmon(&["install"]));
    let out = lines(&home.pmon(&["uninstall", "--dry-run"]));
    assert_eq!(out[0], format!("would run systemctl --user disable --now {UNIT}"));
    assert!(home.unit().exists() && home.enabled());
}

#[test]
fn without_a_user_manager_the_unit_is_written_and_the_exit_code_says_it_is_not_running() {
    let home = Home::new(false);
    for round in 0..2 {
        let out = home.pmon(&["install"]);
        assert_eq!(out.status.code(), Some(4), "round {round}: {}", stdout(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("systemd's user manager is not reachable (Failed to connect to bus"), "{err}");
        assert!(err.contains(&format!("start the server by hand with: {}", bin("pmon-server").display())), "{err}");
        let wrote = stdout(&out).contains("wrote ");
        assert_eq!(wrote, round == 0, "round {round}: {}", stdout(&out));
        assert!(home.unit().exists());
    }
    assert_eq!(lines(&home.pmon(&["uninstall"])), [format!("removed ~/config/systemd/user/{UNIT}")]);
}

#[test]
fn without_systemd_at_all_the_unit_is_written_and_the_exit_code_says_it_is_not_running() {
    let home = Home::without_systemctl();
    let out = home.pmon(&["install"]);
    assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("systemd's user manager is not reachable (cannot run systemctl"), "{err}");
    assert!(home.unit().exists());
    assert_eq!(lines(&home.pmon(&["uninstall"])), [format!("removed ~/config/systemd/user/{UNIT}")]);
}

#[test]
fn forensics_rules_are_refused_on_linux_as_a_usage_error() {
    let home = Home::new(true);
    let out = home.pmon(&["install", "--forensics"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("macOS"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!Path::new(&home.unit()).exists());
}
