//! Points in time and durations as people type them on the command line
//! (`pmon history --at "10 min ago"`, `pmon events --since yesterday`).
//!
//! Everything is relative to an explicit `now` so that the parser is deterministic and testable;
//! [`parse_time_now`] is the thin wrapper the CLI uses. Local forms ("today 09:30", "2026-11-21
//! 14:05") are read in the time zone of `now`. Parsing never panics: any input yields either an
//! instant or a [`TimeError`] that names the input and lists the accepted forms.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};

const TIME_FORMS: &str = "ISO-8601 (2026-11-21T14:05:00Z, 2026-11-21 14:05, 2026-11-21), \"now\", \"10 min ago\", \
     \"2h ago\", \"yesterday\", \"today 09:30\", \"yesterday 14:05\", \"14:05\"";
const DURATION_FORMS: &str = "\"90s\", \"10 min\", \"2h\", \"1.5 hours\", \"3d\", \"1 week\" \
     (units: s/sec/second, m/min/minute, h/hr/hour, d/day, w/week, and their plurals)";
/// Upper bound on typed amounts: anything larger is a typo, and the bound keeps `SystemTime` arithmetic far
/// from overflow on every platform.
const MAX_SECS: f64 = 100.0 * 365.25 * 86_400.0;

/// Why a typed time or duration was rejected. Its `Display` names the input and lists the
/// accepted forms, so the CLI can print it as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {input:?}: {}accepted: {accepted}", because(.reason))]
pub struct TimeError {
    what: &'static str,
    input: String,
    reason: Option<String>,
    accepted: &'static str,
}

impl TimeError {
    fn of(what: &'static str, input: &str, accepted: &'static str) -> impl FnOnce(Why) -> Self {
        move |reason| TimeError { what, input: input.into(), reason, accepted }
    }

    /// The input exactly as given (untrimmed).
    pub fn input(&self) -> &str {
        &self.input
    }

    /// The specific problem, when there is one more precise than "not an accepted form".
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }
}

fn because(reason: &Option<String>) -> String {
    reason.as_ref().map(|r| format!("{r}; ")).unwrap_or_default()
}

/// Internal failure: `None` = not a recognised form, `Some` = recognised but wrong in a specific way.
type Why = Option<String>;

/// Parses a point in time as a person types it, relative to `now` (local time zone of `now`).
///
/// Accepted (case-insensitive, surrounding whitespace ignored): RFC 3339 / ISO-8601 with `Z` or an
/// offset; `YYYY-MM-DD[ T]HH:MM[:SS]` and `YYYY-MM-DD` in `now`'s zone; `now`; `today`/`yesterday`
/// (local midnight) optionally followed by `HH:MM[:SS]`; bare `HH:MM[:SS]`; `N UNIT ago`.
///
/// A bare `HH:MM` always means *today*, even when that is later than `now`: guessing "yesterday"
/// would make the same words mean different days depending on when they are typed, and the user
/// can say `yesterday 14:05` explicitly. A local time skipped by a DST change is an error; a
/// repeated one resolves to the earlier instant. Times before 1970 are rejected.
pub fn parse_time<Tz: TimeZone>(input: &str, now: DateTime<Tz>) -> Result<SystemTime, TimeError> {
    time_inner(&normalize(input), &now).map_err(TimeError::of("time", input, TIME_FORMS))
}

/// Convenience: [`parse_time`] relative to the current local time.
pub fn parse_time_now(input: &str) -> Result<SystemTime, TimeError> {
    parse_time(input, chrono::Local::now())
}

/// A duration as typed: "90s", "10 min", "2h", "1.5 hours", "3d", "1 week" (case-insensitive).
/// Negative, non-finite and over-100-year amounts are rejected.
pub fn parse_duration(input: &str) -> Result<Duration, TimeError> {
    let norm = normalize(input);
    let result = if norm.is_empty() { Err(Some("empty input".into())) } else { amount(&norm) };
    result.map_err(TimeError::of("duration", input, DURATION_FORMS))
}

