//! The graph, the main-thread rule and the chain text on each fixture (see
//! `fixtures/README.md` for the scene each one holds), and arbitrary or damaged text.

use proptest::prelude::*;

use super::*;
use crate::model::{Format, Report};

const WATCHDOG: &str = include_str!("../../fixtures/macos/spindump/watchdog_windowserver_v40.txt");
const LEGACY: &str = include_str!("../../fixtures/macos/spindump/legacy_wide_padded.txt");
const NO_LABELS: &str = include_str!("../../fixtures/macos/spindump/no_queue_labels_base64.txt");
const TAILSPIN: &str = include_str!("../../fixtures/macos/spindump/tailspin_decoded_stall.txt");
const SAMPLE: &str = include_str!("../../fixtures/macos/sample/activity_monitor_mail.txt");
const ALL: [&str; 9] = [
    WATCHDOG,
    LEGACY,
    NO_LABELS,
    TAILSPIN,
    SAMPLE,
    crate::hang_tests::SHUTDOWN,
    crate::hang_tests::BUSY,
    crate::hang_tests::LOCK,
    crate::hang_tests::NO_CHAIN,
];

fn culprit(a: &Analysis) -> String {
    a.culprit().map(pmon_proto::format::stack_thread).unwrap_or_default()
}

/// (process, threads, samples, main among them) of a chain's waiters.
fn waiters(c: &WaitChain) -> Vec<(&str, u32, u32, bool)> {
    c.waiters.iter().map(|g| (g.process.as_str(), g.threads, g.samples, g.main)).collect()
}

fn mains(r: &Report) -> Vec<(String, String)> {
    r.processes.iter().filter_map(|p| p.main_thread().map(|t| (p.name.clone(), t.id.clone()))).collect()
}

#[test]
fn the_watchdog_report_names_the_windowserver_thread_everyone_waited_on() {
    let a = explain(WATCHDOG).expect("report");
    assert_eq!(culprit(&a), "WindowServer [153] main thread 0x3e2");
    // The decoys (mds_stores blocked on disk, backupd running) have no waiters: no chain.
    assert_eq!(a.chains.len(), 1, "{:#?}", a.chains);
    let chain = &a.chains[0];
    assert_eq!(
        chain.why,
        "23 threads of 3 processes waited on WindowServer [153] main thread 0x3e2 (12/12 samples in waitForStamp \
         (AMDRadeonX5000))"
    );
    assert_eq!(waiters(chain), vec![("Safari", 9, 98, true), ("kernel_task", 8, 96, false), ("Dock", 6, 72, true)]);
    assert!(!chain.deadlock);
    let hung: Vec<(String, &str)> = a
        .hangs
        .iter()
        .map(|h| (pmon_proto::format::stack_thread(h.thread.as_ref().expect("thread")), h.waiting_for.as_str()))
        .collect();
    assert!(
        hung.contains(&("Safari [2210] main thread 0x1f00a".into(), "WindowServer [153] main thread 0x3e2")),
        "{hung:?}"
    );
    assert!(
        hung.contains(&("Dock [301] main thread 0xa2f".into(), "WindowServer [153] main thread 0x3e2")),
        "{hung:?}"
    );
}

#[test]
fn sample_ranges_after_frames_never_reach_a_reason() {
    let r = read(WATCHDOG).expect("report");
    for leaf in r.processes.iter().flat_map(|p| &p.threads).flat_map(|t| &t.leaves) {
        let state = leaf.state.as_deref().unwrap_or("");
        assert!(!state.ends_with("1-12") && !state.ends_with("1-7") && !state.ends_with("8-12"), "{state}");
        assert!(!leaf.doing.library.contains(" 1-"), "{:?}", leaf.doing);
    }
    let labels: Vec<String> = r.processes.iter().flat_map(|p| &p.threads).map(|t| t.label()).collect();
    assert!(labels.iter().all(|l| !l.ends_with(' ') && !l.contains("  ")), "{labels:?}");
}

