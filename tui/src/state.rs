//! What the dashboard knows about the server: a pure state fed by [`Msg`]s from the
//! connection task. Nothing here does I/O, so tests build it from fixed messages.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use pmon_proto::v1::{
    Event, GetEventResponse, GetStatusResponse, ListEventsRequest, Missed, Sample, WatchSamplesResponse,
    watch_samples_response::Item,
};

/// How many recent stress figures the chart keeps (at 1 Hz, five minutes; under stress less).
pub const CHART_POINTS: usize = 300;

/// The connection as the user should see it.
#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    /// The first attempt is under way.
    Connecting,
    /// The stream is open.
    Live,
    /// The server was lost; the next attempt comes after `retry_in_secs`.
    Reconnecting {
        /// Failed attempts since the link was lost.
        attempt: u32,
        /// Why the last attempt failed, in words.
        reason: String,
        /// Seconds until the next attempt.
        retry_in_secs: f64,
    },
}

/// Everything the connection task reports.
#[derive(Debug, Clone)]
pub enum Msg {
    /// The stream is open again.
    Connected,
    /// The link was lost or an attempt failed.
    Lost {
        /// Failed attempts so far.
        attempt: u32,
        /// Why, in words.
        reason: String,
        /// Seconds until the next attempt.
        retry_in_secs: f64,
    },
    /// An item of the sample stream.
    Stream(Box<WatchSamplesResponse>),
    /// A fresh `GetStatus` answer.
    Status(Box<GetStatusResponse>),
    /// The tier thresholds of the server's configuration.
    Thresholds {
        /// Score that enters ELEVATED.
        elevated: f64,
        /// Score that enters CRITICAL.
        critical: f64,
    },
    /// The newest events, for the dashboard.
    Recent(Vec<Event>),
    /// The events matching the events screen's filter.
    Events(ListEventsRequest, Vec<Event>),
    /// One event with its evidence.
    Detail(Box<GetEventResponse>),
    /// An event after an update.
    Updated(Box<Event>),
    /// An update of this event was refused or could not be sent.
    NotUpdated {
        /// The event.
        id: u64,
        /// Why, in words.
        reason: String,
    },
    /// A request failed; shown on the status line.
    Failed(String),
}

/// One point of the score chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Sequence number of the sample.
    pub sequence: u64,
    /// Its stress (what the tier follows).
    pub score: f64,
}

/// The data state.
#[derive(Debug, Default)]
pub struct Data {
    /// The connection.
    pub link: Option<Link>,
    /// The newest sample.
    pub latest: Option<Sample>,
    /// Recent stress figures, oldest first.
    pub scores: VecDeque<Point>,
    /// The server run the sequence numbers belong to.
    pub instance: Option<u64>,
    /// The last sequence number seen (samples and missed notices), for resuming.
    pub last_sequence: Option<u64>,
    /// Samples this client did not receive, in total.
    pub missed: u64,
    /// The latest status.
    pub status: Option<GetStatusResponse>,
    /// Tier thresholds (elevated, critical), once the configuration is known.
    pub thresholds: Option<(f64, f64)>,
    /// The newest events.
    pub recent: Vec<Event>,
    /// The events screen's list.
    pub events: Vec<Event>,
    /// The request `events` answers.
    pub events_for: Option<ListEventsRequest>,
    /// The event shown in detail.
    pub detail: Option<GetEventResponse>,
    /// The last failed request, in words.
    pub error: Option<String>,
    /// When the newest sample (or, before any, the connection) arrived.
    pub last_heard: Option<Instant>,
}

/// Samples may be this many intervals late before the link is said to be stale.
const STALE_INTERVALS: f64 = 3.0;

impl Data {
    /// Applies one message.
    pub fn apply(&mut self, msg: Msg) {
        match msg {
            Msg::Connected => {
                self.link = Some(Link::Live);
                self.last_heard = Some(Instant::now());
                self.error = None;
            }
            Msg::Lost { attempt, reason, retry_in_secs } => {
                self.link = Some(Link::Reconnecting { attempt, reason, retry_in_secs });
            }
            Msg::Stream(item) => self.stream(*item),
            Msg::Status(s) => self.status = Some(*s),
            Msg::Thresholds { elevated, critical } => self.thresholds = Some((elevated, critical)),
            Msg::Recent(events) => self.recent = events,
            // An answer to a request means the last failure is history.
            Msg::Events(request, events) => {
                self.events = events;
                self.events_for = Some(request);
                self.error = None;
            }
            Msg::Detail(d) => {
                self.detail = Some(*d);
                self.error = None;
            }
            Msg::Updated(event) => {
                self.updated(*event);
                self.error = None;
            }
            Msg::Failed(reason) | Msg::NotUpdated { reason, .. } => self.error = Some(reason),
        }
    }

    fn stream(&mut self, item: WatchSamplesResponse) {
        if self.instance != Some(item.server_instance) {
            // A new server run numbers its samples from 1 again: the old points would
            // sit at the wrong place on the chart.
            if self.instance.is_some() {
                self.scores.clear();
                self.latest = None;
            }
            self.instance = Some(item.server_instance);
        }
        self.last_sequence = Some(item.sequence);
        match item.item {
            Some(Item::Sample(sample)) => {
                self.scores
                    .push_back(Point { sequence: sample.sequence, score: pmon_proto::format::stress_of(&sample) });
                while self.scores.len() > CHART_POINTS {
                    self.scores.pop_front();
                }
                self.latest = Some(sample);
                self.last_heard = Some(Instant::now());
            }
            Some(Item::Missed(Missed { count, .. })) => self.missed += count,
            None => {}
        }
    }

