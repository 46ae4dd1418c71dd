use std::time::{Duration, SystemTime};

use pmon_proto::v1::{Pressure, Rogue, Sample, SystemFigures};
use proptest::prelude::*;

use super::{cause::Evidence, *};
use crate::collect::{ProcessRecord, Usage};

const SERVER: u32 = 900;

fn t(secs: f64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) + Duration::from_secs_f64(secs)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A process that, over a reading of `span` ms, consumed `cpu` ms and waited `wait` ms.
fn proc(pid: u32, command: &str, span: u64, cpu: u64, wait: u64) -> ProcessRecord {
    ProcessRecord {
        pid,
        command: command.into(),
        state: ProcessState::Running,
        ppid: Some(1),
        scheduling: Some(Scheduling { policy: SchedPolicy::Normal, rt_priority: 0, nice: Some(0) }),
        usage: Some(Usage {
            span: ms(span),
            cpu: ms(cpu),
            run_delay: Some(ms(wait)),
            io_delay: None,
            pageins: None,
            mem_growth: None,
            lag: Duration::ZERO,
            reaped: None,
        }),
        ..ProcessRecord::default()
    }
}

fn fifo(mut p: ProcessRecord) -> ProcessRecord {
    p.scheduling = Some(Scheduling { policy: SchedPolicy::Fifo, rt_priority: 50, nice: Some(0) });
    p
}

fn child_of(mut p: ProcessRecord, ppid: u32) -> ProcessRecord {
    p.ppid = Some(ppid);
    p
}

/// The machine's figures at `at` seconds on a machine where some task waited all along
/// (cpu pressure "some" grows a second a second): evidence that the machine froze, not
/// pmon-server alone.
fn waiting(at: f64) -> SystemFigures {
    system((at * 1e6) as u64, 0, 0)
}

/// A recent record of one sample per second at `at(i)`, each with its processes.
fn recent(samples: Vec<(f64, Vec<ProcessRecord>)>) -> Recent {
    let mut r = Recent::default();
    for (at, processes) in samples {
        r.add(t(at), &processes, &waiting(at), &mut |_| None);
    }
    r
}

/// A freeze from `from` to `to` seconds; how long the sentinel waited is not known.
fn stall(from: f64, to: f64) -> Stall {
    let late = Duration::from_secs_f64(to - from);
    Stall { from: t(from), to: t(to), stalled: late, longest_gap: late, gaps: 1, evidence: Evidence::default() }
}

fn names(v: &Verdict) -> Vec<u32> {
    v.culprits.iter().filter_map(|c| c.usage.as_ref()).map(|u| u.pid).collect()
}

fn ring_with(at: f64, rogues: Vec<Rogue>) -> Arc<Sample> {
    let max_score = rogues.first().map_or(0.0, |r| r.score);
    Arc::new(Sample { time: Some(timestamp(t(at))), max_score, rogues, ..Sample::default() })
}

#[test]
fn real_time_hogs_that_ran_through_the_stall_are_the_culprits_and_the_waiters_its_victims() {
    let during = || {
        vec![
            fifo(proc(11, "hog", 1000, 1000, 0)),
            fifo(proc(12, "hog", 1000, 990, 0)),
            proc(20, "editor", 1000, 5, 900),
            proc(21, "shell", 1000, 2, 400),
            proc(SERVER, "pmon-server", 1000, 30, 0),
        ]
    };
    let r = recent((1..=6).map(|i| (f64::from(i), during())).collect());
    let mut s = stall(2.0, 6.0);
    s.evidence.sentinel_waited = Some(Duration::from_secs(4));
    let v = attribute(&s, &r, &[], Duration::from_secs(3), SERVER, None);
    assert_eq!(v.cause, StallCause::Machine);
    assert!(v.cause_detail.ends_with("for a CPU, other processes 7.80 s"), "{}", v.cause_detail);
    assert_eq!(names(&v), vec![11, 12]);
    let first = &v.culprits[0];
    let usage = first.usage.as_ref().expect("usage");
    assert!((usage.cpu_ms - 6000.0).abs() < 1.0, "the whole window, 6 s: {usage:?}");
    assert_eq!((usage.policy, usage.rt_priority), (SchedPolicy::Fifo as i32, 50));
    assert!(first.why.starts_with("cpu 4.00 s in the 4.00 s stall, 2.00 s before it, SCHED_FIFO 50"), "{}", first.why);
    assert!(first.why.ends_with("2 other processes waited 7.80 s for a CPU"), "{}", first.why);
    let victims: Vec<u32> = v.victims.iter().map(|u| u.pid).collect();
    assert_eq!(victims, vec![20, 21], "longest wait first; the server is neither");
    let w = v.window;
    assert_eq!(
        (w.lead_up_from, w.stall_to, w.samples),
        (Some(timestamp(t(0.0) - Duration::from_secs(1))), Some(timestamp(t(6.0))), 6)
    );
}

