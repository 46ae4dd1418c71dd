//! The collector over `fixtures/proc/{before,after}`: two snapshots of a small machine
//! two seconds apart. The test copies `before` into a temporary root, then rewrites it
//! in place into `after`, as procfs contents change under descriptors the collector
//! keeps open.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use pmon_proto::v1::{ProcessState, SchedPolicy};

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

/// A collector over `dir/proc`, a copy of `before`, and that root.
fn over_before(dir: &Path) -> (ProcCollector, PathBuf) {
    let root = dir.join("proc");
    let c = ProcCollector::with_units(&root, 100.0, 4096);
    sync_tree(&fixture("before"), &root);
    (c, root)
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
fn each_reading_says_what_the_process_consumed_waited_and_grew_since_the_last() {
    let (first, s) = two_samples();
    assert!(first.processes.iter().all(|p| p.usage.is_none()), "nothing before the first sample");
    let app = find(&s, 4242).usage.expect("usage");
    // Six threads: CPU from stat's ticks, all threads; the waits are the main thread's.
    assert_eq!((app.span, app.cpu), (STEP, Duration::from_secs(2)));
    let pool = find(&s, 1200);
    assert_eq!(pool.ppid, Some(1));
    let sched = pool.scheduling.expect("scheduling");
    assert_eq!((sched.policy, sched.rt_priority, sched.nice), (SchedPolicy::Normal, 0, Some(0)));
    // Born between the samples (started at 1001.50 s of uptime, read at 1002.50 s):
    // all its counters are its doing since.
    let newborn = find(&s, 1000);
    assert_eq!(newborn.factors.cpu_percent, None, "no rate at first sight");
    let u = newborn.usage.expect("a newborn's usage");
    assert_eq!((u.span, u.cpu, u.pageins), (Duration::from_secs(1), Duration::from_millis(250), Some(3)));
    assert_eq!((u.run_delay, u.mem_growth), (Some(Duration::from_nanos(10)), Some(16 * MIB as i64)));
    assert_eq!(find(&s, 900).usage, None, "a reused pid whose process is older than the last sample");
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
    assert_eq!(s.processes.len(), 9);
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
fn processes_gone_half_way_and_machine_files_cut_short_leave_a_sound_sample() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("proc");
    sync_tree(&fixture("before"), &root);
    // 500 exits after its stat was read (its status is gone); 1200 after it was listed.
    std::fs::remove_file(root.join("500/status")).expect("remove status");
    for entry in std::fs::read_dir(root.join("1200")).expect("1200") {
        std::fs::remove_file(entry.expect("entry").path()).expect("remove");
    }
    // Machine files read while being cut short: half a meminfo, an empty loadavg.
    std::fs::write(root.join("meminfo"), "MemTotal:       16318412 kB\nMemFree:   12").expect("meminfo");
    std::fs::write(root.join("loadavg"), "").expect("loadavg");
    let mut c = ProcCollector::with_units(&root, 100.0, 4096);
    let s = c.collect_at(Instant::now(), SystemTime::UNIX_EPOCH).expect("a sample despite all that");
    assert!(s.processes.iter().all(|p| p.pid != 500 && p.pid != 1200), "gone processes are left out");
    assert_eq!(s.processes.len(), 7, "the other processes are all there");
    assert_eq!(s.system.mem_total_bytes, Some(16_318_412 * 1024));
    assert_eq!((s.system.mem_available_bytes, s.system.load_1m), (None, None), "unavailable, not zero");
    // Exiting is normal; a stat that makes no sense (1100's is cut short) is a problem
    // the source reports.
    let (_, why) = c.health().last_problem.expect("the garbled stat is reported");
    assert!(why.starts_with("pid 1100 skipped: ") && why.contains("/1100/stat"), "{why}");
}

#[test]
fn descriptors_are_kept_for_listed_processes_and_closed_for_gone_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut c, root) = over_before(dir.path());
    let t0 = Instant::now();
    let first = c.collect_at(t0, SystemTime::UNIX_EPOCH).expect("before");
    // stat + status + io per process, but no io for the kernel thread (2) nor where it
    // is missing (700); plus the stat of pid 1100, skipped as truncated before the rest;
    // plus schedstat where the tree has one (1, 2, 500, 600, 900, 1200, 4242).
    assert_eq!(first.processes.len(), 9);
    assert_eq!(c.files.kept_count(), 3 * 9 - 2 + 1 + 7);
    sync_tree(&fixture("after"), &root);
    c.collect_at(t0 + STEP, SystemTime::UNIX_EPOCH + STEP).expect("after");
    // 800 exited (its stat, status and io closed), 1000 arrived with all four.
    assert_eq!(c.files.kept_count(), 3 * 9 - 2 + 1 + 7 - 3 + 4);
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