    fn updated(&mut self, event: Event) {
        for list in [&mut self.events, &mut self.recent] {
            for e in list.iter_mut().filter(|e| e.id == event.id) {
                e.status = event.status;
                e.notes.clone_from(&event.notes);
            }
        }
        if let Some(d) = self.detail.as_mut().and_then(|d| d.event.as_mut()).filter(|e| e.id == event.id) {
            d.status = event.status;
            d.notes = event.notes;
        }
    }

    /// How long no sample has come while the link is open, once that is longer than
    /// three sampling intervals: a server that is up but not sampling.
    pub fn stale_for(&self, now: Instant) -> Option<Duration> {
        let interval = self.status.as_ref().map(|s| s.interval_seconds).filter(|i| *i > 0.0)?;
        let silent = now.checked_duration_since(self.last_heard?)?;
        (self.link == Some(Link::Live) && silent.as_secs_f64() > STALE_INTERVALS * interval).then_some(silent)
    }

    /// Samples per second at the server's current interval.
    pub fn sample_rate_hz(&self) -> Option<f64> {
        self.status.as_ref().map(|s| s.interval_seconds).filter(|i| *i > 0.0).map(|i| 1.0 / i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(instance: u64, seq: u64, score: f64) -> Msg {
        Msg::Stream(Box::new(WatchSamplesResponse {
            sequence: seq,
            server_instance: instance,
            item: Some(Item::Sample(Sample { sequence: seq, max_score: score, stress: score, ..Default::default() })),
        }))
    }

    #[test]
    fn samples_feed_the_chart_and_the_resume_point() {
        let mut d = Data::default();
        d.apply(item(7, 1, 10.0));
        d.apply(item(7, 2, 30.0));
        assert_eq!(d.scores.iter().map(|p| p.score).collect::<Vec<_>>(), [10.0, 30.0]);
        assert_eq!(d.last_sequence.zip(d.instance), Some((2, 7)));
        assert_eq!(d.latest.as_ref().map(|s| s.sequence), Some(2));
    }

    #[test]
    fn missed_samples_are_counted_and_move_the_resume_point() {
        let mut d = Data::default();
        d.apply(item(7, 1, 10.0));
        d.apply(Msg::Stream(Box::new(WatchSamplesResponse {
            sequence: 6,
            server_instance: 7,
            item: Some(Item::Missed(Missed { first_sequence: 2, count: 5 })),
        })));
        assert_eq!(d.missed, 5);
        assert_eq!(d.last_sequence.zip(d.instance), Some((6, 7)));
    }

    #[test]
    fn a_new_server_run_starts_the_chart_again() {
        let mut d = Data::default();
        d.apply(item(7, 41, 10.0));
        d.apply(item(9, 1, 20.0));
        assert_eq!(d.scores.len(), 1);
        assert_eq!(d.last_sequence.zip(d.instance), Some((1, 9)));
    }

    #[test]
    fn the_chart_keeps_a_bounded_window() {
        let mut d = Data::default();
        for seq in 0..(CHART_POINTS as u64 + 10) {
            d.apply(item(1, seq, 1.0));
        }
        assert_eq!(d.scores.len(), CHART_POINTS);
        assert_eq!(d.scores.front().map(|p| p.sequence), Some(10));
    }

    #[test]
    fn an_update_reaches_every_copy_of_the_event() {
        let mut d = Data::default();
        let event = Event { id: 3, status: 1, ..Default::default() };
        d.apply(Msg::Events(ListEventsRequest::default(), vec![event.clone()]));
        d.apply(Msg::Recent(vec![event.clone()]));
        d.apply(Msg::Detail(Box::new(GetEventResponse { event: Some(event), ..Default::default() })));
        d.apply(Msg::Updated(Box::new(Event { id: 3, status: 2, notes: "backup".into(), ..Default::default() })));
        assert_eq!(d.events[0].status, 2);
        assert_eq!(d.recent[0].notes, "backup");
        assert_eq!(d.detail.as_ref().and_then(|d| d.event.as_ref()).map(|e| e.status), Some(2));
    }

    #[test]
    fn a_failure_shows_until_the_next_answer() {
        let mut d = Data::default();
        d.apply(Msg::Failed("server answered NotFound: no event 9".into()));
        assert!(d.error.is_some());
        d.apply(Msg::Events(ListEventsRequest::default(), Vec::new()));
        assert_eq!(d.error, None);
    }

    #[test]
    fn a_link_is_stale_after_three_silent_intervals_while_open() {
        let mut d = Data::default();
        d.apply(Msg::Status(Box::new(GetStatusResponse { interval_seconds: 1.0, ..Default::default() })));
        d.apply(Msg::Connected);
        let heard = d.last_heard.expect("connected");
        assert_eq!(d.stale_for(heard + Duration::from_secs(3)), None);
        assert_eq!(d.stale_for(heard + Duration::from_secs(4)), Some(Duration::from_secs(4)));
        d.apply(item(1, 1, 5.0));
        let heard = d.last_heard.expect("sampled");
        assert_eq!(d.stale_for(heard + Duration::from_secs(2)), None, "a sample is news");
        d.apply(Msg::Lost { attempt: 1, reason: "gone".into(), retry_in_secs: 0.25 });
        assert_eq!(d.stale_for(heard + Duration::from_secs(60)), None, "a lost link says so itself");
    }
}