#[test]
fn the_legacy_report_follows_a_lock_to_the_running_thread_that_holds_it() {
    let a = explain(LEGACY).expect("report");
    // Mail's main thread waits on mds 0x1a3f, which waits on the lock 0x1b02 holds.
    assert_eq!(culprit(&a), "mds [371] thread 0x1b02");
    assert_eq!(a.chains[0].state, "running");
    assert_eq!(waiters(&a.chains[0]), vec![("Mail", 1, 1001, true), ("mds", 1, 1001, false)]);
    // The `Thread <multiple>` group waits on its child mdimport: a second chain.
    let mdimport =
        a.chains.iter().find(|c| c.root.as_ref().is_some_and(|r| r.process == "mdimport")).expect("wait4 chain");
    assert_eq!(waiters(mdimport), vec![("Mail", 2, 3003, false)]);
    assert!(
        mdimport.waiters[0].more_threads && mdimport.why.starts_with("at least 2 threads of Mail [812]"),
        "{}",
        mdimport.why
    );
    // A port note names the receiving thread.
    let audio =
        a.chains.iter().find(|c| c.root.as_ref().is_some_and(|r| r.process == "coreaudiod")).expect("port chain");
    assert_eq!(audio.root.as_ref().map(|r| r.thread.as_str()), Some("0x9e1"));
    let hang = a.hangs.iter().find(|h| h.thread.as_ref().is_some_and(|t| t.process == "Mail")).expect("Mail hung");
    assert_eq!((hang.busy, hang.waiting_for.as_str()), (false, "mds [371] thread 0x1a3f"));
    assert_eq!(hang.doing, "__psynch_mutexwait (libsystem_kernel.dylib)");
}

#[test]
fn a_report_without_queue_labels_still_knows_main_threads_and_names() {
    let r = read(NO_LABELS).expect("report despite the base64 tail and no final newline");
    assert_eq!(r.exited, vec![412]);
    // The first thread that began in `start` is the main one; smd's are all workers.
    assert_eq!(
        mains(&r),
        vec![("RemoteMic".to_string(), "0x4c6a".to_string()), ("mdworker_shared".to_string(), "0x5a01".to_string())]
    );
    let remote = &r.processes[0];
    assert_eq!(remote.threads[1].label(), "0x4c6d \"AudioEngine\"");
    let a = analyse(&r);
    // RemoteMic's main thread waits on smd by name, its audio thread on the main thread.
    assert_eq!(culprit(&a), "smd [245] thread 0x3001");
    assert_eq!(
        a.chains[0].why,
        "2 threads of RemoteMic [4410] waited on smd [245] thread 0x3001 (40/40 samples running in ccdigest_update (libcorecrypto.dylib))"
    );
    assert_eq!(waiters(&a.chains[0]), vec![("RemoteMic", 2, 80, true)]);
    // A thread waiting on itself waits on nobody else; a target gone from the report is said so.
    let gone = &a.chains[1];
    assert_eq!(
        (gone.root.as_ref().map(|r| r.pid), gone.state.as_str()),
        (Some(Some(412)), "exited while the report was taken")
    );
    let hung: Vec<&str> = a.hangs.iter().filter_map(|h| h.thread.as_ref()).map(|t| t.process.as_str()).collect();
    assert_eq!(hung, vec!["RemoteMic"]);
}

#[test]
fn activity_monitors_sample_lists_its_hung_main_thread_and_blames_nobody() {
    let r = read(SAMPLE).expect("sample report");
    assert_eq!((r.format, r.processes.len()), (Format::Sample, 1));
    let mail = &r.processes[0];
    assert_eq!((mail.name.as_str(), mail.pid, mail.samples), ("Mail", Some(812), Some(2453)));
    let labels: Vec<String> = mail.threads.iter().map(|t| t.label()).collect();
    assert_eq!(labels[0], "12789423 \"com.apple.main-thread\"");
    assert_eq!(mains(&r), vec![("Mail".to_string(), "12789423".to_string())]);
    let idle: Vec<bool> = mail.threads.iter().map(|t| t.active_samples() == 0).collect();
    assert_eq!(idle, vec![false, false, true, true], "the event thread and the parked worker are idle");
    let a = analyse(&r);
    assert!(a.chains.is_empty(), "sample has no blocked-by notes");
    assert_eq!((a.culprit(), a.why()), (None, None));
    assert_eq!(a.none_named(), Some("a sample report does not say which thread waits on which"));
    let hung: Vec<String> = a.hangs.iter().map(pmon_proto::format::app_hang).collect();
    assert_eq!(
        hung,
        vec![
            "Mail [812] main thread 12789423: hung 2453/2453 samples, mostly blocked in __psynch_mutexwait \
             (libsystem_kernel.dylib) under -[MFLibraryStore messagesMatchingCriterion:]"
        ]
    );
}

