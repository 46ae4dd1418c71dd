//! macOS: `/etc/sudoers.d/pmon`, the narrow rules that let pmon-server's forensics run
//! tailspin, spindump and powermetrics through `sudo -n` for one user.
//!
//! Every rule names an absolute program and its exact arguments. Where an argument
//! varies (a trace's event directory, powermetrics' interval) it is spelled with
//! `[0-9]` classes, one rule per length, never `*`: sudo matches `*` across spaces, so
//! a `*` would let extra arguments (another output file, as root) slip in.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{Action, Report};
use crate::Failure;

/// The rules file.
pub const SUDOERS_FILE: &str = "/etc/sudoers.d/pmon";

const TAILSPIN: &str = "/usr/bin/tailspin";
const SPINDUMP: &str = "/usr/sbin/spindump";
const POWERMETRICS: &str = "/usr/bin/powermetrics";
/// What pmon-server's powermetrics source asks for (server/src/collect/powermetrics/live.rs).
const POWERMETRICS_SAMPLERS: &str = "tasks,thermal,cpu_power,gpu_power,disk";
/// Event ids up to ten digits.
const MAX_ID_DIGITS: usize = 10;
/// powermetrics' interval in ms: at least 100, at most an hour (3 600 000).
const INTERVAL_DIGITS: std::ops::RangeInclusive<usize> = 3..=7;

/// Why no rules can be written for this user or data directory.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RulesError {
    #[error("the user name {0:?} cannot be used in a sudoers rule (letters, digits, `.`, `_` and `-` only)")]
    User(String),
    #[error(
        "the data directory {0:?} cannot be used in a sudoers rule: it must be absolute and hold only letters, \
         digits, `.`, `_`, `-` and `/` (pass --data-dir to choose another)"
    )]
    DataDir(PathBuf),
}

fn digits(n: usize) -> String {
    "[0-9]".repeat(n)
}

/// One sudoers word: `,`, `:`, `=` and `\` are syntax there.
fn escape(word: &str) -> String {
    word.chars().flat_map(|c| if matches!(c, ',' | ':' | '=' | '\\') { vec!['\\', c] } else { vec![c] }).collect()
}

/// A `Cmnd_Alias` with one command per line.
fn alias(name: &str, commands: &[String]) -> String {
    format!("Cmnd_Alias {name} = \\\n    {}\n", commands.join(", \\\n    "))
}

/// The rules file's text for `user`, whose pmon-server keeps its data in `data_dir`.
pub fn rules(user: &str, data_dir: &Path) -> Result<String, RulesError> {
    let user_ok = !user.is_empty()
        && !user.starts_with('-')
        && user.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !user_ok {
        return Err(RulesError::User(user.to_string()));
    }
    let dir = data_dir.to_str().filter(|d| {
        data_dir.is_absolute() && d.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
    });
    let Some(dir) = dir else { return Err(RulesError::DataDir(data_dir.to_path_buf())) };
    // events/<%Y%m%dT%H%M%SZ>-<id>/pause.tailspin, as the forensics names it.
    let traces: Vec<String> = (1..=MAX_ID_DIGITS)
        .map(|n| format!("{dir}/events/{}T{}Z-{}/pause.tailspin", digits(8), digits(6), digits(n)))
        .collect();
    let tailspin: Vec<String> = traces.iter().map(|t| format!("{TAILSPIN} save -o {t}")).collect();
    let spindump: Vec<String> = traces.iter().map(|t| format!("{SPINDUMP} -i {t} -stdout")).collect();
    let samplers = escape(POWERMETRICS_SAMPLERS);
    let powermetrics: Vec<String> = INTERVAL_DIGITS
        .map(|n| {
            let ms = format!("[1-9]{}", digits(n - 1));
            format!("{POWERMETRICS} -f plist -i {ms} --samplers {samplers} --show-process-io")
        })
        .collect();
    Ok(format!(
        "# Written by `pmon install --forensics`; `pmon uninstall --forensics` removes it.\n\
         # For {user} only, and nothing else: the tailspin trace and spindump's reading of it\n\
         # that pmon-server's forensics runs through `sudo -n` at a pause, and powermetrics\n\
         # with exactly the arguments of pmon's powermetrics source.\n\
         {}{}{}\
         {user} ALL = (root) NOPASSWD: PMON_TAILSPIN, PMON_SPINDUMP, PMON_POWERMETRICS\n",
        alias("PMON_TAILSPIN", &tailspin),
        alias("PMON_SPINDUMP", &spindump),
        alias("PMON_POWERMETRICS", &powermetrics),
    ))
}

fn macos_only() -> Failure {
    Failure {
        code: 2,
        message:
            "--forensics sets up macOS tools (tailspin, spindump, powermetrics); Linux forensics need no sudoers rule"
                .into(),
    }
}

