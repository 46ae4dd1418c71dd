use std::{
    collections::BTreeMap,
    time::{Duration, Instant, SystemTime},
};

use super::*;

/// Apple silicon: 125/3 ns per mach unit.
const APPLE_SILICON: Timebase = Timebase { numer: 125, denom: 3 };

/// Synthetic readings, changed between collections by the tests.
struct Fake {
    procs: BTreeMap<u32, RawProc>,
    fail_listing: bool,
}

impl ProcSource for Fake {
    fn pids(&mut self, out: &mut Vec<u32>) -> std::io::Result<()> {
        if self.fail_listing {
            return Err(std::io::Error::from_raw_os_error(libc::EPERM));
        }
        out.clear();
        out.extend(self.procs.keys());
        // A pid listed but gone by the time it is read.
        out.push(99_999);
        Ok(())
    }
    fn process(&mut self, pid: u32) -> Option<RawProc> {
        self.procs.get(&pid).cloned()
    }
    fn system(&mut self) -> RawSystem {
        RawSystem { load: Some([1.5, 1.0, 0.5]), mem_total_bytes: Some(16 << 30), ..RawSystem::default() }
    }
    fn timebase(&self) -> Timebase {
        APPLE_SILICON
    }
}

fn proc(pid: u32, start_us: u64, cpu_mach: u64, csw: u64) -> RawProc {
    RawProc {
        pid,
        name: format!("p{pid}"),
        start_us,
        bsd_status: Some(SRUN),
        cpu_time_mach: Some(cpu_mach),
        pageins: Some(100),
        footprint_bytes: Some(300 << 20),
        csw: Some(csw),
        syscalls_unix: Some(1000),
        threads: Some(4),
        ppid: Some(1),
    }
}

fn record(sample: &RawSample, pid: u32) -> &ProcessRecord {
    sample.processes.iter().find(|p| p.pid == pid).unwrap_or_else(|| panic!("pid {pid} missing"))
}

#[test]
fn rates_units_and_states_from_raw_readings() {
    let mut c = LibprocCollector::new(Fake { procs: BTreeMap::from([(10, proc(10, 5, 0, 50))]), fail_listing: false });
    let t0 = Instant::now();
    let first = c.collect_at(t0, SystemTime::UNIX_EPOCH).expect("sample");
    assert_eq!(first.processes.len(), 1, "the vanished pid is skipped");
    let p = record(&first, 10);
    assert_eq!((p.factors.cpu_percent, p.factors.csw_per_sec), (None, None), "no rate at first sight");
    assert_eq!(p.factors.mem_bytes, Some(300 << 20), "physical footprint");
    assert_eq!(p.factors.cmprs_bytes, None, "unavailable without privileges");
    assert_eq!(p.state, ProcessState::Running);
    assert_eq!(first.system.load_1m, Some(1.5));
    assert_eq!(first.system.mem_total_bytes, Some(16 << 30));

    // Two seconds later: 24 000 000 mach units = 1 s of CPU on Apple silicon → 50 %.
    let mut later = proc(10, 5, 24_000_000, 250);
    later.pageins = Some(2100);
    later.bsd_status = Some(SSLEEP);
    c.source.procs.insert(10, later);
    let second = c.collect_at(t0 + Duration::from_secs(2), SystemTime::UNIX_EPOCH).expect("sample");
    assert_eq!(second.elapsed, Some(Duration::from_secs(2)));
    let p = record(&second, 10);
    assert!((p.factors.cpu_percent.expect("cpu") - 50.0).abs() < 1e-9, "{:?}", p.factors.cpu_percent);
    assert_eq!(p.factors.csw_per_sec, Some(100.0));
    assert_eq!(p.factors.pageins_per_sec, Some(1000.0));
    assert_eq!(p.factors.sysbsd_per_sec, Some(0.0));
    assert_eq!(p.factors.threads, Some(4));
    assert_eq!(p.state, ProcessState::Sleeping);
    let usage = p.usage.expect("what it consumed between its readings");
    assert_eq!((usage.span, usage.pageins, usage.run_delay), (Duration::from_secs(2), Some(2000), None));
    assert!((usage.cpu.as_secs_f64() - 1.0).abs() < 1e-9, "{usage:?}");
    assert_eq!(p.ppid, Some(1));
}

#[test]
fn a_reused_pid_and_counters_going_backwards_have_no_rate() {
    let procs = BTreeMap::from([(10, proc(10, 5, 1000, 50)), (11, proc(11, 7, 1000, 50))]);
    let mut c = LibprocCollector::new(Fake { procs, fail_listing: false });
    let t0 = Instant::now();
    c.collect_at(t0, SystemTime::UNIX_EPOCH).expect("sample");
    c.source.procs.insert(10, proc(10, 6, 5000, 60)); // new start time: another process
    c.source.procs.insert(11, proc(11, 7, 500, 40)); // same process, counters lower
    let s = c.collect_at(t0 + Duration::from_secs(1), SystemTime::UNIX_EPOCH).expect("sample");
    let reused = record(&s, 10);
    assert_eq!((reused.factors.cpu_percent, reused.factors.csw_per_sec), (None, None));
    let backwards = record(&s, 11);
    assert_eq!((backwards.factors.cpu_percent, backwards.factors.csw_per_sec), (None, None), "not a huge number");
    assert_eq!(backwards.factors.sysbsd_per_sec, Some(0.0), "other counters still rate");
}

#[test]
fn calls_that_failed_leave_factors_unavailable() {
    let partial =
        RawProc { pid: 3, name: "other-user".into(), start_us: 1, bsd_status: Some(SZOMB), ..RawProc::default() };
    let mut c = LibprocCollector::new(Fake { procs: BTreeMap::from([(3, partial)]), fail_listing: false });
    let t0 = Instant::now();
    c.collect_at(t0, SystemTime::UNIX_EPOCH).expect("sample");
    let s = c.collect_at(t0 + Duration::from_secs(1), SystemTime::UNIX_EPOCH).expect("sample");
    let p = record(&s, 3);
    assert_eq!(p.factors, ProcessFactors::default(), "nothing invented");
    assert_eq!(p.state, ProcessState::Zombie);
}

#[test]
fn a_failed_listing_is_an_error_naming_the_call() {
    let mut c = LibprocCollector::new(Fake { procs: BTreeMap::new(), fail_listing: true });
    let err = c.collect().expect_err("listing failed");
    assert!(err.to_string().contains("proc_listallpids"), "{err}");
}

#[test]
fn bsd_states() {
    assert_eq!(state(SIDL), ProcessState::Idle);
    assert_eq!(state(SSTOP), ProcessState::Stopped);
    assert_eq!(state(42), ProcessState::Unspecified);
    let zero = LibprocConverter::new(Timebase { numer: 1, denom: 0 });
    assert_eq!(zero.timebase.denom, 1, "a zero denominator never divides");
}