#[test]
fn the_tailspin_fixture_ends_at_the_disk() {
    let a = explain(TAILSPIN).expect("report");
    assert_eq!(culprit(&a), "mds_stores [412] thread 0x9b2");
    assert!(a.chains[0].state.starts_with("blocked by disk I/O"), "{:?}", a.chains[0]);
    assert_eq!(waiters(&a.chains[0]), vec![("Safari", 1, 341, true), ("WindowServer", 1, 298, true)]);
}

#[test]
fn a_circle_of_waits_is_called_a_deadlock() {
    let text = "Process:          A [10]\n\
                \x20 Thread 0x1    DispatchQueue \"com.apple.main-thread\"(1)    5 samples (1-5)\n\
                \x20 5  start + 1 (dyld + 1) [0x1]\n\
                \x20  *5  psynch_mtxcontinue + 0 (pthread + 1) [0xffffff8000000001] (blocked by unfair lock owned by B [20] thread 0x2)\n\
                Process:          B [20]\n\
                \x20 Thread 0x2    5 samples (1-5)\n\
                \x20 5  start + 1 (dyld + 1) [0x1]\n\
                \x20  *5  psynch_mtxcontinue + 0 (pthread + 1) [0xffffff8000000001] (blocked by turnstile waiting for A [10] thread 0x1)\n";
    let a = explain(text).expect("report");
    assert_eq!(a.chains.len(), 1, "{:#?}", a.chains);
    assert_eq!(waiters(&a.chains[0]), vec![("B", 1, 5, true)]);
    let alone = text.replace("owned by B [20] thread 0x2", "owned by A [10] thread 0x1");
    assert!(
        explain(&alone).expect("report").chains.iter().all(|c| !c.waiters.is_empty()),
        "a thread waiting on itself heads no chain"
    );
    assert!(a.chains[0].deadlock && a.chains[0].why.contains("waited in a circle (a deadlock)"), "{}", a.chains[0].why);
}

/// A one-process report: `threads` are (header after `Thread `, frame lines).
fn report(process: &str, threads: &[(&str, &[&str])]) -> String {
    let mut text = format!("Process:          {process}\n");
    for (header, frames) in threads {
        text += &format!("  Thread {header}\n");
        for f in *frames {
            text += &format!("  {f}\n");
        }
    }
    text
}

#[test]
fn a_pid_not_in_the_report_is_never_taken_for_a_namesake() {
    let waiter = report(
        "W [1]",
        &[("0x1    5 samples", &["5  start + 1 (dyld + 1) [0x1] (blocked by wait4 on mdworker [5121])"])],
    );
    let namesake = report("mdworker [5120]", &[("0x9    5 samples", &["5  start + 1 (dyld + 1) [0x1] (running)"])]);
    let a = explain(&(waiter + &namesake)).expect("report");
    assert_eq!(culprit(&a), "mdworker [5121]");
    assert_eq!(a.chains[0].state, "not in the report; it may have exited");
}

#[test]
fn waiting_on_its_own_process_by_name_is_no_deadlock() {
    let text = report(
        "Solo [7]",
        &[("0x1    5 samples", &["5  start + 1 (dyld + 1) [0x1] (blocked by turnstile waiting for Solo)"])],
    );
    let a = explain(&text).expect("report");
    assert!(a.chains.iter().all(|c| !c.deadlock), "{:#?}", a.chains);
}

#[test]
fn a_chain_of_workers_waiting_on_a_disk_leads_an_app_spinning_on_its_own() {
    let app = report(
        "Spinner [10]",
        &[
            (
                "0x1    DispatchQueue \"com.apple.main-thread\"(1)    9 samples",
                &["9  start + 1 (dyld + 1) [0x1]", "  9  spin + 1 (Spinner + 1) [0x2] (running)"],
            ),
            (
                "0x2    9 samples",
                &[
                    "9  start_wqthread + 1 (libsystem_pthread.dylib + 1) [0x3] (blocked by turnstile waiting for D [20] thread 0x5)",
                ],
            ),
        ],
    );
    let disk = report(
        "D [20]",
        &[("0x5    9 samples", &["9  start_wqthread + 1 (libsystem_pthread.dylib + 1) [0x3] (blocked by disk I/O)"])],
    );
    let a = explain(&(app + &disk)).expect("report");
    assert_eq!(a.chains.len(), 1);
    // A thread that others wait on is the reason they wait; the spinning app stays hung.
    assert_eq!(culprit(&a), "D [20] thread 0x5");
    assert_eq!(a.hangs.len(), 1);
    let hang = pmon_proto::format::app_hang(&a.hangs[0]);
    assert!(
        a.hangs[0].busy && hang.starts_with("Spinner [10] main thread 0x1") && hang.contains("busy in spin"),
        "{hang}"
    );
}

