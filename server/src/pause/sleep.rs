//! Telling a late sentinel tick caused by a stall from one caused by sleep (SPEC §3.6).
//!
//! Each tick reads two clocks at its start and end. The monotonic clock stops while the
//! machine is suspended; the reference clock does not. So over one tick:
//!
//! ```text
//! reference Δ − monotonic Δ  > tolerance  → Slept { asleep }   (suspended during the tick)
//! monotonic Δ − expected     ≥ threshold  → Stall { duration } (awake, but not scheduled)
//! otherwise                               → OnTime
//! ```
//!
//! Linux: monotonic = `CLOCK_MONOTONIC`, reference = `CLOCK_BOOTTIME`; their difference grows by
//! exactly the time suspended. macOS: monotonic = `CLOCK_UPTIME_RAW`, reference = the wall
//! clock, which NTP may step, so [`classify_with_pmset`] adds the power manager's own log.
//! [`classify`] is pure; only [`now`] touches the OS, through the `os` module gated below.

use std::time::{Duration, SystemTime};

use super::pmset::{self, PowerEvent};

// The one OS-specific part: reading the two clocks. Each sibling exposes `now()`.
#[cfg_attr(target_os = "linux", path = "sleep/linux.rs")]
#[cfg_attr(target_os = "macos", path = "sleep/macos.rs")]
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), path = "sleep/unsupported.rs")]
mod os;

// `clock_gettime`, shared by the Linux and macOS readers.
#[cfg(any(target_os = "linux", target_os = "macos"))]
mod posix;

/// How much more the reference clock may advance than the monotonic one before the tick is
/// called a sleep. The two clocks are read one after the other, not atomically, so a
/// preemption between the reads skews them by up to a scheduling quantum (milliseconds), and
/// NTP slews the wall clock by up to 0.5 ms/s. A real suspend lasts at least about a second,
/// so 50 ms separates the two with a wide margin on both sides.
pub const SUSPEND_TOLERANCE: Duration = Duration::from_millis(50);

/// How far outside the tick's wall-clock window a `pmset` entry still confirms a sleep: the
/// log has one-second resolution and powerd writes an entry a moment after the transition.
pub const PMSET_SLACK: Duration = Duration::from_secs(5);

/// The two clocks read at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readings {
    /// Time that stops during suspend: `CLOCK_MONOTONIC` (Linux), `CLOCK_UPTIME_RAW` (macOS).
    pub monotonic: Duration,
    /// Time that keeps going during suspend: `CLOCK_BOOTTIME` (Linux), the wall clock since the
    /// Unix epoch (macOS).
    pub reference: Duration,
}

/// What happened during one sentinel tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gap {
    /// The tick ended in time.
    OnTime,
    /// The machine was awake but the sentinel ran late by `duration`: a pause.
    Stall {
        /// Lateness: monotonic time elapsed beyond the tick's planned length.
        duration: Duration,
    },
    /// The machine was suspended during the tick; not a pause, however late the tick.
    Slept {
        /// How long it was suspended, as far as the clocks tell.
        asleep: Duration,
    },
}

/// Why the clocks could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    /// This platform has no pair of clocks that tells suspend apart from a stall.
    #[error("sleep detection is not supported on this platform (only Linux and macOS)")]
    Unsupported,
    /// The OS refused to read a clock.
    #[error("reading {clock} failed: {source}")]
    Read {
        /// The clock's name, e.g. `CLOCK_BOOTTIME`.
        clock: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The wall clock is set before 1970, so it gives no usable reference.
    #[error("the wall clock is set before 1970-01-01")]
    WallBeforeEpoch,
}

/// Reads the monotonic and reference clocks of this platform as one instant.
pub fn now() -> Result<Readings, ClockError> {
    os::now()
}

/// How far apart the two monotonic reads around the reference read may be.
const READ_TOLERANCE: Duration = Duration::from_millis(1);
/// Attempts at a consistent pair before the last one is used as it is.
const READ_ATTEMPTS: usize = 3;

/// Reads both clocks as one instant. The reference read is bracketed by two monotonic
/// reads: if the thread was held up in between (a stall landing exactly there), the pair
/// is read again. Otherwise a stall between the two reads at the end of a tick would add
/// to the reference clock only, and pass for sleep.
fn paired(
    mut monotonic: impl FnMut() -> Result<Duration, ClockError>,
    mut reference: impl FnMut() -> Result<Duration, ClockError>,
) -> Result<Readings, ClockError> {
    let mut attempt = 0;
    loop {
        let before = monotonic()?;
        let reference = reference()?;
        let after = monotonic()?;
        attempt += 1;
        if after.saturating_sub(before) <= READ_TOLERANCE || attempt >= READ_ATTEMPTS {
            return Ok(Readings { monotonic: after, reference });
        }
    }
}