#[test]
fn a_decoy_that_burnt_cpu_and_exited_before_the_window_is_never_blamed() {
    let r = recent(vec![
        (0.0, vec![proc(30, "decoy", 1000, 1000, 0), proc(31, "decoy2", 1000, 1000, 0)]),
        (1.0, vec![proc(30, "decoy", 1000, 1000, 0), proc(31, "decoy2", 1000, 1000, 0)]),
        (10.0, vec![proc(40, "small", 9000, 900, 0)]),
        (15.0, vec![fifo(proc(41, "hog", 5000, 4800, 0))]),
        (16.0, vec![]),
    ]);
    // The ring still holds the decoy at its peak score, high above the hog's.
    let ring = vec![
        ring_with(1.0, vec![Rogue { pid: 30, command: "decoy".into(), score: 80.0, ..Rogue::default() }]),
        ring_with(15.0, vec![Rogue { pid: 41, command: "hog".into(), score: 22.5, ..Rogue::default() }]),
    ];
    let v = attribute(&stall(11.0, 15.0), &r, &ring, Duration::from_secs(3), SERVER, None);
    assert_eq!(names(&v), vec![41, 40], "the decoy ended 7 s before the window");
    assert!(v.culprits[1].rogue.is_none(), "never a rogue: no score is invented for it");
    let hog = &v.culprits[0];
    assert_eq!((hog.samples_seen, hog.rogue.as_ref().map(|r| r.score)), (1, Some(22.5)));
    assert!(hog.why.ends_with("exited since"), "not in the latest sample: {}", hog.why);
    // A reading that straddles the window's start counts only for its part inside it:
    // 900 ms over 9 s, of which 2 s (8 → 10) are inside.
    let small = v.culprits[1].usage.as_ref().expect("usage");
    assert!((small.cpu_ms - 200.0).abs() < 0.5, "{small:?}");
}

#[test]
fn a_kernel_thread_that_worked_for_a_process_is_named_after_it() {
    // A direct-I/O flood: the block layer's worker burns more CPU than the writer.
    let mut kworker = proc(4131, "kworker/1:2H+kblockd", 1000, 120, 0);
    kworker.kernel_thread = true;
    let sample = || vec![kworker.clone(), proc(70, "dd", 1000, 80, 0)];
    let r = recent((0..4).map(|i| (f64::from(i), sample())).collect());
    let v = attribute(&stall(1.0, 3.0), &r, &[], Duration::from_secs(1), SERVER, None);
    assert_eq!(names(&v), vec![70, 4131], "the writer first, its kernel worker still named");
}

#[test]
fn the_server_its_tools_zombies_and_waiting_kernel_threads_are_never_culprits() {
    let mut kworker = proc(3, "kworker/0:1", 1000, 0, 0);
    kworker.kernel_thread = true;
    kworker.state = ProcessState::Stuck;
    kworker.usage = Some(Usage {
        span: ms(1000),
        cpu: Duration::ZERO,
        run_delay: None,
        io_delay: Some(ms(800)),
        pageins: None,
        mem_growth: None,
        lag: Duration::ZERO,
        reaped: None,
    });
    let mut zombie = proc(50, "cc1", 1000, 0, 0);
    zombie.state = ProcessState::Zombie;
    let sample = || {
        vec![
            proc(SERVER, "pmon-server", 1000, 900, 0),
            child_of(proc(901, "top", 1000, 800, 0), SERVER),
            kworker.clone(),
            zombie.clone(),
            proc(60, "worker", 1000, 100, 0),
        ]
    };
    let r = recent((0..4).map(|i| (f64::from(i), sample())).collect());
    let v = attribute(&stall(1.0, 3.0), &r, &[], Duration::from_secs(1), SERVER, None);
    assert_eq!(names(&v), vec![60]);
    let victims: Vec<u32> = v.victims.iter().map(|u| u.pid).collect();
    assert_eq!(victims, vec![3], "the kernel thread waited for I/O: a victim, evidence");
    assert_eq!(v.victims[0].io_delay_ms, Some(2400.0));
}

