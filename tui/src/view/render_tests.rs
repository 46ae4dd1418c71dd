//! Every screen drawn from fixed state at 80×24 and 160×48, asserting the text that
//! matters.

use pbjson_types::Timestamp;
use pmon_proto::v1::{
    AppHang, Culprit, Event, EventKind, EventStatus, FactorShare, Finding, FindingOutcome, GetEventResponse,
    GetStatusResponse, ProcessFactors, ProcessGroup, ProcessState, ProcessUse, Rogue, Sample, SchedPolicy, ServerCost,
    StackThread, StallCause, StallWindow, Tier, WaitChain, WaitGroup, WatchSamplesResponse,
    watch_samples_response::Item,
};
use ratatui::{Terminal, backend::TestBackend};

use super::draw;
use crate::{
    state::{Data, Link, Msg},
    ui::{Screen, Typing, View},
};

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

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

fn pause_event() -> Event {
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

/// A macOS pause whose stack report was read: the root of the waits is the culprit.
fn mac_pause() -> Event {
    let root = StackThread {
        process: "WindowServer".into(),
        pid: Some(153),
        thread: "0x3e2".into(),
        label: "com.apple.main-thread".into(),
        main: true,
    };
    let why = "23 threads of 3 processes waited on WindowServer [153] main thread 0x3e2 (12/12 samples in \
               waitForStamp (AMDRadeonX5000))";
    let group = |process: &str, pid, threads, samples, main| WaitGroup {
        process: process.into(),
        pid: Some(pid),
        threads,
        more_threads: false,
        samples,
        main,
    };
    Event {
        culprits: vec![Culprit { why: why.into(), waited_on: Some(root.clone()), ..Culprit::default() }],
        wait_chains: vec![WaitChain {
            root: Some(root),
            doing: "waitForStamp (AMDRadeonX5000)".into(),
            state: "in the kernel".into(),
            root_samples: 12,
            total_samples: 12,
            waiters: vec![group("Safari", 2210, 9, 98, true), group("kernel_task", 0, 8, 96, false)],
            deadlock: false,
            why: why.into(),
        }],
        app_hangs: vec![AppHang {
            thread: Some(StackThread {
                process: "Safari".into(),
                pid: Some(2210),
                thread: "0x1f00a".into(),
                main: true,
                ..StackThread::default()
            }),
            busy: false,
            samples: 12,
            total_samples: 12,
            doing: "mach_msg2_trap (libsystem_kernel.dylib)".into(),
            waiting_for: "WindowServer [153] main thread 0x3e2".into(),
            via: vec!["-[NSApplication run]".into()],
        }],
        victims: vec![],
        groups: vec![],
        ..pause_event()
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

fn data() -> Data {
    let mut d = Data::default();
    d.apply(Msg::Connected);
    d.apply(Msg::Thresholds { elevated: 50.0, critical: 75.0 });
    for seq in 1..=40u64 {
        let score = if seq == 40 { 62.5 } else { (seq as f64 * 7.0) % 60.0 };
        let sample = Sample {
            sequence: seq,
            tier: Tier::Elevated as i32,
            max_score: score,
            process_count: 312,
            rogues: vec![quiet(), hog()],
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

/// The detail screen opened for the event `data()` holds.
fn detail() -> View {
    View { screen: Screen::Detail, opened: Some(12), ..View::default() }
}

fn render(data: &Data, view: &View, size: (u16, u16)) -> String {
    render_measured(data, view, size).0
}

/// The screen's text and how far the detail can scroll.
fn render_measured(data: &Data, view: &View, (w, h): (u16, u16)) -> (String, u16) {
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

fn assert_has(screen: &str, parts: &[&str]) {
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
                "62.5 ELEVATED · 312 procs",
                "elevated 50 · critical 75",
                "!hogger",
                "4242",
                "99.5%",
                "3.0 GiB",
                "48.0k/s",
                "why hogger[4242] scores 62.5",
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
fn event_detail_is_the_incident_report() {
    let view = detail();
    for size in SIZES {
        let s = render(&data(), &view, size);
        assert_has(
            &s,
            &[
                "Pause 12 (unreviewed)",
                "lasted 2.91 s",
                "notes: nightly backup",
                "the machine froze: tasks waited for memory 2.10 s",
                "blame taken from the stall",
                "Culprits",
                "1. hogger[4242]: cpu 2.80 s in the 2.91 s stall, grew 900 MiB [known",
                "cpu 2.80 s · waited 0.02 s for a CPU · SCHED_OTHER",
                "score 62.5 in 14 samples",
            ],
        );
    }
    // The groups, victims and forensics follow: all on screen at 160×48.
    assert_has(
        &render(&data(), &view, (160, 48)),
        &[
            "Groups",
            "tree make[40] and 12 children: cpu 2.50 s",
            "Victims (waited longest)",
            "editor[77]: cpu 0.00 s · waited 1.50 s for a CPU · SCHED_OTHER",
            "Forensics",
            "psi",
            "memory some 41% during the pause",
            "failed",
            "cannot read /dev/kmsg",
        ],
    );
    // The artefacts are below the fold at 80×24 and visible at 160×48.
    assert_has(&render(&data(), &view, (160, 48)), &["Artefacts", "events/20261121-201658-12", "processes.tsv"]);
    let scrolled = View { scroll: 100, ..detail() };
    assert_has(&render(&data(), &scrolled, (80, 24)), &["processes.tsv"]);
}

#[test]
fn a_mac_pause_names_the_thread_everyone_waited_on_then_the_waiters() {
    let mut d = data();
    d.apply(Msg::Detail(Box::new(GetEventResponse { event: Some(mac_pause()), ..Default::default() })));
    assert_has(
        &render(&d, &detail(), (160, 48)),
        &[
            "1. WindowServer[153]: 23 threads of 3 processes waited on WindowServer [153] main thread 0x3e2",
            "Who waited on whom (stack report)",
            "Safari [2210]: 9 threads (its main thread among them), 98 samples waiting",
            "kernel_task [0]: 8 threads, 96 samples waiting",
            "Hung apps (main thread blocked or busy)",
            "Safari [2210] main thread 0x1f00a: hung 12/12 samples, mostly blocked in mach_msg2_trap",
            "under -[NSApplication run]",
        ],
    );
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
fn the_previous_events_detail_is_never_shown_for_another() {
    let view = View { opened: Some(11), ..detail() };
    for size in SIZES {
        let s = render(&data(), &view, size);
        assert_has(&s, &["loading event 11…"]);
        assert!(!s.contains("Pause 12") && !s.contains("nightly backup"), "{s}");
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
fn notes_show_what_is_left_and_why_a_save_failed() {
    let mut view = View { typing: Some(Typing::Notes("cron".into())), ..detail() };
    assert_has(&render(&data(), &view, (80, 24)), &["notes (4092 left): cron"]);
    view.saving = Some((12, "cron job".into()));
    view.typing = None;
    view.answered(&Msg::NotUpdated { id: 12, reason: "server answered InvalidArgument: too long".into() });
    let s = render(&data(), &view, (160, 48));
    assert_has(&s, &["notes (4088 left): cron job", "notes not saved: server answered InvalidArgument: too long"]);
}

#[test]
fn detail_scrolls_to_its_wrapped_end_and_back_at_once() {
    let mut d = data();
    if let Some(e) = d.detail.as_mut().and_then(|d| d.event.as_mut()) {
        // Wraps to many rows at 80 columns: the end must count them.
        e.notes = "the backup ran while the indexer rebuilt ".repeat(20);
    }
    let mut view = detail();
    let (_, most) = render_measured(&d, &view, (80, 24));
    view.scroll_max = most;
    view.handle(crate::input::Intent::End, &d);
    assert_eq!(view.scroll, most);
    assert_has(&render(&d, &view, (80, 24)), &["samples kept: 0"]);
    view.handle(crate::input::Intent::PageDown, &d);
    assert_eq!(view.scroll, most, "no scrolling past the end");
    view.handle(crate::input::Intent::Up, &d);
    assert_eq!(view.scroll, most - 1, "one key up moves at once");
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
