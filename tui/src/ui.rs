//! View state: which screen, what is selected, how rogues are sorted, the events filter,
//! what is being typed. [`View::handle`] turns an intent into changes here and, where
//! the server must be asked, a [`Request`] for the connection task.

use pmon_proto::{
    v1::{Event, EventStatus, ListEventsRequest, Rogue, UpdateEventRequest},
    when::parse_time_now,
};

pub use crate::order::{Column, Filter, sorted_rogues};
use crate::{
    input::Intent,
    order::{next_kind, next_status},
    state::{Data, Msg},
};

/// Rows a page key moves.
const PAGE: usize = 10;
/// The longest notes the server accepts, in bytes (its `UpdateEvent` refuses more).
pub const NOTES_MAX: usize = 4096;

/// The screens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// Live scores, rogues and recent events.
    Dashboard,
    /// All events, filtered.
    Events,
    /// One event's incident report.
    Detail,
}

/// A text field with the keyboard.
#[derive(Debug, Clone, PartialEq)]
pub enum Typing {
    /// The events filter's start time.
    Since(String),
    /// An event's notes.
    Notes(String),
}

/// What the connection task should ask the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// The events matching a filter.
    List(ListEventsRequest),
    /// One event with its evidence.
    Get(u64),
    /// Change an event's status or notes.
    Update(UpdateEventRequest),
}

/// What handling an intent leads to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Redraw (the view changed, or nothing did).
    Stay,
    /// Redraw and send this to the server.
    Ask(Request),
    /// Leave the dashboard.
    Quit,
}

/// The view state.
#[derive(Debug)]
pub struct View {
    /// The screen shown.
    pub screen: Screen,
    /// Whether the key list covers it.
    pub help: bool,
    /// Rogue sort column and whether it runs largest first.
    pub sort: (Column, bool),
    /// The selected rogue's pid and whether it is a group (a tree's rogue carries its
    /// root's pid, and the root may be a rogue of its own): the selection follows it as
    /// the table reorders.
    pub rogue: Option<(u32, bool)>,
    /// Selected row of the events screen.
    pub event_row: usize,
    /// The events screen's filter.
    pub filter: Filter,
    /// The event the detail screen was opened for; until the server's answer for this
    /// id arrives, the detail held in the data state belongs to another event.
    pub opened: Option<u64>,
    /// Lines scrolled down in the event detail.
    pub scroll: u16,
    /// The furthest the detail can scroll, as measured by the last draw.
    pub scroll_max: u16,
    /// Notes sent to the server and not yet confirmed: (event id, text). Kept so a
    /// refused save can be typed on instead of lost.
    pub saving: Option<(u64, String)>,
    /// Notes the server refused while their event was not on screen: (event id, text),
    /// offered again when notes are next written for that event.
    pub unsaved: Option<(u64, String)>,
    /// A text field being typed in.
    pub typing: Option<Typing>,
    /// A message for the status line (e.g. a bad time filter).
    pub notice: Option<String>,
}

impl Default for View {
    fn default() -> Self {
        View {
            screen: Screen::Dashboard,
            help: false,
            sort: (Column::Score, true),
            rogue: None,
            event_row: 0,
            filter: Filter::default(),
            opened: None,
            scroll: 0,
            scroll_max: 0,
            saving: None,
            unsaved: None,
            typing: None,
            notice: None,
        }
    }
}

/// What identifies a rogue's row: its pid, and whether it stands for a group.
fn row_key(r: &Rogue) -> (u32, bool) {
    (r.pid, r.group.is_some())
}

impl View {
    /// The selected rogue's row in `rows` (the first row if the selected one is gone).
    pub fn rogue_row(&self, rows: &[&Rogue]) -> Option<usize> {
        if rows.is_empty() {
            return None;
        }
        Some(self.rogue.and_then(|key| rows.iter().position(|r| row_key(r) == key)).unwrap_or(0))
    }