/// Like [`collect_both`], but the machine did not swap between the snapshots: `after`'s
/// vmstat keeps `before`'s swap counters.
fn collect_both_without_swapping(c: &mut ProcCollector, root: &Path) -> (RawSample, RawSample) {
    collect_both_with_vmstat(c, root, "", "")
}

/// Both snapshots with `before`'s swap counters, plus `extra` lines in each vmstat.
fn collect_both_with_vmstat(c: &mut ProcCollector, root: &Path, extra0: &str, extra1: &str) -> (RawSample, RawSample) {
    let rewrite = |extra: &str| {
        let vmstat = std::fs::read_to_string(root.join("vmstat")).expect("vmstat");
        let vmstat = vmstat.replace("pswpin 410", "pswpin 10").replace("pswpout 1020", "pswpout 20");
        std::fs::write(root.join("vmstat"), vmstat + extra).expect("rewrite vmstat");
    };
    sync_tree(&fixture("before"), root);
    rewrite(extra0);
    let t0 = Instant::now();
    let first = c.collect_at(t0, SystemTime::UNIX_EPOCH).expect("before");
    sync_tree(&fixture("after"), root);
    rewrite(extra1);
    let second = c.collect_at(t0 + STEP, SystemTime::UNIX_EPOCH + STEP).expect("after");
    (first, second)
}

#[test]
fn reading_only_what_can_have_changed_gives_what_reading_everything_gives() {
    type Both = fn(&mut ProcCollector, &Path) -> (RawSample, RawSample);
    for (case, both) in [("swapping", collect_both as Both), ("not swapping", collect_both_without_swapping)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("proc");
        let selective = both(&mut ProcCollector::with_units(&root, 100.0, 4096), &root);
        let mut naive = ProcCollector::with_units(&root, 100.0, 4096);
        naive.read_everything = true;
        let naive = both(&mut naive, &root);
        assert_eq!(selective, naive, "{case}");
    }
}

#[test]
fn status_is_read_only_where_vm_swap_can_have_moved_and_sleepers_skip_io() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("proc");
    let mut c = ProcCollector::with_units(&root, 100.0, 4096);
    sync_tree(&fixture("before"), &root);
    let t0 = Instant::now();
    c.collect_at(t0, SystemTime::UNIX_EPOCH).expect("before");
    let reads = |c: &ProcCollector| (c.files.reads(PidFile::Status), c.files.reads(PidFile::Io));
    let (status0, io0) = reads(&c);
    drop(c);

    let mut c = ProcCollector::with_units(&root, 100.0, 4096);
    let (_, s) = collect_both_without_swapping(&mut c, &root);
    let (status, io) = reads(&c);
    // status is read for VmSwap alone (the switches are schedstat's): by 500, which
    // holds swap and ran, and by the pool 1200, which holds swap and whose workers may
    // have run while its main thread slept; not by 2 (a kernel thread) or 4242 (no
    // swap), which ran too, nor by the idle 1 and 600. 700 has no schedstat (a kernel
    // without it): read in full, as are the reused pid 900 and the newcomer 1000.
    // The single-threaded idle 1 and 600 keep their io; the pool's workers ran, so its
    // io is read.
    assert_eq!(status - status0, 5, "status of 500, 700, 900, 1000, 1200");
    assert_eq!(io - io0, 6, "io of 500, 700 (tried), 900, 1000, 1200, 4242");
    // Of those, the sleeping single-threaded 1 and the zombie 600 keep their stat too.
    let listed = s.processes.len() + 1; // and the truncated 1100
    assert_eq!(c.files.reads(PidFile::Stat) - listed, listed - 2);
    let pool = find(&s, 1200);
    assert_eq!(pool.factors.sysbsd_per_sec, Some(600.0), "workers' system calls counted");
    assert_eq!(pool.factors.csw_per_sec, Some(0.0), "the main thread slept");
    assert_eq!(pool.factors.cmprs_bytes, Some(512 * 1024));
    assert_eq!(find(&s, 1).factors.sysbsd_per_sec, Some(0.0));
}