/// Classifies one tick from the readings at its `start` and `end`.
///
/// `expected` is the tick's planned length; `threshold` is the lateness at or above which a
/// late tick is a stall (so a zero threshold calls every tick a stall). A sleep wins over any
/// lateness: resuming takes seconds during which no process runs, and that must not be
/// reported as a pause either.
///
/// A reference clock that advanced *less* than the monotonic one (a wall clock stepped back
/// by NTP or by hand) is never read as sleep: the difference saturates at zero, and the tick
/// is judged on the monotonic clock alone, which no one can step. A wall clock stepped
/// *forward* during a tick does look like sleep here; on macOS [`classify_with_pmset`] can
/// only add evidence of sleep, so such a coincidence with a real stall would hide it.
pub fn classify(start: Readings, end: Readings, expected: Duration, threshold: Duration) -> Gap {
    let monotonic = end.monotonic.saturating_sub(start.monotonic);
    let reference = end.reference.saturating_sub(start.reference);
    let asleep = reference.saturating_sub(monotonic);
    if asleep > SUSPEND_TOLERANCE {
        return Gap::Slept { asleep };
    }
    let lateness = monotonic.saturating_sub(expected);
    if lateness >= threshold { Gap::Stall { duration: lateness } } else { Gap::OnTime }
}

