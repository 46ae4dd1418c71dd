use pmon_proto::{config::Config, v1::ProcessState};
use proptest::prelude::*;

use super::*;

const GIB: u64 = 1024 * 1024 * 1024;

fn record(pid: u32, state: ProcessState, factors: ProcessFactors) -> ProcessRecord {
    ProcessRecord { pid, command: format!("p{pid}"), state, factors, ..ProcessRecord::default() }
}

fn points(shares: &[FactorShare], factor: Factor) -> Option<f64> {
    shares.iter().find(|s| s.factor == factor as i32).map(|s| s.points)
}

#[test]
fn table_of_scores_at_defaults() {
    let s = Config::default().scoring;
    let cases: [(&str, ProcessState, ProcessFactors, f64); 6] = [
        ("idle sleeper", ProcessState::Sleeping, ProcessFactors::default(), 0.0),
        // One full core: 25 points, × 0.9 for running.
        ("cpu hog", ProcessState::Running, ProcessFactors { cpu_percent: Some(100.0), ..Default::default() }, 22.5),
        // Beyond the divisor counts as 1, never more.
        ("4 cores", ProcessState::Running, ProcessFactors { cpu_percent: Some(400.0), ..Default::default() }, 22.5),
        // Stuck: state 1.0 × 20, pageins 1.0 × 15, multiplier 1.0.
        (
            "stuck pager",
            ProcessState::Stuck,
            ProcessFactors { pageins_per_sec: Some(5000.0), ..Default::default() },
            35.0,
        ),
        // Zombie: 0.8 × 20.
        ("zombie", ProcessState::Zombie, ProcessFactors::default(), 16.0),
        // 4 GiB of 8 (7.5) + 512 MiB swapped of 1 GiB (5), sleeping × 0.7.
        (
            "memory",
            ProcessState::Sleeping,
            ProcessFactors { mem_bytes: Some(4 * GIB), cmprs_bytes: Some(GIB / 2), ..Default::default() },
            8.75,
        ),
    ];
    for (name, state, factors, want) in cases {
        let (got, shares) = score(&record(1, state, factors), &s);
        assert!((got - want).abs() < 1e-9, "{name}: {got} != {want}");
        let sum: f64 = shares.iter().map(|s| s.points).sum();
        assert!((sum - got).abs() < 1e-9, "{name}: shares {sum} != score {got}");
    }
}

#[test]
fn explanation_attributes_in_proportion_largest_first() {
    let s = Config::default().scoring;
    let p = record(
        7,
        ProcessState::Running,
        ProcessFactors { cpu_percent: Some(50.0), pageins_per_sec: Some(1000.0), ..Default::default() },
    );
    let (score, shares) = score(&p, &s);
    // 12.5 + 15 = 27.5, × 0.9 = 24.75; pageins holds 15/27.5 of it.
    assert!((score - 24.75).abs() < 1e-9);
    assert_eq!(shares[0].factor, Factor::Pageins as i32);
    assert!((points(&shares, Factor::Pageins).unwrap_or(0.0) - 24.75 * 15.0 / 27.5).abs() < 1e-9);
    assert!((shares[1].normalized - 0.5).abs() < 1e-9 && shares[1].weight == 25.0);
    // Unavailable and zero factors are not explained.
    assert_eq!(points(&shares, Factor::Mem), None);
    assert_eq!(shares.len(), 2);
}

#[test]
fn weights_summing_past_100_are_capped() {
    let mut s = Config::default().scoring;
    s.weights.cpu = 100.0;
    s.weights.pageins = 100.0;
    let p = record(
        1,
        ProcessState::Stuck,
        ProcessFactors { cpu_percent: Some(100.0), pageins_per_sec: Some(1000.0), ..Default::default() },
    );
    let (score, shares) = score(&p, &s);
    assert_eq!(score, 100.0);
    assert!((shares.iter().map(|s| s.points).sum::<f64>() - 100.0).abs() < 1e-9);
}

fn hog(pid: u32, cpu: f64) -> ProcessRecord {
    record(pid, ProcessState::Running, ProcessFactors { cpu_percent: Some(cpu), ..Default::default() })
}

#[test]
fn selection_takes_top_n_per_category_plus_states() {
    let mut procs: Vec<ProcessRecord> = (1..=10).map(|pid| hog(pid, f64::from(pid) * 10.0)).collect();
    procs.push(record(50, ProcessState::Stuck, ProcessFactors::default()));
    procs.push(record(51, ProcessState::Zombie, ProcessFactors::default()));
    procs.push(record(52, ProcessState::Sleeping, ProcessFactors { cpu_percent: Some(0.0), ..Default::default() }));
    let scored = evaluate(&procs, &Config::default(), &HashSet::new());
    let pids: Vec<u32> = scored.rogues.iter().map(|r| r.pid).collect();
    // Top 5 by cpu (22.5, 20.25, 18, 15.75, 13.5) interleave with stuck (20) and zombie (16);
    // pid 52 has 0 % cpu, not above the threshold, and nothing else selects it.
    assert_eq!(pids, vec![10, 9, 50, 8, 51, 7, 6]);
    assert!((scored.max_score - 22.5).abs() < 1e-9);
    let by = |pid: u32| scored.rogues.iter().find(|r| r.pid == pid).map(|r| r.selected_by.clone());
    assert_eq!(by(10), Some(vec![Factor::Cpu as i32]));
    assert_eq!(by(50), Some(vec![Factor::State as i32]));
}

