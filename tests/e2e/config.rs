//! `pmon config get | set | edit | reset`, and the server reloading on SIGHUP.

use std::{
    path::Path,
    process::{Command, Output},
    time::{Duration, Instant},
};

use crate::support::{Server, bin, json_u64};

/// `pmon ARGS` with this config file and data directory, and extra environment.
fn pmon_with(config: &Path, data_dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(bin("pmon"));
    cmd.arg("--data-dir").arg(data_dir).args(args).env("PMON_CONFIG", config).env_remove("PMON_DATA_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run pmon")
}

const COMMENTED: &str = "# my settings\n\n[tiers]\n# how touchy\nelevated_threshold = 50   # the default\ncritical_threshold = 80\n\n[sampling]\ninterval_seconds = 1.0 # 1 Hz\n";

#[test]
fn set_changes_only_that_value_and_keeps_comments_and_refuses_bad_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("config.toml");
    std::fs::write(&file, COMMENTED).expect("write");
    let out = pmon_with(&file, dir.path(), &[], &["config", "set", "tiers.elevated_threshold", "60"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no pmon-server is running"));
    let after = std::fs::read_to_string(&file).expect("read");
    let changed: Vec<(&str, &str)> = COMMENTED.lines().zip(after.lines()).filter(|(a, b)| a != b).collect();
    assert_eq!(changed, vec![("elevated_threshold = 50   # the default", "elevated_threshold = 60   # the default")]);
    assert_eq!(COMMENTED.lines().count(), after.lines().count());
    let got = pmon_with(&file, dir.path(), &[], &["config", "get", "tiers.elevated_threshold"]);
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), "60.0");
    let got = pmon_with(&file, dir.path(), &[], &["config", "get", "suspects", "--json"]);
    assert_eq!(String::from_utf8_lossy(&got.stdout).trim(), r#"{"patterns":[]}"#);

    for (key, value, says) in [
        ("tiers.elevated_threshold", "500", "accepted: 0 to 100"),
        ("tiers.elevated_threshold", "90", "must be above elevated_threshold"),
        ("tiers.elevatd_threshold", "60", "unknown field `elevatd_threshold`"),
    ] {
        let out = pmon_with(&file, dir.path(), &[], &["config", "set", key, value]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{key}={value}: {err}");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), after, "a refused set writes nothing");
    }
}

#[test]
fn set_follows_inline_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("config.toml");
    std::fs::write(&file, "[scoring]\nweights = { cpu = 30 }\n").expect("write");
    let out = pmon_with(&file, dir.path(), &[], &["config", "set", "scoring.weights.mem", "20"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&file).expect("read");
    let table: toml::Table = toml::from_str(&text).expect("still TOML");
    assert_eq!(table["scoring"]["weights"]["cpu"].as_integer(), Some(30), "{text}");
    assert_eq!(table["scoring"]["weights"]["mem"].as_integer(), Some(20), "{text}");
    assert!(text.starts_with("[scoring]\nweights = {"), "still an inline table: {text}");
}

#[test]
fn edit_refuses_an_invalid_file_showing_the_line_and_saves_a_valid_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("config.toml");
    std::fs::write(&file, COMMENTED).expect("write");
    let editor = dir.path().join("editor.sh");
    std::fs::write(&editor, "#!/bin/sh\nprintf '[tiers]\\n\\nelevated_threshold = \"high\"\\n' > \"$1\"\n")
        .expect("script");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    // VISUAL wins over EDITOR, as in other tools.
    let cmd_env = [("VISUAL", editor.to_str().expect("utf-8"))];
    let out = pmon_with(&file, dir.path(), &cmd_env, &["config", "edit"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("config.toml:3:") && err.contains("not saved"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), COMMENTED, "the file is untouched");

    let draft = dir.path().join("config.toml.edit");
    assert!(std::fs::read_to_string(&draft).expect("draft kept").contains("\"high\""));

    // Editing again continues from that draft; fixing it saves it and the draft goes.
    std::fs::write(&editor, "#!/bin/sh\nsed -i 's/\"high\"/60/' \"$1\"\n").expect("script");
    let out = pmon_with(&file, dir.path(), &cmd_env, &["config", "edit"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("continuing your earlier draft"));
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "[tiers]\n\nelevated_threshold = 60\n");
    assert!(!draft.exists());
}

#[test]
fn reset_writes_every_default_with_comments_and_keeps_the_old_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("config.toml");
    std::fs::write(&file, COMMENTED).expect("write");
    let out = pmon_with(&file, dir.path(), &[], &["config", "reset"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let fresh = std::fs::read_to_string(&file).expect("read");
    assert!(fresh.contains("[retention]") && fresh.contains("# 1 GiB cap"), "{fresh}");
    assert_eq!(std::fs::read_to_string(dir.path().join("config.toml.bak")).expect("backup"), COMMENTED);
}

fn wait_for(server: &Server, what: &str, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = server.status();
        if ok(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "{what}: {status}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_applies_a_valid_change_and_an_invalid_one_changes_nothing_but_is_reported() {
    let server = Server::start("[sampling]\ninterval_seconds = 0.2\nelevated_interval_seconds = 0.2\n");
    let file = server.dir.path().join("config.toml");
    server.wait_samples(1);
    let out = pmon_with(&file, &server.data_dir(), &[], &["config", "set", "sampling.interval_seconds", "0.5"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.contains(&format!("pid {}", server.pid())), "{said}");
    let status = wait_for(&server, "interval 0.5 after reload", |s| s["intervalSeconds"].as_f64() == Some(0.5));
    assert_eq!(status["configError"], serde_json::Value::Null);

    // The next samples come 0.5 s apart, not 0.2 s.
    let seq = json_u64(&status["lastSequence"]);
    let watch = crate::support::Watch::start(&server, &["--after", &seq.to_string()]);
    for _ in 0..2 {
        let later = watch.next_sample(Duration::from_secs(5));
        assert!(later["elapsedMs"].as_f64().is_some_and(|ms| ms > 400.0), "{later}");
    }

    std::fs::write(&file, "[sampling]\ninterval_seconds = 0.2\nelevated_interval_seconds = 0.9\n").expect("write");
    server.signal(libc::SIGHUP);
    let status = wait_for(&server, "error reported", |s| s["configError"].is_string());
    let error = status["configError"].as_str().unwrap_or("");
    assert!(error.contains("config.toml:3:") && error.contains("elevated_interval_seconds"), "{error}");
    assert_eq!(status["intervalSeconds"].as_f64(), Some(0.5), "the old configuration stays in force");
    assert!(server.log().contains("the previous one stays in force"), "{}", server.log());
}
