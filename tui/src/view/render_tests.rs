//! Every screen drawn from fixed state at 80×24 and 160×48, asserting the text that
//! matters; the event detail's own tests are in `detail_tests.rs`, on these fixtures.

use pbjson_types::Timestamp;
use pmon_proto::v1::{
    Culprit, Event, EventKind, EventStatus, FactorShare, Finding, FindingOutcome, GetEventResponse, GetStatusResponse,
    MachineStress, ProcessFactors, ProcessGroup, ProcessState, ProcessUse, Rogue, Sample, SchedPolicy, ServerCost,
    StallCause, StallWindow, Tier, WatchSamplesResponse, watch_samples_response::Item,
};
use ratatui::{Terminal, backend::TestBackend};

use super::draw;
use crate::{
    state::{Data, Link, Msg},
    ui::{Screen, Typing, View},
};

/// The sizes every screen is drawn at: the smallest supported terminal and a large one.
pub(super) const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

fn hog() -> Rogue {
    Rogue {
        pid: 4242,
        command: "hogger".into(),
        state: ProcessState::Running as i32,
        score: 62.5,
        suspect: true,
        factors: Some(ProcessFactors {
            cpu_percent: Some(99.5),
            mem_bytes: Some(3 * 1024 * 1024 * 1024),
            pageins_per_sec: Some(48_000.0),
            csw_per_sec: Some(1200.0),
            ..Default::default()
        }),
        explanation: vec![
            FactorShare { factor: 1, normalized: 0.995, weight: 25.0, points: 22.4 },
            FactorShare { factor: 3, normalized: 1.0, weight: 15.0, points: 13.5 },
        ],
        ..Default::default()
    }
}

/// A build storm scored as one rogue: a shell and its 48 busy children.
fn storm() -> Rogue {
    let group = ProcessGroup {
        kind: "tree".into(),
        name: "bash[4120] and 48 children".into(),
        processes: 48,
        cpu_ms: 1980.0,
        root_pid: 4120,
    };
    let factors = ProcessFactors { cpu_percent: Some(198.0), ..Default::default() };
    Rogue { pid: 4120, command: "bash".into(), score: 22.5, factors: Some(factors), group: Some(group), ..quiet() }
}

fn quiet() -> Rogue {
    Rogue {
        pid: 77,
        command: "sshd".into(),
        state: ProcessState::Sleeping as i32,
        score: 1.2,
        factors: Some(ProcessFactors { cpu_percent: Some(2.0), mem_bytes: Some(8 << 20), ..Default::default() }),
        ..Default::default()
    }
}

/// The pause `data()` holds the detail of: a frozen machine with one culprit.
pub(super) fn pause_event() -> Event {
    Event {
        id: 12,
        kind: EventKind::Pause as i32,
        status: EventStatus::Unreviewed as i32,
        started_at: Some(Timestamp { seconds: 1_795_000_000, nanos: 0 }),
        ended_at: Some(Timestamp { seconds: 1_795_000_003, nanos: 0 }),
        stall_ms: Some(2910.0),
        peak_score: 62.5,
        peak_tier: Tier::Elevated as i32,
        culprits: vec![Culprit {
            rogue: Some(hog()),
            samples_seen: 14,
            why: "cpu 2.80 s in the 2.91 s stall, grew 900 MiB".into(),
            usage: Some(ProcessUse {
                pid: 4242,
                command: "hogger".into(),
                cpu_ms: 2800.0,
                run_delay_ms: Some(20.0),
                policy: SchedPolicy::Normal as i32,
                ..ProcessUse::default()
            }),
            waited_on: None,
        }],
        artefact_dir: "events/20261121-201658-12".into(),
        notes: "nightly backup".into(),
        cause: StallCause::Machine as i32,
        cause_detail: "tasks waited for memory 2.10 s during the stall".into(),
        window: Some(StallWindow { gaps: 3, samples: 21, longest_gap_ms: 1200.0, ..StallWindow::default() }),
        victims: vec![ProcessUse {
            pid: 77,
            command: "editor".into(),
            run_delay_ms: Some(1500.0),
            policy: SchedPolicy::Normal as i32,
            ..ProcessUse::default()
        }],
        groups: vec![ProcessGroup {
            kind: "tree".into(),
            name: "make[40] and 12 children".into(),
            processes: 12,
            cpu_ms: 2500.0,
            root_pid: 40,
        }],
        wait_chains: vec![],
        app_hangs: vec![],
    }
}

fn escalation() -> Event {
    Event {
        id: 11,
        kind: EventKind::Escalation as i32,
        status: EventStatus::Reviewed as i32,
        started_at: Some(Timestamp { seconds: 1_794_990_000, nanos: 0 }),
        peak_score: 55.0,
        ..Default::default()
    }
}

