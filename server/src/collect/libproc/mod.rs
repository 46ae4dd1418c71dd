//! The macOS `libproc` source (the default there): `sysctl KERN_PROC_ALL` lists every
//! process, `proc_pid_rusage` and `proc_pidinfo` (task and BSD info) read each one, as
//! Activity Monitor and htop do.
//!
//! ```text
//! OS calls (native.rs, macOS only) ──RawProc──► LibprocConverter (rates, units, states) ──► RawSample
//!                                                     refused pids ◄── OtherUsers (others.rs)
//! ```
//!
//! Without root the kernel answers the per-process calls for the server's own user's
//! processes only ([`raw`] has the rules); the listing has every process. A refused
//! process is kept with what the listing says (name, parent, state) and gets its
//! figures from [`others::OtherUsers`], or none. As root every call is answered and
//! no other way runs.
//!
//! The OS layer only fills [`RawProc`] with what the calls returned; everything else —
//! which counters become rates, units, states, what is unavailable, the merge — is
//! plain code here, tested on any OS with synthetic values. A pid is the same process
//! while its start time is the same.

#[cfg(target_os = "macos")]
pub mod native;
pub mod others;
pub mod raw;

use std::time::{Duration, Instant, SystemTime};

use pmon_proto::v1::{ProcessFactors, ProcessState, SystemFigures};
pub use raw::{Answer, BsdInfo, Details, KinfoProc, RawProc, Refusal, RusageInfo, TaskInfo};

use super::{CollectError, Collector, ProcessRecord, RawSample, SourceHealth, Usage, rates::CounterMemory};
use others::OtherUsers;

/// BSD process states (`p_stat`, sys/proc.h).
const SIDL: u32 = 1;
const SSTOP: u32 = 4;
const SZOMB: u32 = 5;

/// Machine-wide readings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawSystem {
    /// Load averages over 1, 5 and 15 minutes.
    pub load: Option<[f64; 3]>,
    /// Physical memory (`hw.memsize`).
    pub mem_total_bytes: Option<u64>,
    /// Swap configured and used (`vm.swapusage`).
    pub swap_total_bytes: Option<u64>,
    /// Swap used.
    pub swap_used_bytes: Option<u64>,
    /// Percent of memory available, as the kernel's memory status counts it
    /// (`kern.memorystatus_level`, readable by anyone): what the machine's stress
    /// figure reads as available memory.
    pub memory_level: Option<u32>,
}

/// The conversion of mach time units to nanoseconds (`mach_timebase_info`): 1/1 on
/// Intel, 125/3 on Apple silicon.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timebase {
    /// Numerator.
    pub numer: u32,
    /// Denominator (never 0).
    pub denom: u32,
}

/// What the OS layer provides; the macOS one makes the calls, tests provide values.
pub trait ProcSource: Send {
    /// Every process now (`sysctl KERN_PROC_ALL`).
    fn list(&mut self, out: &mut Vec<KinfoProc>) -> std::io::Result<()>;
    /// The per-process calls' answers for one listed pid.
    fn details(&mut self, pid: u32) -> Details;
    /// Machine-wide readings.
    fn system(&mut self) -> RawSystem;
    /// The mach timebase.
    fn timebase(&self) -> Timebase;
}

/// Raw readings → a sample, with counters kept between samples.
#[derive(Debug)]
pub struct LibprocConverter {
    counters: CounterMemory<u64, 4>,
    timebase: Timebase,
    prev_at: Option<Instant>,
    /// The clock each process's reading time is measured on.
    origin: Option<Instant>,
}

impl LibprocConverter {
    /// A converter for this machine's timebase (a zero denominator counts as 1).
    pub fn new(timebase: Timebase) -> Self {
        let timebase = Timebase { numer: timebase.numer, denom: timebase.denom.max(1) };
        Self { counters: CounterMemory::default(), timebase, prev_at: None, origin: None }
    }

    /// Converts one collection made at `now`, each process read at its own instant.
    pub fn convert(
        &mut self,
        procs: &[(RawProc, Instant)],
        system: &RawSystem,
        now: Instant,
        time: SystemTime,
    ) -> RawSample {
        let elapsed = self.prev_at.map(|p| now.saturating_duration_since(p));
        self.prev_at = Some(now);
        let origin = *self.origin.get_or_insert(now);
        let processes = procs
            .iter()
            .map(|(p, at)| {
                let mut record = self.process(p, at.saturating_duration_since(origin));
                if let Some(u) = &mut record.usage {
                    u.lag = at.saturating_duration_since(now);
                }
                record
            })
            .collect();
        self.counters.end_sample();
        let figures = SystemFigures {
            load_1m: system.load.map(|l| l[0]),
            load_5m: system.load.map(|l| l[1]),
            load_15m: system.load.map(|l| l[2]),
            mem_total_bytes: system.mem_total_bytes,
            mem_available_bytes: system
                .mem_total_bytes
                .zip(system.memory_level)
                .map(|(t, l)| t / 100 * u64::from(l.min(100))),
            swap_total_bytes: system.swap_total_bytes,
            swap_used_bytes: system.swap_used_bytes,
            ..SystemFigures::default()
        };
        RawSample { time, elapsed, processes, system: figures }
    }

