//! From a pause's stack report to its event: the finding's text, and the culprits with
//! the root of the longest chain of waits put first. Plain code, tested on any platform;
//! only the step that runs spindump is macOS's.

use std::sync::Arc;

use pmon_proto::{
    format,
    v1::{Culprit, Sample},
};
use pmon_spindump::Analysis;

/// Chains and hangs shown in the finding.
const SHOWN: usize = 8;

/// The finding of a decoded report: a summary, the chains and hangs in words, and the
/// analysis (`None` when the text is no report spindump would write).
pub fn report(text: &str) -> (String, String, Option<Analysis>) {
    let analysis = match pmon_spindump::explain(text) {
        Ok(a) => a,
        Err(e) => return (format!("spindump's report could not be read: {e}"), String::new(), None),
    };
    let summary = match (analysis.culprit(), analysis.why(), analysis.none_named()) {
        (Some(c), Some(why), _) => format!("{}: {why}", format::stack_thread(c)),
        (_, _, reason) => format!(
            "{} ({} threads of {} processes read)",
            reason.unwrap_or_default(),
            analysis.threads,
            analysis.processes
        ),
    };
    let mut lines: Vec<String> = analysis.chains.iter().take(SHOWN).flat_map(format::wait_chain).collect();
    lines.extend(analysis.hangs.iter().take(SHOWN).map(|h| format!("hung: {}", format::app_hang(h))));
    (summary, lines.join("\n"), Some(analysis))
}

/// The event's culprits with the report's culprit first: the same process, if it was
/// already blamed, keeps its figures and gains the chain's why; otherwise it comes
/// from the ring (its last rogue there) or from the report alone.
pub fn lead(culprits: &[Culprit], analysis: &Analysis, ring: &[Arc<Sample>]) -> Vec<Culprit> {
    let (Some(root), Some(why)) = (analysis.culprit(), analysis.why()) else { return culprits.to_vec() };
    let pid_of = |c: &Culprit| c.rogue.as_ref().map(|r| r.pid).or(c.usage.as_ref().map(|u| u.pid));
    let mut rest: Vec<Culprit> = culprits.to_vec();
    let known = root.pid.and_then(|pid| rest.iter().position(|c| pid_of(c) == Some(pid))).map(|at| rest.remove(at));
    let first = match known {
        Some(c) => Culprit { why: format!("{why}; {}", c.why), waited_on: Some(root.clone()), ..c },
        None => {
            let rogue = root
                .pid
                .and_then(|pid| ring.iter().rev().flat_map(|s| s.rogues.iter()).find(|r| r.pid == pid).cloned());
            let seen = root.pid.map_or(0, |pid| ring.iter().filter(|s| s.rogues.iter().any(|r| r.pid == pid)).count());
            Culprit {
                rogue,
                samples_seen: u32::try_from(seen).unwrap_or(u32::MAX),
                why,
                usage: None,
                waited_on: Some(root.clone()),
            }
        }
    };
    std::iter::once(first).chain(rest).collect()
}

#[cfg(test)]
mod tests {
    use pmon_proto::v1::{ProcessUse, Rogue};

    use super::*;

    const WATCHDOG: &str = include_str!("../../../fixtures/macos/spindump/watchdog_windowserver_v40.txt");
    const BUSY: &str = include_str!("../../../fixtures/macos/spindump/busy_main_thread.txt");

    fn rogue(pid: u32, command: &str) -> Rogue {
        Rogue { pid, command: command.into(), score: 40.0, ..Rogue::default() }
    }

    #[test]
    fn the_finding_names_the_root_and_lists_the_chain() {
        let (summary, detail, analysis) = report(WATCHDOG);
        assert!(analysis.is_some());
        assert!(
            summary.starts_with("WindowServer [153] main thread 0x3e2: 23 threads of 3 processes waited on"),
            "{summary}"
        );
        assert!(detail.lines().any(|l| l.contains("Safari [2210]: 9 threads")), "{detail}");
        assert!(detail.contains("hung: "), "{detail}");
        let (summary, _, analysis) = report("spindump: cannot read trace\n");
        assert!(analysis.is_none() && summary.contains("could not be read"), "{summary}");
    }

    #[test]
    fn a_report_with_no_chain_says_so_and_still_lists_its_hung_apps() {
        let (summary, detail, analysis) = report(BUSY);
        assert!(analysis.is_some_and(|a| a.culprit().is_none()));
        assert!(summary.starts_with("no process in this report is blocked by another ("), "{summary}");
        assert!(detail.lines().any(|l| l.starts_with("hung: Numbers [4127] main thread")), "{detail}");
    }

    #[test]
    fn the_root_goes_first_keeping_what_was_known_of_it() {
        let analysis = pmon_spindump::explain(WATCHDOG).expect("report");
        let backupd = Culprit { rogue: Some(rogue(611, "backupd")), why: "cpu 98%".into(), ..Culprit::default() };
        let server = Culprit {
            usage: Some(ProcessUse { pid: 153, command: "WindowServer".into(), ..ProcessUse::default() }),
            why: "cpu 12%".into(),
            ..Culprit::default()
        };
        let led = lead(&[backupd.clone(), server], &analysis, &[]);
        assert_eq!(led.len(), 2);
        assert_eq!(led[0].usage.as_ref().map(|u| u.pid), Some(153));
        assert!(
            led[0].why.starts_with("23 threads of 3 processes") && led[0].why.ends_with("; cpu 12%"),
            "{}",
            led[0].why
        );
        assert_eq!(led[0].waited_on.as_ref().map(|t| t.thread.as_str()), Some("0x3e2"));
        assert_eq!(led[1], backupd);
        assert!(format::culprit(&led[0]).starts_with("WindowServer[153]: 23 threads"));
    }

    #[test]
    fn a_root_never_blamed_before_comes_from_the_ring_or_the_report() {
        let analysis = pmon_spindump::explain(WATCHDOG).expect("report");
        let ring = vec![
            Arc::new(Sample { rogues: vec![rogue(153, "WindowServer")], ..Sample::default() }),
            Arc::new(Sample::default()),
        ];
        let led = lead(&[], &analysis, &ring);
        assert_eq!((led[0].rogue.as_ref().map(|r| r.pid), led[0].samples_seen), (Some(153), 1));
        let alone = lead(&[], &analysis, &[]);
        assert!(alone[0].rogue.is_none() && alone[0].usage.is_none());
        assert_eq!(format::culprit(&alone[0]), format!("WindowServer[153]: {}", alone[0].why));
        let nothing = pmon_spindump::Analysis::default();
        assert!(lead(&[], &nothing, &ring).is_empty());
    }
}
