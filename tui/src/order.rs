//! How the rogue table is sorted and the events screen is filtered.

use std::{cmp::Ordering, time::SystemTime};

use pmon_proto::{
    format,
    v1::{EventKind, EventStatus, ListEventsRequest, ProcessFactors, Rogue},
};

/// At most this many events on the events screen.
pub const EVENTS_LIMIT: u32 = 200;

/// Rogue table columns, in display order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// Process id.
    Pid,
    /// Command name.
    Command,
    /// Score.
    Score,
    /// Scheduler state.
    State,
    /// CPU percent.
    Cpu,
    /// Resident memory.
    Mem,
    /// Page-ins per second.
    Pageins,
    /// Context switches per second.
    Csw,
}

impl Column {
    /// Every column, in display order.
    pub const ALL: [Column; 8] = [
        Column::Pid,
        Column::Command,
        Column::Score,
        Column::State,
        Column::Cpu,
        Column::Mem,
        Column::Pageins,
        Column::Csw,
    ];

    /// The header text.
    pub fn title(self) -> &'static str {
        match self {
            Column::Pid => "PID",
            Column::Command => "COMMAND",
            Column::Score => "SCORE",
            Column::State => "STATE",
            Column::Cpu => "CPU",
            Column::Mem => "MEM",
            Column::Pageins => "PAGEINS",
            Column::Csw => "CSW",
        }
    }

    fn compare(self, a: &Rogue, b: &Rogue) -> Ordering {
        let f = |r: &Rogue| r.factors.unwrap_or_default();
        let opt = |x: Option<f64>, y: Option<f64>| x.unwrap_or(-1.0).total_cmp(&y.unwrap_or(-1.0));
        let num = |g: fn(&ProcessFactors) -> Option<f64>| opt(g(&f(a)), g(&f(b)));
        match self {
            Column::Pid => a.pid.cmp(&b.pid),
            Column::Command => a.command.to_lowercase().cmp(&b.command.to_lowercase()),
            Column::Score => a.score.total_cmp(&b.score),
            Column::State => a.state.cmp(&b.state),
            Column::Cpu => num(|p| p.cpu_percent),
            Column::Mem => num(|p| p.mem_bytes.map(|m| m as f64)),
            Column::Pageins => num(|p| p.pageins_per_sec),
            Column::Csw => num(|p| p.csw_per_sec),
        }
    }

    /// Numbers read best largest first; names and pids smallest first.
    pub fn natural_descending(self) -> bool {
        !matches!(self, Column::Pid | Column::Command | Column::State)
    }
}

/// The events screen's filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Only this kind (`None`: both).
    pub kind: Option<EventKind>,
    /// Only this status (`None`: all).
    pub status: Option<EventStatus>,
    /// Only events that started at or after this, as typed and as understood.
    pub since: Option<(String, SystemTime)>,
}

impl Filter {
    /// The request this filter stands for.
    pub fn request(&self) -> ListEventsRequest {
        ListEventsRequest {
            statuses: self.status.map(|s| vec![s as i32]).unwrap_or_default(),
            kind: self.kind.unwrap_or(EventKind::Unspecified) as i32,
            since: self.since.as_ref().map(|(_, t)| pmon_proto::time::timestamp(*t)),
            until: None,
            limit: EVENTS_LIMIT,
            before_id: None,
        }
    }

    /// The filter in words, for the screen.
    pub fn describe(&self) -> String {
        let kind = self.kind.map_or("all", |k| format::event_kind(k as i32));
        let status = self.status.map_or("all", |s| format::event_status(s as i32));
        let since = self.since.as_ref().map_or("any time", |(typed, _)| typed.as_str());
        format!("kind {kind} · status {status} · since {since}")
    }
}

/// Rogues in the table's order.
pub fn sorted_rogues(rogues: &[Rogue], (column, descending): (Column, bool)) -> Vec<&Rogue> {
    let mut sorted: Vec<&Rogue> = rogues.iter().collect();
    sorted.sort_by(|a, b| {
        let o = column.compare(a, b).then_with(|| b.score.total_cmp(&a.score)).then_with(|| a.pid.cmp(&b.pid));
        if descending { o.reverse() } else { o }
    });
    sorted
}

pub fn next_kind(k: Option<EventKind>) -> Option<EventKind> {
    match k {
        None => Some(EventKind::Pause),
        Some(EventKind::Pause) => Some(EventKind::Escalation),
        _ => None,
    }
}

pub fn next_status(s: Option<EventStatus>) -> Option<EventStatus> {
    match s {
        None => Some(EventStatus::Unreviewed),
        Some(EventStatus::Unreviewed) => Some(EventStatus::Reviewed),
        Some(EventStatus::Reviewed) => Some(EventStatus::Pinned),
        Some(EventStatus::Pinned) => Some(EventStatus::Dismissed),
        _ => None,
    }
}
