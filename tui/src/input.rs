//! Keys → intents. The mapping knows only the key and whether text is being typed;
//! what an intent does on each screen is the view state's business.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::order::Column;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Leave the dashboard.
    Quit,
    /// One level back: close the help, leave a screen, cancel typing.
    Back,
    /// Show or hide the key list.
    Help,
    /// Selection or scroll up / down, by one or a page, or to an end.
    Up,
    /// See [`Intent::Up`].
    Down,
    /// See [`Intent::Up`].
    PageUp,
    /// See [`Intent::Up`].
    PageDown,
    /// See [`Intent::Up`].
    Home,
    /// See [`Intent::Up`].
    End,
    /// Open what is selected (the events screen from the dashboard's event list, an
    /// event's detail from the events screen).
    Open,
    /// Go to the events screen.
    Events,
    /// Go to the dashboard.
    Dashboard,
    /// Sort the rogue table by this column (again: reverse).
    SortBy(Column),
    /// Sort by the next column.
    SortNext,
    /// Events filter: next kind / next status.
    CycleKind,
    /// See [`Intent::CycleKind`].
    CycleStatus,
    /// Events filter: type a start time.
    EditSince,
    /// Events filter: back to everything.
    ClearFilter,
    /// Event detail: set the status.
    MarkUnreviewed,
    /// See [`Intent::MarkUnreviewed`].
    MarkReviewed,
    /// See [`Intent::MarkUnreviewed`].
    MarkPinned,
    /// See [`Intent::MarkUnreviewed`].
    MarkDismissed,
    /// Event detail: write notes.
    EditNotes,
    /// Ask the server again for the screen's data.
    Refresh,
    /// Typing: a character, delete one, accept the text.
    Char(char),
    /// See [`Intent::Char`].
    Backspace,
    /// See [`Intent::Char`].
    Submit,
}

/// The intent of a key; `None` for keys that mean nothing. `typing` is true while a
/// text field has the keyboard, so letters are text, not commands.
pub fn intent(key: KeyEvent, typing: bool) -> Option<Intent> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c')) {
        return Some(Intent::Quit);
    }
    // Ctrl and Alt chords are not the plain keys: outside typing none has a meaning.
    if !typing && key.modifiers.intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) {
        return None;
    }
    if typing {
        return match key.code {
            KeyCode::Esc => Some(Intent::Back),
            KeyCode::Enter => Some(Intent::Submit),
            KeyCode::Backspace => Some(Intent::Backspace),
            KeyCode::Char(c) if !ctrl => Some(Intent::Char(c)),
            _ => None,
        };
    }
    let intent = match key.code {
        KeyCode::Char('q') => Intent::Quit,
        KeyCode::Esc | KeyCode::Backspace => Intent::Back,
        KeyCode::Char('?') | KeyCode::F(1) => Intent::Help,
        KeyCode::Up | KeyCode::Char('k') => Intent::Up,
        KeyCode::Down | KeyCode::Char('j') => Intent::Down,
        KeyCode::PageUp => Intent::PageUp,
        KeyCode::PageDown | KeyCode::Char(' ') => Intent::PageDown,
        KeyCode::Home | KeyCode::Char('g') => Intent::Home,
        KeyCode::End | KeyCode::Char('G') => Intent::End,
        KeyCode::Enter => Intent::Open,
        KeyCode::Char('e') | KeyCode::Tab => Intent::Events,
        KeyCode::Char('h') => Intent::Dashboard,
        KeyCode::Char(c @ '1'..='8') => Intent::SortBy(Column::ALL[usize::from(c as u8 - b'1')]),
        KeyCode::Char('s') => Intent::SortNext,
        KeyCode::Char('K') => Intent::CycleKind,
        KeyCode::Char('S') => Intent::CycleStatus,
        KeyCode::Char('t') => Intent::EditSince,
        KeyCode::Char('c') => Intent::ClearFilter,
        KeyCode::Char('u') => Intent::MarkUnreviewed,
        KeyCode::Char('r') => Intent::MarkReviewed,
        KeyCode::Char('p') => Intent::MarkPinned,
        KeyCode::Char('d') => Intent::MarkDismissed,
        KeyCode::Char('n') => Intent::EditNotes,
        KeyCode::F(5) | KeyCode::Char('R') => Intent::Refresh,
        _ => return None,
    };
    Some(intent)
}

