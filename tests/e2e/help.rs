//! The command-line surface, locked: every `--help` text against `tests/e2e/help/`, and
//! the generated completion scripts and man pages.
//!
//! After a deliberate change to the CLI, `PMON_BLESS=1 scripts/test help` rewrites the
//! expected files; review the diff before committing it.

use std::process::Command;

use crate::support::bin;

/// Every command path, as `pmon` arguments.
const PMON: [&[&str]; 22] = [
    &[],
    &["status"],
    &["watch"],
    &["tui"],
    &["events"],
    &["events", "show"],
    &["events", "mark"],
    &["history"],
    &["prune"],
    &["config"],
    &["config", "show"],
    &["config", "path"],
    &["config", "get"],
    &["config", "set"],
    &["config", "edit"],
    &["config", "reset"],
    &["calibrate"],
    &["install"],
    &["uninstall"],
    &["explain"],
    &["completions"],
    &["man"],
];

fn help(program: &str, args: &[&str]) -> String {
    let mut cmd = Command::new(bin(program));
    cmd.args(args).arg("--help");
    // Environment values appear in help texts; a test must not depend on the caller's.
    for var in ["PMON_DATA_DIR", "PMON_CONFIG", "PMON_LOG"] {
        cmd.env_remove(var);
    }
    let out = cmd.output().expect("run --help");
    assert!(out.status.success(), "{program} {args:?} --help failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn check(name: &str, actual: &str) -> Option<String> {
    let path = crate::support::repo().join("tests/e2e/help").join(format!("{name}.txt"));
    if std::env::var_os("PMON_BLESS").is_some() {
        std::fs::write(&path, actual).expect("bless");
        return None;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    (expected != actual).then(|| format!("{name}: differs from {} (PMON_BLESS=1 to accept):\n{actual}", path.display()))
}

#[test]
fn every_help_text_matches_its_snapshot_and_shows_an_example() {
    let mut failures = Vec::new();
    for args in PMON {
        let name = std::iter::once("pmon").chain(args.iter().copied()).collect::<Vec<_>>().join("-");
        let text = help("pmon", args);
        if !text.contains("Example") {
            failures.push(format!("{name}: no example in --help"));
        }
        failures.extend(check(&name, &text));
    }
    let server = help("pmon-server", &[]);
    assert!(server.contains("Examples:"), "{server}");
    failures.extend(check("pmon-server", &server));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn completion_scripts_generate_and_bash_loads_its_own() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(bin("pmon")).args(["completions", shell]).output().expect("completions");
        assert!(out.status.success() && out.stdout.len() > 500, "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("events") && script.contains("history"), "{shell}");
        if shell == "bash" {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("pmon.bash");
            std::fs::write(&path, script.as_bytes()).expect("write");
            let check = Command::new("bash").arg("-n").arg(&path).output().expect("bash -n");
            assert!(check.status.success(), "bash -n: {}", String::from_utf8_lossy(&check.stderr));
        }
    }
}

/// Writes the man pages into a new directory, checks each is roff, and returns them.
fn written_man_pages() -> (tempfile::TempDir, Vec<std::path::PathBuf>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(bin("pmon")).args(["man", "--out"]).arg(dir.path()).output().expect("man");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pages = ["pmon.1", "pmon-events.1", "pmon-events-mark.1", "pmon-history.1", "pmon-config-show.1"]
        .iter()
        .map(|page| {
            let path = dir.path().join(page);
            let roff = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{page} missing"));
            assert!(roff.starts_with(".ie") || roff.contains(".TH"), "{page} is not a man page");
            path
        })
        .collect();
    (dir, pages)
}

#[test]
fn man_pages_are_written_per_command() {
    written_man_pages();
}

#[test]
#[ignore = "needs man (Debian package man-db); scripts/test installs it as root and runs this, or says NOT RUN"]
fn man_pages_render() {
    let (_dir, pages) = written_man_pages();
    for path in pages {
        let r = Command::new("man")
            .arg("-l")
            .arg(&path)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "80")
            .output()
            .expect("man is installed (this test is run only where it is)");
        let page = path.display();
        assert!(r.status.success(), "man -l {page}: {}", String::from_utf8_lossy(&r.stderr));
        assert!(String::from_utf8_lossy(&r.stdout).contains("NAME"), "{page} rendered without a NAME section");
    }
}