/// Lower-cases and collapses whitespace so that the grammar below only sees single spaces.
fn normalize(input: &str) -> String {
    input.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

fn time_inner<Tz: TimeZone>(s: &str, now: &DateTime<Tz>) -> Result<SystemTime, Why> {
    let tokens: Vec<&str> = s.split(' ').collect();
    match tokens.as_slice() {
        [""] => Err(Some("empty input".into())),
        ["now"] => to_system(now),
        [amt @ .., "ago"] => {
            let d = amount(&amt.concat())?;
            let t = to_system(now)?.checked_sub(d).ok_or_else(before_1970)?;
            t.duration_since(UNIX_EPOCH).map(|_| t).map_err(|_| before_1970())
        }
        [day @ ("today" | "yesterday"), rest @ ..] => {
            let clock = match rest {
                [] => NaiveTime::MIN,
                [c] => clock(c).ok_or(None)?,
                _ => return Err(None),
            };
            let today = now.date_naive();
            let date = if *day == "today" { Some(today) } else { today.pred_opt() };
            local(&now.timezone(), date.ok_or_else(before_1970)?.and_time(clock))
        }
        [c] => match clock(c) {
            Some(t) => local(&now.timezone(), now.date_naive().and_time(t)),
            None => absolute(s, &now.timezone()),
        },
        _ => absolute(s, &now.timezone()),
    }
}

/// `YYYY-MM-DD`, then optionally `T` or space, `HH:MM[:SS[.frac]]` and `Z` / `±HH[:MM]`.
fn absolute<Tz: TimeZone>(s: &str, tz: &Tz) -> Result<SystemTime, Why> {
    let (date, rest) = s.split_once(['t', ' ']).unwrap_or((s, ""));
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| None::<String>)?;
    if rest.is_empty() {
        return local(tz, date.and_time(NaiveTime::MIN));
    }
    let (time, offset) = match rest.strip_suffix('z') {
        Some(time) => (time, Some(FixedOffset::east_opt(0).ok_or(None)?)),
        None => match rest.rfind(['+', '-']) {
            Some(i) => (&rest[..i], Some(offset(&rest[i..]).ok_or(None)?)),
            None => (rest, None),
        },
    };
    let naive = date.and_time(clock(time.trim_end()).ok_or(None)?);
    match offset {
        Some(off) => local(&off, naive),
        None => local(tz, naive),
    }
}

/// `HH:MM[:SS[.frac]]`.
fn clock(s: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(s, "%H:%M:%S%.f").or_else(|_| NaiveTime::parse_from_str(s, "%H:%M")).ok()
}

/// `±HH`, `±HHMM` or `±HH:MM`.
fn offset(s: &str) -> Option<FixedOffset> {
    let sign = if s.starts_with('-') { -1 } else { 1 };
    let body = s.get(1..)?;
    let digits = match body.len() {
        5 if body.get(2..3) == Some(":") => body.replace(':', ""),
        2 | 4 => body.to_string(),
        _ => return None,
    };
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let h: i32 = digits.get(..2)?.parse().ok()?;
    let m: i32 = if digits.len() == 4 { digits.get(2..)?.parse().ok()? } else { 0 };
    if h > 23 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

/// Resolves a wall-clock time in `tz`; the DST rules live here so every form shares them.
fn local<Tz: TimeZone>(tz: &Tz, naive: NaiveDateTime) -> Result<SystemTime, Why> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => to_system(&t),
        // Overlap (clocks set back): the first occurrence is the one a person most likely lived through first.
        LocalResult::Ambiguous(a, b) => to_system(if a <= b { &a } else { &b }),
        LocalResult::None => {
            Err(Some(format!("{naive} does not exist in the local time zone (skipped by a daylight-saving change)")))
        }
    }
}

