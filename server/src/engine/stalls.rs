//! The pause durations the engine has recorded, as the fixed histogram buckets the
//! metrics endpoint exports: a fixed size however many pauses.

use std::time::Duration;

/// Upper bounds, in seconds, of the pause-duration histogram's buckets (then +Inf).
pub const PAUSE_BUCKETS: [f64; 9] = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];

/// Recorded pause durations as histogram buckets: a fixed size however many pauses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PauseStalls {
    /// Pauses per bucket (not cumulative); the last one is above every bound.
    counts: [u64; PAUSE_BUCKETS.len() + 1],
    /// Total stalled time, seconds.
    sum_seconds: f64,
}

impl PauseStalls {
    /// Counts one pause.
    pub fn observe(&mut self, stall: Duration) {
        let seconds = stall.as_secs_f64();
        let bucket = PAUSE_BUCKETS.iter().position(|&bound| seconds <= bound).unwrap_or(PAUSE_BUCKETS.len());
        self.counts[bucket] += 1;
        self.sum_seconds += seconds;
    }

    /// Their durations summed, seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_seconds
    }

    /// Pauses counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// (upper bound, count) per bucket, +Inf last.
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        PAUSE_BUCKETS.iter().copied().chain([f64::INFINITY]).zip(self.counts).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_durations_fall_into_fixed_buckets() {
        let mut stalls = PauseStalls::default();
        for ms in [100, 250, 900, 3_000, 120_000] {
            stalls.observe(Duration::from_millis(ms));
        }
        assert_eq!(stalls.count(), 5);
        let buckets = stalls.buckets();
        assert_eq!(buckets.len(), PAUSE_BUCKETS.len() + 1);
        assert_eq!(buckets[0], (0.25, 2), "100 ms and 250 ms (bounds are inclusive)");
        assert_eq!(buckets[2], (1.0, 1));
        assert_eq!(buckets[4], (4.0, 1));
        assert_eq!(buckets[9], (f64::INFINITY, 1), "beyond the last bound");
        assert!((stalls.sum_seconds() - 124.25).abs() < 1e-9);
    }
}
