//! What the engine records (SPEC §3.5), as a pure function of samples and tier steps:
//! history rows, escalation events with their kept samples, pause events with the
//! frozen ring, and the culprits of each.
//!
//! ```text
//! sample + tier actions ──► Tracker ──► store ops (history, open/peak/close, kept samples)
//! stall + frozen ring ────► Tracker ──► store ops (pause event, ring samples)
//! ```

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use pmon_proto::{
    config::Config,
    format,
    time::timestamp,
    v1::{Culprit, EventKind, Rogue, Sample, Tier, TierAction},
};

use crate::{
    attribution::{Stall, Verdict},
    store::{Attribution, NewEvent, Op, ms},
};

/// Culprits kept with an event.
const CULPRITS: usize = 5;

/// Tallies an escalation's rogues over its samples: each process's highest-scoring
/// appearance and how often it appeared. pmon-server itself is never one of them.
#[derive(Debug)]
pub struct CulpritTally {
    seen: HashMap<(u32, String), (Rogue, u32)>,
    server: u32,
}

impl CulpritTally {
    /// A tally that leaves out the server's own pid.
    pub fn new(server: u32) -> Self {
        Self { seen: HashMap::new(), server }
    }

    /// Counts a sample's rogues.
    pub fn add(&mut self, sample: &Sample) {
        for r in sample.rogues.iter().filter(|r| r.pid != self.server) {
            let entry = self.seen.entry((r.pid, r.command.clone())).or_insert_with(|| (r.clone(), 0));
            if r.score > entry.0.score {
                entry.0 = r.clone();
            }
            entry.1 += 1;
        }
    }

    /// The `n` most likely culprits: highest peak score first, then most often seen.
    pub fn top(&self, n: usize) -> Vec<Culprit> {
        let mut all: Vec<&(Rogue, u32)> = self.seen.values().collect();
        all.sort_by(|a, b| b.0.score.total_cmp(&a.0.score).then(b.1.cmp(&a.1)).then(a.0.pid.cmp(&b.0.pid)));
        all.into_iter()
            .take(n)
            .map(|(rogue, seen)| Culprit {
                why: {
                    let why = format::main_factor(rogue).unwrap_or_else(|| format!("score {:.1}", rogue.score));
                    if rogue.suspect { format!("known suspect; {why}") } else { why }
                },
                rogue: Some(rogue.clone()),
                samples_seen: *seen,
                usage: None,
                waited_on: None,
            })
            .collect()
    }
}

#[derive(Debug)]
struct Open {
    id: u64,
    peak_kept_at: Instant,
    tally: CulpritTally,
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

    fn alloc(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The ops for one sample and the tier steps it caused, taken at `now`.
    pub fn on_sample(&mut self, sample: &Arc<Sample>, actions: &[TierAction], now: Instant) -> Vec<Op> {
        let mut ops = Vec::new();
        let elevated = sample.tier >= Tier::Elevated as i32;
        if elevated || self.history_at.is_none_or(|at| now.saturating_duration_since(at) >= self.history_every) {
            self.history_at = Some(now);
            ops.push(Op::History(Arc::clone(sample), self.top_rogues));
        }

        // At most one kept sample per event per sample; the first reason wins.
        let mut kept: Option<&'static str> = None;
        if actions.contains(&TierAction::ElevatedEntry) {
            let id = self.alloc();
            let mut tally = CulpritTally::new(std::process::id());
            tally.add(sample);
            ops.push(Op::OpenEvent(NewEvent {
                id,
                kind: EventKind::Escalation,
                started_at_ms: ms(sample.time.as_ref()),
                ended_at_ms: None,
                peak_score: sample.max_score,
                peak_tier: sample.tier,
                stall_ms: None,
                culprits: tally.top(CULPRITS),
                artefact_dir: String::new(),
                attribution: None,
            }));
            self.open = Some(Open { id, peak_kept_at: now, tally });
            kept = Some("entry");
        } else if let Some(open) = &mut self.open {
            open.tally.add(sample);
        }
        let Some(open) = &mut self.open else { return ops };
        let id = open.id;
        if actions.contains(&TierAction::ElevatedPeak) || actions.contains(&TierAction::CriticalEntry) {
            ops.push(Op::Peak {
                event_id: id,
                peak_score: sample.max_score,
                peak_tier: sample.tier,
                culprits: open.tally.top(CULPRITS),
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
            ops.push(Op::CloseEvent {
                event_id: id,
                ended_at_ms: ms(sample.time.as_ref()),
                culprits: open.tally.top(CULPRITS),
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
