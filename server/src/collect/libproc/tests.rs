use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use super::*;

/// Apple silicon: 125/3 ns per mach unit.
const APPLE_SILICON: Timebase = Timebase { numer: 125, denom: 3 };
/// The user the server runs as.
const ME: u32 = 501;
/// `p_stat` and BSD status of every live process on xnu.
const SRUN: u32 = 2;

/// A kernel that answers as xnu does: the listing has every process; the per-process
/// calls answer for the server's own user only, unless it is root.
struct Kernel {
    procs: BTreeMap<u32, (KinfoProc, BsdInfo, TaskInfo, RusageInfo)>,
    root: bool,
    fail_listing: bool,
}

impl ProcSource for Kernel {
    fn list(&mut self, out: &mut Vec<KinfoProc>) -> std::io::Result<()> {
        if self.fail_listing {
            return Err(std::io::Error::from_raw_os_error(libc::ENOMEM));
        }
        out.clear();
        out.extend(self.procs.values().map(|p| p.0.clone()));
        // A pid listed but gone by the time it is read.
        out.push(KinfoProc { p_pid: 99_999, cr_uid: ME, ..KinfoProc::default() });
        Ok(())
    }
    fn details(&mut self, pid: u32) -> Details {
        match self.procs.get(&pid) {
            None => Details::refused(Refusal::Gone),
            // proc_security_policy(…, CHECK_SAME_USER): EPERM for every call.
            Some((k, ..)) if k.cr_uid != ME && !self.root => Details::refused(Refusal::Denied),
            // A zombie has BSD info and resource usage, but no task.
            Some((k, bsd, _, rusage)) if k.p_stat == SZOMB => {
                Details { bsd: Ok(bsd.clone()), task: Err(Refusal::Gone), rusage: Ok(*rusage) }
            }
            Some((_, bsd, task, rusage)) => Details { bsd: Ok(bsd.clone()), task: Ok(*task), rusage: Ok(*rusage) },
        }
    }
    fn system(&mut self) -> RawSystem {
        RawSystem {
            load: Some([1.5, 1.0, 0.5]),
            mem_total_bytes: Some(16 << 30),
            memory_level: Some(7),
            ..RawSystem::default()
        }
    }
    fn timebase(&self) -> Timebase {
        APPLE_SILICON
    }
}

fn kernel(procs: impl IntoIterator<Item = (KinfoProc, BsdInfo, TaskInfo, RusageInfo)>, root: bool) -> Kernel {
    Kernel { procs: procs.into_iter().map(|p| (p.0.p_pid, p)).collect(), root, fail_listing: false }
}

/// A process of `uid` that has used `cpu_mach` units of CPU and `csw` context switches.
fn proc(pid: u32, uid: u32, name: &str, cpu_mach: u64, csw: i32) -> (KinfoProc, BsdInfo, TaskInfo, RusageInfo) {
    let comm: String = name.chars().take(16).collect();
    let kinfo = KinfoProc {
        p_pid: pid,
        e_ppid: 1,
        cr_uid: uid,
        p_comm: comm,
        p_stat: SRUN,
        p_starttime_us: u64::from(pid) * 7,
    };
    let bsd = BsdInfo { pbi_name: name.into(), pbi_status: SRUN };
    let task = TaskInfo { pti_threadnum: 4, pti_csw: csw, pti_syscalls_unix: 1000 };
    let rusage =
        RusageInfo { ri_user_time: cpu_mach, ri_system_time: 0, ri_pageins: 100, ri_phys_footprint: 300 << 20 };
    (kinfo, bsd, task, rusage)
}

/// Another way's one reading, as `top` would give it; counts how often it is asked.
struct Others {
    latest: Option<HashMap<u32, ProcessRecord>>,
    asked: Arc<AtomicUsize>,
}

impl others::OtherUsers for Others {
    fn latest(&mut self) -> Option<others::Reading<'_>> {
        // New the first time only, as a top that has not written again since.
        let new = self.asked.fetch_add(1, Ordering::SeqCst) == 0;
        self.latest.as_ref().map(|processes| others::Reading { processes, new })
    }
    fn health(&self) -> SourceHealth {
        SourceHealth { restarts: 2, last_problem: None }
    }
}

