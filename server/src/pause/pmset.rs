//! Parser for `pmset -g log` (macOS), the power manager's own record of sleeps and wakes.
//!
//! A wall-clock jump alone can be an NTP step; a `Sleep`/`Wake`/`DarkWake` entry in this log
//! is the operating system saying the machine really was asleep. Not gated: it parses text,
//! so it is compiled and tested on every platform against `fixtures/macos/pmset/`.
//!
//! ```text
//! 2025-01-01 16:54:47 +0800 Sleep                   Entering Sleep state due to 'Idle Sleep': …
//! └─ local time + UTC offset └─ Domain (padded)     └─ Message … [Duration] [Delay]
//! ```
//!
//! Everything else — the column header, the `====` rule, `UUID:` lines, blank lines and the
//! many other domains (`Wake Requests`, `Assertions`, `Kernel Client Acks`, …) — is skipped.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the power manager did at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerKind {
    /// `Sleep` domain: the machine entered sleep.
    Sleep,
    /// `Wake` domain: a full (user-visible) wake, including `DarkWake to FullWake`.
    Wake,
    /// `DarkWake` domain: a maintenance wake with the display off, followed by more sleep.
    DarkWake,
}

/// One sleep or wake transition read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerEvent {
    /// When it happened (the log's local time converted with its own UTC offset).
    pub at: SystemTime,
    /// Which transition.
    pub kind: PowerKind,
    /// The log's message, trimmed, without the trailing `N secs` duration/delay columns.
    pub message: String,
}

/// Reads every Sleep, Wake and DarkWake entry of a `pmset -g log` output, in log order.
///
/// Lines it does not understand (headers, other domains, truncated or garbled lines) are
/// skipped: the log is evidence, and one bad line must not hide the others. Never panics.
pub fn parse(text: &str) -> Vec<PowerEvent> {
    text.lines().filter_map(parse_line).collect()
}

/// Whether the machine was asleep (a Sleep entry, or any Wake/DarkWake) at any time in
/// [`from`, `to`], with `slack` either side.
///
/// A wake counts as well as a sleep because a stall that spans a sleep ends with a wake in
/// the window even when the sleep began before it. `slack` covers the log's one-second
/// resolution and powerd writing an entry a moment after the transition. A reversed window
/// is read as the same span.
pub fn slept_between(events: &[PowerEvent], from: SystemTime, to: SystemTime, slack: Duration) -> bool {
    let (from, to) = if from <= to { (from, to) } else { (to, from) };
    // Near the ends of SystemTime's range the slack cannot be applied; the bare window is
    // still the right answer there.
    let from = from.checked_sub(slack).unwrap_or(from);
    let to = to.checked_add(slack).unwrap_or(to);
    events.iter().any(|e| e.at >= from && e.at <= to)
}

fn parse_line(line: &str) -> Option<PowerEvent> {
    // The timestamp is three single-space-separated fields, then one space before the domain.
    let mut fields = line.splitn(4, ' ');
    let (date, time, zone, rest) = (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
    let at = parse_timestamp(date, time, zone)?;
    let (domain, message) = split_domain(rest);
    // Exact domain match: `Wake Requests` and `WakeDetails` are scheduling notes, and
    // messages of other domains mention "Sleep" freely ("Delays to Sleep notifications").
    let kind = match domain {
        "Sleep" => PowerKind::Sleep,
        "Wake" => PowerKind::Wake,
        "DarkWake" => PowerKind::DarkWake,
        _ => return None,
    };
    Some(PowerEvent { at, kind, message: strip_durations(message).to_owned() })
}

/// Splits `Domain<padding>Message`. The domain is padded with spaces to a fixed column (and in
/// some macOS versions followed by a tab); a domain itself holds at most single spaces
/// (`Wake Requests`), so the first tab or run of two spaces ends it.
fn split_domain(rest: &str) -> (&str, &str) {
    let rest = rest.trim_start();
    let end = match (rest.find('\t'), rest.find("  ")) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => rest.len(),
    };
    let (domain, message) = rest.split_at(end);
    (domain.trim_end(), message.trim())
}

