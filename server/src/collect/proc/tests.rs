//! The collector over `fixtures/proc/{before,after}`: two snapshots of a small machine
//! two seconds apart. The test copies `before` into a temporary root, then rewrites it
//! in place into `after`, as procfs contents change under descriptors the collector
//! keeps open.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use pmon_proto::v1::ProcessState;

use super::*;

const STEP: Duration = Duration::from_secs(2);
const MIB: u64 = 1024 * 1024;

fn fixture(tree: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/proc").join(tree)
}

/// Makes `dst` hold exactly what `src` holds, rewriting existing files in place (same
/// inode, so open descriptors see the new contents) and removing what `src` lacks.
fn sync_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for entry in std::fs::read_dir(dst).expect("read dst") {
        let entry = entry.expect("entry");
        if !src.join(entry.file_name()).exists() {
            let path = entry.path();
            if path.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) }.expect("remove");
        }
    }
    for entry in std::fs::read_dir(src).expect("read src") {
        let entry = entry.expect("entry");
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        if from.is_dir() {
            sync_tree(&from, &to);
        } else {
            std::fs::write(&to, std::fs::read(&from).expect("read")).expect("write");
        }
    }
}

/// Collects `before`, then `after` two seconds later, with one collector.
fn collect_both(c: &mut ProcCollector, root: &Path) -> (RawSample, RawSample) {
    sync_tree(&fixture("before"), root);
    let t0 = Instant::now();
    let first = c.collect_at(t0, SystemTime::UNIX_EPOCH).expect("before");
    sync_tree(&fixture("after"), root);
    let second = c.collect_at(t0 + STEP, SystemTime::UNIX_EPOCH + STEP).expect("after");
    (first, second)
}

fn two_samples() -> (RawSample, RawSample) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("proc");
    collect_both(&mut ProcCollector::with_units(&root, 100.0, 4096), &root)
}

fn find(sample: &RawSample, pid: u32) -> &ProcessRecord {
    sample.processes.iter().find(|p| p.pid == pid).unwrap_or_else(|| panic!("pid {pid} missing"))
}

#[test]
fn first_sample_has_levels_but_no_rates() {
    let (first, _) = two_samples();
    assert_eq!(first.elapsed, None);
    let app = find(&first, 4242);
    assert_eq!(app.factors.mem_bytes, Some(8 * MIB));
    assert_eq!(app.factors.threads, Some(6));
    for p in &first.processes {
        assert_eq!(p.factors.cpu_percent, None, "pid {}", p.pid);
        assert_eq!(p.factors.csw_per_sec, None, "pid {}", p.pid);
    }
    assert_eq!(first.system.pageins_per_sec, None);
}

#[test]
fn rates_over_the_real_elapsed_time() {
    let (_, s) = two_samples();
    assert_eq!(s.elapsed, Some(STEP));
    let app = find(&s, 4242);
    assert_eq!(app.command, "my (weird) app");
    assert_eq!(app.state, ProcessState::Running);
    // +200 ticks of 1/100 s in 2 s: one full core.
    assert_eq!(app.factors.cpu_percent, Some(100.0));
    assert_eq!(app.factors.csw_per_sec, Some(100.0));
    assert_eq!(app.factors.sysbsd_per_sec, Some(300.0));
    assert_eq!(app.factors.pageins_per_sec, Some(0.0));
    assert_eq!(app.factors.cmprs_bytes, Some(0));

    let dd = find(&s, 500);
    assert_eq!(dd.state, ProcessState::Stuck);
    assert_eq!(dd.factors.pageins_per_sec, Some(1000.0));
    assert_eq!(dd.factors.cmprs_bytes, Some(2 * MIB));
}

#[test]
fn nasty_cases_are_normal_not_errors() {
    let (first, s) = two_samples();
    // Kernel thread: no memory, no system calls, but context switches.
    let k = find(&s, 2);
    assert_eq!((k.factors.mem_bytes, k.factors.cmprs_bytes, k.factors.sysbsd_per_sec), (None, None, None));
    assert_eq!(k.factors.csw_per_sec, Some(5.0));
    // Zombie: state known, no swap line.
    let z = find(&s, 600);
    assert_eq!((z.state, z.factors.cmprs_bytes), (ProcessState::Zombie, None));
    // Unreadable io: sysbsd unavailable, the rest present.
    let o = find(&s, 700);
    assert_eq!(o.factors.sysbsd_per_sec, None);
    assert_eq!(o.factors.csw_per_sec, Some(10.0));
    // Reused pid: the newcomer has no rates; a new pid neither.
    let r = find(&s, 900);
    assert_eq!((r.command.as_str(), r.factors.cpu_percent), ("reused", None));
    assert_eq!(find(&s, 1000).factors.cpu_percent, None);
    // Exited pid is gone; a truncated stat is skipped.
    assert!(first.processes.iter().any(|p| p.pid == 800));
    assert!(s.processes.iter().all(|p| p.pid != 800 && p.pid != 1100));
    assert_eq!(s.processes.len(), 8);
}