fn seen_by_top(pid: u32, command: &str, cpu: f64) -> ProcessRecord {
    ProcessRecord {
        pid,
        command: command.into(),
        state: ProcessState::Stuck,
        factors: ProcessFactors { cpu_percent: Some(cpu), mem_bytes: Some(512 << 20), ..ProcessFactors::default() },
        usage: Usage::of_cpu(Duration::from_secs(1), cpu),
        ..ProcessRecord::default()
    }
}

fn record(sample: &RawSample, pid: u32) -> &ProcessRecord {
    sample.processes.iter().find(|p| p.pid == pid).unwrap_or_else(|| panic!("pid {pid} missing"))
}

#[test]
fn rates_units_and_states_from_raw_readings() {
    let mut c = LibprocCollector::new(kernel([proc(10, ME, "p10", 0, 50)], false), None);
    let t0 = Instant::now();
    let first = c.collect_at(t0, SystemTime::UNIX_EPOCH).expect("sample");
    assert_eq!(first.processes.len(), 1, "the vanished pid is skipped");
    let p = record(&first, 10);
    assert_eq!((p.factors.cpu_percent, p.factors.csw_per_sec), (None, None), "no rate at first sight");
    assert_eq!(p.factors.mem_bytes, Some(300 << 20), "physical footprint");
    assert_eq!(p.factors.cmprs_bytes, None, "unavailable without privileges");
    assert_eq!(p.state, ProcessState::Unspecified, "alive; xnu keeps no run or sleep state per process");
    assert_eq!(first.system.load_1m, Some(1.5));
    assert_eq!(first.system.mem_total_bytes, Some(16 << 30));
    // kern.memorystatus_level 7: 7 % of memory available.
    assert_eq!(first.system.mem_available_bytes, Some((16 << 30) / 100 * 7));

    // Two seconds later: 24 000 000 mach units = 1 s of CPU on Apple silicon → 50 %.
    let mut later = proc(10, ME, "p10", 24_000_000, 250);
    later.3.ri_pageins = 2100;
    c.source.procs.insert(10, later);
    let second = c.collect_at(t0 + Duration::from_secs(2), SystemTime::UNIX_EPOCH).expect("sample");
    assert_eq!(second.elapsed, Some(Duration::from_secs(2)));
    let p = record(&second, 10);
    assert!((p.factors.cpu_percent.expect("cpu") - 50.0).abs() < 1e-9, "{:?}", p.factors.cpu_percent);
    assert_eq!(p.factors.csw_per_sec, Some(100.0));
    assert_eq!(p.factors.pageins_per_sec, Some(1000.0));
    assert_eq!(p.factors.sysbsd_per_sec, Some(0.0));
    assert_eq!(p.factors.threads, Some(4));
    assert_eq!(p.state, ProcessState::Unspecified, "SRUN, as xnu says of every live process: no state");
    let usage = p.usage.expect("what it consumed between its readings");
    assert_eq!((usage.span, usage.pageins, usage.run_delay), (Duration::from_secs(2), Some(2000), None));
    assert!((usage.cpu.as_secs_f64() - 1.0).abs() < 1e-9, "{usage:?}");
    assert_eq!(p.ppid, Some(1));
}

#[test]
fn a_reused_pid_and_counters_going_backwards_have_no_rate() {
    let mut c = LibprocCollector::new(kernel([proc(10, ME, "a", 1000, 50), proc(11, ME, "b", 1000, 50)], false), None);
    let t0 = Instant::now();
    c.collect_at(t0, SystemTime::UNIX_EPOCH).expect("sample");
    let mut reused = proc(10, ME, "a", 5000, 60);
    reused.0.p_starttime_us += 1; // new start time: another process
    c.source.procs.insert(10, reused);
    c.source.procs.insert(11, proc(11, ME, "b", 500, 40)); // same process, counters lower
    let s = c.collect_at(t0 + Duration::from_secs(1), SystemTime::UNIX_EPOCH).expect("sample");
    let reused = record(&s, 10);
    assert_eq!((reused.factors.cpu_percent, reused.factors.csw_per_sec), (None, None));
    let backwards = record(&s, 11);
    assert_eq!((backwards.factors.cpu_percent, backwards.factors.csw_per_sec), (None, None), "not a huge number");
    assert_eq!(backwards.factors.sysbsd_per_sec, Some(0.0), "other counters still rate");
}

