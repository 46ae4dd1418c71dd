//! The events screen: every recorded event matching the filter, newest first.

use pmon_proto::format;
use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Paragraph, Row, Table, TableState},
};

use super::event_style;
use crate::{state::Data, ui::View};

pub fn draw(frame: &mut Frame, area: Rect, data: &Data, view: &View) {
    let [filter, list] = Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(area);
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(" filter: ", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(view.filter.describe()),
        ])),
        filter,
    );
    let header = Row::new(["ID", "KIND", "STATUS", "STARTED", "LENGTH", "PEAK", "TOP CULPRIT"])
        .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let Some(events) = view.listed(data) else {
        let loading = Paragraph::new(Line::styled(" loading the events…", Style::new().fg(Color::DarkGray)))
            .block(Block::bordered().title(" events "));
        frame.render_widget(loading, list);
        return;
    };
    let rows = events.iter().map(|e| {
        Row::new([
            e.id.to_string(),
            format::event_kind(e.kind).to_string(),
            format::event_status(e.status).to_string(),
            format::date_time(e.started_at.as_ref()),
            format::event_length(e),
            format!("{:.1}", e.peak_score),
            format::top_culprit(e),
        ])
        .style(event_style(e))
    });
    let widths = [
        Constraint::Length(5),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(19),
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Fill(1),
    ];
    let title = format!(" events ({}) ", events.len());
    // A refreshed list may be shorter than the selection.
    let selected = events.len().checked_sub(1).map(|last| view.event_row.min(last));
    let mut state = TableState::default().with_selected(selected);
    if events.is_empty() {
        let empty = Paragraph::new(Line::styled(" no events match", Style::new().fg(Color::DarkGray)))
            .block(Block::bordered().title(title));
        frame.render_widget(empty, list);
        return;
    }
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::bordered().title(title))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    frame.render_stateful_widget(table, list, &mut state);
}