#[test]
fn every_status_is_read_again_within_the_refresh_period() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("proc");
    let mut c = ProcCollector::with_units(&root, 100.0, 4096);
    let (_, s) = collect_both_without_swapping(&mut c, &root);
    let before = c.files.reads(PidFile::Status);
    let t0 = Instant::now();
    for i in 1..=STATUS_REFRESH {
        let step = STEP * u32::try_from(i).expect("small");
        c.collect_at(t0 + step, SystemTime::UNIX_EPOCH + step).expect("unchanged tree");
    }
    // Nothing changes any more: 700 (no schedstat) and the pool 1200 (several
    // threads, holding swap: a worker may free some unseen) are read every time, every
    // other process once, by the refresh.
    let reads = c.files.reads(PidFile::Status) - before;
    assert_eq!(reads as u64, 2 * STATUS_REFRESH + (s.processes.len() as u64 - 2));
}

#[test]
fn pages_going_to_zswap_count_as_swapping() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("proc");
    let status_reads = |extra1: &str| {
        let mut c = ProcCollector::with_units(&root, 100.0, 4096);
        let (first, _) = collect_both_with_vmstat(&mut c, &root, "zswpin 5\nzswpout 8\n", extra1);
        c.files.reads(PidFile::Status) - first.processes.len()
    };
    // No device swapping, but zswap took pages: every VmSwap may have changed.
    assert_eq!(status_reads("zswpin 5\nzswpout 90\n"), 9);
    assert_eq!(status_reads("zswpin 5\nzswpout 8\n"), 5);
}

#[test]
fn reclaim_makes_every_stat_read_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("proc");
    let mut c = ProcCollector::with_units(&root, 100.0, 4096);
    let (first, second) = collect_both_with_vmstat(&mut c, &root, "", "pgsteal_kswapd 9000\n");
    let listed = |s: &RawSample| s.processes.len() + 1; // and the truncated 1100
    assert_eq!(c.files.reads(PidFile::Stat), listed(&first) + listed(&second));
}

