use pmon_proto::v1::{Event, EventStatus, GetEventResponse, ProcessFactors, Rogue, Sample};

use super::*;
use crate::state::{Data, Msg};

fn rogue(pid: u32, command: &str, score: f64, cpu: f64) -> Rogue {
    Rogue {
        pid,
        command: command.into(),
        score,
        factors: Some(ProcessFactors { cpu_percent: Some(cpu), ..Default::default() }),
        ..Default::default()
    }
}

fn data() -> Data {
    let sample = Sample {
        rogues: vec![rogue(10, "beta", 30.0, 5.0), rogue(20, "alpha", 10.0, 90.0), rogue(30, "gamma", 20.0, 50.0)],
        ..Default::default()
    };
    let events = vec![Event { id: 9, ..Default::default() }, Event { id: 4, ..Default::default() }];
    Data { latest: Some(sample), events, events_for: Some(Filter::default().request()), ..Data::default() }
}

fn pids(d: &Data, v: &View) -> Vec<u32> {
    sorted_rogues(&d.latest.as_ref().unwrap().rogues, v.sort).iter().map(|r| r.pid).collect()
}

#[test]
fn sorting_by_a_column_then_again_reverses() {
    let d = data();
    let mut v = View::default();
    assert_eq!(pids(&d, &v), [10, 30, 20], "score, largest first");
    v.handle(Intent::SortBy(Column::Cpu), &d);
    assert_eq!(pids(&d, &v), [20, 30, 10]);
    v.handle(Intent::SortBy(Column::Cpu), &d);
    assert_eq!(pids(&d, &v), [10, 30, 20]);
    v.handle(Intent::SortBy(Column::Command), &d);
    assert_eq!(pids(&d, &v), [20, 10, 30], "names read A to Z");
}

#[test]
fn the_selection_follows_the_process_across_reorders() {
    let d = data();
    let mut v = View::default();
    v.handle(Intent::Down, &d);
    assert_eq!(v.rogue, Some((30, false)));
    v.handle(Intent::SortBy(Column::Pid), &d);
    let rows = sorted_rogues(&d.latest.as_ref().unwrap().rogues, v.sort);
    assert_eq!(v.rogue_row(&rows), Some(2));
}

#[test]
fn a_group_and_its_root_are_two_rows_the_selection_moves_through() {
    let mut d = data();
    let mut storm = rogue(10, "beta", 25.0, 190.0);
    storm.group = Some(pmon_proto::v1::ProcessGroup { name: "beta[10] and 48 children".into(), ..Default::default() });
    d.latest.as_mut().unwrap().rogues.push(storm);
    let mut v = View::default();
    let rows = |v: &View| sorted_rogues(&d.latest.as_ref().unwrap().rogues, v.sort).len();
    assert_eq!(rows(&v), 4);
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(v.rogue);
        v.handle(Intent::Down, &d);
    }
    // From the root (score 30) down to the group (25), then on: never stuck on pid 10.
    assert_eq!(seen, [None, Some((10, true)), Some((30, false)), Some((20, false))]);
}

#[test]
fn enter_opens_events_and_then_the_selected_event() {
    let d = data();
    let mut v = View::default();
    assert!(matches!(v.handle(Intent::Open, &d), Outcome::Ask(Request::List(_))));
    assert_eq!(v.screen, Screen::Events);
    v.handle(Intent::Down, &d);
    assert_eq!(v.handle(Intent::Open, &d), Outcome::Ask(Request::Get(4)));
    assert_eq!(v.screen, Screen::Detail);
    assert_eq!(v.handle(Intent::Back, &d), Outcome::Stay);
    assert_eq!(v.screen, Screen::Events);
    v.handle(Intent::Back, &d);
    assert_eq!(v.screen, Screen::Dashboard);
    assert_eq!(v.handle(Intent::Back, &d), Outcome::Stay, "Esc never quits");
    assert_eq!(v.screen, Screen::Dashboard);
}

