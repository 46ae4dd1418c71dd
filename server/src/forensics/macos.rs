//! macOS forensic steps: a tailspin trace (it still holds the seconds before the
//! stall), spindump's reading of it (who every thread waited on), the unified log's
//! errors and faults around the pause, and new DiagnosticReports.
//!
//! tailspin and spindump need root: they run through `sudo -n`, for which
//! `sudo pmon install --forensics` sets up narrow sudoers rules; without them the steps
//! are recorded as failed, saying so.

use std::time::Duration;

use super::{Output, Pause, Step, oslog, reports, waits::report};
use crate::command;

/// Log entries this long before the stall began still count.
const LOG_LEAD: Duration = Duration::from_secs(20);
/// Diagnostic reports are written a little after the hang they describe began.
const REPORT_LEAD: Duration = Duration::from_secs(60);
/// Reports larger than this are listed, not copied.
const MAX_REPORT_BYTES: u64 = 2 << 20;
/// Log entries shown in the finding.
const SHOWN: usize = 8;

/// The step whose stack report says who waited on whom: spindump reads the trace into who waited on whom; the announcement waits for it, so that it names the chain's root.
pub(super) const WAITS_STEP: Option<&str> = Some("spindump");

/// The steps, in order: tailspin first, since spindump reads what it saved.
pub(super) fn steps(pause: &Pause) -> Vec<Step> {
    let trace = pause.dir.join("pause.tailspin");
    let (limit, stall, ended_at) = (pause.limit, pause.stall, pause.ended_at);
    let trace_for_spindump = trace.clone();
    vec![
        ("tailspin", Box::new(move || tailspin(&trace, limit))),
        ("spindump", Box::new(move || decode(&trace_for_spindump, limit))),
        ("system-log", Box::new(move || system_log(stall, limit))),
        (
            "diagnostic-reports",
            Box::new(move || {
                let since = ended_at.checked_sub(stall + REPORT_LEAD).unwrap_or(std::time::UNIX_EPOCH);
                diagnostic_reports(since)
            }),
        ),
    ]
}

fn tailspin(trace: &std::path::Path, limit: Duration) -> Result<Output, String> {
    let args = ["-n", "tailspin", "save", "-o"].iter().map(|s| s.to_string()).chain([trace.display().to_string()]);
    command::run("sudo", &args.collect::<Vec<_>>(), limit).map_err(|e| {
        format!("{e} (tailspin needs root: `sudo pmon install --forensics` adds a narrow sudoers rule)")
    })?;
    let size = std::fs::metadata(trace).map(|m| m.len()).unwrap_or(0);
    Ok(Output {
        summary: format!("kernel trace of the seconds before the stall saved ({:.1} MB)", size as f64 / 1e6),
        detail: trace.display().to_string(),
        ..Output::default()
    })
}

fn decode(trace: &std::path::Path, limit: Duration) -> Result<Output, String> {
    if !trace.exists() {
        return Err("no tailspin trace to read (the tailspin step did not save one)".into());
    }
    // spindump refuses to run without root, even to read a saved trace.
    let args =
        ["-n", "spindump", "-i"].iter().map(|s| s.to_string()).chain([trace.display().to_string(), "-stdout".into()]);
    let text = String::from_utf8_lossy(&command::run("sudo", &args.collect::<Vec<_>>(), limit).map_err(|e| {
        format!("{e} (spindump needs root: `sudo pmon install --forensics` adds a narrow sudoers rule)")
    })?)
    .into_owned();
    let (summary, detail, waits) = report(&text);
    Ok(Output { summary, detail, artefacts: vec![("spindump.txt".into(), text.into_bytes())], waits })
}

fn system_log(stall: Duration, limit: Duration) -> Result<Output, String> {
    let last = (stall + LOG_LEAD).as_secs().max(1).to_string();
    let args: Vec<String> =
        ["show", "--last", &last, "--style", "ndjson", "--predicate", "messageType == error OR messageType == fault"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let out = command::run("log", &args, limit)?;
    let entries = oslog::parse(&String::from_utf8_lossy(&out));
    let telling: Vec<String> = entries.iter().filter(|e| e.is_telling()).map(oslog::Entry::line).collect();
    let summary = format!(
        "{} errors and faults in the last {last} s, {} about hangs, watchdogs or stalls",
        entries.len(),
        telling.len()
    );
    let detail = if telling.is_empty() {
        entries.iter().rev().take(SHOWN).map(oslog::Entry::line).collect::<Vec<_>>().join("\n")
    } else {
        telling.join("\n")
    };
    Ok(Output { summary, detail, artefacts: vec![("system-log.ndjson".into(), out)], ..Output::default() })
}

fn diagnostic_reports(since: std::time::SystemTime) -> Result<Output, String> {
    let mut dirs = vec![std::path::PathBuf::from("/Library/Logs/DiagnosticReports")];
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(std::path::PathBuf::from(home).join("Library/Logs/DiagnosticReports"));
    }
    let (mut names, mut artefacts) = (Vec::new(), Vec::new());
    for dir in &dirs {
        for path in reports::recent(dir, since).map_err(|e| format!("cannot list {}: {e}", dir.display()))? {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if std::fs::metadata(&path).is_ok_and(|m| m.len() <= MAX_REPORT_BYTES)
                && let Ok(bytes) = std::fs::read(&path)
            {
                artefacts.push((name.clone(), bytes));
            }
            names.push(path.display().to_string());
        }
    }
    let summary = match names.len() {
        0 => "no new spin, hang or crash reports around the pause".to_string(),
        n => format!(
            "{n} new reports: {}",
            names.iter().filter_map(|p| p.rsplit('/').next()).collect::<Vec<_>>().join(", ")
        ),
    };
    Ok(Output { summary, detail: names.join("\n"), artefacts, ..Output::default() })
}