#[cfg(target_os = "linux")]
#[test]
fn the_real_proc_agrees_with_reading_everything_for_a_sleeping_process() {
    let mut child = std::process::Command::new("sleep").arg("60").spawn().expect("spawn sleep");
    let pid = child.id();
    let mut selective = ProcCollector::new("/proc");
    let mut naive = ProcCollector::new("/proc");
    naive.read_everything = true;
    let mut records = Vec::new();
    for _ in 0..3 {
        for c in [&mut selective, &mut naive] {
            let s = c.collect().expect("sample");
            records.push(s.processes.into_iter().find(|p| p.pid == pid).expect("child listed"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().expect("kill");
    child.wait().expect("reap");
    let (sel, nai) = (&records[4], &records[5]);
    assert_eq!(sel.state, ProcessState::Sleeping);
    assert_eq!((sel.command.as_str(), sel.state), (nai.command.as_str(), nai.state));
    let f = |r: &ProcessRecord| {
        let f = r.factors;
        (f.mem_bytes, f.cmprs_bytes, f.threads, f.cpu_percent, f.csw_per_sec, f.sysbsd_per_sec, f.pageins_per_sec)
    };
    assert_eq!(f(sel), f(nai));
    assert_eq!(sel.factors.csw_per_sec, Some(0.0), "sleep does not run");
}

/// `sh -c SCRIPT`, killed and reaped when dropped.
#[cfg(target_os = "linux")]
struct Shell(std::process::Child);

#[cfg(target_os = "linux")]
impl Shell {
    fn start(script: &str) -> Shell {
        Shell(std::process::Command::new("sh").args(["-c", script]).spawn().expect("spawn sh"))
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

#[cfg(target_os = "linux")]
impl Drop for Shell {
    fn drop(&mut self) {
        // Failing means it exited already; the wait reaps it either way.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(target_os = "linux")]
#[test]
fn the_real_schedstat_counts_the_switches_status_counts() {
    // A child that switched a few dozen times, then sleeps: both counters hold still.
    let child = Shell::start("for i in 1 2 3 4 5 6 7 8; do sleep 0.005; done; exec sleep 60");
    std::thread::sleep(Duration::from_millis(400));
    let read = |name: &str| std::fs::read(format!("/proc/{}/{name}", child.pid())).expect(name);
    let (sched, status) = (parse::schedstat(&read("schedstat")), parse::status(&read("status")));
    drop(child);
    let sched = sched.expect("this kernel keeps scheduler statistics");
    assert!(sched.timeslices > 1, "{sched:?}");
    assert_eq!(Some(sched.timeslices), status.ctxt_switches);
}

#[test]
fn a_sample_held_up_past_its_limit_is_cut_short_and_the_next_reads_the_rest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut c, _root) = over_before(dir.path());
    let t0 = Instant::now();
    let all = c.collect_at(t0, SystemTime::UNIX_EPOCH).expect("first").processes.len();
    // Each look at the clock finds 0.7 s gone: a frozen machine, the limit soon past.
    let now = std::cell::Cell::new(t0 + STEP);
    let slow = || {
        now.set(now.get() + Duration::from_millis(700));
        now.get()
    };
    let cut = c.collect_with(&slow, SystemTime::UNIX_EPOCH + STEP).expect("second");
    assert!(cut.processes.len() < all, "{} of {all}", cut.processes.len());
    let (_, why) = c.health().last_problem.expect("said in the source's health");
    let read = format!("{} of {} processes read", cut.processes.len(), c.pids.len());
    assert!(why.starts_with("sample cut short after ") && why.contains(&read), "{why}");
    let read: Vec<u32> = cut.processes.iter().map(|p| p.pid).collect();
    // Those not reached come last, in the order they would have been read.
    let reached = c.pids.iter().rposition(|pid| read.contains(pid)).map_or(0, |i| i + 1);
    let unread: Vec<u32> = c.pids[reached..].to_vec();
    assert!(!unread.is_empty());
    // The next sample reads them first, each over the time since its last reading.
    let next = c.collect_at(t0 + STEP * 3, SystemTime::UNIX_EPOCH + STEP * 3).expect("third");
    assert_eq!(next.processes.len(), all, "none lost");
    assert_eq!(next.processes.first().map(|p| p.pid), unread.first().copied(), "the first not reached leads");
    for pid in unread.iter().filter(|pid| next.processes.iter().any(|p| p.pid == **pid)) {
        let usage = find(&next, *pid).usage;
        assert!(usage.is_none_or(|u| u.span == STEP * 3), "pid {pid} rated from its first reading: {usage:?}");
    }
}

mod listing;
#[cfg(target_os = "linux")]
mod reaping;
#[cfg(target_os = "linux")]
mod threads;
