//! The tier state machine (SPEC §3.3): escalation is immediate, de-escalation waits
//! until the score has stayed below the threshold for the hysteresis period.
//!
//! ```text
//!            score ≥ elevated            score ≥ critical
//! SENTINEL ──────────────────► ELEVATED ─────────────────► CRITICAL
//!    ▲   below elevated for h    │  ▲   below critical for h   │
//!    └───────────────────────────┘  └──────────────────────────┘
//! ```

use std::time::{Duration, Instant};

use pmon_proto::{
    config::Tiers,
    v1::{Tier, TierAction},
};

/// Tracks the tier across samples.
#[derive(Debug, Clone)]
pub struct TierManager {
    elevated: f64,
    critical: f64,
    hysteresis: Duration,
    tier: Tier,
    /// Highest score since ELEVATED was entered.
    peak: f64,
    /// When the score last went below each threshold (None: it is at or above it).
    below_critical_since: Option<Instant>,
    below_elevated_since: Option<Instant>,
}

impl TierManager {
    /// Starts at SENTINEL.
    pub fn new(cfg: &Tiers) -> Self {
        Self {
            elevated: cfg.elevated_threshold,
            critical: cfg.critical_threshold,
            hysteresis: Duration::from_secs_f64(cfg.hysteresis_seconds),
            tier: Tier::Sentinel,
            peak: 0.0,
            below_critical_since: None,
            below_elevated_since: None,
        }
    }

    /// New thresholds and hysteresis; the current tier, peak and timers are kept.
    pub fn reconfigure(&mut self, cfg: &Tiers) {
        self.elevated = cfg.elevated_threshold;
        self.critical = cfg.critical_threshold;
        self.hysteresis = Duration::from_secs_f64(cfg.hysteresis_seconds);
    }