#[test]
fn marking_and_notes_update_the_shown_event() {
    let mut d = data();
    d.detail = Some(GetEventResponse { event: Some(Event { id: 4, ..Default::default() }), ..Default::default() });
    let mut v = View { screen: Screen::Detail, opened: Some(4), ..View::default() };
    let Outcome::Ask(Request::Update(r)) = v.handle(Intent::MarkReviewed, &d) else { panic!("no update") };
    assert_eq!((r.id, r.status, r.notes), (4, EventStatus::Reviewed as i32, None));
    v.handle(Intent::EditNotes, &d);
    for c in "cron q".chars() {
        v.handle(Intent::Char(c), &d);
    }
    v.handle(Intent::Backspace, &d);
    assert_eq!(v.handle(Intent::Quit, &d), Outcome::Quit, "Ctrl-C maps to Quit even while typing");
    let Outcome::Ask(Request::Update(r)) = v.handle(Intent::Submit, &d) else { panic!("no update") };
    assert_eq!((r.status, r.notes.as_deref()), (EventStatus::Unspecified as i32, Some("cron ")));
    assert_eq!(v.typing, None);
    assert_eq!(v.saving, Some((4, "cron ".into())), "the draft waits for the answer");
}

#[test]
fn a_stale_detail_is_never_marked_or_edited() {
    let mut d = data();
    // Event 4 is still held; event 9 was asked for and has not arrived.
    d.detail = Some(GetEventResponse { event: Some(Event { id: 4, ..Default::default() }), ..Default::default() });
    let mut v = View { screen: Screen::Events, ..View::default() };
    assert_eq!(v.handle(Intent::Open, &d), Outcome::Ask(Request::Get(9)));
    let Outcome::Ask(Request::Update(r)) = v.handle(Intent::MarkPinned, &d) else { panic!("no update") };
    assert_eq!(r.id, 9);
    assert_eq!(v.handle(Intent::Refresh, &d), Outcome::Ask(Request::Get(9)));
    v.handle(Intent::EditNotes, &d);
    assert_eq!(v.typing, None, "notes wait for the event's own text");
}

#[test]
fn enter_never_opens_a_row_of_a_list_for_another_filter() {
    let d = data();
    let mut v = View { screen: Screen::Events, ..View::default() };
    v.filter.kind = Some(pmon_proto::v1::EventKind::Pause);
    assert_eq!(v.handle(Intent::Open, &d), Outcome::Stay);
    assert_eq!(v.screen, Screen::Events);
}

#[test]
fn a_refused_save_gives_the_draft_back_and_a_confirmed_one_ends_it() {
    let mut d = data();
    d.detail = Some(GetEventResponse { event: Some(Event { id: 4, ..Default::default() }), ..Default::default() });
    let mut v = View { screen: Screen::Detail, opened: Some(4), ..View::default() };
    v.handle(Intent::EditNotes, &d);
    v.handle(Intent::Char('x'), &d);
    v.handle(Intent::Submit, &d);
    v.answered(&Msg::NotUpdated { id: 4, reason: "server answered Unavailable: gone".into() });
    assert_eq!(v.typing, Some(Typing::Notes("x".into())));
    assert!(v.notice.as_deref().is_some_and(|n| n.contains("not saved") && n.contains("gone")), "{:?}", v.notice);
    v.handle(Intent::Submit, &d);
    v.answered(&Msg::Updated(Box::new(Event { id: 4, notes: "x".into(), ..Default::default() })));
    assert_eq!((v.saving, v.typing), (None, None));
}

#[test]
fn notes_stop_at_the_servers_limit() {
    let d = data();
    let mut v = View { screen: Screen::Detail, opened: Some(4), ..View::default() };
    v.typing = Some(Typing::Notes("a".repeat(NOTES_MAX - 1)));
    v.handle(Intent::Char('é'), &d);
    v.handle(Intent::Char('b'), &d);
    v.handle(Intent::Char('c'), &d);
    assert_eq!(v.typing, Some(Typing::Notes(format!("{}b", "a".repeat(NOTES_MAX - 1)))));
    assert!(v.notice.as_deref().is_some_and(|n| n.contains("4096")), "{:?}", v.notice);
}