#[test]
fn the_main_thread_is_found_when_only_workers_carry_queue_labels_and_exits_anywhere_count() {
    let text = format!(
        "[9] has exited\n{}",
        report(
            "App [3]",
            &[
                (
                    "0x7    DispatchQueue \"com.apple.root.default-qos\"(13)    4 samples",
                    &["4  start_wqthread + 1 (libsystem_pthread.dylib + 1) [0x1]"]
                ),
                (
                    "0x8    4 samples",
                    &[
                        "4  start + 1 (dyld + 1) [0x2]",
                        "  4  ??? (App + 1) [0x3] (blocked by turnstile waiting for X [9] thread 0x1)"
                    ]
                ),
            ],
        )
    );
    let r = read(&text).expect("report");
    assert_eq!((mains(&r), r.exited.clone()), (vec![("App".to_string(), "0x8".to_string())], vec![9]));
    let a = analyse(&r);
    assert_eq!(a.chains[0].state, "exited while the report was taken");
    let missing = text.replace("X [9] thread 0x1", "App [3] thread 0x99");
    let a = explain(&missing).expect("report");
    assert_eq!(a.chains[0].state, "its thread 0x99 is not in the report");
}

#[test]
fn counts_as_large_as_a_report_may_print_add_up_without_overflowing() {
    let max = u32::MAX;
    let mut text =
        format!("Process: R [1]\n  Thread 0x1    {max} samples\n  {max}  start + 1 (dyld + 1) [0x1] (running)\n");
    for pid in 2..5 {
        text += &format!(
            "Process: W [{pid}]\n  Thread 0x1    {max} samples\n  {max}  start + 1 (dyld + 1) [0x1]\n    {max}  a + 1 (b + 1) [0x2] (blocked by wait4 on R [1])\n    {max}  c + 1 (d + 1) [0x3] (blocked by wait4 on R [1])\n"
        );
    }
    let a = explain(&text).expect("report");
    assert_eq!(a.chains[0].waiters.len(), 3);
    assert!(a.chains[0].why.starts_with("3 threads of 3 processes"), "{}", a.chains[0].why);
}

#[test]
fn every_fixture_names_a_culprit_that_is_in_it_exactly_when_it_holds_a_chain() {
    for text in ALL {
        let a = explain(text).expect("report");
        match a.culprit() {
            Some(c) => assert!(text.contains(&format!("{} [{}]", c.process, c.pid.unwrap_or(0))), "{c:?}"),
            None => assert!(a.chains.is_empty() && a.none_named().is_some(), "{:#?}", a.chains),
        }
        assert_eq!(a.culprit().is_some(), !a.chains.is_empty());
    }
}

/// The byte offsets of `text` that start a character.
fn boundary(text: &str, at: usize) -> usize {
    (0..=at.min(text.len())).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0)
}

/// Cases per property: `PMON_FUZZ_CASES` (README, "Fuzzing the parsers"), or 256.
fn cases() -> u32 {
    std::env::var("PMON_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC*") {
        let _ = explain(&text);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let _ = explain(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn truncated_reports_never_panic_and_blame_only_what_they_hold(which in 0..ALL.len(), cut in 0usize..40_000) {
        let text = ALL[which];
        let head = &text[..boundary(text, cut)];
        if let Some(c) = explain(head).ok().as_ref().and_then(Analysis::culprit) {
            prop_assert!(head.contains(&c.process), "{c:?}");
        }
    }

    #[test]
    fn damaged_reports_never_panic(which in 0..ALL.len(), edits in proptest::collection::vec((any::<usize>(), any::<char>()), 0..30)) {
        let mut chars: Vec<char> = ALL[which].chars().collect();
        for (at, c) in edits {
            let at = at % chars.len();
            chars[at] = c;
        }
        let damaged: String = chars.into_iter().collect();
        let _ = explain(&damaged);
        let halved: String = damaged.lines().map(|l| l.chars().take(l.chars().count() / 2).collect::<String>() + "\n").collect();
        let _ = explain(&halved);
    }
}
