//! Scoring and rogue selection (SPEC §3.2): pure functions of a sample's process
//! records and the configuration.
//!
//! ```text
//! factor value ─÷ divisor, cap 1─► normalised ─× weight─► points ─Σ, cap 100─► × state multiplier = score
//! ```
//!
//! Each rogue carries its explanation: every weighted factor's share of the final score,
//! attributed in proportion to its points, so the shares add up to the score.

use std::collections::{BTreeMap, HashSet};

use pmon_proto::{
    config::{Config, Scoring},
    v1::{Factor, FactorShare, ProcessFactors, ProcessState, Rogue},
};

use crate::collect::ProcessRecord;

/// The rogues of one sample, highest score first, and the highest score.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Highest rogue score (0 when there are no rogues).
    pub max_score: f64,
    /// The selected processes.
    pub rogues: Vec<Rogue>,
}

impl Scored {
    /// Adds a rogue (a group) in its place by score.
    pub fn add(&mut self, rogue: Rogue) {
        let at =
            self.rogues.partition_point(|r| r.score > rogue.score || (r.score == rogue.score && r.pid < rogue.pid));
        self.max_score = self.max_score.max(rogue.score);
        self.rogues.insert(at, rogue);
    }
}

/// A process's score and the explanation of it.
pub fn score(record: &ProcessRecord, scoring: &Scoring) -> (f64, Vec<FactorShare>) {
    score_in(record, true, scoring)
}

/// A process's score, its state weighing in or (a zombie still within its grace) not.
fn score_in(record: &ProcessRecord, state_counts: bool, scoring: &Scoring) -> (f64, Vec<FactorShare>) {
    let f = &record.factors;
    let w = &scoring.weights;
    let d = &scoring.divisors;
    let state_value = if state_counts { scoring.state_scores.get(record.state, 0.0) } else { 0.0 };
    let terms = [
        (Factor::Cpu, w.cpu, f.cpu_percent.map(|v| v / d.cpu_percent)),
        (Factor::State, w.state, Some(state_value)),
        (Factor::Pageins, w.pageins, f.pageins_per_sec.map(|v| v / d.pageins_per_sec)),
        (Factor::Mem, w.mem, f.mem_bytes.map(|v| v as f64 / d.mem_bytes)),
        (Factor::Cmprs, w.cmprs, f.cmprs_bytes.map(|v| v as f64 / d.cmprs_bytes)),
        (Factor::Csw, w.csw, f.csw_per_sec.map(|v| v / d.csw_per_sec)),
        (Factor::Sysbsd, w.sysbsd, f.sysbsd_per_sec.map(|v| v / d.sysbsd_per_sec)),
        (Factor::Threads, w.threads, f.threads.map(|v| f64::from(v) / d.threads)),
    ];
    let mut shares: Vec<FactorShare> = terms
        .into_iter()
        // An unavailable factor contributes nothing (and is not explained as zero).
        .filter_map(|(factor, weight, value)| {
            let normalized = value.filter(|v| v.is_finite()).unwrap_or(0.0).clamp(0.0, 1.0);
            let points = weight * normalized;
            (points > 0.0).then_some(FactorShare { factor: factor as i32, normalized, weight, points })
        })
        .collect();
    let sum: f64 = shares.iter().map(|s| s.points).sum();
    let multiplier = scoring.state_multipliers.get(record.state, 1.0);
    let score = sum.min(100.0) * multiplier;
    if sum > 0.0 {
        for s in &mut shares {
            s.points = s.points / sum * score;
        }
    }
    shares.retain(|s| s.points > 0.0);
    shares.sort_by(|a, b| b.points.total_cmp(&a.points));
    (score, shares)
}

/// Reads the raw value a category ranks by.
type RankValue = fn(&ProcessFactors) -> Option<f64>;

/// The factor and raw value of each ranking category, in the order of
/// [`Rogues::categories`](pmon_proto::config::Rogues::categories).
const RANKINGS: [(Factor, RankValue); 7] = [
    (Factor::Cpu, |f| f.cpu_percent),
    (Factor::Mem, |f| f.mem_bytes.map(|v| v as f64)),
    (Factor::Pageins, |f| f.pageins_per_sec),
    (Factor::Cmprs, |f| f.cmprs_bytes.map(|v| v as f64)),
    (Factor::Csw, |f| f.csw_per_sec),
    (Factor::Sysbsd, |f| f.sysbsd_per_sec),
    (Factor::Threads, |f| f.threads.map(f64::from)),
];

/// Selects, scores and orders the rogues of one sample. `young_zombies` are the pids of
/// zombies not yet unreaped for `rogues.states.zombie_grace_seconds`: every process is
/// one for a moment as it exits, so their state neither selects nor scores them (what
/// they consumed before exiting still does).
pub fn evaluate(processes: &[ProcessRecord], config: &Config, young_zombies: &HashSet<u32>) -> Scored {
    let state_counts = |p: &ProcessRecord| !(p.state == ProcessState::Zombie && young_zombies.contains(&p.pid));
    // index into `processes` → the categories that selected it (ordered, for stable output)
    let mut selected: BTreeMap<usize, Vec<Factor>> = BTreeMap::new();
    let mut ranked: Vec<(usize, f64)> = Vec::with_capacity(processes.len());
    for ((factor, value), (_, count, threshold)) in RANKINGS.into_iter().zip(config.rogues.categories()) {
        let count = count as usize;
        if count == 0 {
            continue;
        }
        ranked.clear();
        ranked.extend(
            processes
                .iter()
                .enumerate()
                .filter_map(|(i, p)| value(&p.factors).filter(|v| *v > threshold).map(|v| (i, v))),
        );
        // Highest value first; ties by pid so selection does not depend on listing order.
        let order =
            |a: &(usize, f64), b: &(usize, f64)| b.1.total_cmp(&a.1).then(processes[a.0].pid.cmp(&processes[b.0].pid));
        if ranked.len() > count {
            ranked.select_nth_unstable_by(count - 1, order);
            ranked.truncate(count);
        }
        for &(i, _) in &ranked {
            selected.entry(i).or_default().push(factor);
        }
    }

    let states = &config.rogues.states;
    if states.count > 0 && !states.states.is_empty() {
        let mut in_state: Vec<(usize, f64)> = processes
            .iter()
            .enumerate()
            .filter(|(_, p)| state_counts(p) && states.states.iter().any(|s| p.state == ProcessState::from(*s)))
            .map(|(i, p)| (i, score(p, &config.scoring).0))
            .collect();
        in_state.sort_by(|a, b| b.1.total_cmp(&a.1).then(processes[a.0].pid.cmp(&processes[b.0].pid)));
        for &(i, _) in in_state.iter().take(states.count as usize) {
            selected.entry(i).or_default().push(Factor::State);
        }
    }

    let mut rogues: Vec<Rogue> = selected
        .into_iter()
        .map(|(i, by)| {
            let p = &processes[i];
            let (score, explanation) = score_in(p, state_counts(p), &config.scoring);
            Rogue {
                pid: p.pid,
                command: p.command.clone(),
                state: p.state as i32,
                score,
                selected_by: by.into_iter().map(|f| f as i32).collect(),
                factors: Some(p.factors),
                explanation,
                suspect: config.suspects.matches(&p.command),
                group: None,
            }
        })
        .collect();
    rogues.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.pid.cmp(&b.pid)));
    Scored { max_score: rogues.first().map_or(0.0, |r| r.score), rogues }
}

#[cfg(test)]
#[path = "score_tests.rs"]
mod tests;
