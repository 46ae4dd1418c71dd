//! What the engine records (SPEC §3.5), as a pure function of samples and tier steps:
//! history rows, escalation events with their kept samples, pause events with the
//! frozen ring, and the culprits of each.
//!
//! ```text
//! sample + tier actions ──► Tracker ──► store ops (history, open/peak/close, kept samples)
//! stall + frozen ring ────► Tracker ──► store ops (pause event, ring samples)
//! ```

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use pmon_proto::{
    config::Config,
    time::timestamp,
    v1::{Culprit, EventKind, Sample, Tier, TierAction},
};

use crate::{
    attribution::{Blamed, Stall, Verdict},
    store::{Attribution, NewEvent, Op, ms},
};

/// Who is to blame for an escalation that began at the given time and is under way
/// now: the engine's attribution ([`crate::attribution::escalation`]).
pub type Blame<'a> = &'a mut dyn FnMut(SystemTime) -> Blamed;

#[derive(Debug)]
struct Open {
    id: u64,
    peak_kept_at: Instant,
    /// When it began (its entry sample's time).
    since: SystemTime,
    /// Its culprits and groups as last attributed.
    blamed: Blamed,
}

/// Turns samples and stalls into store ops.
#[derive(Debug)]
pub struct Tracker {
    next_id: u64,
    open: Option<Open>,
    history_at: Option<Instant>,
    history_every: Duration,
    top_rogues: u32,
    peak_every: Duration,
}

impl Tracker {
    /// A tracker whose first event gets `next_id`.
    pub fn new(config: &Config, next_id: u64) -> Self {
        Self {
            next_id,
            open: None,
            history_at: None,
            history_every: Duration::from_secs_f64(config.history.interval_seconds),
            top_rogues: config.history.top_rogues,
            peak_every: Duration::from_secs_f64(config.events.peak_tracking_seconds),
        }
    }

    /// New history and peak settings; open events and ids carry on.
    pub fn reconfigure(&mut self, config: &Config) {
        self.history_every = Duration::from_secs_f64(config.history.interval_seconds);
        self.top_rogues = config.history.top_rogues;
        self.peak_every = Duration::from_secs_f64(config.events.peak_tracking_seconds);
    }

    /// The escalation open now, if any.
    pub fn open_event(&self) -> Option<u64> {
        self.open.as_ref().map(|o| o.id)
    }

    /// The open escalation's culprits as last attributed (at its entry, its latest peak).
    pub fn culprits(&self) -> &[Culprit] {
        self.open.as_ref().map_or(&[], |o| &o.blamed.culprits)
    }

    fn alloc(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The ops for one sample and the tier steps it caused, taken at `now`; `blame`
    /// names an escalation's culprits when it opens, peaks and closes.
    pub fn on_sample(
        &mut self,
        sample: &Arc<Sample>,
        actions: &[TierAction],
        now: Instant,
        blame: Blame<'_>,
    ) -> Vec<Op> {
        let mut ops = Vec::new();
        let elevated = sample.tier >= Tier::Elevated as i32;
        if elevated || self.history_at.is_none_or(|at| now.saturating_duration_since(at) >= self.history_every) {
            self.history_at = Some(now);
            ops.push(Op::History(Arc::clone(sample), self.top_rogues));
        }

        // At most one kept sample per event per sample; the first reason wins.
        let mut kept: Option<&'static str> = None;
        let taken = sample.time.as_ref().and_then(pmon_proto::time::system_time).unwrap_or_else(SystemTime::now);
        if actions.contains(&TierAction::ElevatedEntry) {
            let id = self.alloc();
            let blamed = blame(taken);
            ops.push(Op::OpenEvent(NewEvent {
                id,
                kind: EventKind::Escalation,
                started_at_ms: ms(sample.time.as_ref()),
                ended_at_ms: None,
                peak_score: sample.stress,
                peak_tier: sample.tier,
                stall_ms: None,
                culprits: blamed.culprits.clone(),
                artefact_dir: String::new(),
                attribution: Attribution::of_groups(&blamed.groups).map(Box::new),
            }));
            self.open = Some(Open { id, peak_kept_at: now, since: taken, blamed });
            kept = Some("entry");
        }
        let Some(open) = &mut self.open else { return ops };
        let id = open.id;
        if actions.contains(&TierAction::ElevatedPeak) || actions.contains(&TierAction::CriticalEntry) {
            open.blamed = blame(open.since).or(std::mem::take(&mut open.blamed));
            ops.push(Op::Peak {
                event_id: id,
                peak_score: sample.stress,
                peak_tier: sample.tier,
                culprits: open.blamed.culprits.clone(),
                groups: open.blamed.groups.clone(),
            });
            if kept.is_none() && now.saturating_duration_since(open.peak_kept_at) >= self.peak_every {
                open.peak_kept_at = now;
                kept = Some("peak");
            }
        }
        if kept.is_none() && sample.tier == Tier::Critical as i32 {
            kept = Some("critical");
        }
        let exit = actions.contains(&TierAction::ElevatedExit);
        if kept.is_none() && exit {
            kept = Some("exit");
        }
        if let Some(reason) = kept {
            ops.push(Op::EventSample { event_id: id, reason, sample: Arc::clone(sample) });
        }
        if exit {
            let blamed = blame(open.since).or(std::mem::take(&mut open.blamed));
            ops.push(Op::CloseEvent {
                event_id: id,
                ended_at_ms: ms(sample.time.as_ref()),
                culprits: blamed.culprits,
                groups: blamed.groups,
            });
            self.open = None;
        }
        ops
    }

    /// The ops for a freeze and its attribution, with the ring as it was (frozen) when
    /// the freeze was over, kept whole as context; `artefact_dir(id)` names where its
    /// forensics go. Returns the new event's id too.
    pub fn on_pause(
        &mut self,
        ring: &[Arc<Sample>],
        stall: &Stall,
        verdict: &Verdict,
        artefact_dir: impl FnOnce(u64) -> String,
    ) -> (u64, Vec<Op>) {
        let id = self.alloc();
        let mut ops = vec![Op::OpenEvent(NewEvent {
            id,
            kind: EventKind::Pause,
            started_at_ms: ms(Some(&timestamp(stall.from))),
            ended_at_ms: Some(ms(Some(&timestamp(stall.to)))),
            peak_score: ring.iter().map(|s| s.max_score).fold(0.0, f64::max),
            peak_tier: ring.iter().map(|s| s.tier).max().unwrap_or(Tier::Sentinel as i32),
            stall_ms: Some(stall.stalled.as_secs_f64() * 1000.0),
            culprits: verdict.culprits.clone(),
            artefact_dir: artefact_dir(id),
            attribution: Some(Box::new(Attribution {
                cause: verdict.cause,
                cause_detail: verdict.cause_detail.clone(),
                window: Some(verdict.window),
                victims: verdict.victims.clone(),
                groups: verdict.groups.clone(),
                ..Attribution::default()
            })),
        })];
        ops.extend(ring.iter().map(|s| Op::EventSample { event_id: id, reason: "ring", sample: Arc::clone(s) }));
        (id, ops)
    }
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