#[test]
fn in_a_memory_freeze_who_took_the_memory_is_the_culprit() {
    let grow = |pid: u32, cpu: u64, mib: i64| {
        let mut p = proc(pid, "p", 200, cpu, 0);
        if let Some(u) = &mut p.usage {
            u.mem_growth = Some(mib << 20);
        }
        p
    };
    // A hog takes 400 MiB in a second with little CPU; a busy shell burns more CPU.
    let r = recent(vec![
        (1.0, vec![grow(70, 40, 100), grow(71, 120, 0)]),
        (1.2, vec![grow(70, 40, 150), grow(71, 120, 0)]),
        (1.4, vec![grow(70, 40, 150), grow(71, 120, -5)]),
        (5.0, vec![grow(71, 120, 0)]),
    ]);
    let v = attribute(&stall(1.5, 4.5), &r, &[], Duration::from_secs(3), SERVER, None);
    assert_eq!(names(&v), vec![70, 71]);
    assert!(v.culprits[0].why.contains("grew 400 MiB"), "{}", v.culprits[0].why);
}

#[test]
fn a_unit_whose_processes_are_the_culprits_is_named_unless_it_is_the_servers_own() {
    let unit = |pid: u32| -> Option<Arc<str>> {
        Some(Arc::from(if pid < 20 { "/system.slice/build.service" } else { "/user.slice" }))
    };
    let mut r = Recent::default();
    for i in 0..4 {
        let procs = vec![proc(11, "cc1", 1000, 900, 0), proc(12, "ld", 1000, 800, 0), proc(21, "editor", 1000, 100, 0)];
        r.add(t(f64::from(i)), &procs, &waiting(f64::from(i)), &mut |pid| unit(pid));
    }
    let v = attribute(&stall(1.0, 3.0), &r, &[], Duration::from_secs(1), SERVER, Some("/user.slice"));
    let g: Vec<(&str, &str, u32)> = v.groups.iter().map(|g| (g.kind.as_str(), g.name.as_str(), g.processes)).collect();
    assert_eq!(g, vec![("cgroup", "/system.slice/build.service", 2)]);
    let v = attribute(&stall(1.0, 3.0), &r, &[], Duration::from_secs(1), SERVER, Some("/system.slice/build.service"));
    assert!(v.groups.is_empty(), "the server's own group explains nothing: {:?}", v.groups);
}

#[test]
fn a_stopped_server_blames_nobody_and_says_so() {
    let r = recent((0..5).map(|i| (f64::from(i), vec![proc(11, "hog", 1000, 1000, 0)])).collect());
    let mut s = stall(1.0, 4.0);
    s.evidence = Evidence { continued: true, sentinel_waited: Some(Duration::ZERO), ..Evidence::default() };
    let v = attribute(&s, &r, &[], Duration::from_secs(3), SERVER, None);
    assert_eq!(v.cause, StallCause::ServerSuspended);
    assert!(v.cause_detail.contains("stopped (SIGSTOP or SIGTSTP) and continued"), "{}", v.cause_detail);
    assert!(v.culprits.is_empty() && v.victims.is_empty() && v.groups.is_empty());
}

fn pressure(some_micros: u64) -> Option<Pressure> {
    Some(Pressure { some_total_micros: some_micros, ..Pressure::default() })
}

fn system(cpu: u64, memory: u64, io: u64) -> SystemFigures {
    SystemFigures {
        cpu_pressure: pressure(cpu),
        memory_pressure: pressure(memory),
        io_pressure: pressure(io),
        ..SystemFigures::default()
    }
}