    /// The current tier.
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// Feeds one sample's max score at `now`; returns the steps taken, in order.
    pub fn update(&mut self, score: f64, now: Instant) -> Vec<TierAction> {
        let mut actions = Vec::new();
        self.below_critical_since = if score >= self.critical { None } else { self.below_critical_since.or(Some(now)) };
        self.below_elevated_since = if score >= self.elevated { None } else { self.below_elevated_since.or(Some(now)) };
        let held = |since: Option<Instant>| since.is_some_and(|s| now.saturating_duration_since(s) >= self.hysteresis);

        if self.tier == Tier::Sentinel && score >= self.elevated {
            self.tier = Tier::Elevated;
            self.peak = score;
            actions.push(TierAction::ElevatedEntry);
        } else if self.tier != Tier::Sentinel && score > self.peak {
            self.peak = score;
            actions.push(TierAction::ElevatedPeak);
        }
        if self.tier == Tier::Elevated && score >= self.critical {
            self.tier = Tier::Critical;
            actions.push(TierAction::CriticalEntry);
        }
        if self.tier == Tier::Critical && held(self.below_critical_since) {
            self.tier = Tier::Elevated;
            actions.push(TierAction::CriticalExit);
        }
        if self.tier == Tier::Elevated && held(self.below_elevated_since) {
            self.tier = Tier::Sentinel;
            self.peak = 0.0;
            actions.push(TierAction::ElevatedExit);
        }
        actions
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn manager() -> TierManager {
        TierManager::new(&Tiers { elevated_threshold: 50.0, critical_threshold: 75.0, hysteresis_seconds: 5.0 })
    }

    /// Runs (seconds since start, score) steps; returns (tier, actions) after each.
    fn run(steps: &[(f64, f64)]) -> Vec<(Tier, Vec<TierAction>)> {
        let t0 = Instant::now();
        let mut m = manager();
        steps
            .iter()
            .map(|&(t, score)| {
                let actions = m.update(score, t0 + Duration::from_secs_f64(t));
                (m.tier(), actions)
            })
            .collect()
    }

    #[test]
    fn table_of_transitions() {
        use Tier::*;
        use TierAction::*;
        let got = run(&[
            (0.0, 10.0),
            (1.0, 55.0),  // immediate entry
            (2.0, 60.0),  // strictly higher: peak
            (3.0, 60.0),  // equal: no peak
            (4.0, 80.0),  // critical, and a peak
            (5.0, 60.0),  // below critical since 5
            (9.0, 60.0),  // 4 s: not yet
            (10.0, 60.0), // 5 s: critical exit
            (11.0, 20.0), // below elevated since 11
            (15.0, 55.0), // back above: timer resets
            (16.0, 20.0),
            (20.0, 20.0),
            (21.0, 20.0), // 5 s below: exit
            (22.0, 20.0),
        ]);
        let want: Vec<(Tier, Vec<TierAction>)> = vec![
            (Sentinel, vec![]),
            (Elevated, vec![ElevatedEntry]),
            (Elevated, vec![ElevatedPeak]),
            (Elevated, vec![]),
            (Critical, vec![ElevatedPeak, CriticalEntry]),
            (Critical, vec![]),
            (Critical, vec![]),
            (Elevated, vec![CriticalExit]),
            (Elevated, vec![]),
            (Elevated, vec![]),
            (Elevated, vec![]),
            (Elevated, vec![]),
            (Sentinel, vec![ElevatedExit]),
            (Sentinel, vec![]),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn a_jump_enters_both_tiers_and_a_fall_leaves_both_after_hysteresis() {
        use TierAction::*;
        let got = run(&[(0.0, 90.0), (1.0, 0.0), (6.0, 0.0)]);
        assert_eq!(got[0], (Tier::Critical, vec![ElevatedEntry, CriticalEntry]));
        assert_eq!(got[1], (Tier::Critical, vec![]));
        assert_eq!(got[2], (Tier::Sentinel, vec![CriticalExit, ElevatedExit]));
    }

    #[test]
    fn zero_hysteresis_drops_at_once() {
        let mut m =
            TierManager::new(&Tiers { elevated_threshold: 50.0, critical_threshold: 75.0, hysteresis_seconds: 0.0 });
        let t = Instant::now();
        m.update(60.0, t);
        assert_eq!(m.update(10.0, t), vec![TierAction::ElevatedExit]);
    }

    fn level(score: f64) -> Tier {
        if score >= 75.0 {
            Tier::Critical
        } else if score >= 50.0 {
            Tier::Elevated
        } else {
            Tier::Sentinel
        }
    }

    proptest! {
        /// The tier is never below what the current score demands, and it only drops
        /// when every score in the preceding hysteresis window was below the threshold.
        #[test]
        fn escalates_at_once_and_never_skips_hysteresis(steps in prop::collection::vec((0.0..3.0f64, 0.0..100.0f64), 1..80)) {
            let mut t = 0.0;
            let timeline: Vec<(f64, f64)> = steps.iter().map(|&(dt, s)| { t += dt; (t, s) }).collect();
            let results = run(&timeline);
            let mut prev = Tier::Sentinel;
            for (i, (tier, actions)) in results.iter().enumerate() {
                let (now, score) = timeline[i];
                prop_assert!(*tier >= level(score), "tier {:?} below level of {}", tier, score);
                if *tier < prev {
                    let threshold = if prev == Tier::Critical { 75.0 } else { 50.0 };
                    // The score went below `threshold` at some sample at least 5 s ago and
                    // stayed below since.
                    let window: Vec<&(f64, f64)> = timeline[..=i].iter().rev()
                        .take_while(|(_, s)| *s < threshold).collect();
                    let since = window.last().map(|(t, _)| *t);
                    prop_assert!(since.is_some_and(|s| now - s >= 5.0 - 1e-9), "dropped early at {}", now);
                }
                let entered = actions.contains(&TierAction::ElevatedEntry) || actions.contains(&TierAction::CriticalEntry);
                let left = actions.contains(&TierAction::ElevatedExit) || actions.contains(&TierAction::CriticalExit);
                prop_assert_eq!(entered, *tier > prev);
                prop_assert_eq!(left, *tier < prev);
                prev = *tier;
            }
        }
    }
}