/// `N UNIT`, e.g. `10min`, `1.5 hours`; spaces anywhere are ignored.
fn amount(s: &str) -> Result<Duration, Why> {
    let s: String = s.chars().filter(|c| *c != ' ').collect();
    let split = s.find(|c: char| c.is_alphabetic()).ok_or_else(|| Some("missing unit".to_string()))?;
    let (num, unit) = s.split_at(split);
    let unit_secs = match unit {
        "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86_400.0,
        "w" | "week" | "weeks" => 604_800.0,
        _ if num.is_empty() => return Err(None),
        _ => return Err(Some(format!("unknown unit {unit:?}"))),
    };
    let n: f64 = num.parse().map_err(|_| None::<String>)?;
    if num.starts_with('-') {
        return Err(Some("amount must not be negative".into()));
    }
    if !n.is_finite() {
        return Err(Some("amount is not a finite number".into()));
    }
    let secs = n * unit_secs;
    if secs > MAX_SECS {
        return Err(Some("amount is more than 100 years".into()));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| Some(e.to_string()))
}

fn to_system<Tz: TimeZone>(t: &DateTime<Tz>) -> Result<SystemTime, Why> {
    let secs = u64::try_from(t.timestamp()).map_err(|_| before_1970())?;
    UNIX_EPOCH
        .checked_add(Duration::new(secs, t.timestamp_subsec_nanos()))
        .ok_or_else(|| Some("too far in the future".into()))
}

