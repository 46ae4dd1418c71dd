//! `google.protobuf.Timestamp` ⇄ `SystemTime`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pbjson_types::Timestamp;

/// The timestamp of a wall-clock instant (times before 1970 count backwards).
pub fn timestamp(t: SystemTime) -> Timestamp {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timestamp {
            seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
        },
        Err(before) => {
            let d = before.duration();
            let mut seconds = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            let mut nanos = -i32::try_from(d.subsec_nanos()).unwrap_or(0);
            if nanos < 0 {
                seconds -= 1;
                nanos += 1_000_000_000;
            }
            Timestamp { seconds, nanos }
        }
    }
}

/// The instant a timestamp names; `None` for nanos outside 0..1e9.
pub fn system_time(ts: &Timestamp) -> Option<SystemTime> {
    let nanos = u32::try_from(ts.nanos).ok().filter(|n| *n < 1_000_000_000)?;
    if ts.seconds >= 0 {
        UNIX_EPOCH.checked_add(Duration::new(ts.seconds.unsigned_abs(), nanos))
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(ts.seconds.unsigned_abs()))?
            .checked_add(Duration::from_nanos(u64::from(nanos)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_after_and_before_the_epoch() {
        for t in [
            UNIX_EPOCH + Duration::new(1_763_000_000, 123_456_789),
            UNIX_EPOCH - Duration::new(5, 250_000_000),
            UNIX_EPOCH,
        ] {
            let ts = timestamp(t);
            assert!((0..1_000_000_000).contains(&ts.nanos), "{ts:?}");
            assert_eq!(system_time(&ts), Some(t));
        }
        assert_eq!(timestamp(UNIX_EPOCH - Duration::new(5, 250_000_000)).seconds, -6);
    }

    #[test]
    fn rejects_out_of_range_nanos() {
        assert_eq!(system_time(&Timestamp { seconds: 1, nanos: -1 }), None);
        assert_eq!(system_time(&Timestamp { seconds: 1, nanos: 1_000_000_000 }), None);
    }
}
