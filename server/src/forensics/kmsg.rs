//! Parsing `/dev/kmsg` records: `LEVEL,SEQ,TIMESTAMP_US,FLAGS[,…];MESSAGE` followed by
//! optional continuation lines starting with a space (`SUBSYSTEM=…`), which are skipped.
//! The timestamp is microseconds since boot on the kernel's monotonic clock.

/// One kernel log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// Syslog level (0 emergency … 7 debug); the facility bits are dropped.
    pub level: u8,
    /// Microseconds since boot.
    pub at_us: u64,
    /// The message.
    pub message: &'a str,
}

/// Parses one record line; `None` for continuation lines and anything malformed.
pub fn parse(line: &str) -> Option<Record<'_>> {
    let (prefix, message) = line.split_once(';')?;
    let mut fields = prefix.split(',');
    let priority: u32 = fields.next()?.parse().ok()?;
    let _sequence: u64 = fields.next()?.parse().ok()?;
    let at_us: u64 = fields.next()?.parse().ok()?;
    Some(Record { level: u8::try_from(priority & 7).ok()?, at_us, message: message.trim_end() })
}

/// Kernel messages that explain a stall: hung tasks, the OOM killer, lockups, RCU stalls,
/// allocation failures and I/O errors.
const TELLING: [&str; 10] = [
    "blocked for more than",
    "hung_task",
    "Out of memory",
    "oom-kill",
    "soft lockup",
    "hard LOCKUP",
    "rcu_sched self-detected stall",
    "rcu: INFO",
    "page allocation failure",
    "I/O error",
];

/// Whether a message is one of those that explain a stall.
pub fn is_telling(message: &str) -> bool {
    TELLING.iter().any(|t| message.contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_continuations() {
        let r = parse("6,1234,5678901,-;INFO: task kworker/0:1:42 blocked for more than 120 seconds.").expect("record");
        assert_eq!(
            r,
            Record {
                level: 6,
                at_us: 5_678_901,
                message: "INFO: task kworker/0:1:42 blocked for more than 120 seconds."
            }
        );
        assert!(is_telling(r.message));
        // Facility bits (here 3 << 3) are not part of the level.
        assert_eq!(parse("27,1,2,-;x").map(|r| r.level), Some(3));
        // Extra prefix fields (caller id) are allowed.
        assert_eq!(parse("4,99,100,-,caller=T1;Out of memory: Killed process 7").map(|r| r.at_us), Some(100));
        for bad in [" SUBSYSTEM=block", "", "x,1,2,-;m", "6,1;m", "6,1,notanumber,-;m"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        assert!(!is_telling("usb 1-1: new high-speed USB device"));
    }
}