    fn process(&mut self, p: &RawProc, at: Duration) -> ProcessRecord {
        let k = &p.kinfo;
        let (bsd, task, rusage) = (p.details.bsd.as_ref().ok(), p.details.task.as_ref().ok(), p.details.rusage.ok());
        let cpu_time = rusage.map(|r| r.ri_user_time.saturating_add(r.ri_system_time));
        let counter = |v: i32| u64::try_from(v).ok();
        let counters = [
            cpu_time,
            rusage.map(|r| r.ri_pageins),
            task.and_then(|t| counter(t.pti_csw)),
            task.and_then(|t| counter(t.pti_syscalls_unix)),
        ];
        let ([cpu_mach, pageins, csw, syscalls], span) = self.counters.rates(k.p_pid, k.p_starttime_us, counters, at);
        let Timebase { numer, denom } = self.timebase;
        // mach units per second → nanoseconds per second → percent of one core.
        let cpu_percent = cpu_mach.map(|m| m * f64::from(numer) / f64::from(denom) / 1e9 * 100.0);
        // What it consumed between its two readings; libproc tells no waits.
        let usage = span.zip(cpu_percent).map(|(span, cpu)| Usage {
            span,
            cpu: span.mul_f64((cpu / 100.0).max(0.0)),
            run_delay: None,
            io_delay: None,
            pageins: pageins.map(|rate| (rate * span.as_secs_f64()).round() as u64),
            mem_growth: None,
            lag: Duration::ZERO,
            reaped: None,
        });
        // BSD info has the longer name; the listing's 16 bytes for everyone else.
        let command = bsd.map(|b| b.pbi_name.clone()).filter(|n| !n.is_empty()).unwrap_or_else(|| k.p_comm.clone());
        ProcessRecord {
            pid: k.p_pid,
            command,
            state: state(bsd.map_or(k.p_stat, |b| b.pbi_status)),
            factors: ProcessFactors {
                cpu_percent,
                pageins_per_sec: pageins,
                mem_bytes: rusage.map(|r| r.ri_phys_footprint),
                // The compressor's share of a process needs privileges libproc lacks.
                cmprs_bytes: None,
                csw_per_sec: csw,
                sysbsd_per_sec: syscalls,
                threads: task.and_then(|t| u32::try_from(t.pti_threadnum).ok()),
                // Per-process disk bytes come from powermetrics.
                disk_read_bytes_per_sec: None,
                disk_write_bytes_per_sec: None,
            },
            ppid: Some(k.e_ppid),
            usage,
            ..ProcessRecord::default()
        }
    }
}

/// BSD status → state. xnu keeps run and sleep per thread, not per process: `p_stat`
/// (and BSD info's status) is SRUN for every live process and SSLEEP is never set, so
/// SRUN says "alive", not "running", and the state stays unknown (`top` derives one
/// from the threads). Stopped, zombie and newborn are real.
pub fn state(status: u32) -> ProcessState {
    match status {
        SIDL => ProcessState::Idle,
        SSTOP => ProcessState::Stopped,
        SZOMB => ProcessState::Zombie,
        _ => ProcessState::Unspecified,
    }
}

/// The `libproc` collector over a source of raw readings, and the other way for the
/// processes it is refused (none as root).
pub struct LibprocCollector<S> {
    source: S,
    others: Option<Box<dyn OtherUsers>>,
    converter: LibprocConverter,
    listed: Vec<KinfoProc>,
    procs: Vec<(RawProc, Instant)>,
}

impl<S: ProcSource> LibprocCollector<S> {
    /// A collector reading from `source`; `others` reads the processes the kernel
    /// refuses to tell about (`None`: their figures stay unavailable).
    pub fn new(source: S, others: Option<Box<dyn OtherUsers>>) -> Self {
        let converter = LibprocConverter::new(source.timebase());
        Self { source, others, converter, listed: Vec::new(), procs: Vec::new() }
    }

    /// Collects at an explicit instant, every process read "at" it; tests pass a fake one.
    pub fn collect_at(&mut self, now: Instant, time: SystemTime) -> Result<RawSample, CollectError> {
        self.collect_with(&|| now, time)
    }

    /// Collects, timing each process's reading by `clock`: a collection held up half-way
    /// still rates each process over the time between its own two readings.
    fn collect_with(&mut self, clock: &dyn Fn() -> Instant, time: SystemTime) -> Result<RawSample, CollectError> {
        let now = clock();
        self.source
            .list(&mut self.listed)
            .map_err(|source| CollectError::List { path: "sysctl KERN_PROC_ALL".into(), source })?;
        self.procs.clear();
        for kinfo in self.listed.drain(..) {
            let details = self.source.details(kinfo.p_pid);
            // A process that exited since the listing is simply not there; a refused
            // one stays, with what the listing says.
            if !details.gone() {
                self.procs.push((RawProc { kinfo, details }, clock()));
            }
        }
        let system = self.source.system();
        let mut sample = self.converter.convert(&self.procs, &system, now, time);
        // Taken in every collection, so the other way's output never piles up.
        let latest = self.others.as_mut().and_then(|o| o.latest());
        for (record, (p, _)) in sample.processes.iter_mut().zip(&self.procs) {
            // Where the kernel answered, its figures stand.
            if p.details.rusage.is_err() {
                others::fill(record, latest);
            }
        }
        Ok(sample)
    }
}

impl<S: ProcSource> Collector for LibprocCollector<S> {
    fn name(&self) -> &'static str {
        "libproc"
    }

    fn collect(&mut self) -> Result<RawSample, CollectError> {
        self.collect_with(&Instant::now, SystemTime::now())
    }

    fn health(&self) -> SourceHealth {
        self.others.as_ref().map(|o| o.health()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