fn before_1970() -> Why {
    Some("times before 1970-01-01T00:00:00Z are not supported".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Saturday 2026-11-21 15:30:45 at UTC+01:00.
    fn now() -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339("2026-11-21T15:30:45+01:00").unwrap()
    }

    fn at(rfc3339: &str) -> SystemTime {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().into()
    }

    fn at_naive(rfc3339: &str) -> NaiveDateTime {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().naive_utc()
    }

    /// A test zone like Europe/Berlin in 2026: UTC+1, UTC+2 from 03-29 01:00Z to 10-25 01:00Z.
    /// FixedOffset can never have gaps or overlaps, so this is what exercises the DST handling.
    #[derive(Clone, Copy, Debug)]
    struct Berlin;

    fn is_summer(utc: &NaiveDateTime) -> bool {
        (at_naive("2026-03-29T01:00:00Z")..at_naive("2026-10-25T01:00:00Z")).contains(utc)
    }

    impl TimeZone for Berlin {
        type Offset = FixedOffset;
        fn from_offset(_: &FixedOffset) -> Self {
            Berlin
        }
        fn offset_from_local_date(&self, date: &NaiveDate) -> LocalResult<FixedOffset> {
            self.offset_from_local_datetime(&date.and_hms_opt(0, 0, 0).unwrap())
        }
        fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> LocalResult<FixedOffset> {
            let fits = |h: i32| {
                let off = FixedOffset::east_opt(h * 3600).unwrap();
                (is_summer(&(*local - off)) == (h == 2)).then_some(off)
            };
            match (fits(1), fits(2)) {
                // Later instant first, so the test proves `local` picks the earlier one itself.
                (Some(w), Some(s)) => LocalResult::Ambiguous(w, s),
                (Some(o), None) | (None, Some(o)) => LocalResult::Single(o),
                (None, None) => LocalResult::None,
            }
        }
        fn offset_from_utc_date(&self, date: &NaiveDate) -> FixedOffset {
            self.offset_from_utc_datetime(&date.and_hms_opt(0, 0, 0).unwrap())
        }
        fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> FixedOffset {
            FixedOffset::east_opt(if is_summer(utc) { 7200 } else { 3600 }).unwrap()
        }
    }

    #[test]
    fn when_parses_every_form() {
        let table = [
            ("2026-11-21T14:05:00Z", "2026-11-21T14:05:00Z"),
            ("2026-11-21t14:05:00.250z", "2026-11-21T14:05:00.25Z"),
            ("2026-11-21T14:05:00+05:30", "2026-11-21T08:35:00Z"),
            ("2026-11-21T14:05-0200", "2026-11-21T16:05:00Z"),
            ("2026-11-21 14:05:00 +02", "2026-11-21T12:05:00Z"),
            ("2026-11-21 14:05", "2026-11-21T13:05:00Z"),
            ("2026-11-21T14:05:09", "2026-11-21T13:05:09Z"),
            ("2026-11-21", "2026-11-20T23:00:00Z"),
            ("  NOW ", "2026-11-21T14:30:45Z"),
            ("today", "2026-11-20T23:00:00Z"),
            ("yesterday", "2026-11-19T23:00:00Z"),
            ("Today 09:30", "2026-11-21T08:30:00Z"),
            ("yesterday   14:05:30", "2026-11-20T13:05:30Z"),
            ("14:05", "2026-11-21T13:05:00Z"),
            ("9:05:01", "2026-11-21T08:05:01Z"),
            ("23:00", "2026-11-21T22:00:00Z"), // later than now: still today (documented)
            ("10 min ago", "2026-11-21T14:20:45Z"),
            ("10min ago", "2026-11-21T14:20:45Z"),
            ("2h ago", "2026-11-21T12:30:45Z"),
            ("1.5 hours ago", "2026-11-21T13:00:45Z"),
            ("90 S AGO", "2026-11-21T14:29:15Z"),
            ("3 days ago", "2026-11-18T14:30:45Z"),
            ("1 week ago", "2026-11-14T14:30:45Z"),
            ("0.5 secs ago", "2026-11-21T14:30:44.5Z"),
            ("1970-01-01t00:00:00z", "1970-01-01T00:00:00Z"),
        ];
        for (input, want) in table {
            assert_eq!(parse_time(input, now()), Ok(at(want)), "{input}");
        }
    }

    #[test]
    fn when_dst_gap_errors_and_overlap_takes_earlier() {
        let now = Berlin.from_utc_datetime(&at_naive("2026-12-01T12:00:00Z"));
        let err = parse_time("2026-03-29 02:30", now).unwrap_err();
        assert!(err.to_string().contains("daylight-saving"), "{err}");
        assert_eq!(parse_time("2026-10-25 02:30", now), Ok(at("2026-10-25T00:30:00Z")));
        assert_eq!(parse_time("2026-07-01 12:00", now), Ok(at("2026-07-01T10:00:00Z")));
        // "yesterday" across the transition uses the offset in force on that day.
        let now = Berlin.from_utc_datetime(&at_naive("2026-10-25T12:00:00Z"));
        assert_eq!(parse_time("yesterday 12:00", now), Ok(at("2026-10-24T10:00:00Z")));
        assert_eq!(parse_time("today 12:00", now), Ok(at("2026-10-25T11:00:00Z")));
    }

    #[test]
    fn when_errors_name_input_and_forms() {
        let huge = format!("1{} s ago", "0".repeat(400)); // parses to f64 infinity
        let cases = [
            ("tomorow", None),
            ("", Some("empty")),
            ("   ", Some("empty")),
            ("-10 min ago", Some("negative")),
            (huge.as_str(), Some("finite")),
            ("5300 weeks ago", Some("100 years")),
            ("1969-12-31T23:59:59Z", Some("before 1970")),
            ("1970-01-01", Some("before 1970")),
            ("60 years ago", Some("unknown unit \"years\"")),
            ("25:00", None),
            ("2026-02-30", None),
            ("today 9", None),
            ("yesterday 14:05 extra", None),
            ("2026-11-21T14:05+24:00", None),
            ("2026-11-21T14:05+0:200", None),
            ("10 ago", Some("missing unit")),
        ];
        for (input, reason) in cases {
            let msg = parse_time(input, now()).unwrap_err().to_string();
            assert!(msg.starts_with(&format!("invalid time {input:?}: ")), "{msg}");
            assert!(msg.ends_with(&format!("accepted: {TIME_FORMS}")), "{msg}");
            assert!(reason.is_none_or(|r| msg.contains(r)), "{input}: {msg}");
        }
        let err = parse_time("tomorow", now()).unwrap_err();
        assert_eq!(err.input(), "tomorow");
        assert_eq!(err.reason(), None);
        assert!(err.to_string().starts_with("invalid time \"tomorow\": accepted: ISO-8601 (2026-11-21T14:05:00Z"));
        // 10 years ago from 1975 is before 1970.
        let early = DateTime::parse_from_rfc3339("1975-01-01T00:00:00Z").unwrap();
        assert!(parse_time("10 weeks ago", early).is_ok());
        assert!(parse_time("520 weeks ago", early).unwrap_err().to_string().contains("before 1970"));
    }

    #[test]
    fn when_parse_duration_table() {
        let table = [
            ("90s", 90.0),
            ("10 min", 600.0),
            ("10 MINUTES", 600.0),
            ("2h", 7200.0),
            ("1.5 hours", 5400.0),
            (" 2 hrs ", 7200.0),
            ("3d", 259_200.0),
            ("1 week", 604_800.0),
            ("2w", 1_209_600.0),
            ("0s", 0.0),
            (".5 sec", 0.5),
            ("1 second", 1.0),
        ];
        for (input, secs) in table {
            assert_eq!(parse_duration(input), Ok(Duration::from_secs_f64(secs)), "{input}");
        }
        for (input, reason) in
            [("", "empty"), ("-1s", "negative"), ("90", "missing unit"), ("5 fortnights", "unknown unit")]
        {
            let msg = parse_duration(input).unwrap_err().to_string();
            assert!(msg.starts_with(&format!("invalid duration {input:?}: ")), "{msg}");
            assert!(msg.contains(reason) && msg.ends_with(DURATION_FORMS), "{msg}");
        }
        assert!(parse_duration("5300 weeks").unwrap_err().to_string().contains("100 years"));
        assert!(parse_duration("1.2.3 h").is_err());
    }

    #[test]
    fn when_generated_inputs_never_panic() {
        let seeds = "2026-11-21T14:05:00Z|2026-11-21 14:05:00+05:30|yesterday 14:05|1.5 hours ago|today 09:30|23:59:60";
        let atoms: Vec<&str> =
            "0|9|99999999999999999999|-|+|:|.| |t|z|ago|min|h|é|٣|\u{0}|\u{200b}|ẞ|today|-12:60|1e309|nan|\
            inf|2026-|12-31|now|2026-03-29 02:30|10min ago"
                .split('|')
                .collect();
        // Berlin's `now` sits right before a DST gap, so generated local times hit `LocalResult::None`.
        let berlin = Berlin.from_utc_datetime(&at_naive("2026-03-29T00:30:00Z"));
        let mut count = 0;
        let mut check = |s: &str| {
            count += 1;
            for e in
                [parse_time(s, now()).err(), parse_time(s, berlin).err(), parse_duration(s).err()].into_iter().flatten()
            {
                assert!(e.to_string().contains(&format!("{s:?}")), "{s:?}: {e}");
            }
        };
        // Every insertion and replacement of every atom at every char position of every seed.
        for seed in seeds.split('|') {
            let chars: Vec<char> = seed.chars().collect();
            for i in 0..=chars.len() {
                let head: String = chars[..i].iter().collect();
                for atom in &atoms {
                    check(&format!("{head}{atom}{}", chars[i..].iter().collect::<String>()));
                    check(&format!("{head}{atom}{}", chars.get(i + 1..).unwrap_or(&[]).iter().collect::<String>()));
                }
            }
        }
        // Random concatenations of atoms, from a fixed-seed xorshift (no dev-dependency needed).
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            usize::try_from(x % 1024).unwrap()
        };
        for _ in 0..5000 {
            let s: String = (0..next() % 7).map(|_| atoms[next() % atoms.len()]).collect();
            check(&s);
        }
        assert!(count > 10_000, "{count}");
    }
}