/// Without root and with no other way, another user's process is still listed, with
/// what the listing says, and every figure unavailable: none is made up.
#[test]
fn refused_processes_are_listed_with_what_the_listing_says() {
    let mut window_server = proc(160, 88, "WindowServer", 9_000_000, 10);
    window_server.0.p_stat = SZOMB;
    let procs = [proc(0, 0, "kernel_task", 1 << 40, 10), window_server, proc(7001, ME, "Terminal", 0, 1)];
    let mut c = LibprocCollector::new(kernel(procs, false), None);
    let t0 = Instant::now();
    c.collect_at(t0, SystemTime::UNIX_EPOCH).expect("sample");
    let s = c.collect_at(t0 + Duration::from_secs(1), SystemTime::UNIX_EPOCH).expect("sample");
    assert_eq!(s.processes.len(), 3, "kernel_task, WindowServer, Terminal; the gone pid is not");
    let ws = record(&s, 160);
    assert_eq!((ws.command.as_str(), ws.ppid, ws.state), ("WindowServer", Some(1), ProcessState::Zombie));
    assert_eq!(ws.factors, ProcessFactors::default(), "nothing invented");
    assert_eq!(ws.usage, None);
    assert_eq!(record(&s, 0).command, "kernel_task");
    assert_eq!(record(&s, 7001).factors.mem_bytes, Some(300 << 20), "its own process is read");
}

/// The refused pids take the other way's figures when it saw the same process; the
/// server's own processes keep libproc's.
#[test]
fn refused_processes_get_the_other_ways_figures() {
    let long_name = "com.apple.WebKit.WebContent";
    let procs = [
        proc(0, 0, "kernel_task", 0, 10),
        proc(160, 88, "WindowServer", 0, 10),
        proc(400, 0, long_name, 0, 10),
        proc(500, 0, "newcomer", 0, 10),
        proc(7001, ME, "Terminal", 0, 1),
    ];
    let by_top = [
        seen_by_top(0, "kernel_task", 12.0),
        seen_by_top(160, "WindowServer", 38.5),
        // top cuts names to 16 characters.
        seen_by_top(400, "com.apple.WebKit", 3.0),
        // The pid was another process when top read it.
        seen_by_top(500, "oldtool", 99.0),
        seen_by_top(7001, "Terminal", 77.0),
    ];
    let asked = Arc::new(AtomicUsize::new(0));
    let latest = Some(by_top.into_iter().map(|p| (p.pid, p)).collect());
    let others = Others { latest, asked: Arc::clone(&asked) };
    let mut c = LibprocCollector::new(kernel(procs, false), Some(Box::new(others)));
    assert_eq!(c.health().restarts, 2, "the other way's health is the source's");
    let s = c.collect_at(Instant::now(), SystemTime::UNIX_EPOCH).expect("sample");
    let ws = record(&s, 160);
    assert_eq!((ws.factors.cpu_percent, ws.factors.mem_bytes), (Some(38.5), Some(512 << 20)), "{ws:?}");
    assert_eq!(ws.state, ProcessState::Stuck, "top's state");
    assert_eq!(ws.usage.map(|u| u.cpu), Some(Duration::from_millis(385)));
    assert_eq!((ws.command.as_str(), ws.ppid), ("WindowServer", Some(1)), "the listing's name and parent");
    assert_eq!(record(&s, 0).factors.cpu_percent, Some(12.0), "kernel_task");
    assert_eq!(record(&s, 400).factors.cpu_percent, Some(3.0), "a name top cut short");
    assert_eq!(record(&s, 500).factors, ProcessFactors::default(), "another process under that pid");
    let own = record(&s, 7001);
    assert_eq!((own.factors.cpu_percent, own.factors.mem_bytes), (None, Some(300 << 20)), "libproc's, not top's");
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    // Collected again before top wrote again: the same figures, but its CPU was counted.
    let again = c.collect_at(Instant::now() + Duration::from_millis(250), SystemTime::UNIX_EPOCH).expect("sample");
    let ws = record(&again, 160);
    assert_eq!((ws.factors.cpu_percent, ws.usage), (Some(38.5), None), "consumption counts once: {ws:?}");
}

