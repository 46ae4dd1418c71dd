//! The dashboard: score gauge, score chart with the tier thresholds, the rogue table,
//! the selected rogue's explanation and the recent events.

use pmon_proto::{
    format,
    v1::{Factor, Rogue, Sample},
};
use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    symbols::Marker,
    text::{Line, Span},
    widgets::{Axis, Block, Chart, Dataset, Gauge, GraphType, Paragraph, Row, Table, TableState},
};

use super::{event_style, tier_color};
use crate::{
    state::Data,
    ui::{Column, View, sorted_rogues},
};

/// Recent events the dashboard lists at most.
const RECENT_ROWS: usize = 6;

pub fn draw(frame: &mut Frame, area: Rect, data: &Data, view: &View) {
    let rogues = data.latest.as_ref().map(|s| s.rogues.as_slice()).unwrap_or_default();
    let rows = sorted_rogues(rogues, view.sort);
    let selected = view.rogue_row(&rows);
    let explanation = selected.and_then(|i| rows.get(i)).map(|r| explain(r)).unwrap_or_default();
    let tall = area.height >= 36;
    // Small terminals get a fixed share; taller ones give the explanation and events
    // what they need and split the rest between chart and table.
    let explain_height = if tall { explanation.len().clamp(1, 10) as u16 + 2 } else { 4 };
    let events_height = if tall { data.recent.len().clamp(1, RECENT_ROWS) as u16 + 2 } else { 3 };
    let [gauge, chart, table, why, events] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Fill(1),
        Constraint::Fill(if tall { 2 } else { 1 }),
        Constraint::Length(explain_height),
        Constraint::Length(events_height),
    ])
    .areas(area);
    draw_gauge(frame, gauge, data.latest.as_ref());
    draw_chart(frame, chart, data);
    draw_rogues(frame, table, &rows, selected, view);
    let title = selected.and_then(|i| rows.get(i)).map_or_else(
        || " why ".to_string(),
        |r| {
            let suspect = if r.suspect { "· known suspect (a [suspects] pattern) " } else { "" };
            format!(" why {} scores {:.1} {suspect}", format::rogue_name(r), r.score)
        },
    );
    frame.render_widget(Paragraph::new(explanation).block(Block::bordered().title(title)), why);
    draw_recent(frame, events, data);
}

fn draw_gauge(frame: &mut Frame, area: Rect, sample: Option<&Sample>) {
    let [label, bar] = Layout::horizontal([Constraint::Length(8), Constraint::Fill(1)]).areas(area);
    frame.render_widget(Paragraph::new(Span::styled(" stress ", Style::new().add_modifier(Modifier::BOLD))), label);
    let gauge = match sample {
        // The stress the tier follows, the machine's figure and why, and the top score.
        Some(s) => Gauge::default()
            .ratio(gauge_ratio(format::stress_of(s)))
            .label(format!(
                "{:.1} {} · {} procs · top score {:.1} · {}",
                format::stress_of(s),
                format::tier(s.tier),
                s.process_count,
                s.max_score,
                s.machine.as_ref().map_or_else(|| "machine n/a".into(), format::machine),
            ))
            .gauge_style(Style::new().fg(tier_color(s.tier)).bg(Color::DarkGray)),
        None => Gauge::default().ratio(0.0).label("waiting for the first sample"),
    };
    frame.render_widget(gauge, bar);
}

/// The gauge's fill for a score: NaN or infinite fills nothing (the gauge refuses NaN);
/// the label still shows the value as it came.
fn gauge_ratio(score: f64) -> f64 {
    if score.is_finite() { (score / 100.0).clamp(0.0, 1.0) } else { 0.0 }
}

fn draw_chart(frame: &mut Frame, area: Rect, data: &Data) {
    // Braille packs two points per cell across.
    let room = usize::from(area.width.saturating_sub(8)) * 2;
    let skip = data.scores.len().saturating_sub(room);
    // A non-finite score has no place on the axis: it is left out, not drawn as 0.
    let points: Vec<(f64, f64)> = data
        .scores
        .iter()
        .skip(skip)
        .enumerate()
        .filter(|(_, p)| p.score.is_finite())
        .map(|(i, p)| (i as f64, p.score))
        .collect();
    let shown = data.scores.len() - skip;
    let right = (shown.max(2) - 1) as f64;
    let mut title = format!(" stress, last {shown} samples ");
    let mut lines = Vec::new();
    if let Some((elevated, critical)) = data.thresholds {
        title.push_str(&format!("· elevated {elevated:.0} · critical {critical:.0} "));
        lines.push(vec![(0.0, elevated), (right, elevated)]);
        lines.push(vec![(0.0, critical), (right, critical)]);
    }
    let mut datasets = Vec::new();
    for (line, color) in lines.iter().zip([Color::Yellow, Color::Red]) {
        datasets.push(Dataset::default().marker(Marker::Braille).graph_type(GraphType::Line).style(color).data(line));
    }
    let color = data.latest.as_ref().map_or(Color::Gray, |s| tier_color(s.tier));
    datasets.push(Dataset::default().marker(Marker::Braille).graph_type(GraphType::Line).style(color).data(&points));
    let chart = Chart::new(datasets)
        .block(Block::bordered().title(title))
        .x_axis(Axis::default().bounds([0.0, right]))
        .y_axis(Axis::default().bounds([0.0, 100.0]).labels(["0", "50", "100"]));
    frame.render_widget(chart, area);
}

