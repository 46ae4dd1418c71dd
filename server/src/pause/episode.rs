//! One freeze, one pause. A starved machine still lets the sentinel run now and then
//! (Linux's fair server gives ordinary threads ~50 ms a second even under real-time
//! hogs), so a freeze shows as a run of late wake-ups with brief on-time ones between.
//! Late wake-ups less than `merge` apart are one episode; it closes once the sentinel
//! has been on time for `merge`, or when it has lasted [`MAX_EPISODE`].

use std::time::{Duration, SystemTime};

/// An episode is closed after this long even if the freeze goes on, so that what it
/// covers is still in the server's recent record; the rest is the next episode.
pub const MAX_EPISODE: Duration = Duration::from_secs(45);

/// A run of late wake-ups, closed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Episode {
    /// When the first late wake-up was due.
    pub from: SystemTime,
    /// When the last one happened.
    pub to: SystemTime,
    /// Their lateness, summed.
    pub stalled: Duration,
    /// The largest lateness.
    pub longest: Duration,
    /// How many late wake-ups.
    pub gaps: u32,
    /// How long the sentinel waited on a run queue during them, where known.
    pub waited: Option<Duration>,
}

impl Episode {
    /// The freeze went on until `at`, the sentinel `lateness` late, `waited` of it for a CPU.
    fn extend(&mut self, at: SystemTime, lateness: Duration, waited: Option<Duration>) {
        self.to = at;
        self.stalled += lateness;
        self.waited = self.waited.zip(waited).map(|(a, b)| a + b);
    }
}

/// Merges late wake-ups into episodes.
#[derive(Debug)]
pub struct Episodes {
    merge: Duration,
    open: Option<(Episode, Duration, Duration)>,
    /// Wake-ups in a row, while no episode is under way, each at least half the stall
    /// threshold late: their lateness and their wait for a CPU, summed.
    streak: Option<(Duration, Option<Duration>)>,
}

impl Episodes {
    /// Late wake-ups less than `merge` apart are one episode.
    pub fn new(merge: Duration) -> Self {
        Self { merge, open: None, streak: None }
    }

    /// A wake-up `lateness` late, at least half of `threshold` but less, at wall time
    /// `at`, monotonic `mono`. Wake-ups like it in a row are a freeze once their lateness
    /// reaches `threshold`: a machine starved by real-time hogs on every CPU lets the
    /// sentinel run in each CPU's fair-server window, and when the windows of two CPUs
    /// alternate, every wake-up is ~0.45 s late, none 0.5 s (seen in the stall lab).
    /// During an episode it is a lagging wake-up. Returns an episode that closed.
    pub fn half_late(
        &mut self,
        at: SystemTime,
        mono: Duration,
        lateness: Duration,
        waited: Option<Duration>,
        threshold: Duration,
    ) -> Option<Episode> {
        if self.is_open() {
            return self.lagging(at, mono, lateness, waited);
        }
        let (sum, wait) = self.streak.get_or_insert((Duration::ZERO, Some(Duration::ZERO)));
        *sum += lateness;
        *wait = wait.zip(waited).map(|(a, b)| a + b);
        if *sum < threshold {
            return None;
        }
        let (sum, wait) = (*sum, *wait);
        self.late(at, mono, sum, wait)
    }

    /// Whether an episode is under way.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// A wake-up `lateness` late at wall time `at`, monotonic time `mono`, during which
    /// the sentinel waited `waited` on a run queue. Returns an episode that this one
    /// does not belong to (it ended, or grew too long).
    pub fn late(
        &mut self,
        at: SystemTime,
        mono: Duration,
        lateness: Duration,
        waited: Option<Duration>,
    ) -> Option<Episode> {
        self.streak = None;
        // The sentinel was on time until this wake-up was due.
        let closed = self.on_time(mono.saturating_sub(lateness)).or_else(|| {
            let (e, started, _) = self.open.as_ref()?;
            (mono.saturating_sub(*started) >= MAX_EPISODE).then_some(*e)
        });
        if closed.is_some() {
            self.open = None;
        }
        let from = at.checked_sub(lateness).unwrap_or(at);
        match &mut self.open {
            Some((e, _, last)) => {
                e.extend(at, lateness, waited);
                e.longest = e.longest.max(lateness);
                e.gaps += 1;
                *last = mono;
            }
            None => {
                let e = Episode { from, to: at, stalled: lateness, longest: lateness, gaps: 1, waited };
                self.open = Some((e, mono.saturating_sub(lateness), mono));
            }
        }
        closed
    }

    /// A wake-up during an episode that was late, though not late enough to be a stall
    /// by itself: the freeze goes on (its lateness counts, it is no gap of its own).
    /// Returns the episode if it has grown too long (it ends here; a later late wake-up
    /// starts the next).
    pub fn lagging(
        &mut self,
        at: SystemTime,
        mono: Duration,
        lateness: Duration,
        waited: Option<Duration>,
    ) -> Option<Episode> {
        let Some((e, started, last)) = self.open.as_mut() else {
            self.streak = None;
            return None;
        };
        e.extend(at, lateness, waited);
        *last = mono;
        (mono.saturating_sub(*started) >= MAX_EPISODE).then(|| self.flush()).flatten()
    }

    /// An on-time wake-up at monotonic time `mono`: closes the episode once the
    /// sentinel has been on time for `merge`.
    pub fn on_time(&mut self, mono: Duration) -> Option<Episode> {
        if self.open.is_none() {
            self.streak = None;
        }
        let (e, _, last) = self.open.as_ref()?;
        if mono.saturating_sub(*last) < self.merge {
            return None;
        }
        let e = *e;
        self.open = None;
        Some(e)
    }