/// Removes the trailing Duration and Delay columns (`45 secs`), which follow the message after
/// padding or, when the message overflows its column, after a single space.
fn strip_durations(message: &str) -> &str {
    let mut message = message.trim_end();
    for _ in 0..2 {
        let Some(head) = message.strip_suffix(" secs") else { break };
        let Some((before, number)) = head.rsplit_once(char::is_whitespace) else { break };
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            break;
        }
        message = before.trim_end();
    }
    message
}

/// `YYYY-MM-DD`, `HH:MM:SS`, `±HHMM` → the instant. Strict about digits and ranges, because a
/// wrong instant would confirm (or deny) a sleep that did not happen.
fn parse_timestamp(date: &str, time: &str, zone: &str) -> Option<SystemTime> {
    let mut d = date.split('-');
    let year = digits(d.next()?, 4)?;
    let month = digits(d.next()?, 2)?;
    let day = digits(d.next()?, 2)?;
    let mut t = time.split(':');
    let hour = digits(t.next()?, 2)?;
    let minute = digits(t.next()?, 2)?;
    let second = digits(t.next()?, 2)?;
    if d.next().is_some() || t.next().is_some() {
        return None;
    }
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let sign = match zone.get(..1)? {
        "+" => 1,
        "-" => -1,
        _ => return None,
    };
    let zone_hours = digits(zone.get(1..3)?, 2)?;
    let zone_minutes = digits(zone.get(3..)?, 2)?;
    if zone_hours > 23 || zone_minutes > 59 {
        return None;
    }
    let offset = sign * (zone_hours * 3600 + zone_minutes * 60);
    // Local time = UTC + offset, so UTC = local − offset.
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    match u64::try_from(seconds) {
        Ok(after) => UNIX_EPOCH.checked_add(Duration::from_secs(after)),
        Err(_) => UNIX_EPOCH.checked_sub(Duration::from_secs(seconds.unsigned_abs())),
    }
}