fn draw_rogues(frame: &mut Frame, area: Rect, rows: &[&Rogue], selected: Option<usize>, view: &View) {
    let (sorted_by, descending) = view.sort;
    // Wide terminals also get the main factor in words, as `pmon watch` prints it.
    let wide = area.width >= 120;
    let mut titles: Vec<String> = Column::ALL
        .iter()
        .map(|c| {
            let arrow = match (*c == sorted_by, descending) {
                (true, true) => "▼",
                (true, false) => "▲",
                _ => "",
            };
            format!("{}{arrow}", c.title())
        })
        .collect();
    if wide {
        titles.push("MAIN FACTOR".into());
    }
    let header = Row::new(titles).style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let body = rows.iter().map(|r| {
        let f = r.factors.unwrap_or_default();
        let value = |factor: Factor| format::factor_value(factor as i32, &f, r.state);
        // A group is its root's command and how many busy processes it holds.
        let name = r.group.as_ref().map_or_else(|| r.command.clone(), |g| format!("{} +{}", r.command, g.processes));
        let command = if r.suspect { format!("!{name}") } else { name };
        let mut cells = vec![
            r.pid.to_string(),
            command,
            format!("{:.1}", r.score),
            value(Factor::State),
            value(Factor::Cpu),
            value(Factor::Mem),
            value(Factor::Pageins),
            value(Factor::Csw),
        ];
        if wide {
            cells.push(format::main_factor(r).unwrap_or_default());
        }
        let row = Row::new(cells);
        if r.suspect { row.style(Style::new().fg(Color::Magenta)) } else { row }
    });
    let mut widths = vec![
        Constraint::Length(7),
        if wide { Constraint::Length(20) } else { Constraint::Fill(1) },
        Constraint::Length(6),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(8),
    ];
    if wide {
        widths.push(Constraint::Fill(1));
    }
    let title = format!(" rogues ({}) · ! known suspect ", rows.len());
    let table = Table::new(body, widths)
        .header(header)
        .block(Block::bordered().title(title))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
}

/// Every factor's raw value and share of the score, largest first.
fn explain(r: &Rogue) -> Vec<Line<'static>> {
    let f = r.factors.unwrap_or_default();
    let mut lines = Vec::new();
    if r.explanation.is_empty() {
        lines.push(Line::raw("no factor weighs in: it was selected by rank or state only"));
    }
    let shares = r.explanation.iter().map(|s| {
        let share = if r.score > 0.0 { s.points / r.score * 100.0 } else { 0.0 };
        Line::from(vec![
            Span::styled(format!("{:<9}", format::factor_name(s.factor)), Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(format!(
                "{:>10}  {:5.1} pts  {share:3.0}% of it  (weight {:.0}, {:.0}% of full)",
                format::factor_value(s.factor, &f, r.state),
                s.points,
                s.weight,
                s.normalized * 100.0
            )),
        ])
    });
    lines.extend(shares);
    lines
}

fn draw_recent(frame: &mut Frame, area: Rect, data: &Data) {
    let lines: Vec<Line> = if data.recent.is_empty() {
        vec![Line::styled("no events recorded", Style::new().fg(Color::DarkGray))]
    } else {
        data.recent
            .iter()
            .take(RECENT_ROWS)
            .map(|e| {
                Line::from(vec![
                    Span::styled(
                        format!("#{:<4} {:<10} {:>9}", e.id, format::event_kind(e.kind), format::event_length(e)),
                        event_style(e),
                    ),
                    Span::raw(format!(
                        "  {}  {:<10}  {}",
                        format::date_time(e.started_at.as_ref()),
                        format::event_status(e.status),
                        format::top_culprit(e)
                    )),
                ])
            })
            .collect()
    };
    let title = " recent events (Enter: all) ";
    frame.render_widget(Paragraph::new(lines).block(Block::bordered().title(title)), area);
}