/// [`classify`], then on macOS a [`Gap::Stall`] becomes [`Gap::Slept`] when `pmset -g log`
/// shows a Sleep, Wake or DarkWake within `window` (the tick's wall-clock span, widened by
/// [`PMSET_SLACK`]).
///
/// The clocks alone can miss a sleep, e.g. when the wall clock was stepped back across it, and
/// the power manager's log is the OS's own word. A `Slept` from the clocks is kept even when
/// the log shows nothing: powerd writes the log asynchronously, so an absent entry is not
/// proof of being awake. The upgraded sleep's length is the stall's length, since that is the
/// time the sleep took from the tick.
pub fn classify_with_pmset(
    start: Readings,
    end: Readings,
    expected: Duration,
    threshold: Duration,
    events: &[PowerEvent],
    window: (SystemTime, SystemTime),
) -> Gap {
    match classify(start, end, expected, threshold) {
        Gap::Stall { duration } if pmset::slept_between(events, window.0, window.1, PMSET_SLACK) => {
            Gap::Slept { asleep: duration }
        }
        gap => gap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::UNIX_EPOCH;

    const TICK: Duration = Duration::from_millis(100);
    const THRESHOLD: Duration = Duration::from_millis(500);
    /// A start point far from zero, so a clock stepped back stays representable.
    const T0: Duration = Duration::from_secs(1_000_000);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Readings at the start (`T0` on both clocks) and after `mono` / `reference` have passed;
    /// a negative reference step is given as `step_back`.
    fn tick(mono: Duration, reference: Duration, step_back: Duration) -> (Readings, Readings) {
        let start = Readings { monotonic: T0, reference: T0 };
        let end = Readings { monotonic: T0 + mono, reference: T0 + reference - step_back };
        (start, end)
    }

    #[test]
    fn classify_table() {
        let cases: &[(&str, Duration, Duration, Duration, Gap)] = &[
            ("on time", ms(100), ms(100), ms(0), Gap::OnTime),
            ("slightly late, under threshold", ms(400), ms(401), ms(0), Gap::OnTime),
            ("late exactly at threshold", ms(600), ms(600), ms(0), Gap::Stall { duration: ms(500) }),
            ("SIGSTOP-like stall: both clocks +3 s", ms(3000), ms(3000), ms(0), Gap::Stall { duration: ms(2900) }),
            ("suspend: boottime +3600 s", ms(100), ms(3_600_000), ms(0), Gap::Slept { asleep: ms(3_599_900) }),
            ("suspend + slow resume", ms(4000), ms(3_604_000), ms(0), Gap::Slept { asleep: ms(3_600_000) }),
            ("clock skew within tolerance", ms(100), ms(150), ms(0), Gap::OnTime),
            ("skew just over tolerance", ms(100), ms(151), ms(0), Gap::Slept { asleep: ms(51) }),
            ("NTP step back 30 s, on time", ms(100), ms(100), ms(30_000), Gap::OnTime),
            ("NTP step back 30 s during a stall", ms(3000), ms(3000), ms(30_000), Gap::Stall { duration: ms(2900) }),
            ("monotonic shorter than planned", ms(20), ms(20), ms(0), Gap::OnTime),
        ];
        for &(name, mono, reference, back, want) in cases {
            let (start, end) = tick(mono, reference, back);
            assert_eq!(classify(start, end, TICK, THRESHOLD), want, "{name}");
        }
    }

    #[test]
    fn readings_going_backwards_do_not_panic_or_sleep() {
        let start = Readings { monotonic: T0, reference: T0 };
        assert_eq!(classify(start, Readings::default(), TICK, THRESHOLD), Gap::OnTime);
    }

    const DARKWAKE: &str = include_str!("../../../fixtures/macos/pmset/darkwake_maintenance.log");
    const ASSERTIONS_ONLY: &str = include_str!("../../../fixtures/macos/pmset/assertions_only.log");

    fn wall(unix_seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix_seconds)
    }

    #[test]
    fn dark_wake_in_pmset_turns_a_stall_into_sleep() {
        let events = pmset::parse(DARKWAKE);
        // A 3 s late tick whose wall window ends one second before the DarkWake at
        // 2024-11-02 01:29:30 -0500 (1730528970): within the slack.
        let (start, end) = tick(ms(3000), ms(3000), ms(0));
        let window = (wall(1_730_528_966), wall(1_730_528_969));
        let gap = classify_with_pmset(start, end, TICK, THRESHOLD, &events, window);
        assert_eq!(gap, Gap::Slept { asleep: ms(2900) });
    }

    #[test]
    fn stall_without_pmset_sleep_stays_a_stall() {
        let (start, end) = tick(ms(3000), ms(3000), ms(0));
        // Inside the span of the assertions-only log (2025-06-03 14:02–14:06 +0530).
        let window = (wall(1_748_939_600), wall(1_748_939_603));
        let stall = Gap::Stall { duration: ms(2900) };
        let events = pmset::parse(ASSERTIONS_ONLY);
        assert_eq!(classify_with_pmset(start, end, TICK, THRESHOLD, &events, window), stall);
        // Sleep entries that are hours away do not count either.
        let far = pmset::parse(DARKWAKE);
        assert_eq!(classify_with_pmset(start, end, TICK, THRESHOLD, &far, window), stall);
    }

    #[test]
    fn pmset_never_downgrades_a_clock_sleep_or_an_on_time_tick() {
        let (start, end) = tick(ms(100), ms(3_600_000), ms(0));
        let window = (wall(1_748_939_600), wall(1_748_943_200));
        let gap = classify_with_pmset(start, end, TICK, THRESHOLD, &[], window);
        assert_eq!(gap, Gap::Slept { asleep: ms(3_599_900) });
        let events = pmset::parse(DARKWAKE);
        let (start, end) = tick(ms(100), ms(100), ms(0));
        let window = (wall(1_730_528_970), wall(1_730_528_970));
        assert_eq!(classify_with_pmset(start, end, TICK, THRESHOLD, &events, window), Gap::OnTime);
    }

    #[test]
    #[cfg_attr(not(any(target_os = "linux", target_os = "macos")), ignore = "no clocks to compare on this platform")]
    fn real_clocks_move_forward_and_never_apart_backwards() {
        let first = now().unwrap_or_else(|e| panic!("reading the clocks failed: {e}"));
        let second = now().expect("the clocks were readable a moment ago");
        assert!(second.monotonic >= first.monotonic, "{first:?} then {second:?}");
        // Back to back the clocks agree: no sleep, and a tick of zero planned length is on
        // time unless this test itself was descheduled for a whole second.
        let gap = classify(first, second, Duration::ZERO, Duration::from_secs(1));
        assert_eq!(gap, Gap::OnTime, "{first:?} then {second:?}");
    }

    fn readings() -> impl Strategy<Value = Readings> {
        let clock = (any::<u64>(), 0..1_000_000_000u32).prop_map(|(s, n)| Duration::new(s, n));
        (clock.clone(), clock).prop_map(|(monotonic, reference)| Readings { monotonic, reference })
    }

    proptest! {
        #[test]
        fn classify_never_panics(
            start in readings(),
            end in readings(),
            expected in any::<u64>(),
            threshold in any::<u64>(),
        ) {
            let _ = classify(start, end, Duration::from_nanos(expected), Duration::from_nanos(threshold));
        }

        #[test]
        fn a_stepped_back_reference_is_never_sleep(
            mono in 0..10_000_000u64,
            back in 0..100_000_000u64,
        ) {
            let (start, end) = tick(ms(mono), ms(mono), ms(back));
            let gap = classify(start, end, TICK, THRESHOLD);
            prop_assert!(!matches!(gap, Gap::Slept { .. }), "{gap:?}");
        }
    }

    #[test]
    fn a_hold_up_between_the_reads_is_read_again() {
        // Monotonic reads: 10 s, then 13 s (held up 3 s around the reference read), then a
        // consistent pair 13.0001 s / 13.0002 s.
        let mono = [10.0, 13.0, 13.0001, 13.0002].map(Duration::from_secs_f64);
        let refs = [100.0, 103.0].map(Duration::from_secs_f64);
        let (mut m, mut r) = (mono.iter(), refs.iter());
        let got = paired(|| Ok(*m.next().expect("mono")), || Ok(*r.next().expect("ref"))).expect("pair");
        assert_eq!(got, Readings { monotonic: mono[3], reference: refs[1] });

        // Held up every time: the last attempt is used rather than looping for ever.
        let mut t = 0.0;
        let got = paired(
            || {
                t += 5.0;
                Ok(Duration::from_secs_f64(t))
            },
            || Ok(Duration::from_secs(1)),
        )
        .expect("pair");
        assert_eq!(got.monotonic, Duration::from_secs(30));
    }
}