/// Exactly `len` ASCII digits (`str::parse` alone would accept a leading `+`).
fn digits(s: &str, len: usize) -> Option<i64> {
    if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`):
/// years are shifted to start in March so the leap day is the last day of the year.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SLEEP_WAKE: &str = include_str!("../../../fixtures/macos/pmset/sleep_wake.log");
    const DARKWAKE: &str = include_str!("../../../fixtures/macos/pmset/darkwake_maintenance.log");
    const ASSERTIONS_ONLY: &str = include_str!("../../../fixtures/macos/pmset/assertions_only.log");

    fn at(unix_seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(unix_seconds)
    }

    #[test]
    fn normal_sleep_gives_one_sleep_and_one_wake() {
        let events = parse(SLEEP_WAKE);
        let kinds: Vec<_> = events.iter().map(|e| (e.kind, e.at)).collect();
        // Epoch seconds computed independently with `date -u -d '2025-03-14 23:10:05 +0100' +%s`.
        assert_eq!(kinds, vec![(PowerKind::Sleep, at(1_741_990_205)), (PowerKind::Wake, at(1_742_020_371))]);
        assert_eq!(events[0].message, "Entering Sleep state due to 'Idle Sleep': Using AC (Charge:100%)");
        assert_eq!(
            events[1].message, "Wake from Deep Idle [CDNVA] : due to EC.LidOpen/Lid Open Using AC (Charge:100%)",
            "the padded `2 secs` duration column is not part of the message"
        );
    }

    #[test]
    fn dark_wakes_and_negative_offset() {
        let events = parse(DARKWAKE);
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        use PowerKind::*;
        assert_eq!(kinds, vec![Sleep, DarkWake, Sleep, DarkWake, Sleep, Wake]);
        assert_eq!(events[1].at, at(1_730_528_970), "2024-11-02 01:29:30 -0500");
        assert!(events[1].message.ends_with("Using BATT (Charge:93%)"), "{}", events[1].message);
        assert!(events[5].message.starts_with("DarkWake to FullWake"));
    }

    #[test]
    fn other_domains_only_give_nothing() {
        assert_eq!(parse(ASSERTIONS_ONLY), vec![]);
    }

    #[test]
    fn slept_between_honours_window_and_slack() {
        let events = parse(DARKWAKE);
        let dark_wake = at(1_730_528_970);
        let slack = Duration::from_secs(2);
        assert!(slept_between(&events, dark_wake, dark_wake, Duration::ZERO));
        assert!(slept_between(&events, dark_wake + slack, dark_wake + slack * 5, slack), "slack before");
        assert!(!slept_between(&events, dark_wake + slack * 2, dark_wake + slack * 5, Duration::from_secs(1)));
        assert!(slept_between(&events, dark_wake + slack, dark_wake - slack, Duration::ZERO), "reversed window");
        let assertions = parse(ASSERTIONS_ONLY);
        assert!(!slept_between(&assertions, at(0), at(u64::from(u32::MAX)), Duration::MAX), "no events");
    }

    #[test]
    fn nasty_lines() {
        let cases: &[(&str, Option<PowerKind>)] = &[
            // Newer macOS: domain padded, then a tab.
            ("2026-07-02 09:50:00 -0300 DarkWake            \tDarkWake from Deep Idle", Some(PowerKind::DarkWake)),
            ("2025-01-01 16:54:47 +0800 Sleep", Some(PowerKind::Sleep)),
            ("2025-01-01 16:54:48 +0800 Wake Requests           [*process=dasd]", None),
            ("2025-01-01 16:54:48 +0800 WakeDetails             DriverReason:EC.LidOpen", None),
            ("2025-02-30 10:00:00 +0000 Sleep                   impossible date", None),
            ("2025-01-01 24:00:00 +0000 Sleep                   impossible hour", None),
            ("2025-01-01 16:54:47 +08 Sleep                     short zone", None),
            ("2025-01-01 16:54:47 0800 Sleep                    unsigned zone", None),
            ("+025-01-01 16:54:47 +0800 Sleep                   signed year", None),
            ("2025-01-01 16:54", None),
            ("2025-01-01 16:54:47 +0800 Sle", None),
            ("2025-01-01 16:54:47 +08é0 Sleep                   multibyte zone", None),
            ("UUID: 59E5370B-FEDC-4D46-A1B8-3EE73A021182", None),
            ("", None),
        ];
        for (line, kind) in cases {
            assert_eq!(parse_line(line).map(|e| e.kind), *kind, "{line:?}");
        }
    }

    #[test]
    fn timestamps_across_offsets_leap_days_and_the_epoch() {
        let ts = |s: &str| {
            let f: Vec<_> = s.split(' ').collect();
            parse_timestamp(f[0], f[1], f[2])
        };
        assert_eq!(ts("2024-02-29 12:00:00 -0330"), Some(at(1_709_220_600)));
        assert_eq!(ts("1970-01-01 00:00:00 +0000"), Some(UNIX_EPOCH));
        assert_eq!(ts("1969-12-31 23:59:59 +0000"), Some(UNIX_EPOCH - Duration::from_secs(1)));
        assert_eq!(ts("2000-03-01 00:00:00 +0000"), Some(at(951_868_800)));
        assert_eq!(ts("2100-02-29 00:00:00 +0000"), None, "2100 is not a leap year");
    }

    /// The real capture, where this checkout has it (see `real_captures`).
    #[test]
    #[ignore = "reads the real macOS captures in ../shared/macos-samples (or $PMON_MACOS_SAMPLES)"]
    fn real_captures_parse() {
        let captures = crate::real_captures::starting_with("pmset_g_log_header_uuid_sleep_wakerequests");
        let [(_, bytes)] = captures.as_slice() else { panic!("one pmset capture expected, found {}", captures.len()) };
        let events = parse(&String::from_utf8_lossy(bytes));
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!((events[0].kind, events[0].at), (PowerKind::Sleep, at(1_735_721_687)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::collect::no_panic_tests::cases()))]

        #[test]
        fn parse_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn parse_never_panics_on_log_like_lines(
            line in r"[0-9+\-]{4,5}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} [+\-é]?[0-9]{0,5} (Sleep|Wake|DarkWake)?[ \t]{0,3}.{0,40}"
        ) {
            let _ = parse(&line);
        }
    }
}
