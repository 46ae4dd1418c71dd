use std::time::{Duration, UNIX_EPOCH};

use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../fixtures/macos/powermetrics/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn split(bytes: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let mut splitter = PlistSplitter::default();
    let mut docs: Vec<Vec<u8>> = bytes.chunks(chunk).flat_map(|c| splitter.push(c)).collect();
    docs.extend(splitter.finish());
    docs
}

fn parse_all(bytes: &[u8], chunk: usize) -> Vec<PmSample> {
    split(bytes, chunk).iter().map(|d| document(d).expect("a valid document")).collect()
}

#[test]
fn documents_followed_by_newline_and_nul() {
    let samples = parse_all(&fixture("stream_nul_after_each.plist"), usize::MAX);
    assert_eq!(samples.len(), 3);
    let s = &samples[1];
    assert_eq!(s.time, Some(UNIX_EPOCH + Duration::from_secs(1_795_183_502)));
    assert_eq!((s.is_delta, s.elapsed_ns), (Some(true), Some(1_002_113_000)));
    assert_eq!(s.thermal_pressure.as_deref(), Some("Moderate"));
    assert_eq!(s.gpu_busy_ratio, Some(0.75), "1 − idle_ratio");
    assert_eq!(s.disk_read_bytes_per_s, Some(56_018.2));
    assert_eq!(s.tasks.len(), 3, "the ALL_TASKS aggregate is not a task");
    let mds = &s.tasks[0];
    assert_eq!((mds.pid, mds.name.as_str()), (812, "mds_stores"));
    assert_eq!(mds.cpu_ms_per_s, Some(998.7));
    assert_eq!(mds.pageins_per_s, Some(1800.5));
    assert_eq!(mds.disk_read_bytes_per_s, Some(52_428_800.0));
    assert_eq!(mds.started_ns, Some(3_101_873_322_905));
    assert_eq!(mds.wakeups_per_s, Some(80.1 + 1.99578));
    assert_eq!(s.tasks[2].name, "Google Chrome Helper (Renderer)");
    assert_eq!(samples[2].thermal_pressure.as_deref(), Some("Heavy"));
}

#[test]
fn documents_separated_only_by_nul_without_final_newline() {
    let samples = parse_all(&fixture("vm_nul_between_no_newline.plist"), usize::MAX);
    assert_eq!(samples.len(), 2);
    let first = &samples[0];
    assert_eq!(first.is_delta, Some(false), "read despite the warning line in the middle");
    assert_eq!((first.gpu_busy_ratio, first.thermal_pressure.as_deref()), (None, None), "a VM has neither");
    assert_eq!((first.disk_read_bytes_per_s, first.disk_write_bytes_per_s), (None, None));
    assert_eq!(first.tasks[1].started_ns, Some(16_341_303_000), "the older started_ns key");
    assert_eq!(first.tasks[1].pageins_per_s, None, "no disk sampler: unavailable");
    assert_eq!(samples[1].is_delta, Some(true));
    assert_eq!(samples[1].tasks[0].cpu_ms_per_s, Some(28.0));
}

#[test]
fn any_chunking_gives_the_same_documents() {
    for name in ["stream_nul_after_each.plist", "vm_nul_between_no_newline.plist"] {
        let bytes = fixture(name);
        let whole = split(&bytes, usize::MAX);
        for chunk in [1, 2, 5, 13, 4096] {
            assert_eq!(split(&bytes, chunk), whole, "{name} in chunks of {chunk}");
        }
    }
}

#[test]
fn a_document_is_complete_at_its_closing_tag() {
    let bytes = fixture("vm_nul_between_no_newline.plist");
    let nul = bytes.iter().position(|b| *b == 0).expect("a separator");
    let mut splitter = PlistSplitter::default();
    let done = splitter.push(&bytes[..nul]);
    assert_eq!(done.len(), 1, "no need to wait for the separator");
    assert!(splitter.push(&bytes[nul..nul + 1]).is_empty(), "the separator adds no document");
}

#[test]
fn a_document_broken_beyond_stray_lines_is_still_an_error() {
    let err = document(b"<plist version=\"1.0\"><dict>\nwarning: x\n<key>a</key></plist>").expect_err("broken");
    assert!(err.to_string().starts_with("not a plist document"), "{err}");
}

#[test]
fn bad_documents_are_errors_that_say_what_was_expected() {
    let err =
        document(b"<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>a</key></plist>").expect_err("broken");
    assert!(err.to_string().starts_with("not a plist document"), "{err}");
    let err = document(b"<plist version=\"1.0\"><array></array></plist>").expect_err("not a dict");
    assert!(err.to_string().contains("one dictionary per sample"), "{err}");
    let empty = document(b"<plist version=\"1.0\"><dict></dict></plist>").expect("an empty sample");
    assert_eq!(empty, PmSample::default());
}

/// The real captures, where this checkout has them (users' clones do not).
#[test]
#[ignore = "reads the real macOS captures in ../shared/macos-samples (or $PMON_MACOS_SAMPLES)"]
fn real_captures_parse() {
    let captures = crate::real_captures::starting_with("powermetrics_");
    let mut seen = 0;
    for (name, bytes) in captures {
        let samples = parse_all(&bytes, 999);
        assert!(!samples.is_empty(), "{name}");
        assert!(samples.iter().all(|s| !s.tasks.is_empty() && s.time.is_some()), "{name}");
        if name.contains("stream") {
            assert_eq!(samples.len(), 9, "{name}");
        }
        if name.contains("m4max") {
            assert_eq!(samples[0].thermal_pressure.as_deref(), Some("Nominal"));
            assert!(samples[0].gpu_busy_ratio.is_some_and(|g| (g - 0.122657).abs() < 1e-9));
        }
        seen += 1;
    }
    assert_eq!(seen, 4);
}