/// A live connection after 40 samples, with the server's status, two events and the
/// pause's detail.
pub(super) fn data() -> Data {
    let mut d = Data::default();
    d.apply(Msg::Connected);
    d.apply(Msg::Thresholds { elevated: 50.0, critical: 75.0 });
    for seq in 1..=40u64 {
        let score = if seq == 40 { 62.5 } else { (seq as f64 * 7.0) % 60.0 };
        let machine = MachineStress {
            score: 70.0,
            factors: vec![],
            reason: "io: some task waited on I/O 71% of the last 3.0 s (PSI)".into(),
        };
        let sample = Sample {
            sequence: seq,
            tier: Tier::Elevated as i32,
            max_score: score,
            stress: score.max(machine.score),
            machine: Some(machine),
            process_count: 312,
            rogues: vec![quiet(), hog(), storm()],
            ..Default::default()
        };
        d.apply(Msg::Stream(Box::new(WatchSamplesResponse {
            sequence: seq,
            server_instance: 5,
            item: Some(Item::Sample(sample)),
        })));
    }
    d.apply(Msg::Status(Box::new(GetStatusResponse {
        interval_seconds: 0.25,
        cost: Some(ServerCost { cpu_percent: Some(0.31), resident_bytes: Some(6 << 20), ..Default::default() }),
        ..Default::default()
    })));
    d.apply(Msg::Recent(vec![pause_event(), escalation()]));
    d.apply(Msg::Events(crate::ui::Filter::default().request(), vec![pause_event(), escalation()]));
    d.apply(Msg::Detail(Box::new(GetEventResponse {
        event: Some(pause_event()),
        findings: vec![
            Finding {
                step: "psi".into(),
                outcome: FindingOutcome::Ok as i32,
                summary: "memory some 41% during the pause".into(),
                detail: "memory some avg10 41.0\nio some avg10 3.0".into(),
                elapsed_ms: 2.0,
            },
            Finding {
                step: "kernel-log".into(),
                outcome: FindingOutcome::Failed as i32,
                summary: "cannot read /dev/kmsg: permission denied".into(),
                ..Default::default()
            },
        ],
        artefacts: vec!["processes.tsv".into(), "psi.txt".into()],
        ..Default::default()
    })));
    d
}

/// The screen's text.
pub(super) fn render(data: &Data, view: &View, size: (u16, u16)) -> String {
    render_measured(data, view, size).0
}

/// The screen's text and how far the detail can scroll.
pub(super) fn render_measured(data: &Data, view: &View, (w, h): (u16, u16)) -> (String, u16) {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    let mut scroll_max = 0;
    terminal.draw(|f| scroll_max = draw(f, data, view, "unix:///tmp/pmon/daemon.sock")).expect("draw");
    let buffer = terminal.backend().buffer();
    let mut text = String::new();
    for y in 0..h {
        for x in 0..w {
            text.push_str(buffer[(x, y)].symbol());
        }
        text.push('\n');
    }
    if std::env::var_os("PMON_SHOW_RENDERS").is_some() {
        println!("{text}");
    }
    (text, scroll_max)
}

/// Fails naming the first part missing from the screen, and the screen.
pub(super) fn assert_has(screen: &str, parts: &[&str]) {
    for part in parts {
        assert!(screen.contains(part), "missing {part:?} in:\n{screen}");
    }
}

#[test]
fn dashboard_shows_tier_gauge_rate_cost_rogues_explanation_and_events() {
    for size in SIZES {
        let s = render(&data(), &View::default(), size);
        assert_has(
            &s,
            &[
                "● live",
                "ELEVATED",
                "4.0 Hz",
                "server 0.31% cpu 6.0 MiB",
                "70.0 ELEVATED · 312 procs · top score 62.5 · machine 70.0",
                "elevated 50 · critical 75",
                "!hogger",
                "4242",
                "99.5%",
                "3.0 GiB",
                "48.0k/s",
                "why hogger[4242] scores 62.5",
                "bash +48",
                "known suspect",
                "cpu",
                "22.4 pts",
                "#12",
                "pause",
                "2.91 s",
            ],
        );
        if size.0 >= 120 {
            assert_has(&s, &["MAIN FACTOR"]);
            let row = s.lines().find(|l| l.contains("!hogger")).expect("hog row");
            assert!(row.contains("cpu 99.5% (36% of it)"), "{row}");
        }
        // Highest score first: the hog's row comes before sshd's.
        let hog = s.find("!hogger").expect("hog row");
        assert!(s.find("sshd").is_some_and(|q| q > hog), "{s}");
    }
}

#[test]
fn dashboard_sorted_by_pid_puts_the_small_pid_first_and_marks_the_column() {
    let view = View { sort: (crate::ui::Column::Pid, false), ..View::default() };
    for size in SIZES {
        let s = render(&data(), &view, size);
        assert!(s.find("sshd").expect("sshd") < s.find("!hogger").expect("hog"), "{s}");
        assert_has(&s, &["PID▲"]);
    }
}