#[test]
fn the_cause_follows_the_sentinels_wait_the_others_waits_and_the_machines_pressure() {
    let mut r = Recent::default();
    r.add(t(0.0), &[], &system(0, 0, 0), &mut |_| None);
    r.add(t(5.0), &[], &system(10_000, 2_500_000, 0), &mut |_| None);
    let mut s = stall(1.0, 4.0);
    s.evidence.sentinel_waited = Some(ms(2900));
    let pressure = cause::pressure(&r, &s);
    let (cause, detail) = cause::classify(&s.evidence, &s, &pressure, Some(ms(4000)));
    assert_eq!(
        (cause, detail.as_str()),
        (
            StallCause::Machine,
            "the sentinel was ready to run and waited 2.90 s of its 3.00 s lateness for a CPU, other processes 4.00 s"
        )
    );
    // Waiting for a CPU while nobody else did: its own scheduling held the server back.
    let (cause, detail) = cause::classify(&s.evidence, &s, &pressure, Some(ms(100)));
    assert_eq!(cause, StallCause::ServerSuspended, "{detail}");
    // Nobody's waits known: nothing shows the server was alone.
    let (cause, detail) = cause::classify(&s.evidence, &s, &pressure, None);
    assert_eq!(cause, StallCause::Machine, "{detail}");
    // Not waiting for a CPU, but memory was under pressure: the machine stalled.
    s.evidence.sentinel_waited = Some(ms(10));
    let (cause, detail) = cause::classify(&s.evidence, &s, &pressure, Some(Duration::ZERO));
    assert_eq!((cause, detail.as_str()), (StallCause::Machine, "tasks waited for memory 2.50 s during the stall"));
    // Neither, and nobody else waited: held up alone. Frozen where its group can be.
    let mut quiet = Recent::default();
    quiet.add(t(0.0), &[], &system(0, 0, 0), &mut |_| None);
    quiet.add(t(5.0), &[], &system(20_000, 0, 1_000), &mut |_| None);
    let calm = cause::pressure(&quiet, &s);
    let (cause, detail) = cause::classify(&s.evidence, &s, &calm, Some(ms(20)));
    assert_eq!(cause, StallCause::ServerSuspended, "{detail}");
    assert!(detail.contains("without waiting for a CPU") && detail.contains("nobody else waited"), "{detail}");
    s.evidence.freezer = Some("cgroup v1 freezer /lab".into());
    let (cause, detail) = cause::classify(&s.evidence, &s, &calm, Some(ms(20)));
    assert_eq!(cause, StallCause::ServerFrozen, "{detail}");
    assert!(detail.contains("(cgroup v1 freezer /lab)"), "{detail}");
    // Others waited for a CPU meanwhile: the machine, frozen group or not.
    let (cause, detail) = cause::classify(&s.evidence, &s, &calm, Some(ms(2000)));
    assert_eq!(
        (cause, detail.as_str()),
        (StallCause::Machine, "other processes waited 2.00 s for a CPU during the stall")
    );
    // Its memory group at its limit (in no pressure figure when its OOM killer is off):
    // the group froze, and whoever took its memory is to blame.
    s.evidence.limit_hits = Some((412, "/sys/fs/cgroup/memory/lab/memory.failcnt".into()));
    let (cause, detail) = cause::classify(&s.evidence, &s, &calm, Some(ms(20)));
    assert_eq!(cause, StallCause::Machine, "{detail}");
    assert!(detail.contains("hit its limit 412 times"), "{detail}");
    // Nothing known of anyone else (no PSI, no run delays: macOS): the machine.
    let (cause, detail) = cause::classify(&Evidence::default(), &s, &cause::Pressure::default(), None);
    assert_eq!((cause, detail.as_str()), (StallCause::Machine, "the sentinel woke 3.00 s late; nothing tells more"));
}