fn needs_root(verb: &str, command: &str) -> Failure {
    Failure { code: 1, message: format!("{verb} {SUDOERS_FILE} needs root: run `sudo pmon {command} --forensics`") }
}

/// The user the rules are for: the one who ran sudo (root itself needs no rule).
fn target_user() -> Result<(String, Option<u32>), Failure> {
    if !super::is_root() {
        let name = std::env::var("USER").or_else(|_| std::env::var("LOGNAME"));
        return Ok((name.context("cannot tell who you are: $USER is not set")?, None));
    }
    let user = std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty() && u != "root");
    let uid = std::env::var("SUDO_UID").ok().and_then(|u| u.parse().ok());
    match (user, uid) {
        (Some(user), Some(uid)) => Ok((user, Some(uid))),
        _ => Err(Failure {
            code: 1,
            message: "run it through sudo from the account pmon-server runs as (`sudo pmon install --forensics`): \
                      the rules are for that user"
                .into(),
        }),
    }
}

/// The data directory the rules point into: the target user's, not root's.
fn data_dir(explicit: Option<PathBuf>, sudo_uid: Option<u32>) -> Result<PathBuf, Failure> {
    if let Some(dir) = explicit {
        return super::absolute(dir);
    }
    let home = super::home()?;
    if let Some(uid) = sudo_uid {
        use std::os::unix::fs::MetadataExt as _;
        let owner = std::fs::metadata(&home).map(|m| m.uid()).ok();
        if owner != Some(uid) {
            return Err(Failure {
                code: 1,
                message: format!(
                    "$HOME is {}, which is not yours (sudo reset it): run `sudo --preserve-env=HOME pmon install \
                     --forensics`, or pass --data-dir",
                    home.display()
                ),
            });
        }
    }
    paths_data_dir()
}

fn paths_data_dir() -> Result<PathBuf, Failure> {
    pmon_proto::paths::default_data_dir().map_err(|e| Failure { code: 1, message: e.to_string() })
}

pub fn install(report: &mut Report, explicit_data_dir: Option<PathBuf>) -> Result<(), Failure> {
    if !cfg!(target_os = "macos") {
        return Err(macos_only());
    }
    if !report.dry_run && !super::is_root() {
        return Err(needs_root("writing", "install"));
    }
    let (user, sudo_uid) = target_user()?;
    let dir = data_dir(explicit_data_dir, sudo_uid)?;
    let text = rules(&user, &dir).map_err(|e| Failure { code: 1, message: e.to_string() })?;
    let path = Path::new(SUDOERS_FILE);
    if std::fs::read(path).is_ok_and(|old| old == text.as_bytes()) {
        report.push(Action::Unchanged { path: path.to_path_buf() });
        return Ok(());
    }
    // A dot in the name: sudo's includedir skips the file until it is checked and renamed.
    let tmp = Path::new("/etc/sudoers.d/.pmon.new");
    if !report.dry_run {
        super::write_atomically(tmp, &text, 0o440)?;
    }
    let tmp_text = tmp.display().to_string();
    if let Err(e) = report.run("visudo", &["-c", "-f", &tmp_text]) {
        let _ = std::fs::remove_file(tmp);
        return Err(Failure { code: 1, message: format!("{SUDOERS_FILE} not written: {}", e.message) });
    }
    if !report.dry_run {
        std::fs::rename(tmp, path).with_context(|| format!("cannot move the rules into {SUDOERS_FILE}"))?;
    }
    report.push(Action::Wrote { path: path.to_path_buf(), contents: text });
    Ok(())
}

