//! An event's incident report: what happened and how long, the culprits with their
//! explanations, the forensic findings, where the artefacts are, and the notes.

use pmon_proto::{
    format,
    v1::{EventKind, FindingOutcome, GetEventResponse},
};
use ratatui::{
    Frame,
    layout::Rect,
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Paragraph, Wrap},
};

use super::{event_length, event_style};
use crate::{state::Data, ui::View};

/// Lines of a finding's detail shown under its summary.
const DETAIL_LINES: usize = 8;

pub fn draw(frame: &mut Frame, area: Rect, data: &Data, view: &View) {
    let Some((report, title, style)) = data.detail.as_ref().and_then(|d| {
        let e = d.event.as_ref()?;
        let what = if e.kind == EventKind::Pause as i32 { "Pause" } else { "Escalation" };
        Some((report(d), format!(" {what} {} ({}) ", e.id, format::event_status(e.status)), event_style(e)))
    }) else {
        frame.render_widget(Paragraph::new(" loading the event…").block(Block::bordered()), area);
        return;
    };
    // Never scroll past the end: the last page stays full.
    let inner_height = area.height.saturating_sub(2);
    let most = u16::try_from(report.len()).unwrap_or(u16::MAX).saturating_sub(inner_height);
    let paragraph = Paragraph::new(report)
        .wrap(Wrap { trim: false })
        .scroll((view.scroll.min(most), 0))
        .block(Block::bordered().title(Span::styled(title, style)));
    frame.render_widget(paragraph, area);
}

fn heading(text: &str) -> Line<'static> {
    Line::styled(text.to_string(), Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED))
}

fn report(d: &GetEventResponse) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let Some(e) = &d.event else { return out };
    let ended = e.ended_at.as_ref().map_or_else(|| "still open".into(), |t| format::date_time(Some(t)));
    out.push(Line::raw(format!("{} to {ended}, lasted {}", format::date_time(e.started_at.as_ref()), event_length(e))));
    out.push(Line::raw(format!("peak score {:.1}, tier {}", e.peak_score, format::tier(e.peak_tier))));
    let notes = if e.notes.is_empty() { "(none: press n to write some)".to_string() } else { e.notes.clone() };
    out.push(Line::from(vec![Span::styled("notes: ", Style::new().add_modifier(Modifier::BOLD)), Span::raw(notes)]));
    out.push(Line::raw(""));
    out.push(heading("Culprits"));
    if e.culprits.is_empty() {
        out.push(Line::raw("  none: no process stood out"));
    }
    for (i, c) in e.culprits.iter().enumerate() {
        let Some(r) = &c.rogue else { continue };
        let suspect = if r.suspect { " [known suspect]" } else { "" };
        out.push(Line::from(vec![
            Span::styled(
                format!("  {}. {}[{}]{suspect} score {:.1}", i + 1, r.command, r.pid, r.score),
                Style::new().add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!(": {} (a rogue in {} samples)", c.why, c.samples_seen)),
        ]));
        let f = r.factors.unwrap_or_default();
        let shares: Vec<String> = r
            .explanation
            .iter()
            .map(|s| {
                format!(
                    "{} {} = {:.1}",
                    format::factor_name(s.factor),
                    format::factor_value(s.factor, &f, r.state),
                    s.points
                )
            })
            .collect();
        if !shares.is_empty() {
            out.push(Line::raw(format!("     {}", shares.join(" · "))));
        }
    }
    if !d.findings.is_empty() {
        out.push(Line::raw(""));
        out.push(heading("Forensics"));
    }
    for f in &d.findings {
        let (outcome, color) = match FindingOutcome::try_from(f.outcome) {
            Ok(FindingOutcome::Ok) => ("ok", Color::Green),
            Ok(FindingOutcome::TimedOut) => ("timeout", Color::Yellow),
            _ => ("failed", Color::Red),
        };
        out.push(Line::from(vec![
            Span::styled(format!("  {outcome:<7} "), Style::new().fg(color)),
            Span::styled(format!("{:<16} ", f.step), Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(f.summary.clone()),
        ]));
        let detail = f.detail.lines().filter(|l| !l.trim().is_empty() && *l != f.summary).take(DETAIL_LINES);
        out.extend(detail.map(|l| Line::styled(format!("          {l}"), Style::new().fg(Color::Gray))));
    }
    if !e.artefact_dir.is_empty() {
        out.push(Line::raw(""));
        out.push(heading("Artefacts"));
        out.push(Line::raw(format!("  in <data dir>/{}", e.artefact_dir)));
        out.push(Line::raw(format!("  {}", d.artefacts.join("  "))));
    }
    out.push(Line::raw(""));
    out.push(Line::raw(format!("samples kept: {}", d.samples.len())));
    for n in &d.notifications {
        let delivered = if n.delivered { "sent".to_string() } else { format!("not delivered: {}", n.error) };
        out.push(Line::raw(format!("notification: {}: {} ({delivered})", n.title, n.body)));
    }
    out
}