#[test]
fn throttling_and_steal_hold_the_server_up_alone_and_blame_nobody() {
    let procs = || vec![proc(11, "hog", 1000, 1000, 0), proc(12, "editor", 1000, 10, 900)];
    let r = recent((0..5).map(|i| (f64::from(i), procs())).collect());
    let mut s = stall(1.0, 4.0);
    // Throttled by its group's quota: its sentinel waited for a CPU, as throttled tasks do.
    s.evidence = Evidence {
        sentinel_waited: Some(ms(2800)),
        throttled: Some(ms(1600)),
        steal: Some(Duration::ZERO),
        ..Evidence::default()
    };
    let v = attribute(&s, &r, &[], Duration::from_secs(1), SERVER, None);
    assert_eq!(v.cause, StallCause::ServerThrottled, "{}", v.cause_detail);
    assert!(v.cause_detail.contains("throttled 1.60 s (per CPU)"), "{}", v.cause_detail);
    assert!(v.culprits.is_empty() && v.victims.is_empty(), "{:?}", v.culprits);
    // Throttled a little, by chance: not the cause.
    s.evidence.throttled = Some(ms(100));
    assert_eq!(attribute(&s, &r, &[], Duration::from_secs(1), SERVER, None).cause, StallCause::Machine);
    // Throttled for long, but the sentinel did not wait for a CPU: not the quota.
    s.evidence.throttled = Some(ms(1600));
    s.evidence.sentinel_waited = Some(ms(100));
    assert_ne!(attribute(&s, &r, &[], Duration::from_secs(1), SERVER, None).cause, StallCause::ServerThrottled);
    // A little steal in the background (per CPU): not the host.
    s.evidence.steal = Some(ms(600));
    assert_ne!(attribute(&s, &r, &[], Duration::from_secs(1), SERVER, None).cause, StallCause::HostSteal);
    // The host took the CPUs for most of the stall.
    s.evidence.steal = Some(ms(2900));
    let v = attribute(&s, &r, &[], Duration::from_secs(1), SERVER, None);
    assert_eq!(v.cause, StallCause::HostSteal, "{}", v.cause_detail);
    assert!(v.culprits.is_empty(), "the host's doing: nobody in here is to blame");
}

fn any_process() -> impl Strategy<Value = (u32, u32, u64, u64, u64, bool)> {
    (1u32..40, 0u32..40, 1u64..5000, 0u64..6000, 0u64..3000, any::<bool>())
}

proptest! {
    /// Whatever the readings: the server and its children are never culprits, no culprit's
    /// readings all ended before the window, and no culprit is charged more CPU than its
    /// readings in the window hold.
    #[test]
    fn culprits_come_from_the_window_and_never_from_the_server(
        samples in prop::collection::vec(prop::collection::vec(any_process(), 0..8), 1..12),
        from in 0.0f64..10.0,
        length in 0.1f64..5.0,
    ) {
        let mut r = Recent::default();
        let mut ends: HashMap<u32, f64> = HashMap::new();
        for (i, procs) in samples.iter().enumerate() {
            let at = i as f64;
            let records: Vec<ProcessRecord> = procs
                .iter()
                .map(|&(pid, ppid, span, cpu, wait, rt)| {
                    let pid = if pid == 39 { SERVER } else { pid };
                    let ppid = if ppid == 39 { SERVER } else { ppid };
                    let p = child_of(proc(pid, "p", span, cpu.min(span), wait), ppid);
                    if rt { fifo(p) } else { p }
                })
                .collect();
            for p in &records {
                ends.insert(p.pid, at);
            }
            r.add(t(at), &records, &waiting(at), &mut |_| None);
        }
        let v = attribute(&stall(from, from + length), &r, &[], Duration::from_secs(2), SERVER, None);
        for c in &v.culprits {
            let u = c.usage.as_ref().expect("usage");
            prop_assert!(u.pid != SERVER && u.ppid != Some(SERVER));
            prop_assert!(ends.get(&u.pid).is_some_and(|end| *end > from - 2.0), "ended before the window: {u:?}");
            prop_assert!(u.cpu_ms <= u.seen_ms + 1e-6, "more CPU than time seen (one thread each): {u:?}");
        }
    }
}

/// A parent whose reaped children's time grew by `ms` over its reading, beyond what the
/// readings of its children show; `child` when that was one read child.
fn reaping(mut p: ProcessRecord, ms_reaped: u64, child: Option<u32>) -> ProcessRecord {
    if let Some(u) = p.usage.as_mut() {
        u.reaped = Some(crate::collect::Reaped { cpu: ms(ms_reaped), child });
    }
    p
}

