//! macOS: a launchd agent for `pmon-server` in the user's GUI session.

use std::path::{Path, PathBuf};

use anyhow::Context;
use plist::{Dictionary, Value};

use super::{Report, ServerPlan};
use crate::Failure;

/// The agent's launchd label (and its plist's name).
pub const LABEL: &str = "org.pause-monitor.pmon-server";

/// `~/Library/LaunchAgents/<label>.plist`.
pub fn plist_path(home: &Path) -> PathBuf {
    home.join("Library/LaunchAgents").join(format!("{LABEL}.plist"))
}

/// Where launchd sends the server's output: its log, in the data directory.
pub fn log_path(plan: &ServerPlan) -> PathBuf {
    plan.data_dir.join("pmon-server.log")
}

/// The agent's plist (XML).
pub fn plist(plan: &ServerPlan) -> Result<String, Failure> {
    let mut keep_alive = Dictionary::new();
    // Restart after a crash, not after a clean exit (SIGTERM from launchctl bootout).
    keep_alive.insert("SuccessfulExit".into(), Value::Boolean(false));
    let log = Value::String(log_path(plan).display().to_string());
    let mut agent = Dictionary::new();
    agent.insert("Label".into(), Value::String(LABEL.into()));
    agent.insert("ProgramArguments".into(), Value::Array(plan.arguments().into_iter().map(Value::String).collect()));
    agent.insert("RunAtLoad".into(), Value::Boolean(true));
    agent.insert("KeepAlive".into(), Value::Dictionary(keep_alive));
    agent.insert("StandardOutPath".into(), log.clone());
    agent.insert("StandardErrorPath".into(), log);
    // Not "Background": launchd throttles those, and a throttled sampler would wake late
    // and report pauses the machine never had.
    agent.insert("ProcessType".into(), Value::String("Standard".into()));
    let mut out = Vec::new();
    Value::Dictionary(agent).to_writer_xml(&mut out).context("cannot render the launchd plist")?;
    out.push(b'\n');
    Ok(String::from_utf8(out).context("the launchd plist is not UTF-8")?)
}

fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// Whether launchd has the agent loaded in this user's GUI domain.
fn loaded(domain: &str) -> bool {
    std::process::Command::new("launchctl")
        .args(["print", &format!("{domain}/{LABEL}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn install(report: &mut Report, plan: &ServerPlan, home: &Path) -> Result<(), Failure> {
    // launchd opens the log files but does not create their directory.
    report.create_dir(&plan.data_dir)?;
    let path = plist_path(home);
    let changed = report.write(&path, &plist(plan)?, 0o644)?;
    let domain = format!("gui/{}", uid());
    let was_loaded = loaded(&domain);
    let service = format!("{domain}/{LABEL}");
    let path_text = path.display().to_string();
    if changed && was_loaded {
        report.run("launchctl", &["bootout", &service])?;
    }
    if changed || !was_loaded {
        report.run("launchctl", &["bootstrap", &domain, &path_text])?;
    }
    Ok(())
}

pub fn uninstall(report: &mut Report, home: &Path) -> Result<(), Failure> {
    let domain = format!("gui/{}", uid());
    if loaded(&domain) {
        report.run("launchctl", &["bootout", &format!("{domain}/{LABEL}")])?;
    }
    report.remove(&plist_path(home))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(explicit: bool) -> ServerPlan {
        ServerPlan {
            server: PathBuf::from("/Users/a b/bin/pmon-server"),
            data_dir: PathBuf::from("/Users/a b/.local/share/pause-monitor"),
            explicit_data_dir: explicit,
        }
    }

    fn parsed(plan: &ServerPlan) -> Dictionary {
        let text = plist(plan).expect("plist");
        let value = Value::from_reader_xml(text.as_bytes()).expect("well-formed plist");
        value.into_dictionary().expect("a dictionary at the top")
    }

    fn strings(value: Option<&Value>) -> Vec<&str> {
        value.and_then(Value::as_array).expect("an array").iter().filter_map(Value::as_string).collect()
    }

    #[test]
    fn plist_parses_back_with_every_key() {
        let agent = parsed(&plan(false));
        assert_eq!(agent.get("Label").and_then(Value::as_string), Some(LABEL));
        assert_eq!(strings(agent.get("ProgramArguments")), ["/Users/a b/bin/pmon-server"]);
        assert_eq!(agent.get("RunAtLoad").and_then(Value::as_boolean), Some(true));
        let keep_alive = agent.get("KeepAlive").and_then(Value::as_dictionary).expect("KeepAlive dictionary");
        assert_eq!(keep_alive.get("SuccessfulExit").and_then(Value::as_boolean), Some(false));
        assert_eq!(keep_alive.len(), 1);
        let log = "/Users/a b/.local/share/pause-monitor/pmon-server.log";
        assert_eq!(agent.get("StandardOutPath").and_then(Value::as_string), Some(log));
        assert_eq!(agent.get("StandardErrorPath").and_then(Value::as_string), Some(log));
        assert_eq!(agent.get("ProcessType").and_then(Value::as_string), Some("Standard"));
        assert_eq!(agent.len(), 7, "unexpected keys: {:?}", agent.keys().collect::<Vec<_>>());
    }

    #[test]
    fn an_explicit_data_dir_is_passed_to_the_server() {
        let agent = parsed(&plan(true));
        assert_eq!(
            strings(agent.get("ProgramArguments")),
            ["/Users/a b/bin/pmon-server", "--data-dir", "/Users/a b/.local/share/pause-monitor"]
        );
    }

    #[test]
    fn markup_in_paths_is_escaped() {
        let mut p = plan(true);
        p.data_dir = PathBuf::from("/tmp/<&>");
        let agent = parsed(&p);
        assert_eq!(strings(agent.get("ProgramArguments"))[2], "/tmp/<&>");
    }

    #[test]
    fn the_plist_is_a_launchd_document() {
        let text = plist(&plan(false)).expect("plist");
        assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist"), "{text}");
        assert_eq!(
            plist_path(Path::new("/Users/a")),
            PathBuf::from(format!("/Users/a/Library/LaunchAgents/{LABEL}.plist"))
        );
    }
}
