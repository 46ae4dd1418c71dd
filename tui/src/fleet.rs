//! `pmon tui --remote a,b` (or `--all-remotes`): many machines at once. The overview
//! has one row per machine (connection state, tier, score, top process, last pause);
//! Enter opens that machine's dashboard and Esc there comes back.
//!
//! ```text
//! poll task per machine ──(index, Row)──► overview loop (rows, selection) ──► draw
//!   connect ─► GetStatus + newest pause every POLL ─► lost: Down(reason), backoff, again
//! ```
//!
//! Each machine has its own task and its own time-outs, so one that does not answer
//! shows as unreachable while the others go on.

use std::time::{Duration, SystemTime};

use pmon_proto::{
    endpoint::Endpoint,
    format,
    v1::{EventKind, GetStatusRequest, ListEventsRequest},
};
use ratatui::{
    Frame,
    layout::{Constraint, Layout},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Borders, Cell, Paragraph, Row as TableRow, Table},
};
use tokio::sync::mpsc;

use crate::conn::backoff;

/// How often each machine is asked for its status.
const POLL: Duration = Duration::from_secs(2);
/// The longest one call may take before the machine counts as unreachable.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a machine answers.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Reach {
    /// Not answered yet.
    #[default]
    Connecting,
    /// Answering.
    Live,
    /// Lost or never reached, and why.
    Down(String),
}

/// What the overview shows of one machine.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    /// Whether it answers.
    pub reach: Reach,
    /// Its tier, once known.
    pub tier: Option<i32>,
    /// The latest sample's highest score.
    pub score: Option<f64>,
    /// The top process, `command[pid]`.
    pub top: Option<String>,
    /// The latest pause: `#id`, when, and its first culprit.
    pub last_pause: Option<String>,
}

/// Keeps asking one machine, and reports each change as `(index, row)`. Ends when the
/// overview is gone.
pub async fn poll(index: usize, endpoint: Endpoint, rows: mpsc::Sender<(usize, Row)>) {
    let mut last = Row::default();
    let mut attempt = 0u32;
    loop {
        let reason = match endpoint.connect().await {
            Ok(mut client) => loop {
                match ask(&mut client).await {
                    Ok(row) => {
                        attempt = 0;
                        if row != last {
                            last = row.clone();
                            if rows.send((index, row)).await.is_err() {
                                return;
                            }
                        }
                        tokio::time::sleep(POLL).await;
                    }
                    Err(reason) => break reason,
                }
            },
            // The short reason: the overview already names the machine.
            Err(e) => format!("{} failed: {}", e.stage, e.reason),
        };
        // What was known stays shown, marked as no longer current.
        last = Row { reach: Reach::Down(reason), ..last };
        if rows.send((index, last.clone())).await.is_err() {
            return;
        }
        attempt += 1;
        tokio::time::sleep(backoff(attempt)).await;
    }
}

async fn ask(client: &mut pmon_proto::endpoint::Client) -> Result<Row, String> {
    let timed = |what: &str| format!("no answer to {what} within {CALL_TIMEOUT:?}");
    let status = tokio::time::timeout(CALL_TIMEOUT, client.get_status(GetStatusRequest {}))
        .await
        .map_err(|_| timed("GetStatus"))?
        .map_err(|s| s.message().to_string())?
        .into_inner();
    let request = ListEventsRequest { kind: EventKind::Pause as i32, limit: 1, ..ListEventsRequest::default() };
    let pauses = tokio::time::timeout(CALL_TIMEOUT, client.list_events(request))
        .await
        .map_err(|_| timed("ListEvents"))?
        .map_err(|s| s.message().to_string())?
        .into_inner();
    let last_pause = pauses.events.first().map(|e| {
        let when = e.started_at.as_ref().and_then(pmon_proto::time::system_time).map(ago).unwrap_or_default();
        // Named as every other list names it (a culprit seen only in the stall's usage,
        // or pmon-server alone held up, included); the column shows what fits.
        let culprit = format::top_culprit(e);
        format!("#{} {when} {culprit}", e.id)
    });
    Ok(Row {
        reach: Reach::Live,
        tier: Some(status.tier),
        score: status.stress.or(status.max_score),
        top: status.top_rogue.as_ref().map(format::rogue_name),
        last_pause,
    })
}