#[test]
fn system_figures_and_missing_files() {
    let (_, s) = two_samples();
    let sys = &s.system;
    assert_eq!((sys.load_1m, sys.load_5m, sys.load_15m), (Some(1.5), Some(0.61), Some(0.38)));
    assert_eq!(sys.mem_total_bytes, Some(16_318_412 * 1024));
    assert_eq!(sys.mem_available_bytes, Some(9_000_000 * 1024));
    assert_eq!(sys.swap_used_bytes, Some((2_097_148 - 1_048_572) * 1024));
    assert_eq!(sys.pageins_per_sec, Some(1000.0));
    assert_eq!((sys.swapins_per_sec, sys.swapouts_per_sec), (Some(200.0), Some(500.0)));
    let mem = sys.memory_pressure.as_ref().expect("memory psi");
    assert_eq!((mem.some_avg10_percent, mem.full_avg10_percent), (30.25, Some(20.75)));
    assert!(sys.cpu_pressure.is_some());
    assert_eq!(sys.io_pressure, None, "no pressure/io file: unavailable, not zero");
}

#[test]
fn descriptors_are_kept_for_listed_processes_and_closed_for_gone_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("proc");
    let mut c = ProcCollector::with_units(&root, 100.0, 4096);
    let (first, second) = collect_both(&mut c, &root);
    // stat + status + io per process, but no io for the kernel thread (2) nor where it
    // is missing (700); plus the stat of pid 1100, skipped as truncated before the rest.
    let expected = |s: &RawSample| 3 * s.processes.len() - 2 + 1;
    assert_eq!(first.processes.len(), 8);
    assert_eq!(c.files.kept_count(), expected(&first));
    // 800 exited (its descriptors closed), 1000 arrived.
    assert_eq!(c.files.kept_count(), expected(&second));
}

#[test]
fn a_missing_root_is_an_error_naming_it() {
    let mut c = ProcCollector::new("/nonexistent/proc");
    let err = c.collect().expect_err("no root").to_string();
    assert!(err.contains("/nonexistent/proc"), "{err}");
}

#[cfg(target_os = "linux")]
#[test]
fn the_real_proc_sees_this_process_with_rates_on_the_second_sample() {
    let mut c = ProcCollector::new("/proc");
    c.collect().expect("first");
    // Burn a little CPU so the rate is visibly above zero.
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < Duration::from_millis(50) {
        x = std::hint::black_box(x.wrapping_add(1));
    }
    let s = c.collect().expect("second");
    let me = s.processes.iter().find(|p| p.pid == std::process::id()).expect("self listed");
    assert!(me.factors.cpu_percent.is_some_and(|c| c > 0.0), "{:?}", me.factors);
    assert!(me.factors.mem_bytes.is_some_and(|m| m > 0));
    assert!(me.factors.threads.is_some_and(|t| t >= 1));
    assert!(s.system.mem_total_bytes.is_some());
}

#[cfg(target_os = "linux")]
#[test]
fn a_kept_descriptor_of_a_reaped_process_fails_and_is_dropped() {
    let mut child = std::process::Command::new("sleep").arg("60").spawn().expect("spawn sleep");
    let pid = child.id();
    let mut files = files::ProcFiles::new(Path::new("/proc"));
    let mut pids = Vec::new();
    files.list_pids(&mut pids).expect("list");
    assert!(files.pid_file(pid, PidFile::Stat).is_ok());
    assert_eq!(files.kept_count(), 1);
    child.kill().expect("kill");
    child.wait().expect("reap");
    // The kept descriptor now belongs to a process that is gone: reading it fails, it is
    // dropped, and the path (no such pid) fails too, rather than serving stale bytes.
    assert!(files.pid_file(pid, PidFile::Stat).is_err());
    assert_eq!(files.kept_count(), 0);
}
