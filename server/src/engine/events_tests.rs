use pmon_proto::v1::{FactorShare, ProcessFactors, ProcessUse, Rogue};

use super::*;

fn rogue(pid: u32, command: &str, score: f64) -> Rogue {
    Rogue {
        pid,
        command: command.into(),
        score,
        factors: Some(ProcessFactors { cpu_percent: Some(score * 4.0), ..Default::default() }),
        explanation: vec![FactorShare {
            factor: pmon_proto::v1::Factor::Cpu as i32,
            normalized: 1.0,
            weight: 25.0,
            points: score,
        }],
        ..Default::default()
    }
}

fn sample(sequence: u64, tier: Tier, rogues: Vec<Rogue>) -> Arc<Sample> {
    let max_score = rogues.first().map_or(0.0, |r| r.score);
    Arc::new(Sample {
        sequence,
        time: Some(crate::store::timestamp_ms(1_000_000 + sequence as i64 * 1000)),
        tier: tier as i32,
        max_score,
        stress: max_score,
        rogues,
        ..Default::default()
    })
}

/// The first culprit's command.
fn first(culprits: &[Culprit]) -> &str {
    culprits.first().and_then(|c| c.usage.as_ref()).map_or("", |u| &u.command)
}

/// Ops as short words, in order.
fn names(ops: &[Op]) -> Vec<String> {
    ops.iter()
        .map(|op| match op {
            Op::History(s, _) => format!("history#{}", s.sequence),
            Op::OpenEvent(e) if e.kind == EventKind::Escalation => format!("open{}:{}", e.id, first(&e.culprits)),
            Op::OpenEvent(e) => format!("open{}:{:?}", e.id, e.kind),
            Op::EventSample { event_id, reason, sample } => format!("keep{event_id}:{reason}#{}", sample.sequence),
            Op::Peak { event_id, peak_score, culprits, .. } => {
                format!("peak{event_id}:{peak_score}:{}", first(culprits))
            }
            Op::CloseEvent { event_id, culprits, .. } => format!("close{event_id}:{}", first(culprits)),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn an_escalation_keeps_entry_peaks_critical_and_exit_then_closes_with_culprits() {
    use TierAction::*;
    let mut config = Config::default();
    config.events.peak_tracking_seconds = 10.0;
    let mut t = Tracker::new(&config, 7);
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    // The scores rise and fall; who is to blame is the attribution's answer, asked over
    // the escalation so far (since its entry sample), whatever scored highest.
    let hog = |score| vec![rogue(9, "bystander", score)];
    let steps: Vec<(Arc<Sample>, Vec<TierAction>, u64)> = vec![
        (sample(1, Tier::Sentinel, vec![]), vec![], 0),
        (sample(2, Tier::Sentinel, vec![]), vec![], 1), // no history: within 5 s
        (sample(3, Tier::Elevated, hog(55.0)), vec![ElevatedEntry], 2),
        (sample(4, Tier::Elevated, hog(60.0)), vec![ElevatedPeak], 3), // peak within 10 s: not kept
        (sample(5, Tier::Critical, hog(80.0)), vec![ElevatedPeak, CriticalEntry], 13),
        (sample(6, Tier::Critical, hog(79.0)), vec![], 14),
        (sample(7, Tier::Elevated, hog(60.0)), vec![CriticalExit], 19),
        (sample(8, Tier::Sentinel, hog(10.0)), vec![ElevatedExit], 25),
        (sample(9, Tier::Sentinel, vec![]), vec![], 26),
    ];
    let mut asked = Vec::new();
    let mut blame = |since: SystemTime| {
        asked.push(since);
        let usage = ProcessUse { pid: 42, command: format!("hog{}", asked.len()), ..ProcessUse::default() };
        Blamed { culprits: vec![Culprit { usage: Some(usage), ..Culprit::default() }], groups: vec![] }
    };
    let got: Vec<Vec<String>> =
        steps.iter().map(|(s, a, sec)| names(&t.on_sample(s, a, at(*sec), &mut blame))).collect();
    let want: Vec<Vec<&str>> = vec![
        vec!["history#1"],
        vec![],
        vec!["history#3", "open7:hog1", "keep7:entry#3"],
        vec!["history#4", "peak7:60:hog2"],
        vec!["history#5", "peak7:80:hog3", "keep7:peak#5"],
        vec!["history#6", "keep7:critical#6"],
        vec!["history#7"],
        vec!["history#8", "keep7:exit#8", "close7:hog4"],
        vec![],
    ];
    let entry = steps[2].0.time.as_ref().and_then(pmon_proto::time::system_time).expect("time");
    assert_eq!(asked, vec![entry; 4], "each time over the escalation since its entry");
    assert_eq!(t.culprits().len(), 0, "closed");
    assert_eq!(got, want);
}

#[test]
fn a_pause_records_its_freeze_its_attribution_and_the_whole_frozen_ring() {
    use std::time::SystemTime;

    use pmon_proto::v1::{StallCause, StallWindow};

    use crate::attribution::{Stall, Verdict, cause::Evidence};
    let mut t = Tracker::new(&Config::default(), 3);
    let ring = vec![
        sample(10, Tier::Sentinel, vec![rogue(5, "pager", 30.0), rogue(6, "idle", 2.0)]),
        sample(11, Tier::Elevated, vec![rogue(6, "idle", 2.0), rogue(5, "pager", 40.0)]),
    ];
    let from = SystemTime::UNIX_EPOCH + Duration::from_millis(46_000);
    let stall = Stall {
        from,
        to: from + Duration::from_millis(4000),
        stalled: Duration::from_millis(3100),
        longest_gap: Duration::from_millis(950),
        gaps: 4,
        evidence: Evidence::default(),
    };
    let culprit = Culprit {
        rogue: Some(rogue(9, "hog", 1.0)),
        why: "cpu 3.90 s in the 4.00 s stall".into(),
        ..Default::default()
    };
    let verdict = Verdict {
        cause: StallCause::Machine,
        cause_detail: "the sentinel waited".into(),
        window: StallWindow { gaps: 4, ..Default::default() },
        culprits: vec![culprit.clone()],
        victims: vec![],
        groups: vec![],
    };
    let (id, ops) = t.on_pause(&ring, &stall, &verdict, |id| format!("events/x-{id}"));
    assert_eq!(id, 3);
    let Some(Op::OpenEvent(e)) = ops.first() else { panic!("open first: {ops:?}") };
    assert_eq!((e.started_at_ms, e.ended_at_ms, e.stall_ms), (46_000, Some(50_000), Some(3100.0)));
    assert_eq!((e.peak_score, e.peak_tier), (30.0, Tier::Elevated as i32));
    assert_eq!(e.artefact_dir, "events/x-3");
    assert_eq!(e.culprits, vec![culprit], "the attribution's culprits, not the ring's rogues");
    let a = e.attribution.as_ref().expect("attribution kept");
    assert_eq!((a.cause, a.window.map(|w| w.gaps)), (StallCause::Machine, Some(4)));
    assert_eq!(names(&ops[1..]), vec!["keep3:ring#10", "keep3:ring#11"]);
    // Ids keep counting across kinds.
    assert_eq!(t.on_pause(&[], &stall, &verdict, |_| String::new()).0, 4);
}

#[test]
fn a_later_blame_that_finds_nobody_keeps_who_was_named_before() {
    use TierAction::*;
    let mut t = Tracker::new(&Config::default(), 7);
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let hog = |score| vec![rogue(9, "bystander", score)];
    let storm = pmon_proto::v1::ProcessGroup { name: "make[5] and 48 children".into(), ..Default::default() };
    let mut calls = 0;
    // Named at the entry; a long escalation's later looks find nobody above the bar.
    let mut blame = |_: SystemTime| {
        calls += 1;
        let usage = ProcessUse { pid: 42, command: "cc1".into(), ..ProcessUse::default() };
        let named = Blamed {
            culprits: vec![Culprit { usage: Some(usage), ..Culprit::default() }],
            groups: vec![storm.clone()],
        };
        if calls == 1 { named } else { Blamed::default() }
    };
    t.on_sample(&sample(1, Tier::Elevated, hog(60.0)), &[ElevatedEntry], at(1), &mut blame);
    let peak = t.on_sample(&sample(2, Tier::Elevated, hog(70.0)), &[ElevatedPeak], at(2), &mut blame);
    let close = t.on_sample(&sample(3, Tier::Sentinel, vec![]), &[ElevatedExit], at(9), &mut blame);
    let kept = |ops: &[Op]| {
        ops.iter().find_map(|op| match op {
            Op::Peak { culprits, groups, .. } | Op::CloseEvent { culprits, groups, .. } => {
                Some((first(culprits).to_string(), groups.iter().map(|g| g.name.clone()).collect::<Vec<_>>()))
            }
            _ => None,
        })
    };
    let want = Some(("cc1".to_string(), vec!["make[5] and 48 children".to_string()]));
    assert_eq!(kept(&peak), want, "the peak keeps them");
    assert_eq!(kept(&close), want, "and so does the close");
}
