//! Linux: a systemd user unit for `pmon-server`.

use std::path::{Path, PathBuf};

use super::{Action, NO_SERVICE_MANAGER, Report, ServerPlan};
use crate::Failure;

/// The unit's file name.
pub const UNIT: &str = "pmon-server.service";

/// `$XDG_CONFIG_HOME/systemd/user`, or `~/.config/systemd/user`: where the user manager looks.
pub fn unit_dir() -> Result<PathBuf, Failure> {
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from).filter(|d| d.is_absolute()) {
        return Ok(dir.join("systemd/user"));
    }
    Ok(super::home()?.join(".config/systemd/user"))
}

/// One word of `ExecStart=`, quoted as systemd reads it: `%` and `$` are specifiers
/// and variables to systemd, so they are doubled; spaces need quotes.
fn quote(word: &str) -> String {
    let escaped = word.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%").replace('$', "$$");
    if word.chars().any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | ';')) {
        format!("\"{escaped}\"")
    } else {
        escaped
    }
}

/// The unit file's text.
///
/// Hardening is limited to what works in a user manager without user namespaces and
/// leaves every `/proc/[pid]` readable (no `ProtectProc=`/`ProcSubset=`, no
/// `PrivateUsers=`): the server must see every process to do its job.
pub fn unit(plan: &ServerPlan) -> String {
    let exec = plan.arguments().iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
    format!(
        "# Written by `pmon install`; `pmon uninstall` removes it.\n\
         [Unit]\n\
         Description=pause-monitor daemon: watches every process and records pauses\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={exec}\n\
         # A crash is restarted; a clean stop (pmon uninstall, systemctl stop) is not.\n\
         Restart=on-failure\n\
         RestartSec=2\n\
         NoNewPrivileges=yes\n\
         LockPersonality=yes\n\
         RestrictRealtime=yes\n\
         RestrictSUIDSGID=yes\n\
         SystemCallArchitectures=native\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n"
    )
}

/// Runs `systemctl --user ARGS`, returning whether it exited 0 and what it said.
fn systemctl(args: &[&str]) -> Result<(bool, String), String> {
    let out = std::process::Command::new("systemctl")
        .arg("--user")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run systemctl: {e}"))?;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), said.trim().to_string()))
}

/// Whether the user manager answers; if not, why.
fn manager_reachable() -> Result<(), String> {
    match systemctl(&["show", "--property=Version"])? {
        (true, _) => Ok(()),
        (false, said) => Err(said),
    }
}

pub fn install(report: &mut Report, plan: &ServerPlan, dir: &Path) -> Result<(), Failure> {
    report.create_dir(&plan.data_dir)?;
    let path = dir.join(UNIT);
    let changed = report.write(&path, &unit(plan), 0o644)?;
    if let Err(why) = manager_reachable() {
        let by_hand = plan.arguments().join(" ");
        let unit_state =
            if report.dry_run { "would be written but could not be started" } else { "is written but not started" };
        let message = format!(
            "systemd's user manager is not reachable ({why}): the unit {unit_state}; start the server by hand with: {by_hand} &"
        );
        if report.dry_run {
            report.push(Action::Notice { message });
        } else {
            report.fail(NO_SERVICE_MANAGER, message);
        }
        return Ok(());
    }
    if changed {
        report.run("systemctl", &["--user", "daemon-reload"])?;
    }
    let enabled = systemctl(&["is-enabled", UNIT]).is_ok_and(|(ok, _)| ok);
    let active = systemctl(&["is-active", UNIT]).is_ok_and(|(ok, _)| ok);
    if !enabled || !active {
        report.run("systemctl", &["--user", "enable", "--now", UNIT])?;
    }
    if changed && active {
        // It runs what the old unit said: restart it on the new one.
        report.run("systemctl", &["--user", "restart", UNIT])?;
    }
    Ok(())
}

