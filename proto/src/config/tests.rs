use super::*;

#[test]
fn empty_file_is_all_defaults() {
    assert_eq!(Config::parse("", "t").ok(), Some(Config::default()));
}

#[test]
fn the_fixture_with_every_key_written_equals_the_defaults() {
    assert_eq!(Config::parse(DEFAULT_FILE, "defaults.toml").ok(), Some(Config::default()));
}

#[test]
fn rendered_defaults_parse_back_identically() {
    let rendered = Config::default().to_toml();
    assert_eq!(Config::parse(&rendered, "rendered").ok(), Some(Config::default()));
}

#[test]
fn partial_tables_keep_the_other_defaults() {
    let c = Config::parse("[scoring.state_multipliers]\nidle = 0.25\n", "t").expect("valid");
    assert_eq!(c.scoring.state_multipliers.idle, 0.25);
    assert_eq!(c.scoring.state_multipliers.running, 0.9);
    assert_eq!(c.scoring.state_scores.stuck, 1.0);
}

#[test]
fn unknown_key_names_line_and_accepted_keys() {
    let err = Config::parse("[sampling]\n\ninterval = 2\n", "c.toml").expect_err("unknown key");
    let msg = err.to_string();
    assert!(msg.starts_with("c.toml:3:1: "), "{msg}");
    assert!(msg.contains("interval") && msg.contains("interval_seconds"), "{msg}");
}

#[test]
fn wrong_type_names_line() {
    let msg =
        Config::parse("[tiers]\nelevated_threshold = \"high\"\n", "c.toml").expect_err("string for number").to_string();
    assert!(msg.starts_with("c.toml:2:"), "{msg}");
}

#[test]
fn out_of_range_values_name_key_line_and_range() {
    let cases = [
        ("[sampling]\ninterval_seconds = 0\n", "sampling.interval_seconds", "2:1"),
        // The relation is blamed on the key the file writes, not on a default.
        ("[tiers]\nelevated_threshold = 80\n", "tiers.elevated_threshold", "2:1"),
        ("[sampling]\nelevated_interval_seconds = 2\n", "sampling.elevated_interval_seconds", "2:1"),
        ("[sampling]\ninterval_seconds = 0.1\n", "sampling.interval_seconds", "2:1"),
        ("[tiers]\ncritical_threshold = 40\n", "tiers.critical_threshold", "2:1"),
        ("[scoring.divisors]\nmem_bytes = -1\n", "scoring.divisors.mem_bytes", "2:1"),
        ("[scoring.weights]\n  cpu = 101\n", "scoring.weights.cpu", "2:3"),
        ("watchers.queue_samples = 0\n", "watchers.queue_samples", "1:1"),
        ("[limits]\nmax_watchers = 0\n", "limits.max_watchers", "2:1"),
        ("[limits]\nmax_request_bytes = 100\n", "limits.max_request_bytes", "2:1"),
        ("[limits]\nmax_events_page = 100001\n", "limits.max_events_page", "2:1"),
    ];
    for (text, key, location) in cases {
        let msg = Config::parse(text, "c.toml").expect_err(text).to_string();
        assert!(msg.starts_with(&format!("c.toml:{location}: {key}: ")), "{msg}");
    }
}

#[test]
fn unknown_state_name_lists_accepted_ones() {
    let msg = Config::parse("[rogues.states]\nstates = [\"blocked\"]\n", "c.toml").expect_err("bad state").to_string();
    assert!(msg.contains("stuck") && msg.contains("zombie"), "{msg}");
}

#[test]
fn a_partial_category_table_keeps_that_category_default_count() {
    let c = Config::parse("[rogues.cpu]\nthreshold = 10\n[rogues.mem]\ncount = 1\n", "t").expect("valid");
    assert_eq!((c.rogues.cpu.count, c.rogues.cpu.threshold), (5, 10.0));
    assert_eq!((c.rogues.mem.count, c.rogues.mem.threshold), (1, 0.0));
    assert_eq!(c.rogues.threads.count, 0);
}

#[test]
fn a_missing_file_is_defaults_unless_named_explicitly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nope.toml");
    assert_eq!(Config::load(&path, false).ok(), Some((Config::default(), false)));
    let msg = Config::load(&path, true).expect_err("explicit and missing").to_string();
    assert!(msg.contains("nope.toml") && msg.contains("does not exist"), "{msg}");
}

#[test]
fn source_names_parse_as_in_the_file() {
    assert_eq!("proc".parse::<SourceKind>(), Ok(SourceKind::Proc));
    let msg = "procfs".parse::<SourceKind>().expect_err("unknown");
    assert!(msg.contains("auto") && msg.contains("proc"), "{msg}");
}

#[test]
fn check_applies_to_overridden_values_too() {
    let mut c = Config::default();
    c.sampling.interval_seconds = 0.01;
    let e = c.check().expect_err("too fast");
    assert_eq!(e.keys[0], "sampling.interval_seconds");
    assert!(e.to_string().contains("accepted: 0.05 to 3600"), "{e}");
}

#[test]
fn suspect_patterns_are_names_or_globs_without_case() {
    let s = Suspects { patterns: vec!["mds_stores".into(), "backup*".into(), "?sync".into(), "*helper*".into()] };
    for (name, want) in [
        ("mds_stores", true),
        ("MDS_Stores", true),
        ("mds_stores2", false),
        ("backupd", true),
        ("backup", true),
        ("rsync", true),
        ("rsyncd", false),
        ("Chrome Helper (GPU)", true),
        ("kernel_task", false),
    ] {
        assert_eq!(s.matches(name), want, "{name}");
    }
    assert!(!Suspects::default().matches("anything"));
    let glob = |p: &str, name: &str| Suspects { patterns: vec![p.into()] }.matches(name);
    assert!(glob("a*b*c", "aXXbYYc") && !glob("a*b*c", "aXXbYY") && glob("**", "") && glob("é?", "ÉX"));
}
