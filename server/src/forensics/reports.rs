//! New diagnostic reports around a pause (macOS writes `.spin`, `.hang` and `.ips`
//! files under `DiagnosticReports` when something stalls): plain directory reading,
//! so it is tested anywhere.

use std::{
    io,
    path::{Path, PathBuf},
    time::SystemTime,
};

/// Whether a file name is a stall, hang or crash report.
pub fn is_report(name: &str) -> bool {
    [".spin", ".hang", ".ips"].iter().any(|ext| name.ends_with(ext))
}

/// Reports in `dir` modified at or after `since`, oldest first; a missing directory has none.
pub fn recent(dir: &Path, since: SystemTime) -> io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found: Vec<(SystemTime, PathBuf)> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !is_report(name) {
            continue;
        }
        if let Ok(modified) = entry.metadata().and_then(|m| m.modified())
            && modified >= since
        {
            found.push((modified, entry.path()));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn only_reports_written_since_the_window() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = SystemTime::now();
        for (name, age) in [
            ("WindowServer_2026-11-20-140314_Mac.spin", 5),
            ("Safari_2026-11-20-140315_Mac.hang", 2),
            ("old_2026-11-01-000000_Mac.ips", 3600),
            ("notes.txt", 1),
        ] {
            let path = dir.path().join(name);
            let f = std::fs::File::create(&path).expect("create");
            f.set_modified(now - Duration::from_secs(age)).expect("mtime");
        }
        let got = recent(dir.path(), now - Duration::from_secs(60)).expect("list");
        let names: Vec<String> = got.iter().filter_map(|p| p.file_name()?.to_str().map(String::from)).collect();
        assert_eq!(names, vec!["WindowServer_2026-11-20-140314_Mac.spin", "Safari_2026-11-20-140315_Mac.hang"]);
        assert!(recent(&dir.path().join("absent"), now).expect("missing dir").is_empty());
    }
}
