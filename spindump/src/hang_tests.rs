//! The hang rules on the fixtures written for them (see `fixtures/README.md`): a thread
//! waiting for work is never hung nor a culprit, a real chain's root is the culprit, and
//! a report with no chain names nobody while its busy main threads stay hung.

use super::*;

pub(crate) const SHUTDOWN: &str = include_str!("../../fixtures/macos/spindump/shutdown_stall_idle_daemon.txt");
pub(crate) const BUSY: &str = include_str!("../../fixtures/macos/spindump/busy_main_thread.txt");
pub(crate) const LOCK: &str = include_str!("../../fixtures/macos/spindump/unfair_lock_chain.txt");
pub(crate) const NO_CHAIN: &str = include_str!("../../fixtures/macos/spindump/no_chain_idle.txt");

fn culprit(a: &Analysis) -> Option<String> {
    a.culprit().map(pmon_proto::format::stack_thread)
}

/// (process, busy, samples, total, waiting for) of each hung app, in order.
fn hung(a: &Analysis) -> Vec<(String, bool, u32, u32, String)> {
    let process = |h: &AppHang| h.thread.as_ref().map(|t| t.process.clone()).unwrap_or_default();
    a.hangs.iter().map(|h| (process(h), h.busy, h.samples, h.total_samples, h.waiting_for.clone())).collect()
}

/// Samples the main thread of `process` spent not waiting for work.
fn main_active(report: &model::Report, process: &str) -> Option<u32> {
    let p = report.processes.iter().find(|p| p.name == process)?;
    p.main_thread().map(model::Thread::active_samples)
}

#[test]
fn an_idle_daemon_beside_a_wait4_chain_is_neither_hung_nor_the_culprit() {
    let r = read(SHUTDOWN).expect("report");
    // securityd's main thread receives on its own ports all report long: waiting for work.
    assert_eq!(main_active(&r, "securityd"), Some(0));
    let a = analyse(&r);
    assert_eq!(culprit(&a).as_deref(), Some("SyncHelper [902] main thread 0x3f20"));
    assert_eq!(a.chains.len(), 1, "{:#?}", a.chains);
    let chain = &a.chains[0];
    let waiters: Vec<(&str, u32, bool)> =
        chain.waiters.iter().map(|g| (g.process.as_str(), g.threads, g.main)).collect();
    assert_eq!(waiters, vec![("launchd", 1, false)]);
    assert_eq!((chain.root_samples, chain.total_samples, chain.state.as_str()), (88, 100, "blocked by disk I/O"));
    assert_eq!(hung(&a), vec![("SyncHelper".into(), false, 100, 100, String::new())]);
    assert_eq!(a.none_named(), None);
}

#[test]
fn a_main_thread_spinning_on_a_cpu_is_hung_yet_names_no_culprit_without_a_chain() {
    let r = read(BUSY).expect("report");
    // dispatch_main's parked main thread and the event thread's run loop wait for work.
    assert_eq!(main_active(&r, "cfprefsd"), Some(0));
    let numbers = r.processes.iter().find(|p| p.name == "Numbers").expect("Numbers");
    assert_eq!(numbers.threads.iter().map(model::Thread::active_samples).collect::<Vec<_>>(), vec![50, 0]);
    let a = analyse(&r);
    assert!(a.chains.is_empty(), "{:#?}", a.chains);
    assert_eq!((culprit(&a), a.why()), (None, None));
    assert_eq!(a.none_named(), Some("no process in this report is blocked by another"));
    assert_eq!(hung(&a), vec![("Numbers".into(), true, 50, 50, String::new())]);
    assert_eq!(a.hangs[0].doing, "walkPrecedents (TSCalculationEngine)");
}

#[test]
fn an_unfair_lock_chain_ends_at_the_thread_holding_the_lock() {
    let a = explain(LOCK).expect("report");
    assert_eq!(culprit(&a).as_deref(), Some("Photos [3310] thread 0x5e02"));
    let chain = &a.chains[0];
    assert_eq!((chain.root_samples, chain.total_samples, chain.state.as_str()), (43, 50, "running, e-core"));
    let waiters: Vec<(&str, u32, u32, bool)> =
        chain.waiters.iter().map(|g| (g.process.as_str(), g.threads, g.samples, g.main)).collect();
    assert_eq!(waiters, vec![("Photos", 2, 100, true)]);
    // The main thread is hung on the lock; photoanalysisd's idle run loop is not.
    assert_eq!(hung(&a), vec![("Photos".into(), false, 50, 50, "Photos [3310] thread 0x5e02".into())]);
}

#[test]
fn a_report_where_nothing_waits_on_anything_names_nobody_and_no_hang() {
    let r = read(NO_CHAIN).expect("report");
    for idle in ["securityd", "Finder"] {
        assert_eq!(main_active(&r, idle), Some(0), "{idle}");
    }
    // mds_stores waits on the disk, but no one waits on mds_stores.
    let mds = r.processes.iter().find(|p| p.name == "mds_stores").expect("mds_stores");
    assert_eq!(mds.threads[0].active_samples(), 100);
    let a = analyse(&r);
    assert!(a.chains.is_empty() && a.hangs.is_empty(), "{a:#?}");
    assert_eq!(culprit(&a), None);
    assert_eq!(a.none_named(), Some("no process in this report is blocked by another"));
}