/// "5 min ago", for a moment in the past.
fn ago(at: SystemTime) -> String {
    let secs = SystemTime::now().duration_since(at).map_or(0, |d| d.as_secs());
    match secs {
        0..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

/// Draws the overview: a title, one row per machine, the keys.
pub fn draw(frame: &mut Frame, names: &[String], rows: &[Row], selected: usize) {
    let [title, table, keys] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(3), Constraint::Length(1)]).areas(frame.area());
    let live = rows.iter().filter(|r| r.reach == Reach::Live).count();
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("pmon", Style::default().add_modifier(Modifier::BOLD)),
            Span::raw(format!(" · {} machines, {live} live", names.len())),
        ])),
        title,
    );
    let header = TableRow::new(["machine", "state", "tier", "stress", "top process", "last pause"])
        .style(Style::default().add_modifier(Modifier::BOLD));
    let body = names.iter().zip(rows).enumerate().map(|(i, (name, row))| {
        let (state, colour) = match &row.reach {
            Reach::Connecting => ("connecting".to_string(), Color::Yellow),
            Reach::Live => ("● live".to_string(), Color::Green),
            Reach::Down(reason) => (format!("unreachable: {reason}"), Color::Red),
        };
        let tier = row.tier.map_or("—", format::tier);
        let cells = [
            Cell::from(name.clone()),
            Cell::from(state).style(Style::default().fg(colour)),
            Cell::from(tier),
            Cell::from(row.score.map_or_else(|| "—".to_string(), |s| format!("{s:.1}"))),
            Cell::from(row.top.clone().unwrap_or_else(|| "—".into())),
            Cell::from(row.last_pause.clone().unwrap_or_else(|| "none".into())),
        ];
        let style = if i == selected { Style::default().add_modifier(Modifier::REVERSED) } else { Style::default() };
        TableRow::new(cells).style(style)
    });
    let widths = [
        Constraint::Length(14),
        Constraint::Min(12),
        Constraint::Length(9),
        Constraint::Length(6),
        Constraint::Length(22),
        Constraint::Min(28),
    ];
    frame.render_widget(Table::new(body, widths).header(header).block(Block::default().borders(Borders::TOP)), table);
    frame.render_widget(Paragraph::new("↑↓ select · Enter open its dashboard (Esc comes back) · q quit"), keys);
}

#[cfg(test)]
mod tests {
    use pmon_proto::v1::Tier;
    use ratatui::{Terminal, backend::TestBackend};

    use super::*;

    #[test]
    fn the_overview_shows_every_machine_and_why_one_is_unreachable() {
        let names = vec!["mac".to_string(), "box".to_string(), "gone".to_string()];
        let rows = vec![
            Row {
                reach: Reach::Live,
                tier: Some(Tier::Critical as i32),
                score: Some(81.5),
                top: Some("mds_stores[412]".into()),
                last_pause: Some("#3 5 min ago WindowServer[153]".into()),
            },
            Row { reach: Reach::Live, tier: Some(Tier::Sentinel as i32), score: Some(2.0), ..Row::default() },
            Row { reach: Reach::Down("connection refused".into()), ..Row::default() },
        ];
        let mut terminal = Terminal::new(TestBackend::new(120, 10)).expect("terminal");
        terminal.draw(|f| draw(f, &names, &rows, 1)).expect("draw");
        let screen: String = terminal.backend().buffer().content().iter().map(|c| c.symbol()).collect();
        for part in ["3 machines, 2 live", "mac", "CRITICAL", "81.5", "mds_stores[412]", "#3 5 min ago", "SENTINEL"] {
            assert!(screen.contains(part), "missing {part:?}:\n{screen}");
        }
        assert!(screen.contains("unreachable: connection refused"), "{screen}");
        assert!(screen.contains("none"), "a machine with no pause says so:\n{screen}");
    }

    #[test]
    fn ages_read_as_a_person_says_them() {
        let now = SystemTime::now();
        assert_eq!(ago(now - Duration::from_secs(30)), "30 s ago");
        assert_eq!(ago(now - Duration::from_secs(300)), "5 min ago");
        assert_eq!(ago(now - Duration::from_secs(7200)), "2 h ago");
    }
}