#[test]
fn a_culprit_that_exited_mid_stall_keeps_what_its_parent_reaped_of_it() {
    // The hog was read once early in the stall (0.2 s of it), then exited; when its
    // parent reaped it, 3.6 s more showed in the parent's reaped time. A busy neighbour
    // ran 1.5 s meanwhile.
    let r = recent(vec![
        (1.0, vec![proc(50, "harness", 1000, 1, 0), proc(60, "neighbour", 1000, 100, 0)]),
        (2.2, vec![child_of(fifo(proc(51, "hog", 200, 200, 0)), 50), proc(60, "neighbour", 1200, 300, 0)]),
        (6.0, vec![reaping(proc(50, "harness", 5000, 1, 0), 3_600, Some(51)), proc(60, "neighbour", 3800, 1500, 0)]),
    ]);
    let v = attribute(&stall(2.0, 6.0), &r, &[], Duration::from_secs(2), SERVER, None);
    assert_eq!(names(&v)[0], 51, "the hog, not its parent nor the neighbour: {v:?}");
    let why = &v.culprits[0].why;
    assert!(why.contains("exited since, 3.60 s of it after its last reading, found when it was reaped"), "{why}");
    assert!(!names(&v).contains(&50), "the parent only reaped it");
}

#[test]
fn children_never_read_count_to_the_parent_that_reaped_them() {
    let r = recent(vec![
        (1.0, vec![proc(70, "make", 1000, 5, 0)]),
        (5.0, vec![reaping(proc(70, "make", 4000, 20, 0), 3_000, None), proc(71, "cc", 4000, 400, 0)]),
    ]);
    let v = attribute(&stall(2.0, 5.0), &r, &[], Duration::from_secs(2), SERVER, None);
    assert_eq!(names(&v), vec![70, 71]);
    assert!(v.culprits[0].why.contains("of it by children it reaped"), "{}", v.culprits[0].why);
}

#[test]
fn oom_kills_during_the_freeze_are_named_beside_its_cause() {
    let r = recent((1..=4).map(|i| (f64::from(i), vec![proc(11, "hog", 1000, 900, 0)])).collect());
    let mut s = stall(2.0, 4.0);
    s.evidence.oom_kills = Some(2);
    let v = attribute(&s, &r, &[], Duration::from_secs(1), SERVER, None);
    assert_eq!(v.cause, StallCause::Machine);
    assert!(
        v.cause_detail.ends_with("; the kernel's OOM killer killed 2 processes during it (oom_kill in /proc/vmstat)"),
        "{}",
        v.cause_detail
    );
    s.evidence.oom_kills = Some(0);
    assert!(!attribute(&s, &r, &[], Duration::from_secs(1), SERVER, None).cause_detail.contains("OOM"));
}

#[test]
fn an_escalation_blames_who_consumed_in_it_by_the_same_rule_not_the_highest_score() {
    // A process that scores high (many threads, say) but consumed little, and a build
    // tool that burnt a CPU and a half while others waited.
    let r = recent(
        (1..=8)
            .map(|i| {
                (
                    f64::from(i),
                    vec![
                        proc(80, "scorer", 1000, 20, 0),
                        proc(81, "cc1", 1000, 1500, 0),
                        proc(82, "shell", 1000, 1, 300),
                    ],
                )
            })
            .collect(),
    );
    let ring = vec![ring_with(5.0, vec![Rogue { pid: 80, command: "scorer".into(), score: 70.0, ..Rogue::default() }])];
    let culprits = escalation((t(4.0), t(8.0)), Duration::from_secs(2), (&r, &ring), SERVER, None).culprits;
    let pids: Vec<u32> = culprits.iter().filter_map(|c| c.usage.as_ref()).map(|u| u.pid).collect();
    assert_eq!(pids.first(), Some(&81), "{culprits:?}");
    assert!(
        culprits[0].why.starts_with("cpu 6.00 s in the 4.00 s escalation, 3.00 s before it"),
        "{}",
        culprits[0].why
    );
    // At its entry, only the lead-up tells.
    let entry = escalation((t(8.0), t(8.0)), Duration::from_secs(2), (&r, &ring), SERVER, None).culprits;
    assert!(entry[0].why.starts_with("cpu 3.00 s in the 2.00 s before the escalation"), "{}", entry[0].why);
}

/// Process trees blamed together.
#[path = "tests_trees.rs"]
mod trees;