    /// Closes the episode under way, if any (the sentinel is stopping).
    pub fn flush(&mut self) -> Option<Episode> {
        self.open.take().map(|(e, _, _)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn late_wake_ups_between_brief_on_time_ones_are_one_episode() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let mut e = Episodes::new(S);
        let mut mono = Duration::from_secs(50);
        // Four wake-ups ~0.95 s late, each followed by one on time 100 ms later.
        for _ in 0..4 {
            mono += ms(1050);
            assert_eq!(e.late(t0 + mono, mono, ms(950), Some(ms(900))), None);
            assert_eq!(e.on_time(mono + ms(100)), None, "a brief on-time tick does not split the freeze");
        }
        assert!(e.is_open());
        let closed = e.on_time(mono + ms(1000)).expect("on time for a whole merge period closes it");
        assert_eq!(closed.gaps, 4);
        assert_eq!(closed.stalled, ms(3800));
        assert_eq!(closed.longest, ms(950));
        assert_eq!(closed.waited, Some(ms(3600)));
        assert_eq!(closed.from, t0 + Duration::from_secs(50) + ms(100));
        assert_eq!(closed.to, t0 + mono);
        assert!(!e.is_open());
    }

    #[test]
    fn wake_ups_somewhat_late_keep_a_freeze_going() {
        let t0 = SystemTime::UNIX_EPOCH;
        let mut e = Episodes::new(S);
        e.late(t0 + ms(1000), ms(1000), ms(900), Some(ms(900)));
        // Twelve wake-ups 0.3 s late: each below the stall threshold, together 3.6 s.
        let mut mono = ms(1000);
        for _ in 0..12 {
            mono += ms(400);
            assert_eq!(e.lagging(t0 + mono, mono, ms(300), Some(ms(300))), None);
            assert_eq!(e.on_time(mono), None);
        }
        assert_eq!(e.late(t0 + mono + ms(1000), mono + ms(1000), ms(900), Some(ms(900))), None, "still one freeze");
        let closed = e.flush().expect("open");
        assert_eq!((closed.gaps, closed.stalled, closed.waited), (2, ms(900 * 2 + 300 * 12), Some(ms(5400))));
        assert_eq!(e.lagging(t0, ms(99_000), ms(300), None), None);
        assert!(!e.is_open(), "lagging alone opens nothing");
        // Lagging on and on still ends an episode after MAX_EPISODE.
        e.late(t0, ms(100_000), ms(900), None);
        let ended = (1..=200).find_map(|i| e.lagging(t0, ms(100_000 + i * 400), ms(300), None));
        assert!(ended.is_some_and(|c| c.stalled >= ms(900)), "{ended:?}");
    }

    #[test]
    fn wake_ups_half_late_in_a_row_are_a_freeze_once_their_lateness_adds_up() {
        let t0 = SystemTime::UNIX_EPOCH;
        let threshold = ms(500);
        let mut e = Episodes::new(S);
        // Alternating fair-server windows: every wake-up 0.45 s late, none 0.5 s.
        assert_eq!(e.half_late(t0 + ms(550), ms(550), ms(450), Some(ms(440)), threshold), None);
        assert!(!e.is_open(), "one alone is no freeze");
        assert_eq!(e.half_late(t0 + ms(1100), ms(1100), ms(450), Some(ms(440)), threshold), None);
        assert!(e.is_open(), "two in a row reach the threshold");
        assert_eq!(e.half_late(t0 + ms(1650), ms(1650), ms(450), Some(ms(440)), threshold), None);
        let freeze = e.on_time(ms(3000)).expect("closed once on time for the merge period");
        assert_eq!((freeze.stalled, freeze.gaps, freeze.waited), (ms(1350), 1, Some(ms(1320))));
        assert_eq!(freeze.from, t0 + ms(200), "from when the first of them was due");
        // An on-time wake-up between two breaks the run.
        assert_eq!(e.half_late(t0 + ms(5000), ms(5000), ms(300), None, threshold), None);
        assert_eq!(e.on_time(ms(5100)), None);
        assert_eq!(e.half_late(t0 + ms(5500), ms(5500), ms(300), None, threshold), None);
        assert!(!e.is_open(), "0.3 s and 0.3 s apart are two hitches, no freeze");
    }

    #[test]
    fn a_late_wake_up_after_the_merge_period_starts_a_new_episode() {
        let t0 = SystemTime::UNIX_EPOCH;
        let mut e = Episodes::new(S);
        e.late(t0 + ms(2000), ms(2000), ms(900), None);
        let first = e.late(t0 + ms(5000), ms(5000), ms(600), Some(ms(1))).expect("the first one ended");
        assert_eq!((first.gaps, first.stalled, first.waited), (1, ms(900), None));
        let second = e.flush().expect("the second is open");
        assert_eq!((second.gaps, second.longest, second.waited), (1, ms(600), Some(ms(1))));
    }

    #[test]
    fn an_endless_freeze_is_cut_into_episodes_of_bounded_length() {
        let t0 = SystemTime::UNIX_EPOCH;
        let mut e = Episodes::new(S);
        let mut closed = Vec::new();
        let mut mono = Duration::ZERO;
        for _ in 0..100 {
            mono += S;
            closed.extend(e.late(t0 + mono, mono, ms(900), None));
        }
        assert_eq!(closed.len(), 2, "100 s of freeze in episodes of at most {MAX_EPISODE:?}");
        assert!(closed.iter().all(|c| c.to.duration_since(c.from).unwrap_or_default() <= MAX_EPISODE + S));
    }
}
