use std::time::{Duration, SystemTime};

use pmon_proto::{config::Config, v1::ProcessState};

use super::*;
use crate::engine::score;

fn samples() -> Vec<TopSample> {
    let path = format!("{}/../fixtures/macos/top/stream_pmon_stats.log", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut parser = TopParser::default();
    let mut all = parser.push(&bytes);
    all.extend(parser.finish());
    all
}

fn converted() -> Vec<RawSample> {
    let mut converter = TopConverter::default();
    samples()
        .iter()
        .enumerate()
        .map(|(i, s)| converter.convert(s, SystemTime::UNIX_EPOCH, (i > 0).then_some(Duration::from_secs(1))))
        .collect()
}

fn record(sample: &RawSample, pid: u32) -> &ProcessRecord {
    sample.processes.iter().find(|p| p.pid == pid).unwrap_or_else(|| panic!("pid {pid} missing"))
}

#[test]
fn the_first_sample_has_levels_but_no_cpu_and_no_rates() {
    let first = &converted()[0];
    assert_eq!(first.elapsed, None);
    let mds = record(first, 666);
    assert_eq!(mds.factors.cpu_percent, None, "the first sample's %CPU is meaningless");
    assert_eq!((mds.factors.pageins_per_sec, mds.factors.csw_per_sec, mds.factors.sysbsd_per_sec), (None, None, None));
    assert_eq!(mds.factors.mem_bytes, Some(4096 << 20));
    assert_eq!(mds.factors.threads, Some(9));
    assert_eq!(mds.state, ProcessState::Stuck);
    assert_eq!(first.system.load_1m, Some(2.91));
    assert_eq!(first.system.mem_total_bytes, Some((15 << 30) + (1002 << 20)));
    assert_eq!(first.system.swapins_per_sec, None);
}

#[test]
fn later_samples_have_rates_over_the_real_elapsed_time() {
    let second = &converted()[1];
    let mds = record(second, 666);
    assert_eq!(mds.factors.cpu_percent, Some(100.0));
    assert_eq!(mds.factors.pageins_per_sec, Some(1500.0));
    assert_eq!(mds.factors.csw_per_sec, Some(1000.0));
    assert_eq!(mds.factors.sysbsd_per_sec, Some(2000.0));
    assert_eq!(mds.factors.cmprs_bytes, None, "N/A stays unavailable");
    assert_eq!(record(second, 409).factors.csw_per_sec, Some(4000.0));
    assert_eq!(second.system.swapins_per_sec, Some(2.0));
    assert_eq!(second.system.swapouts_per_sec, Some(0.0));
}

#[test]
fn a_reused_pid_and_a_counter_going_backwards_give_no_rate() {
    let all = converted();
    let newcomer = record(&all[2], 7001);
    assert_eq!(newcomer.command, "newtool");
    assert_eq!((newcomer.factors.csw_per_sec, newcomer.factors.sysbsd_per_sec), (None, None), "pid reused");
    assert_eq!(record(&all[3], 7001).factors.csw_per_sec, Some(20.0), "rated from its own second sample");
    let launchd = record(&all[2], 1);
    assert_eq!(launchd.factors.csw_per_sec, None, "CSW went backwards: no rate, not a huge one");
    assert_eq!(launchd.factors.sysbsd_per_sec, Some(20.0));
}

#[test]
fn a_restart_starts_over() {
    let all = samples();
    let mut converter = TopConverter::default();
    converter.convert(&all[0], SystemTime::UNIX_EPOCH, None);
    converter.restart();
    let again = converter.convert(&all[1], SystemTime::UNIX_EPOCH, Some(Duration::from_secs(1)));
    assert_eq!(again.elapsed, None);
    assert_eq!(record(&again, 666).factors.cpu_percent, None, "first sample of the new run");
    assert_eq!(record(&again, 666).factors.pageins_per_sec, None);
}

#[test]
fn the_stuck_pager_is_the_top_rogue_and_scores_elevated() {
    let config = Config::default();
    let second = &converted()[1];
    let (points, _) = score::score(record(second, 666), &config.scoring);
    // cpu 25 + stuck 20 + pageins 15 + mem 4 GiB 7.5 + csw 0.1 + syscalls 0.1, × 1.0 for stuck.
    assert!((points - 67.7).abs() < 1e-9, "{points}");
    let scored = score::evaluate(&second.processes, &config, &std::collections::HashSet::new());
    let rogues: Vec<u32> = scored.rogues.iter().map(|r| r.pid).collect();
    assert_eq!(rogues.first(), Some(&666), "{rogues:?}");
    assert!(rogues.contains(&4321), "the zombie is a rogue by state: {rogues:?}");
}
