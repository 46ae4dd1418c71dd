//! The event detail drawn from fixed state: the incident report, its scrolling, its
//! notes, and never another event's report.

use pmon_proto::v1::{AppHang, Culprit, Event, GetEventResponse, StackThread, WaitChain, WaitGroup};

use super::render_tests::{SIZES, assert_has, data, pause_event, render, render_measured};
use crate::{
    state::Msg,
    ui::{Screen, Typing, View},
};

/// The detail screen opened for the event `data()` holds.
fn detail() -> View {
    View { screen: Screen::Detail, opened: Some(12), ..View::default() }
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
fn the_previous_events_detail_is_never_shown_for_another() {
    let view = View { opened: Some(11), ..detail() };
    for size in SIZES {
        let s = render(&data(), &view, size);
        assert_has(&s, &["loading event 11…"]);
        assert!(!s.contains("Pause 12") && !s.contains("nightly backup"), "{s}");
    }
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
