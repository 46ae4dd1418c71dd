use super::*;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../fixtures/macos/top/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parse_all(bytes: &[u8], chunk: usize) -> (Vec<TopSample>, u64) {
    let mut parser = TopParser::default();
    let mut samples: Vec<TopSample> = bytes.chunks(chunk).flat_map(|c| parser.push(c)).collect();
    samples.extend(parser.finish());
    (samples, parser.unparsed_lines())
}

fn row(sample: &TopSample, pid: u32) -> &TopRow {
    sample.rows.iter().find(|r| r.pid == pid).unwrap_or_else(|| panic!("pid {pid} missing"))
}

#[test]
fn the_pmon_stream_gives_every_sample_with_header_and_rows() {
    let (samples, unparsed) = parse_all(&fixture("stream_pmon_stats.log"), usize::MAX);
    assert_eq!(samples.len(), 4);
    assert_eq!(unparsed, 0);
    let first = &samples[0];
    assert_eq!(first.time.map(|t| t.to_string()), Some("2026-11-20 14:03:10".into()));
    assert_eq!(first.load, Some([2.91, 2.60, 2.48]));
    assert_eq!(first.phys_used_bytes, Some(15 * GIB));
    assert_eq!(first.compressor_bytes, Some(3167 * MIB));
    assert_eq!(first.phys_unused_bytes, Some(1002 * MIB));
    assert_eq!((first.swapins, first.swapouts), (Some(3_510_995), Some(5_171_714)));
    assert_eq!(first.rows.len(), 7);

    let mds = row(first, 666);
    assert_eq!(mds.command, "mds_stores");
    assert_eq!(mds.state, Some(ProcessState::Stuck));
    assert_eq!(mds.mem_bytes, Some(4096 * MIB), "4096M+: the change mark is not part of the value");
    assert_eq!(mds.cmprs_bytes, None, "N/A is unavailable, not zero");
    assert_eq!(mds.threads, Some(9), "#TH 9/1 is 9 threads, 1 running");
    assert_eq!((mds.csw, mds.sysbsd, mds.pageins), (Some(880_000), Some(1_500_000), Some(412_000)));
    assert_eq!(mds.cpu_percent, Some(7.5));

    assert_eq!(row(first, 5120).command, "Google Chrome He", "a name with spaces");
    let helper = row(first, 5188);
    assert_eq!(helper.command, "Code Helper (Re", "spaces and a parenthesis");
    assert_eq!(helper.mem_bytes, Some(5820 * 1024));
    assert_eq!(helper.cmprs_bytes, Some(512 * 1024));
    assert_eq!(row(first, 4321).state, Some(ProcessState::Zombie));
    assert_eq!(row(first, 4321).mem_bytes, Some(0), "0B");
    assert_eq!(row(first, 409).threads, Some(20));
    assert_eq!(row(samples.last().expect("a sample"), 5120).mem_bytes, Some(311 * MIB), "311M-");
    assert_eq!(row(&samples[2], 7001).command, "newtool");
}

#[test]
fn any_chunking_of_the_stream_gives_the_same_samples() {
    let bytes = fixture("stream_pmon_stats.log");
    let (whole, _) = parse_all(&bytes, usize::MAX);
    for chunk in [1, 2, 3, 7, 64, 1000] {
        assert_eq!(parse_all(&bytes, chunk).0, whole, "chunks of {chunk} bytes");
    }
}

#[test]
fn samples_are_returned_as_soon_as_the_next_one_begins() {
    let bytes = fixture("stream_pmon_stats.log");
    let text = String::from_utf8(bytes).expect("utf-8");
    let second = text.match_indices("Processes:").nth(1).map(|(i, _)| i).expect("two samples");
    let mut parser = TopParser::default();
    assert!(parser.push(&text.as_bytes()[..second]).is_empty(), "the first sample may still grow");
    let done = parser.push(b"Processes: 412 total, 3 running, 409 sleeping, 2890 threads \n");
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].rows.len(), 7);
}

#[test]
fn duplicate_titles_use_the_first_column() {
    let (samples, unparsed) = parse_all(&fixture("l1_pid_stats_duplicate_mem.log"), 5);
    assert_eq!((samples.len(), unparsed), (1, 0));
    let node = row(&samples[0], 61734);
    assert_eq!(node.command, "node");
    assert_eq!(node.mem_bytes, Some(47 * GIB));
    assert_eq!(node.threads, Some(26));
    assert_eq!(node.state, Some(ProcessState::Stuck), "STATE with trailing spaces");
    assert_eq!((node.cmprs_bytes, node.csw, node.pageins), (None, None, None), "columns not shown");
    assert_eq!(samples[0].compressor_bytes, Some(33 * GIB));
}

#[test]
fn a_stream_without_trailing_spaces_or_final_newline() {
    let (samples, unparsed) = parse_all(&fixture("l0_pid_command_cpu_mem.log"), 3);
    assert_eq!((samples.len(), unparsed), (2, 0));
    assert_eq!(samples[0].compressor_bytes, None, "older PhysMem line has no compressor");
    assert_eq!(samples[0].phys_unused_bytes, Some(11 * GIB));
    assert_eq!(
        samples[1].rows,
        vec![TopRow {
            pid: 2207,
            command: "hdc".into(),
            cpu_percent: Some(0.3),
            mem_bytes: Some(5816 * 1024),
            ..TopRow::default()
        }]
    );
}

#[test]
fn lines_that_fit_nothing_are_counted_never_fatal() {
    let mut parser = TopParser::default();
    let mut done =
        parser.push(b"top: something odd\nProcesses: 3 total\n2026/11/20 14:03:10\nnonsense without colon\n");
    done.extend(parser.push(b"PID COMMAND MEM\nabc x 1M\n12 ok 3Q\n13 two words 2K\n"));
    done.extend(parser.finish());
    assert_eq!(parser.unparsed_lines(), 3, "the line before any sample, the odd header line, the bad pid");
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].rows.len(), 2);
    assert_eq!(done[0].rows[0].mem_bytes, None, "3Q is no amount");
    assert_eq!(done[0].rows[1].command, "two words");
    assert!(parser.finish().is_none(), "nothing in progress");
}

#[test]
fn memory_amounts() {
    assert_eq!(bytes("12M"), Some(12 * MIB));
    assert_eq!(bytes("1024K"), Some(1024 * 1024));
    assert_eq!(bytes("3G+"), Some(3 * GIB));
    assert_eq!(bytes("183T"), Some(183 << 40));
    assert_eq!(bytes("1.5G"), Some(3 * GIB / 2));
    assert_eq!(bytes("0B"), Some(0));
    assert_eq!(bytes("N/A"), None);
    assert_eq!(bytes("99999999999999999999P"), None, "overflow is no amount");
    assert_eq!(bytes(""), None);
}

/// The real captures, where this checkout has them (users' clones do not).
#[test]
#[ignore = "reads the real macOS captures in ../shared/macos-samples (or $PMON_MACOS_SAMPLES)"]
fn real_captures_parse() {
    let captures = crate::real_captures::starting_with("top_");
    for (name, bytes) in captures {
        let (samples, unparsed) = parse_all(&bytes, 17);
        assert_eq!(samples.len(), 1, "{name}");
        assert_eq!(unparsed, 0, "{name}");
        assert!(samples[0].rows.iter().all(|r| r.pid > 0 && !r.command.is_empty()), "{name}");
        assert!(samples[0].load.is_some() && samples[0].time.is_some(), "{name}");
    }
}
