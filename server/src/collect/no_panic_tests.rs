//! Arbitrary bytes never make a parser of what the OS or a tool prints panic: the
//! streaming `top` and `powermetrics` parsers (noise, and a real capture with bytes
//! changed and cut at random places), the /proc file parsers, and the forensic
//! parsers (kernel log, unified log). (`pause::pmset` and the spindump crate have their own.)
//!
//! `PMON_FUZZ_CASES` sets the cases per property (CI runs the default); see README.

use proptest::prelude::*;

use super::{powermetrics, proc::parse, top};
use crate::forensics::{kmsg, oslog};

/// Cases per property: `PMON_FUZZ_CASES`, or a couple of hundred.
pub(crate) fn cases() -> u32 {
    std::env::var("PMON_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(200)
}

fn fixture(path: &str) -> Vec<u8> {
    let path = format!("{}/../fixtures/macos/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `bytes` with `edits` (position, byte) applied, cut into chunks of `chunk` bytes.
fn mangled(mut bytes: Vec<u8>, edits: &[(usize, u8)], chunk: usize) -> Vec<Vec<u8>> {
    for &(at, b) in edits {
        if !bytes.is_empty() {
            let at = at % bytes.len();
            bytes[at] = b;
        }
    }
    bytes.chunks(chunk.max(1)).map(<[u8]>::to_vec).collect()
}

fn run_top(chunks: &[Vec<u8>]) {
    let mut parser = top::TopParser::default();
    let mut converter = top::TopConverter::default();
    let mut samples: Vec<_> = chunks.iter().flat_map(|c| parser.push(c)).collect();
    samples.extend(parser.finish());
    for s in &samples {
        converter.convert(s, std::time::SystemTime::UNIX_EPOCH, Some(std::time::Duration::from_secs(1)));
    }
}

fn run_plist(chunks: &[Vec<u8>]) {
    let mut splitter = powermetrics::PlistSplitter::default();
    let mut docs: Vec<_> = chunks.iter().flat_map(|c| splitter.push(c)).collect();
    docs.extend(splitter.finish());
    for d in docs {
        if let Ok(sample) = powermetrics::document(&d) {
            powermetrics::convert(&sample, std::time::SystemTime::UNIX_EPOCH);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn proc_file_parsers_never_panic_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse::stat(&bytes);
        let _ = parse::status(&bytes);
        let _ = parse::io_syscalls(&bytes);
        let _ = parse::schedstat(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse::loadavg(&text);
        let _ = parse::last_pid(&text);
        let _ = parse::meminfo(&text);
        let _ = parse::pressure(&text);
        let _ = parse::vmstat(&text);
    }

    #[test]
    fn stat_parser_never_panics_on_near_misses(
        comm in "[ -~]{0,20}",
        state in "[A-Za-z ]{0,2}",
        fields in proptest::collection::vec("-?[0-9]{0,22}", 0..60),
    ) {
        let line = format!("42 ({comm}) {state} {}", fields.join(" "));
        let _ = parse::stat(line.as_bytes());
    }

    #[test]
    fn forensic_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
        let text = String::from_utf8_lossy(&bytes);
        for line in text.lines() {
            let _ = kmsg::parse(line);
        }
        for entry in oslog::parse(&text) {
            let _ = entry.line();
        }
    }

    #[test]
    fn log_lines_never_panic_on_any_text(timestamp in "\\PC{0,40}", path in "\\PC{0,40}") {
        let entry = oslog::Entry {
            timestamp,
            message_type: "Fault".into(),
            process_image_path: path,
            process_id: 1,
            subsystem: String::new(),
            event_message: String::new(),
        };
        let _ = entry.line();
    }

    #[test]
    fn top_parser_never_panics_on_noise(bytes in proptest::collection::vec(any::<u8>(), 0..2048), chunk in 1usize..300) {
        run_top(&mangled(bytes, &[], chunk));
    }

    #[test]
    fn top_parser_never_panics_on_a_damaged_capture(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..40),
        chunk in 1usize..500,
    ) {
        run_top(&mangled(fixture("top/stream_pmon_stats.log"), &edits, chunk));
    }

    #[test]
    fn plist_stream_never_panics_on_noise(bytes in proptest::collection::vec(any::<u8>(), 0..2048), chunk in 1usize..300) {
        run_plist(&mangled(bytes, &[], chunk));
    }

    #[test]
    fn plist_stream_never_panics_on_a_damaged_capture(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..40),
        chunk in 1usize..2000,
    ) {
        run_plist(&mangled(fixture("powermetrics/vm_nul_between_no_newline.plist"), &edits, chunk));
    }
}
