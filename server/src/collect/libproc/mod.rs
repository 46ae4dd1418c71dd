//! The macOS `libproc` source (the default there, no root): native calls, no
//! subprocess — `proc_listallpids`, `proc_pid_rusage` and `proc_pidinfo` (task and BSD
//! info), as Activity Monitor and htop use them.
//!
//! ```text
//! OS calls (native.rs, macOS only) ──RawProc──► LibprocConverter (rates, units, states) ──► RawSample
//! ```
//!
//! The OS layer only fills [`RawProc`] with what the calls returned; everything else —
//! which counters become rates, units, states, what is unavailable — is plain code here,
//! tested on any OS with synthetic values. A pid is the same process while its start
//! time is the same.

#[cfg(target_os = "macos")]
pub mod native;

use std::time::{Duration, Instant, SystemTime};

use pmon_proto::v1::{ProcessFactors, ProcessState, SystemFigures};

use super::{CollectError, Collector, ProcessRecord, RawSample, Usage, rates::CounterMemory};

/// BSD process states (`p_stat`, sys/proc.h).
const SIDL: u32 = 1;
const SRUN: u32 = 2;
const SSLEEP: u32 = 3;
const SSTOP: u32 = 4;
const SZOMB: u32 = 5;

/// What the OS calls returned for one process; a call that failed (typically task
/// info of another user's process without root) leaves its fields `None`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawProc {
    /// Process id.
    pub pid: u32,
    /// Command name (`pbi_name`, or `pbi_comm` when that is empty).
    pub name: String,
    /// Start time, microseconds since the epoch (`pbi_start_tvsec`/`usec`).
    pub start_us: u64,
    /// BSD status (`pbi_status`).
    pub bsd_status: Option<u32>,
    /// User + system CPU time (`ri_user_time + ri_system_time`), in mach time units.
    pub cpu_time_mach: Option<u64>,
    /// Page-ins since start (`ri_pageins`).
    pub pageins: Option<u64>,
    /// Physical footprint (`ri_phys_footprint`), bytes.
    pub footprint_bytes: Option<u64>,
    /// Context switches since start (`pti_csw`).
    pub csw: Option<u64>,
    /// Unix system calls since start (`pti_syscalls_unix`).
    pub syscalls_unix: Option<u64>,
    /// Threads (`pti_threadnum`).
    pub threads: Option<u32>,
    /// Parent process id (`pbi_ppid`).
    pub ppid: Option<u32>,
}

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
    /// Every pid now.
    fn pids(&mut self, out: &mut Vec<u32>) -> std::io::Result<()>;
    /// One process; `None` if it is gone.
    fn process(&mut self, pid: u32) -> Option<RawProc>;
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
            swap_total_bytes: system.swap_total_bytes,
            swap_used_bytes: system.swap_used_bytes,
            ..SystemFigures::default()
        };
        RawSample { time, elapsed, processes, system: figures }
    }

    fn process(&mut self, p: &RawProc, at: Duration) -> ProcessRecord {
        let ([cpu_mach, pageins, csw, syscalls], span) =
            self.counters.rates(p.pid, p.start_us, [p.cpu_time_mach, p.pageins, p.csw, p.syscalls_unix], at);
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
        ProcessRecord {
            pid: p.pid,
            command: p.name.clone(),
            state: p.bsd_status.map_or(ProcessState::Unspecified, state),
            factors: ProcessFactors {
                cpu_percent,
                pageins_per_sec: pageins,
                mem_bytes: p.footprint_bytes,
                // The compressor's share of a process needs privileges libproc lacks.
                cmprs_bytes: None,
                csw_per_sec: csw,
                sysbsd_per_sec: syscalls,
                threads: p.threads,
                // Per-process disk bytes come from powermetrics.
                disk_read_bytes_per_sec: None,
                disk_write_bytes_per_sec: None,
            },
            ppid: p.ppid,
            usage,
            ..ProcessRecord::default()
        }
    }
}

/// BSD status → state. BSD has no "stuck": that is a thread state `top` derives.
pub fn state(status: u32) -> ProcessState {
    match status {
        SIDL => ProcessState::Idle,
        SRUN => ProcessState::Running,
        SSLEEP => ProcessState::Sleeping,
        SSTOP => ProcessState::Stopped,
        SZOMB => ProcessState::Zombie,
        _ => ProcessState::Unspecified,
    }
}

/// The `libproc` collector over a source of raw readings.
pub struct LibprocCollector<S> {
    source: S,
    converter: LibprocConverter,
    pids: Vec<u32>,
    procs: Vec<(RawProc, Instant)>,
}

impl<S: ProcSource> LibprocCollector<S> {
    /// A collector reading from `source`.
    pub fn new(source: S) -> Self {
        let converter = LibprocConverter::new(source.timebase());
        Self { source, converter, pids: Vec::new(), procs: Vec::new() }
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
            .pids(&mut self.pids)
            .map_err(|source| CollectError::List { path: "proc_listallpids".into(), source })?;
        self.procs.clear();
        for &pid in &self.pids {
            // Processes that exited since the listing are simply not there.
            if let Some(p) = self.source.process(pid) {
                self.procs.push((p, clock()));
            }
        }
        let system = self.source.system();
        Ok(self.converter.convert(&self.procs, &system, now, time))
    }
}

impl<S: ProcSource> Collector for LibprocCollector<S> {
    fn name(&self) -> &'static str {
        "libproc"
    }

    fn collect(&mut self) -> Result<RawSample, CollectError> {
        self.collect_with(&Instant::now, SystemTime::now())
    }
}

#[cfg(test)]
mod tests;
