//! Drawing: one function per screen, all pure functions of (data state, view state)
//! onto a frame, so render tests draw fixed state onto ratatui's `TestBackend`.

mod dashboard;
mod detail;
mod events;
mod help;

use std::time::Instant;

use pmon_proto::{
    format,
    v1::{Event, EventKind, Tier},
};
use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::Paragraph,
};

use crate::{
    state::{Data, Link},
    ui::{NOTES_MAX, Screen, Typing, View},
};

/// Draws the whole screen. `target` names the server (its address). Returns how far the
/// event detail can scroll (0 on the other screens), which only drawing can measure.
pub fn draw(frame: &mut Frame, data: &Data, view: &View, target: &str) -> u16 {
    let [top, body, bottom] =
        Layout::vertical([Constraint::Length(1), Constraint::Fill(1), Constraint::Length(1)]).areas(frame.area());
    frame.render_widget(Paragraph::new(header(data, target)), top);
    let scroll_max = match view.screen {
        Screen::Dashboard => {
            dashboard::draw(frame, body, data, view);
            0
        }
        Screen::Events => {
            events::draw(frame, body, data, view);
            0
        }
        Screen::Detail => detail::draw(frame, body, data, view),
    };
    frame.render_widget(Paragraph::new(footer(data, view)), bottom);
    if view.help {
        help::draw(frame, frame.area());
    }
    scroll_max
}

/// The colour of a tier.
pub fn tier_color(tier: i32) -> Color {
    match Tier::try_from(tier) {
        Ok(Tier::Critical) => Color::Red,
        Ok(Tier::Elevated) => Color::Yellow,
        Ok(Tier::Sentinel) => Color::Green,
        _ => Color::Gray,
    }
}

/// How an event stands out: pauses bold red, escalations yellow.
pub fn event_style(e: &Event) -> Style {
    if e.kind == EventKind::Pause as i32 {
        Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
    } else {
        Style::new().fg(Color::Yellow)
    }
}

/// The top line: connection, tier, sample rate, the server's own cost.
fn header(data: &Data, target: &str) -> Line<'static> {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut spans = vec![Span::styled(" pmon ", bold.fg(Color::Black).bg(Color::Cyan)), Span::raw(" ")];
    match &data.link {
        Some(Link::Live) => match data.stale_for(Instant::now()) {
            Some(silent) => {
                spans.push(Span::styled(format!("● no sample for {} s", silent.as_secs()), bold.fg(Color::Yellow)))
            }
            None => spans.push(Span::styled("● live", Style::new().fg(Color::Green))),
        },
        Some(Link::Reconnecting { attempt, retry_in_secs, .. }) => spans.push(Span::styled(
            format!("● reconnecting (attempt {attempt}, next in {retry_in_secs:.1} s)"),
            bold.fg(Color::Red),
        )),
        Some(Link::Connecting) | None => spans.push(Span::styled("● connecting", Style::new().fg(Color::Yellow))),
    }
    if let Some(s) = &data.latest {
        spans.push(Span::raw("  "));
        spans.push(Span::styled(format::tier(s.tier), bold.fg(tier_color(s.tier))));
    }
    if let Some(hz) = data.sample_rate_hz() {
        spans.push(Span::raw(format!("  {hz:.1} Hz")));
    }
    if let Some(cost) = data.status.as_ref().and_then(|s| s.cost.as_ref()) {
        let cpu = cost.cpu_percent.map_or_else(|| "n/a".into(), |c| format!("{c:.2}%"));
        let rss = cost.resident_bytes.map_or_else(|| "n/a".into(), format::bytes);
        spans.push(Span::raw(format!("  server {cpu} cpu {rss}")));
    }
    if data.missed > 0 {
        spans.push(Span::styled(format!("  missed {} samples", data.missed), Style::new().fg(Color::Yellow)));
    }
    // The server's own troubles, the worst first (`pmon status` says why).
    if let Some(status) = &data.status {
        if status.lost_writes > 0 {
            spans.push(Span::styled(format!("  {} writes lost", status.lost_writes), bold.fg(Color::Red)));
        }
        if status.failed_samples > 0 {
            let text = format!("  {} failed samples", status.failed_samples);
            spans.push(Span::styled(text, Style::new().fg(Color::Yellow)));
        }
    }
    spans.push(Span::styled(format!("  {target}"), Style::new().fg(Color::DarkGray)));
    Line::from(spans)
}

/// The bottom line: what is being typed, a notice, the connection problem, or key hints.
fn footer(data: &Data, view: &View) -> Line<'static> {
    let warn = Style::new().fg(Color::Yellow);
    if let Some(typing) = &view.typing {
        let (label, text) = match typing {
            Typing::Since(t) => ("since (e.g. 1h ago, yesterday, 2026-11-21 14:05)".to_string(), t),
            Typing::Notes(t) => (format!("notes ({} left)", NOTES_MAX.saturating_sub(t.len())), t),
        };
        // A refused save or a full field is said here, where the typing goes on.
        let after = match &view.notice {
            Some(notice) => Span::styled(format!("  {notice}"), Style::new().fg(Color::Red)),
            None => Span::styled("  Enter save · Esc cancel", Style::new().fg(Color::DarkGray)),
        };
        return Line::from(vec![
            Span::styled(format!(" {label}: "), Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(text.clone()),
            Span::styled("▏", Style::new().fg(Color::Cyan)),
            after,
        ]);
    }
    if view.saving.is_some() {
        return Line::styled(" saving the notes…", warn);
    }
    if let Some(notice) = &view.notice {
        return Line::styled(format!(" {notice}"), warn);
    }
    if let Some(Link::Reconnecting { reason, .. }) = &data.link {
        return Line::styled(format!(" server lost: {reason}"), Style::new().fg(Color::Red));
    }
    if let Some(error) = &data.error {
        return Line::styled(format!(" {error}"), warn);
    }
    let hints = match view.screen {
        Screen::Dashboard => "q quit · ? help · e events · ↑↓ select · 1-8/s sort",
        Screen::Events => "Esc back · Enter open · K kind · S status · t since · c clear · ? help",
        Screen::Detail => "Esc back · r reviewed · p pinned · d dismissed · u unreviewed · n notes · ? help",
    };
    Line::styled(format!(" {hints}"), Style::new().fg(Color::DarkGray))
}

/// A rectangle of at most `width` × `height` centred in `area`.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h }
}

#[cfg(test)]
mod detail_tests;
#[cfg(test)]
#[path = "render_tests.rs"]
mod render_tests;