    /// The event the detail screen shows: the one opened, once its answer is in.
    pub fn detail_event<'a>(&self, data: &'a Data) -> Option<&'a Event> {
        data.detail.as_ref().and_then(|d| d.event.as_ref()).filter(|e| Some(e.id) == self.opened)
    }

    /// The events screen's list, once it answers the current filter; `None` while the
    /// list held belongs to another filter.
    pub fn listed<'a>(&self, data: &'a Data) -> Option<&'a [Event]> {
        data.events_for.as_ref().filter(|r| **r == self.filter.request()).map(|_| data.events.as_slice())
    }

    /// Follows the server's answers to what this view asked: a confirmed save ends the
    /// draft; a refused one brings the draft back with the reason.
    pub fn answered(&mut self, msg: &Msg) {
        let Some((id, notes)) = &self.saving else { return };
        match msg {
            Msg::Updated(e) if e.id == *id && e.notes == *notes => self.saving = None,
            Msg::NotUpdated { id: failed, reason } if failed == id => {
                if let Some((id, notes)) = self.saving.take() {
                    // Typing resumes only on the event's own detail, so the draft cannot be
                    // saved onto another event.
                    if self.screen == Screen::Detail && self.opened == Some(id) && self.typing.is_none() {
                        self.notice = Some(format!("notes not saved: {reason}"));
                        self.typing = Some(Typing::Notes(notes));
                    } else {
                        self.notice =
                            Some(format!("notes of event {id} not saved: {reason} (n on it brings them back)"));
                        self.unsaved = Some((id, notes));
                    }
                }
            }
            _ => {}
        }
    }

    /// Applies an intent.
    pub fn handle(&mut self, intent: Intent, data: &Data) -> Outcome {
        self.notice = None;
        if self.typing.is_some() {
            return self.type_text(intent);
        }
        if self.help {
            if matches!(intent, Intent::Quit) {
                return Outcome::Quit;
            }
            // Any key closes the help; it is only a picture of the keys.
            self.help = false;
            return Outcome::Stay;
        }
        match intent {
            Intent::Quit => return Outcome::Quit,
            Intent::Help => self.help = true,
            Intent::Back => self.back(),
            Intent::Dashboard => self.screen = Screen::Dashboard,
            Intent::Events => return self.open_events(),
            Intent::Refresh => return self.refresh(),
            Intent::Up | Intent::Down | Intent::PageUp | Intent::PageDown | Intent::Home | Intent::End => {
                self.step(intent, data)
            }
            Intent::Open => return self.open(data),
            Intent::SortBy(_) | Intent::SortNext if self.screen == Screen::Dashboard => self.sort_rogues(intent),
            Intent::CycleKind | Intent::CycleStatus | Intent::ClearFilter if self.screen == Screen::Events => {
                return self.refilter(intent);
            }
            Intent::EditSince if self.screen == Screen::Events => self.edit_since(),
            Intent::MarkUnreviewed | Intent::MarkReviewed | Intent::MarkPinned | Intent::MarkDismissed
                if self.screen == Screen::Detail =>
            {
                return self.mark(intent);
            }
            Intent::EditNotes if self.screen == Screen::Detail => self.edit_notes(data),
            _ => {}
        }
        Outcome::Stay
    }

    /// Goes up one screen. The dashboard is the top: Esc there does nothing rather than
    /// quit by accident.
    fn back(&mut self) {
        match self.screen {
            Screen::Dashboard => {}
            Screen::Events => self.screen = Screen::Dashboard,
            Screen::Detail => self.screen = Screen::Events,
        }
    }

    /// Asks again for what the screen shows; the dashboard is streamed, so nothing there.
    fn refresh(&self) -> Outcome {
        match self.screen {
            Screen::Dashboard => Outcome::Stay,
            Screen::Events => Outcome::Ask(Request::List(self.filter.request())),
            Screen::Detail => self.opened.map_or(Outcome::Stay, |id| Outcome::Ask(Request::Get(id))),
        }
    }

    /// Enter: the dashboard opens the events, the events screen the selected event.
    fn open(&mut self, data: &Data) -> Outcome {
        match self.screen {
            Screen::Dashboard => self.open_events(),
            Screen::Events => {
                // A list for another filter is on its way out: its rows are not what is asked.
                let events = self.listed(data).unwrap_or_default();
                let row = self.event_row.min(events.len().saturating_sub(1));
                let Some(e) = events.get(row) else { return Outcome::Stay };
                self.screen = Screen::Detail;
                self.opened = Some(e.id);
                self.scroll = 0;
                Outcome::Ask(Request::Get(e.id))
            }
            Screen::Detail => Outcome::Stay,
        }
    }

    /// Sorts the rogues by a column (again: the other way round) or by the next column,
    /// each column starting in its natural direction.
    fn sort_rogues(&mut self, intent: Intent) {
        self.sort = match intent {
            Intent::SortBy(column) if self.sort.0 == column => (column, !self.sort.1),
            Intent::SortBy(column) => (column, column.natural_descending()),
            _ => {
                let at = Column::ALL.iter().position(|c| *c == self.sort.0).unwrap_or(0);
                let next = Column::ALL[(at + 1) % Column::ALL.len()];
                (next, next.natural_descending())
            }
        };
    }

    /// Cycles the events filter's kind or status, or clears it, and asks for the new list
    /// from its top.
    fn refilter(&mut self, intent: Intent) -> Outcome {
        self.filter = match intent {
            Intent::CycleKind => Filter { kind: next_kind(self.filter.kind), ..self.filter.clone() },
            Intent::CycleStatus => Filter { status: next_status(self.filter.status), ..self.filter.clone() },
            _ => Filter::default(),
        };
        self.event_row = 0;
        Outcome::Ask(Request::List(self.filter.request()))
    }

    /// Starts typing the filter's start time from what was typed for it last.
    fn edit_since(&mut self) {
        let typed = self.filter.since.as_ref().map(|(t, _)| t.clone()).unwrap_or_default();
        self.typing = Some(Typing::Since(typed));
    }

    /// Asks the server to give the opened event the status a key names.
    fn mark(&self, intent: Intent) -> Outcome {
        let status = match intent {
            Intent::MarkUnreviewed => EventStatus::Unreviewed,
            Intent::MarkReviewed => EventStatus::Reviewed,
            Intent::MarkPinned => EventStatus::Pinned,
            _ => EventStatus::Dismissed,
        };
        match self.opened {
            Some(id) => Outcome::Ask(Request::Update(UpdateEventRequest { id, status: status as i32, notes: None })),
            None => Outcome::Stay,
        }
    }

    /// Starts typing the event's notes: from a refused draft of this event if there is
    /// one, else from what the server holds, so only once the event is in.
    fn edit_notes(&mut self, data: &Data) {
        let Some(e) = self.detail_event(data) else { return };
        let draft = match self.unsaved.take() {
            Some((id, notes)) if id == e.id => notes,
            other => {
                self.unsaved = other;
                e.notes.clone()
            }
        };
        self.typing = Some(Typing::Notes(draft));
    }

    fn open_events(&mut self) -> Outcome {
        self.screen = Screen::Events;
        Outcome::Ask(Request::List(self.filter.request()))
    }

    fn step(&mut self, intent: Intent, data: &Data) {
        let moved = |at: usize, len: usize| -> usize {
            let last = len.saturating_sub(1);
            match intent {
                Intent::Up => at.saturating_sub(1),
                Intent::Down => (at + 1).min(last),
                Intent::PageUp => at.saturating_sub(PAGE),
                Intent::PageDown => (at + PAGE).min(last),
                Intent::Home => 0,
                _ => last,
            }
        };
        match self.screen {
            Screen::Dashboard => {
                let rogues = data.latest.as_ref().map(|s| s.rogues.as_slice()).unwrap_or_default();
                let rows = sorted_rogues(rogues, self.sort);
                if let Some(at) = self.rogue_row(&rows) {
                    self.rogue = rows.get(moved(at, rows.len())).map(|r| row_key(r));
                }
            }
            Screen::Events => {
                let len = self.listed(data).map_or(0, <[Event]>::len);
                self.event_row = moved(self.event_row.min(len.saturating_sub(1)), len);
            }
            Screen::Detail => {
                // The report's wrapped length is known only when drawn; the last draw measured it.
                let at = usize::from(self.scroll.min(self.scroll_max));
                self.scroll = u16::try_from(moved(at, usize::from(self.scroll_max) + 1)).unwrap_or(self.scroll_max);
            }
        }
    }

    fn type_text(&mut self, intent: Intent) -> Outcome {
        let Some(typing) = self.typing.as_mut() else { return Outcome::Stay };
        let (text, max) = match typing {
            Typing::Since(t) => (t, usize::MAX),
            Typing::Notes(t) => (t, NOTES_MAX),
        };
        match intent {
            Intent::Quit => return Outcome::Quit,
            Intent::Back => self.typing = None,
            Intent::Char(c) if text.len() + c.len_utf8() <= max => text.push(c),
            Intent::Char(_) => self.notice = Some(format!("notes are full: at most {NOTES_MAX} bytes")),
            Intent::Backspace => {
                text.pop();
            }
            Intent::Submit => return self.submit(),
            _ => {}
        }
        Outcome::Stay
    }

    fn submit(&mut self) -> Outcome {
        match self.typing.take() {
            Some(Typing::Since(typed)) if typed.trim().is_empty() => {
                self.filter.since = None;
                self.event_row = 0;
                Outcome::Ask(Request::List(self.filter.request()))
            }
            Some(Typing::Since(typed)) => match parse_time_now(&typed) {
                Ok(t) => {
                    self.filter.since = Some((typed, t));
                    self.event_row = 0;
                    Outcome::Ask(Request::List(self.filter.request()))
                }
                Err(e) => {
                    self.notice = Some(e.to_string());
                    self.typing = Some(Typing::Since(typed));
                    Outcome::Stay
                }
            },
            Some(Typing::Notes(notes)) => match self.opened {
                Some(id) => {
                    self.saving = Some((id, notes.clone()));
                    Outcome::Ask(Request::Update(UpdateEventRequest {
                        id,
                        status: EventStatus::Unspecified as i32,
                        notes: Some(notes),
                    }))
                }
                None => Outcome::Stay,
            },
            None => Outcome::Stay,
        }
    }
}

#[cfg(test)]
#[path = "ui_tests.rs"]
mod tests;
