//! Arbitrary bytes never make the streaming parsers panic: neither noise nor a real
//! capture with bytes changed and cut at random places. (`pause::pmset` has its own.)

use proptest::prelude::*;

use super::{powermetrics, top};

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
    #![proptest_config(ProptestConfig::with_cases(200))]

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