/// Every key, for the help overlay: (keys, what they do), grouped by where they work.
/// Kept short enough to fit an 80×24 terminal.
pub const KEYS: &[(&str, &[(&str, &str)])] = &[
    (
        "Everywhere",
        &[
            ("q  Ctrl-C", "quit (while typing: Ctrl-C only)"),
            ("Esc  Backspace", "back: close help, leave a screen, cancel typing"),
            ("?  F1", "this help (any key closes it)"),
            ("h / e  Tab", "dashboard / events screen"),
            ("↑↓ j k  PgUp PgDn", "select or scroll, by one or a page (also Space)"),
            ("Home End  g G", "first / last"),
        ],
    ),
    (
        "Dashboard",
        &[
            ("1 … 8", "sort rogues by that column (again: reverse)"),
            ("s", "sort by the next column"),
            ("Enter", "open the events screen"),
        ],
    ),
    (
        "Events",
        &[
            ("Enter", "the selected event's incident report"),
            ("K", "kind: all, pause, escalation"),
            ("S", "status: all, unreviewed, reviewed, pinned, dismissed"),
            ("t", "since a time: \"1h ago\", \"yesterday\", ISO-8601"),
            ("c", "clear the filter"),
            ("R  F5", "ask the server for the list again"),
        ],
    ),
    (
        "Event detail",
        &[
            ("r  u  p  d", "mark reviewed, unreviewed, pinned, dismissed"),
            ("n", "write notes (Enter saves, Esc cancels)"),
            ("R  F5", "ask the server for the event again"),
        ],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn letters_are_commands_unless_typing() {
        assert_eq!(intent(key(KeyCode::Char('q')), false), Some(Intent::Quit));
        assert_eq!(intent(key(KeyCode::Char('q')), true), Some(Intent::Char('q')));
        assert_eq!(intent(key(KeyCode::Esc), true), Some(Intent::Back));
        assert_eq!(intent(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL), true), Some(Intent::Quit));
    }

    #[test]
    fn ctrl_and_alt_chords_are_not_commands() {
        assert_eq!(intent(KeyEvent::new(KeyCode::Char('r'), KeyModifiers::CONTROL), false), None);
        assert_eq!(intent(KeyEvent::new(KeyCode::Char('q'), KeyModifiers::ALT), false), None);
        assert_eq!(intent(KeyEvent::new(KeyCode::Char('d'), KeyModifiers::CONTROL), false), None);
        assert_eq!(intent(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL), false), Some(Intent::Quit));
        assert_eq!(intent(KeyEvent::new(KeyCode::Char('R'), KeyModifiers::SHIFT), false), Some(Intent::Refresh));
    }

    #[test]
    fn refresh_is_listed_only_where_it_asks_the_server() {
        let groups_with_refresh: Vec<&str> =
            KEYS.iter().filter(|(_, keys)| keys.iter().any(|(k, _)| k.contains("F5"))).map(|(g, _)| *g).collect();
        assert_eq!(groups_with_refresh, ["Events", "Event detail"]);
    }

    #[test]
    fn digits_pick_sort_columns() {
        assert_eq!(intent(key(KeyCode::Char('1')), false), Some(Intent::SortBy(Column::Pid)));
        assert_eq!(intent(key(KeyCode::Char('8')), false), Some(Intent::SortBy(Column::Csw)));
        assert_eq!(intent(key(KeyCode::Char('9')), false), None);
    }

    #[test]
    fn key_releases_are_ignored() {
        let mut release = key(KeyCode::Char('q'));
        release.kind = KeyEventKind::Release;
        assert_eq!(intent(release, false), None);
    }
}