/// As root the kernel answers for everyone: libproc's figures stand even where another
/// way has read the process too.
#[test]
fn as_root_every_figure_is_libprocs() {
    let asked = Arc::new(AtomicUsize::new(0));
    let latest = Some(HashMap::from([(160, seen_by_top(160, "WindowServer", 99.0))]));
    let others = Others { latest, asked: Arc::clone(&asked) };
    let mut c = LibprocCollector::new(kernel([proc(160, 88, "WindowServer", 0, 10)], true), Some(Box::new(others)));
    let t0 = Instant::now();
    c.collect_at(t0, SystemTime::UNIX_EPOCH).expect("sample");
    c.source.procs.insert(160, proc(160, 88, "WindowServer", 12_000_000, 20));
    let s = c.collect_at(t0 + Duration::from_secs(1), SystemTime::UNIX_EPOCH).expect("sample");
    let ws = record(&s, 160);
    assert!((ws.factors.cpu_percent.expect("cpu") - 50.0).abs() < 1e-9, "{ws:?}");
    assert_eq!((ws.factors.threads, ws.state), (Some(4), ProcessState::Unspecified), "{ws:?}");
    assert_eq!(asked.load(Ordering::SeqCst), 2, "its output is taken in each time all the same");
}

#[test]
fn a_stale_or_missing_reading_leaves_refused_figures_unavailable() {
    let asked = Arc::new(AtomicUsize::new(0));
    let others = Others { latest: None, asked: Arc::clone(&asked) };
    let mut c = LibprocCollector::new(kernel([proc(160, 88, "WindowServer", 0, 10)], false), Some(Box::new(others)));
    let s = c.collect_at(Instant::now(), SystemTime::UNIX_EPOCH).expect("sample");
    assert_eq!(record(&s, 160).factors, ProcessFactors::default());
    assert_eq!(asked.load(Ordering::SeqCst), 1);
}

/// Its own zombie is kept: task info fails for it (no task left), the rest answers.
#[test]
fn an_own_zombie_stays_with_what_it_still_has() {
    let mut zombie = proc(42, ME, "defunct", 1000, 10);
    zombie.0.p_stat = SZOMB;
    zombie.1.pbi_status = SZOMB;
    let mut c = LibprocCollector::new(kernel([zombie], false), None);
    let s = c.collect_at(Instant::now(), SystemTime::UNIX_EPOCH).expect("sample");
    let z = record(&s, 42);
    assert_eq!(z.state, ProcessState::Zombie);
    assert_eq!((z.factors.mem_bytes, z.factors.threads), (Some(300 << 20), None), "{z:?}");
}

#[test]
fn a_failed_listing_is_an_error_naming_the_call() {
    let mut k = kernel([], false);
    k.fail_listing = true;
    let mut c = LibprocCollector::new(k, None);
    let err = c.collect().expect_err("listing failed");
    assert!(err.to_string().contains("KERN_PROC_ALL"), "{err}");
}

#[test]
fn bsd_states_and_errnos() {
    assert_eq!(state(SIDL), ProcessState::Idle);
    assert_eq!(state(SSTOP), ProcessState::Stopped);
    assert_eq!(state(42), ProcessState::Unspecified);
    let zero = LibprocConverter::new(Timebase { numer: 1, denom: 0 });
    assert_eq!(zero.timebase.denom, 1, "a zero denominator never divides");
    assert_eq!(Refusal::from_errno(libc::EPERM), Refusal::Denied);
    assert_eq!(Refusal::from_errno(libc::ESRCH), Refusal::Gone);
    assert_eq!(Refusal::from_errno(libc::EIO), Refusal::Failed(libc::EIO));
}