#[test]
fn a_young_zombie_is_not_selected_by_its_state_but_what_it_consumed_still_counts() {
    let procs = vec![
        record(51, ProcessState::Zombie, ProcessFactors::default()),
        record(52, ProcessState::Zombie, ProcessFactors { cpu_percent: Some(80.0), ..Default::default() }),
        record(53, ProcessState::Zombie, ProcessFactors::default()),
    ];
    let scored = evaluate(&procs, &Config::default(), &HashSet::from([51, 52]));
    let rogue = |pid: u32| scored.rogues.iter().find(|r| r.pid == pid);
    assert!(rogue(51).is_none(), "a zombie within its grace is no rogue");
    let consumer = rogue(52).expect("selected by its cpu");
    assert_eq!(consumer.selected_by, vec![Factor::Cpu as i32]);
    assert_eq!(points(&consumer.explanation, Factor::State), None, "its state weighs nothing yet");
    assert_eq!(rogue(53).map(|r| r.selected_by.clone()), Some(vec![Factor::State as i32]), "an old zombie counts");
}

#[test]
fn threshold_excludes_values_at_or_below_it() {
    let mut c = Config::default();
    c.rogues.cpu.threshold = 50.0;
    let procs = vec![hog(1, 50.0), hog(2, 50.1)];
    let pids: Vec<u32> = evaluate(&procs, &c, &HashSet::new()).rogues.iter().map(|r| r.pid).collect();
    assert_eq!(pids, vec![2]);
}

#[test]
fn no_processes_no_rogues() {
    let s = evaluate(&[], &Config::default(), &HashSet::new());
    assert_eq!((s.max_score, s.rogues.len()), (0.0, 0));
}

fn any_state() -> impl Strategy<Value = ProcessState> {
    prop::sample::select(vec![
        ProcessState::Unspecified,
        ProcessState::Running,
        ProcessState::Sleeping,
        ProcessState::Stuck,
        ProcessState::Zombie,
        ProcessState::Halted,
        ProcessState::Stopped,
        ProcessState::Idle,
    ])
}

fn any_factors() -> impl Strategy<Value = ProcessFactors> {
    let rate = prop::option::of(prop_oneof![0.0..1e7f64, Just(f64::NAN), Just(f64::INFINITY)]);
    (
        rate.clone(),
        rate.clone(),
        prop::option::of(any::<u64>()),
        prop::option::of(any::<u64>()),
        rate.clone(),
        rate,
        prop::option::of(any::<u32>()),
    )
        .prop_map(|(cpu, pageins, mem, cmprs, csw, sysbsd, threads)| ProcessFactors {
            cpu_percent: cpu,
            pageins_per_sec: pageins,
            mem_bytes: mem,
            cmprs_bytes: cmprs,
            csw_per_sec: csw,
            sysbsd_per_sec: sysbsd,
            threads,
            // Evidence only: scoring never reads them.
            ..ProcessFactors::default()
        })
}

proptest! {
    #[test]
    fn score_in_range_and_shares_sum_to_it(state in any_state(), factors in any_factors(), weights in prop::array::uniform8(0.0..100.0f64)) {
        let mut s = Config::default().scoring;
        let w = &mut s.weights;
        [w.cpu, w.state, w.pageins, w.mem, w.cmprs, w.csw, w.sysbsd, w.threads] = weights;
        let (score, shares) = score(&record(1, state, factors), &s);
        prop_assert!((0.0..=100.0).contains(&score), "score {}", score);
        let sum: f64 = shares.iter().map(|s| s.points).sum();
        prop_assert!((sum - score).abs() < 1e-6, "shares {} vs score {}", sum, score);
        prop_assert!(shares.windows(2).all(|w| w[0].points >= w[1].points));
        prop_assert!(shares.iter().all(|s| (0.0..=1.0).contains(&s.normalized)));
    }

    #[test]
    fn rogues_sorted_unique_and_max_is_first(procs in prop::collection::vec((any_state(), any_factors()), 0..60)) {
        let procs: Vec<ProcessRecord> = procs.into_iter().enumerate()
            .map(|(i, (state, f))| record(i as u32 + 1, state, f)).collect();
        let scored = evaluate(&procs, &Config::default(), &HashSet::new());
        let mut pids: Vec<u32> = scored.rogues.iter().map(|r| r.pid).collect();
        prop_assert!(scored.rogues.windows(2).all(|w| w[0].score >= w[1].score));
        prop_assert_eq!(scored.max_score, scored.rogues.first().map_or(0.0, |r| r.score));
        // At most 5 + 3×5 + 10 from the default categories, and no duplicates.
        prop_assert!(pids.len() <= 30);
        pids.sort_unstable();
        pids.dedup();
        prop_assert_eq!(pids.len(), scored.rogues.len());
    }
}

#[test]
fn rankings_line_up_with_the_configured_categories() {
    for ((factor, _), (name, _, _)) in RANKINGS.into_iter().zip(Config::default().rogues.categories()) {
        assert_eq!(factor.as_str_name().trim_start_matches("FACTOR_").to_lowercase(), name);
    }
}

#[test]
fn rogues_matching_a_suspect_pattern_are_flagged() {
    let mut c = Config::default();
    c.suspects.patterns = vec!["p1*".into()];
    let scored = evaluate(&[hog(1, 50.0), hog(2, 60.0)], &c, &HashSet::new());
    let flags: Vec<(u32, bool)> = scored.rogues.iter().map(|r| (r.pid, r.suspect)).collect();
    assert_eq!(flags, vec![(2, false), (1, true)]);
}
