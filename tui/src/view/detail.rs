//! An event's incident report: what happened and how long, the culprits with their
//! explanations, the forensic findings, where the artefacts are, and the notes.

use pmon_proto::{
    format,
    v1::{Event, EventKind, Finding, FindingOutcome, GetEventResponse},
};
use ratatui::{
    Frame,
    layout::Rect,
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Paragraph, Wrap},
};

use super::event_style;
use crate::{state::Data, ui::View};

/// Lines of a finding's detail shown under its summary.
const DETAIL_LINES: usize = 8;

/// Draws the opened event's report; returns how far it can scroll (its wrapped length
/// beyond one screen).
pub fn draw(frame: &mut Frame, area: Rect, data: &Data, view: &View) -> u16 {
    // The detail held may still be the previous event's: show it only for the one opened.
    let shown = data.detail.as_ref().filter(|_| view.detail_event(data).is_some());
    let Some((report, title, style)) = shown.and_then(|d| {
        let e = d.event.as_ref()?;
        let what = if e.kind == EventKind::Pause as i32 { "Pause" } else { "Escalation" };
        Some((report(d), format!(" {what} {} ({}) ", e.id, format::event_status(e.status)), event_style(e)))
    }) else {
        let which = view.opened.map_or_else(String::new, |id| format!(" {id}"));
        frame.render_widget(Paragraph::new(format!(" loading event{which}…")).block(Block::bordered()), area);
        return 0;
    };
    let paragraph = Paragraph::new(report).wrap(Wrap { trim: false });
    // Never scroll past the end: the last page stays full. Long lines wrap, so the
    // length is counted after wrapping at the inner width.
    let wrapped = paragraph.line_count(area.width.saturating_sub(2));
    let most = u16::try_from(wrapped).unwrap_or(u16::MAX).saturating_sub(area.height.saturating_sub(2));
    let paragraph =
        paragraph.scroll((view.scroll.min(most), 0)).block(Block::bordered().title(Span::styled(title, style)));
    frame.render_widget(paragraph, area);
    most
}

fn heading(text: &str) -> Line<'static> {
    Line::styled(text.to_string(), Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED))
}

fn report(d: &GetEventResponse) -> Vec<Line<'static>> {
    let mut out = Vec::new();
    let Some(e) = &d.event else { return out };
    let ended = e.ended_at.as_ref().map_or_else(|| "still open".into(), |t| format::date_time(Some(t)));
    out.push(Line::raw(format!(
        "{} to {ended}, lasted {}",
        format::date_time(e.started_at.as_ref()),
        format::event_length(e)
    )));
    out.push(Line::raw(format!("peak score {:.1}, tier {}", e.peak_score, format::tier(e.peak_tier))));
    let notes = if e.notes.is_empty() { "(none: press n to write some)".to_string() } else { e.notes.clone() };
    out.push(Line::from(vec![Span::styled("notes: ", Style::new().add_modifier(Modifier::BOLD)), Span::raw(notes)]));
    if let Some(cause) = format::cause(e) {
        out.push(Line::raw(cause));
    }
    if let Some(w) = &e.window {
        out.push(Line::raw(format!("blame taken from the {}", format::window(w))));
    }
    out.extend(culprits(e));
    if !e.wait_chains.is_empty() {
        out.push(Line::raw(""));
        out.push(heading("Who waited on whom (stack report)"));
        out.extend(e.wait_chains.iter().flat_map(format::wait_chain).map(|l| Line::raw(format!("  {l}"))));
    }
    if !e.app_hangs.is_empty() {
        out.push(Line::raw(""));
        out.push(heading("Hung apps (main thread blocked or busy)"));
        out.extend(e.app_hangs.iter().map(|h| Line::raw(format!("  {}", format::app_hang(h)))));
    }
    if !e.groups.is_empty() {
        out.push(Line::raw(""));
        out.push(heading("Groups"));
        out.extend(e.groups.iter().map(|g| Line::raw(format!("  {}", format::group(g)))));
    }
    if !e.victims.is_empty() {
        out.push(Line::raw(""));
        out.push(heading("Victims (waited longest)"));
        out.extend(e.victims.iter().map(|v| Line::raw(format!("  {}", format::victim(v)))));
    }
    out.extend(forensics(&d.findings));
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

/// The culprits section: each culprit with what it used and why it scored, or why there
/// is none.
fn culprits(e: &Event) -> Vec<Line<'static>> {
    let mut out = vec![Line::raw(""), heading("Culprits")];
    if e.culprits.is_empty() {
        out.push(Line::raw(format!("  {}", format::no_culprit(e))));
    }
    for (i, c) in e.culprits.iter().enumerate() {
        let suspect = if c.rogue.as_ref().is_some_and(|r| r.suspect) { " [known suspect]" } else { "" };
        out.push(Line::from(vec![Span::styled(
            format!("  {}. {}{suspect}", i + 1, format::culprit(c)),
            Style::new().add_modifier(Modifier::BOLD),
        )]));
        if let Some(u) = &c.usage {
            out.push(Line::raw(format!("     {}", format::process_use(u))));
        }
        if let Some(r) = c.rogue.as_ref().filter(|r| r.score > 0.0) {
            out.push(Line::raw(format!(
                "     score {:.1} in {} samples: {}",
                r.score,
                c.samples_seen,
                format::explanation(r)
            )));
        }
    }
    out
}

/// The forensics section: each step's outcome and summary, then the start of its detail.
/// Nothing at all when no step ran.
fn forensics(findings: &[Finding]) -> Vec<Line<'static>> {
    if findings.is_empty() {
        return Vec::new();
    }
    let mut out = vec![Line::raw(""), heading("Forensics")];
    for f in findings {
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
    out
}