#[test]
fn a_lost_server_says_reconnecting_and_why() {
    let mut d = data();
    d.apply(Msg::Lost {
        attempt: 3,
        reason: "connection refused (the server is not running)".into(),
        retry_in_secs: 1.0,
    });
    for size in SIZES {
        let s = render(&d, &View::default(), size);
        assert_has(&s, &["reconnecting (attempt 3, next in 1.0 s)", "server lost: connection refused"]);
        assert_has(&s, &["hogger"]);
    }
}

#[test]
fn missed_samples_are_shown() {
    let mut d = data();
    d.apply(Msg::Stream(Box::new(WatchSamplesResponse {
        sequence: 50,
        server_instance: 5,
        item: Some(Item::Missed(pmon_proto::v1::Missed { first_sequence: 41, count: 10 })),
    })));
    for size in SIZES {
        assert_has(&render(&d, &View::default(), size), &["missed 10 samples"]);
    }
}

#[test]
fn lost_writes_and_failed_samples_are_shown() {
    let mut d = data();
    let status = GetStatusResponse { interval_seconds: 0.25, lost_writes: 12, failed_samples: 3, ..Default::default() };
    d.apply(Msg::Status(Box::new(status)));
    for size in SIZES {
        assert_has(&render(&d, &View::default(), size), &["12 writes lost", "3 failed samples"]);
    }
}

#[test]
fn before_the_first_sample_the_gauge_says_it_waits() {
    let d = Data { link: Some(Link::Connecting), ..Data::default() };
    for size in SIZES {
        assert_has(&render(&d, &View::default(), size), &["● connecting", "waiting for the first sample", "no events"]);
    }
}

#[test]
fn events_screen_lists_events_with_the_filter() {
    let mut view = View { screen: Screen::Events, ..View::default() };
    view.filter.kind = Some(EventKind::Pause);
    let mut d = data();
    d.apply(Msg::Events(view.filter.request(), vec![pause_event(), escalation()]));
    for size in SIZES {
        let s = render(&d, &view, size);
        assert_has(&s, &["filter: kind pause · status all · since any time", "events (2)", "ID", "12", "pause"]);
        assert_has(&s, &["unreviewed", "2.91 s", "62.5", "11", "escalation", "reviewed"]);
    }
    let typing = View { typing: Some(Typing::Since("2h a".into())), ..view };
    assert_has(&render(&data(), &typing, (80, 24)), &["since (e.g.", "2h a"]);
}

#[test]
fn help_lists_every_key_at_both_sizes() {
    for screen in [Screen::Dashboard, Screen::Events, Screen::Detail] {
        let view = View { screen, help: true, ..View::default() };
        for size in SIZES {
            let s = render(&data(), &view, size);
            for (_, keys) in crate::input::KEYS {
                for (key, what) in *keys {
                    assert_has(&s, &[key, what]);
                }
            }
        }
    }
}

#[test]
fn tiny_and_odd_sizes_draw_without_panicking() {
    for (w, h) in [(1, 1), (20, 5), (80, 10), (40, 24), (79, 23), (300, 100)] {
        for screen in [Screen::Dashboard, Screen::Events, Screen::Detail] {
            render(&data(), &View { screen, help: true, ..View::default() }, (w, h));
            render(&data(), &View { screen, ..View::default() }, (w, h));
        }
    }
}

#[test]
fn a_list_for_another_filter_is_not_shown_as_the_answer() {
    let mut view = View { screen: Screen::Events, ..View::default() };
    view.filter.status = Some(EventStatus::Pinned);
    let s = render(&data(), &view, (80, 24));
    assert_has(&s, &["loading the events…", "status pinned"]);
    assert!(!s.contains("nightly") && !s.contains("escalation"), "{s}");
}

#[test]
fn a_nan_or_infinite_score_draws_without_panicking() {
    for score in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut d = data();
        d.apply(Msg::Stream(Box::new(WatchSamplesResponse {
            sequence: 41,
            server_instance: 5,
            item: Some(Item::Sample(Sample {
                sequence: 41,
                max_score: score,
                rogues: vec![hog()],
                ..Default::default()
            })),
        })));
        for size in SIZES {
            assert_has(&render(&d, &View::default(), size), &["hogger"]);
        }
    }
}

#[test]
fn a_live_link_without_samples_says_how_long_it_has_been_silent() {
    let mut d = data();
    assert_has(&render(&d, &View::default(), (80, 24)), &["● live"]);
    // Four times the 0.25 s interval would already count; ten seconds certainly does.
    d.last_heard = std::time::Instant::now().checked_sub(std::time::Duration::from_secs(10));
    let s = render(&d, &View::default(), (80, 24));
    assert_has(&s, &["● no sample for 1"]);
    assert!(!s.contains("● live"), "{s}");
}
