//! The ring buffer (SPEC §3.4): the last `ring_buffer_seconds` of items, by the time
//! they were taken. Sampling speeds up while elevated, so the ring is bounded by time,
//! not by count; a minimum interval bounds its size.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

/// Items of the last `keep` of time, oldest first.
#[derive(Debug)]
pub struct Ring<T> {
    keep: Duration,
    items: VecDeque<(Instant, T)>,
}

impl<T> Ring<T> {
    /// An empty ring that keeps `keep` of history.
    pub fn new(keep: Duration) -> Self {
        Self { keep, items: VecDeque::new() }
    }

    /// Adds an item taken at `at` and drops those older than `keep` before it.
    pub fn push(&mut self, at: Instant, item: T) {
        self.items.push_back((at, item));
        while let Some((oldest, _)) = self.items.front() {
            if at.saturating_duration_since(*oldest) > self.keep {
                self.items.pop_front();
            } else {
                break;
            }
        }
    }

    /// Items, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter().map(|(_, item)| item)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn keeps_the_window_by_time() {
        let t0 = Instant::now();
        let mut r = Ring::new(Duration::from_secs(30));
        for s in 0..=40u64 {
            r.push(t0 + Duration::from_secs(s), s);
        }
        // 10..=40: the item exactly 30 s old stays, older ones go.
        assert_eq!(r.iter().copied().collect::<Vec<_>>(), (10..=40).collect::<Vec<_>>());
        assert_eq!(r.iter().count(), 31);
    }

    #[test]
    fn faster_sampling_holds_more_items_for_the_same_window() {
        let t0 = Instant::now();
        let mut r = Ring::new(Duration::from_secs(2));
        for i in 0..100u64 {
            r.push(t0 + Duration::from_millis(250 * i), i);
        }
        assert_eq!(r.iter().count(), 9);
    }

    proptest! {
        #[test]
        fn never_older_than_the_window_and_order_kept(gaps in prop::collection::vec(0u64..5000, 1..200), keep_ms in 1u64..20_000) {
            let t0 = Instant::now();
            let keep = Duration::from_millis(keep_ms);
            let mut r = Ring::new(keep);
            let mut at = t0;
            for (i, g) in gaps.iter().enumerate() {
                at += Duration::from_millis(*g);
                r.push(at, (at, i));
                let items: Vec<&(Instant, usize)> = r.iter().collect();
                prop_assert!(items.iter().all(|(t, _)| at.duration_since(*t) <= keep));
                prop_assert!(items.windows(2).all(|w| w[0].1 < w[1].1));
                prop_assert_eq!(items.last().map(|x| x.1), Some(i));
            }
        }
    }
}