#[test]
fn filters_ask_again_and_a_bad_time_is_explained() {
    let d = data();
    let mut v = View { screen: Screen::Events, ..View::default() };
    let Outcome::Ask(Request::List(r)) = v.handle(Intent::CycleKind, &d) else { panic!("no list") };
    assert_eq!(r.kind, pmon_proto::v1::EventKind::Pause as i32);
    let Outcome::Ask(Request::List(r)) = v.handle(Intent::CycleStatus, &d) else { panic!("no list") };
    assert_eq!(r.statuses, [EventStatus::Unreviewed as i32]);
    v.handle(Intent::EditSince, &d);
    for c in "soon".chars() {
        v.handle(Intent::Char(c), &d);
    }
    assert_eq!(v.handle(Intent::Submit, &d), Outcome::Stay);
    assert!(v.notice.as_deref().is_some_and(|n| n.contains("\"soon\"") && n.contains("accepted")), "{:?}", v.notice);
    v.typing = Some(Typing::Since("1h ago".into()));
    let Outcome::Ask(Request::List(r)) = v.handle(Intent::Submit, &d) else { panic!("no list") };
    assert!(r.since.is_some());
    assert!(v.filter.describe().contains("since 1h ago"), "{}", v.filter.describe());
    let Outcome::Ask(Request::List(r)) = v.handle(Intent::ClearFilter, &d) else { panic!("no list") };
    assert_eq!(r, Filter::default().request());
}

#[test]
fn help_closes_on_any_key_but_quit_still_quits() {
    let d = data();
    let mut v = View::default();
    v.handle(Intent::Help, &d);
    assert!(v.help);
    v.handle(Intent::Down, &d);
    assert!(!v.help);
    assert_eq!(v.rogue, None, "the key only closed the help");
    v.handle(Intent::Help, &d);
    assert_eq!(v.handle(Intent::Quit, &d), Outcome::Quit);
}

#[test]
fn refresh_asks_again_on_the_screens_whose_help_lists_it() {
    let d = data();
    let mut v = View { screen: Screen::Events, ..View::default() };
    assert_eq!(v.handle(Intent::Refresh, &d), Outcome::Ask(Request::List(Filter::default().request())));
    v = View { screen: Screen::Detail, opened: Some(9), ..View::default() };
    assert_eq!(v.handle(Intent::Refresh, &d), Outcome::Ask(Request::Get(9)));
    v = View::default();
    assert_eq!(
        v.handle(Intent::Refresh, &d),
        Outcome::Stay,
        "the dashboard refreshes itself; its help says nothing of R"
    );
}

#[test]
fn a_draft_refused_after_leaving_its_event_never_lands_on_another() {
    let mut d = data();
    d.detail = Some(GetEventResponse { event: Some(Event { id: 4, ..Default::default() }), ..Default::default() });
    let mut v = View { screen: Screen::Detail, opened: Some(4), ..View::default() };
    v.handle(Intent::EditNotes, &d);
    v.handle(Intent::Char('x'), &d);
    v.handle(Intent::Submit, &d);
    v.handle(Intent::Back, &d);
    v.handle(Intent::Up, &d);
    assert_eq!(v.handle(Intent::Open, &d), Outcome::Ask(Request::Get(9)));
    v.answered(&Msg::NotUpdated { id: 4, reason: "gone".into() });
    assert_eq!(v.typing, None, "no typing on event 9's screen");
    assert!(v.notice.as_deref().is_some_and(|n| n.contains("event 4")), "{:?}", v.notice);
    d.detail = Some(GetEventResponse { event: Some(Event { id: 9, ..Default::default() }), ..Default::default() });
    v.handle(Intent::EditNotes, &d);
    assert_eq!(v.typing, Some(Typing::Notes(String::new())), "event 9 starts from its own notes");
    v.handle(Intent::Back, &d);
    v.opened = Some(4);
    d.detail = Some(GetEventResponse { event: Some(Event { id: 4, ..Default::default() }), ..Default::default() });
    v.handle(Intent::EditNotes, &d);
    assert_eq!(v.typing, Some(Typing::Notes("x".into())), "event 4 gets its draft back");
}
