//! The help overlay: every key, by where it works.

use ratatui::{
    Frame,
    layout::Rect,
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Clear, Paragraph},
};

use super::centered;
use crate::input::KEYS;

pub fn draw(frame: &mut Frame, area: Rect) {
    let mut lines = Vec::new();
    for (group, keys) in KEYS {
        lines.push(Line::styled(*group, Style::new().add_modifier(Modifier::BOLD).fg(Color::Cyan)));
        for (key, what) in *keys {
            lines.push(Line::from(vec![
                Span::styled(format!("  {key:<19}"), Style::new().add_modifier(Modifier::BOLD)),
                Span::raw(*what),
            ]));
        }
    }
    let height = u16::try_from(lines.len()).unwrap_or(u16::MAX).saturating_add(2);
    let popup = centered(area, 78, height);
    frame.render_widget(Clear, popup);
    let block = Block::bordered().title(" keys · any key closes ").border_style(Style::new().fg(Color::Cyan));
    frame.render_widget(Paragraph::new(lines).block(block), popup);
}