pub fn uninstall(report: &mut Report) -> Result<(), Failure> {
    if !cfg!(target_os = "macos") {
        return Err(macos_only());
    }
    let path = Path::new(SUDOERS_FILE);
    if path.exists() && !report.dry_run && !super::is_root() {
        return Err(needs_root("removing", "uninstall"));
    }
    report.remove(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: &str = "/Users/alice/.local/share/pause-monitor";

    /// The commands of one alias, with the line continuations joined.
    fn commands(text: &str, name: &str) -> Vec<String> {
        let joined = text.replace("\\\n", "");
        let line = joined.lines().find(|l| l.starts_with(&format!("Cmnd_Alias {name} = "))).expect("alias");
        line.split_once(" = ").expect("=").1.split(", ").map(|c| c.trim().to_string()).collect()
    }

    /// Whether a sudoers glob matches `text` (`[0-9]`, `[1-9]` and plain characters only).
    fn matches(glob: &str, text: &str) -> bool {
        let mut g = glob.chars().peekable();
        let mut t = text.chars();
        while let Some(c) = g.next() {
            let Some(x) = t.next() else { return false };
            if c == '[' {
                let class: String = g.by_ref().take_while(|&c| c != ']').collect();
                let (lo, hi) = class.split_once('-').expect("a range");
                if !(lo.chars().next() <= Some(x) && Some(x) <= hi.chars().next()) {
                    return false;
                }
            } else if c == '\\' {
                if g.next() != Some(x) {
                    return false;
                }
            } else if c != x {
                return false;
            }
        }
        t.next().is_none()
    }

    #[test]
    fn the_rules_are_for_one_user_and_three_aliases() {
        let text = rules("alice", Path::new(DATA)).expect("rules");
        let grant: Vec<&str> = text.lines().filter(|l| !l.starts_with('#') && l.contains("NOPASSWD")).collect();
        assert_eq!(grant, ["alice ALL = (root) NOPASSWD: PMON_TAILSPIN, PMON_SPINDUMP, PMON_POWERMETRICS"]);
        assert!(!text.contains('*'), "no wildcard that could match extra arguments:\n{text}");
    }

    #[test]
    fn tailspin_and_spindump_rules_match_what_the_forensics_runs_and_nothing_wider() {
        let text = rules("alice", Path::new(DATA)).expect("rules");
        let tailspin = commands(&text, "PMON_TAILSPIN");
        let spindump = commands(&text, "PMON_SPINDUMP");
        assert_eq!((tailspin.len(), spindump.len()), (MAX_ID_DIGITS, MAX_ID_DIGITS));
        for id in ["1", "42", "9999999999"] {
            let trace = format!("{DATA}/events/20261121T201405Z-{id}/pause.tailspin");
            assert!(tailspin.iter().any(|g| matches(g, &format!("/usr/bin/tailspin save -o {trace}"))), "{id}");
            assert!(spindump.iter().any(|g| matches(g, &format!("/usr/sbin/spindump -i {trace} -stdout"))), "{id}");
        }
        let outside = [
            format!("/usr/bin/tailspin save -o {DATA}/events/20261121T201405Z-1/pause.tailspin -o /etc/x"),
            format!("/usr/bin/tailspin save -o {DATA}/events/../../x/pause.tailspin"),
            "/usr/bin/tailspin save -o /etc/pause.tailspin".to_string(),
            format!("/usr/bin/tailspin save -o {DATA}/events/20261121T201405Z-12345678901/pause.tailspin"),
        ];
        for cmd in outside {
            assert!(!tailspin.iter().any(|g| matches(g, &cmd)), "{cmd} must not be allowed");
        }
    }

    #[test]
    fn powermetrics_rules_match_the_source_at_every_interval_and_escape_commas() {
        let text = rules("alice", Path::new(DATA)).expect("rules");
        let rules = commands(&text, "PMON_POWERMETRICS");
        let run = |ms: u64| {
            format!("/usr/bin/powermetrics -f plist -i {ms} --samplers {POWERMETRICS_SAMPLERS} --show-process-io")
        };
        for ms in [100, 250, 1000, 60_000, 3_600_000] {
            assert!(rules.iter().any(|g| matches(g, &run(ms))), "{ms} ms");
        }
        for ms in [10, 36_000_000] {
            assert!(!rules.iter().any(|g| matches(g, &run(ms))), "{ms} ms must not be allowed");
        }
        assert!(rules.iter().all(|r| r.contains("tasks\\,thermal\\,cpu_power\\,gpu_power\\,disk")));
    }

    #[test]
    fn unusable_names_and_paths_are_refused_with_what_is_accepted() {
        assert_eq!(rules("al ice", Path::new(DATA)), Err(RulesError::User("al ice".into())));
        assert_eq!(rules("ALL,root", Path::new(DATA)), Err(RulesError::User("ALL,root".into())));
        let spaced = Path::new("/Users/a b/data");
        assert_eq!(rules("alice", spaced), Err(RulesError::DataDir(spaced.into())));
        assert!(rules("alice", Path::new("rel/data")).is_err());
        assert!(rules("alice", Path::new("/x/*")).is_err());
        assert!(RulesError::DataDir(spaced.into()).to_string().contains("--data-dir"));
    }

    #[test]
    #[ignore = "needs visudo (Debian package sudo); scripts/test installs it as root and runs this, or says NOT RUN"]
    fn visudo_accepts_the_rules() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pmon");
        std::fs::write(&path, rules("alice", Path::new(DATA)).expect("rules")).expect("write");
        let out = std::process::Command::new("visudo")
            .arg("-c")
            .arg("-f")
            .arg(&path)
            .output()
            .expect("visudo is installed (this test is run only where it is)");
        assert!(
            out.status.success(),
            "visudo -c: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