pub fn uninstall(report: &mut Report, dir: &Path) -> Result<(), Failure> {
    let path = dir.join(UNIT);
    let reachable = manager_reachable().is_ok();
    if reachable {
        let enabled = systemctl(&["is-enabled", UNIT]).is_ok_and(|(ok, _)| ok);
        let active = systemctl(&["is-active", UNIT]).is_ok_and(|(ok, _)| ok);
        if enabled || active {
            report.run("systemctl", &["--user", "disable", "--now", UNIT])?;
        }
    }
    let existed = path.exists();
    report.remove(&path)?;
    if existed && reachable {
        report.run("systemctl", &["--user", "daemon-reload"])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(data: &str, explicit: bool) -> ServerPlan {
        ServerPlan {
            server: PathBuf::from("/opt/pmon bin/pmon-server"),
            data_dir: PathBuf::from(data),
            explicit_data_dir: explicit,
        }
    }

    /// `KEY=value` lines of the unit, comments and section headers left out.
    fn keys(text: &str) -> Vec<(String, String)> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with('['))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn key<'a>(keys: &'a [(String, String)], name: &str) -> Vec<&'a str> {
        keys.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    #[test]
    fn unit_runs_the_server_restarts_it_on_failure_and_starts_with_the_session() {
        let text = unit(&plan("/home/a/.local/share/pause-monitor", false));
        let keys = keys(&text);
        assert_eq!(key(&keys, "ExecStart"), ["\"/opt/pmon bin/pmon-server\""]);
        assert_eq!(key(&keys, "Restart"), ["on-failure"]);
        assert_eq!(key(&keys, "Type"), ["simple"]);
        assert_eq!(key(&keys, "WantedBy"), ["default.target"]);
        assert_eq!(key(&keys, "NoNewPrivileges"), ["yes"]);
        let sections: Vec<&str> = text.lines().filter(|l| l.starts_with('[')).collect();
        assert_eq!(sections, ["[Unit]", "[Service]", "[Install]"]);
    }

    #[test]
    fn unit_hardening_leaves_proc_readable() {
        let text = unit(&plan("/d", false));
        for forbidden in ["ProtectProc", "ProcSubset", "PrivateUsers", "PrivatePIDs", "ProtectKernelTunables"] {
            assert!(!text.contains(forbidden), "{forbidden} would hide processes from the server");
        }
    }

    #[test]
    fn an_explicit_data_dir_is_passed_on_and_specifiers_are_escaped() {
        let keys = keys(&unit(&plan("/data/100%$x", true)));
        assert_eq!(key(&keys, "ExecStart"), ["\"/opt/pmon bin/pmon-server\" --data-dir /data/100%%$$x"]);
    }

    #[test]
    fn systemd_analyze_accepts_the_unit() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A real executable, since systemd-analyze checks that ExecStart's program exists.
        let server = dir.path().join("pmon-server");
        std::fs::copy("/bin/sh", &server).expect("copy an executable");
        let plan = ServerPlan { server, data_dir: dir.path().join("data"), explicit_data_dir: true };
        let path = dir.path().join(UNIT);
        std::fs::write(&path, unit(&plan)).expect("write unit");
        // The user manager wants a runtime directory even to verify; give it one of its own.
        let runtime = dir.path().join("runtime");
        std::fs::create_dir(&runtime).expect("runtime dir");
        let verify = std::process::Command::new("systemd-analyze")
            .args(["verify", "--user"])
            .arg(&path)
            .env("XDG_RUNTIME_DIR", &runtime)
            .output();
        let out = match verify {
            Ok(out) => out,
            Err(e) => {
                eprintln!("notice: systemd-analyze is not available ({e}); the unit's keys are checked only");
                return;
            }
        };
        let said = String::from_utf8_lossy(&out.stderr);
        // Unknown keys and bad values are only warnings (exit 0) naming the file: none may appear.
        assert!(out.status.success(), "systemd-analyze verify failed: {said}");
        let about_unit: Vec<&str> = said.lines().filter(|l| l.contains(UNIT)).collect();
        assert!(about_unit.is_empty(), "systemd-analyze verify: {said}");
    }
}
