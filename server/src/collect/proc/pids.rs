//! Which pids a sample reads: the previous sample's, and those born since.
//!
//! Listing /proc makes the kernel look up every process (~0.8 µs each, measured: a
//! tenth of a sample at 300 mostly idle processes). A new process needs a new pid, and
//! the kernel hands pids out in increasing order, the last one shown in
//! `/proc/loadavg`. So while that last pid stays the same, the previous list minus the
//! exited is the list; when it moved forward by a few, every newcomer's pid lies
//! between the two, and trying just those few finds them. A pid tried that way may
//! also be a thread of an older process (threads take their ids from the same
//! numbers): [`is_process`] tells.
//!
//! /proc is listed again when the last pid went backwards (the pid space wrapped), when
//! it moved by more than a share of the processes (trying is then dearer than
//! listing), and every [`RELIST`] samples regardless: a process given its pid on
//! purpose (`clone3` with `set_tid`, as checkpoint/restore tools do) leaves the last
//! pid where it was, and that bounds how long it can go unseen.

/// /proc is listed at least once per this many samples.
pub(super) const RELIST: u64 = 30;
/// Up to this many new pids are always tried rather than listing.
const TRY_AT_LEAST: usize = 8;
/// Up to one new pid per this many known processes is tried rather than listing: a
/// pid tried costs at most ~20 µs (a thread, told by its `status`), listing ~0.8 µs
/// per process.
const TRY_SHARE: usize = 16;

/// How a sample finds its processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Discovery {
    /// The previous sample's processes, less those that exited.
    Known,
    /// Those, and whichever of these new pids are processes.
    Try(Vec<u32>),
    /// List /proc.
    List,
}

/// How to find this sample's processes, from the last pid handed out at the previous
/// sample and now (`None` where unknown, or when the previous sample did not list),
/// the pids known from it, and whether the periodic listing is due.
pub(super) fn discovery(before: Option<u32>, now: Option<u32>, known: &[u32], relist_due: bool) -> Discovery {
    let (Some(before), Some(now)) = (before, now) else { return Discovery::List };
    if relist_due || now < before {
        return Discovery::List;
    }
    if now == before {
        return Discovery::Known;
    }
    let limit = (known.len() / TRY_SHARE).max(TRY_AT_LEAST);
    if usize::try_from(now - before).is_ok_and(|new| new <= limit) {
        let new = before.saturating_add(1)..=now;
        // A process started while the previous sample listed is known already.
        let listed: Vec<u32> = known.iter().copied().filter(|pid| new.contains(pid)).collect();
        Discovery::Try(new.filter(|pid| !listed.contains(pid)).collect())
    } else {
        Discovery::List
    }
}

/// Whether a pid tried without listing is a process: its `status` says its thread
/// group is its own. A thread's id opens under /proc too, but is not listed there. A
/// `status` without the line (never seen from a real kernel) is taken as a process,
/// so that none is lost.
pub(super) fn is_process(pid: u32, tgid: Option<u32>) -> bool {
    tgid.is_none_or(|tgid| tgid == pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_last_pid_keeps_the_known_processes() {
        assert_eq!(discovery(Some(500), Some(500), &[1, 2, 500], false), Discovery::Known);
    }

    #[test]
    fn a_few_new_pids_are_tried_unless_known() {
        assert_eq!(discovery(Some(500), Some(503), &[1, 2, 480], false), Discovery::Try(vec![501, 502, 503]));
        // 502 was seen by the previous listing, which ran after its loadavg was read.
        assert_eq!(discovery(Some(500), Some(503), &[1, 2, 502], false), Discovery::Try(vec![501, 503]));
        // Processes older than a wrap of the pid space have higher pids.
        assert_eq!(discovery(Some(500), Some(502), &[1, 40_000], false), Discovery::Try(vec![501, 502]));
    }

    #[test]
    fn many_new_pids_a_wrap_an_unknown_pid_or_the_period_list_again() {
        let known: Vec<u32> = (1..=320).collect();
        // 320 known: up to 20 new pids are tried, not 21.
        assert_eq!(discovery(Some(1000), Some(1020), &known, false), Discovery::Try((1001..=1020).collect()));
        assert_eq!(discovery(Some(1000), Some(1021), &known, false), Discovery::List);
        assert_eq!(discovery(Some(1000), Some(1008), &[1], false), Discovery::Try((1001..=1008).collect()));
        assert_eq!(discovery(Some(1000), Some(1009), &[1], false), Discovery::List);
        assert_eq!(discovery(Some(1000), Some(300), &known, false), Discovery::List, "wrapped");
        assert_eq!(discovery(None, Some(1000), &known, false), Discovery::List);
        assert_eq!(discovery(Some(1000), None, &known, false), Discovery::List);
        assert_eq!(discovery(Some(1000), Some(1000), &known, true), Discovery::List);
    }

    #[test]
    fn a_thread_is_not_a_process() {
        assert!(is_process(700, Some(700)));
        assert!(!is_process(701, Some(700)));
        assert!(is_process(701, None));
    }
}
