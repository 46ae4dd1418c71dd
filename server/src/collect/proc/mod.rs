//! The Linux `proc` source: `/proc/[pid]/{stat,schedstat,status,io}` for every
//! process and `/proc/{loadavg,meminfo,vmstat,pressure/*}` for the machine. No
//! subprocess.
//!
//! Generating these files is almost all of a sample's cost, yet most processes sleep
//! through most samples. So `schedstat` (the main thread's CPU time and times
//! scheduled, nearly free) is read for every process, and the rest only when it can
//! have changed:
//!
//! - `stat` (CPU time, faults, threads, state, resident size): unchanged for a sleeping
//!   single-threaded process whose `schedstat` did not move, while vmstat shows no
//!   reclaim or swapping (see `ProcCollector::stat_holds`);
//! - context switches come from `schedstat` too: its third field, the times the main
//!   thread was put on a CPU, is the main thread's voluntary + nonvoluntary switches of
//!   `status` (within the one switch under way), so `status`, by far the dearest file
//!   (~16 µs to generate, measured; `stat` ~7), is read only for `VmSwap`: for a new
//!   process, one that holds swap and ran (or has several threads), and everyone while
//!   the machine swaps;
//! - the system calls in `io` count every thread: unchanged for a single-threaded
//!   process whose `schedstat` did not move; multi-threaded processes are always read;
//! - `VmSwap` in `status` changes when the machine swaps, even for a sleeping process:
//!   every `status` is read again whenever `/proc/vmstat` shows swapping (to a device or
//!   to zswap) since the last sample.
//!
//! Every process's `stat` and `status` are read at least every [`STATUS_REFRESH`]
//! samples regardless, which bounds what rarer outside changes could leave stale.
//! A value carried over is exactly what a read would have shown; tests compare the
//! two paths. Listing /proc is spared too: see [`pids`].
//!
//! ```text
//! files (read into one buffer) ──► parse (pure) ──► rates vs previous sample ──► RawSample
//! ```
//!
//! Processes vanish between listing and reading, `io` is unreadable for other users'
//! processes when not root, kernel threads have no memory or system calls: all normal,
//! none an error. The root is injectable so tests run on `fixtures/proc/` trees.

mod counters;
mod files;
pub mod parse;
mod pids;
mod reaped;
mod sweep;
mod usage;

use std::{
    borrow::Cow,
    collections::HashMap,
    path::Path,
    time::{Duration, Instant, SystemTime},
};

use pmon_proto::v1::{ProcessFactors, SystemFigures, ThermalPressure};

use super::{
    CollectError, Collector, ProcessRecord, RawSample, SourceHealth, Usage,
    rates::{rate, rate_span},
};
use counters::{Counters, Switches, scheduling};
pub use files::raise_open_file_limit;
use files::{PidFile, ProcFiles};
use pids::Discovery;
use reaped::Reaping;

/// The process could not be read at all: it exited.
struct Exited;

/// Every process's `stat` and `status` are read at least once per this many samples,
/// spread over the samples by pid.
const STATUS_REFRESH: u64 = 30;

/// Processes skipped for a garbled `stat` are logged at most this often.
const SKIPPED_LOG: Duration = Duration::from_secs(60);

/// The `proc` collector.
pub struct ProcCollector {
    files: ProcFiles,
    prev: HashMap<u32, Counters>,
    next: HashMap<u32, Counters>,
    prev_at: Option<Instant>,
    /// Children gone since their last reading, until their parents' reaped time shows them.
    reaping: Reaping,
    /// The first pid a sample cut short did not reach: the next one starts there.
    resume: Option<u32>,
    prev_vm: Option<parse::VmStat>,
    /// Seconds since boot at the previous sample.
    prev_uptime: Option<f64>,
    pids: Vec<u32>,
    ticks_per_sec: f64,
    page_size: u64,
    /// The last pid handed out at the previous sample, from `/proc/loadavg`.
    last_pid: Option<u32>,
    /// Samples taken, to spread the periodic `status` refresh.
    samples: u64,
    /// The machine swapped since the previous sample (or it is unknown): every
    /// `VmSwap` may have changed.
    swapping: bool,
    /// The machine swapped or reclaimed pages since the previous sample (or it is
    /// unknown): every resident size may have changed.
    reclaiming: bool,
    /// Whether the kernel counts block I/O delays (`kernel.task_delayacct`); without
    /// it the `stat` field reads 0 for every process, which would be a fake figure.
    delayacct: bool,
    /// The latest problem, for status: /proc could not be listed, or a process was
    /// skipped because its `stat` made no sense.
    problem: Option<(SystemTime, String)>,
    /// When a skipped process was last logged.
    warned_at: Option<Instant>,
    /// Read every file of every process, as a naive collector would: the reference the
    /// tests compare the selective path with.
    #[cfg(test)]
    read_everything: bool,
}

impl ProcCollector {
    /// A collector over a /proc root, with this machine's clock tick and page size.
    pub fn new(root: impl AsRef<Path>) -> Self {
        // SAFETY: sysconf has no preconditions; it returns -1 for unknown names.
        let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
        // USER_HZ is 100 and pages 4 KiB on every Linux ABI pmon runs on, should sysconf fail.
        let ticks = if ticks > 0 { ticks as f64 } else { 100.0 };
        let page = u64::try_from(page).ok().filter(|p| *p > 0).unwrap_or(4096);
        Self::with_units(root, ticks, page)
    }

    /// A collector with explicit units, so fixture tests do not depend on the machine.
    pub fn with_units(root: impl AsRef<Path>, ticks_per_sec: f64, page_size: u64) -> Self {
        Self {
            files: ProcFiles::new(root.as_ref()),
            prev: HashMap::new(),
            next: HashMap::new(),
            prev_at: None,
            reaping: Reaping::default(),
            resume: None,
            prev_vm: None,
            prev_uptime: None,
            pids: Vec::new(),
            ticks_per_sec,
            page_size,
            last_pid: None,
            samples: 0,
            swapping: true,
            reclaiming: true,
            // Kernels before 5.14 have no switch and count whenever built to.
            delayacct: std::fs::read_to_string(root.as_ref().join("sys/kernel/task_delayacct"))
                .map_or_else(|e| e.kind() == std::io::ErrorKind::NotFound, |v| v.trim() == "1"),
            problem: None,
            warned_at: None,
            #[cfg(test)]
            read_everything: false,
        }
    }

    /// Collects at an explicit instant, every process read "at" it; tests pass a fake one.
    pub fn collect_at(&mut self, now: Instant, time: SystemTime) -> Result<RawSample, CollectError> {
        self.collect_with(&|| now, time)
    }

    /// Collects, reading the time of each process's reading from `clock`: `collect`
    /// passes the real clock, so a sample that was itself held up (the sampler starved
    /// half-way) still rates every process over the time between its own two readings.
    fn collect_with(&mut self, clock: &dyn Fn() -> Instant, time: SystemTime) -> Result<RawSample, CollectError> {
        let now = clock();
        let elapsed = self.prev_at.map(|p| now.saturating_duration_since(p));
        let secs = elapsed.map(|e| e.as_secs_f64()).filter(|s| *s > 0.0);
        // vmstat first: whether the machine swapped decides which `status` files to read.
        let vm = self.files.file("vmstat").ok().map(|b| parse::vmstat(&text(b)));
        let swaps = |v: &Option<parse::VmStat>| v.as_ref().and_then(|v| Some((v.pswpin?, v.pswpout?, v.zswap)));
        self.swapping = match (swaps(&vm), swaps(&self.prev_vm)) {
            (Some(now), Some(before)) => now != before,
            _ => true,
        };
        let steals = |v: &Option<parse::VmStat>| v.as_ref().and_then(|v| v.pgsteal);
        self.reclaiming = self.swapping
            || match (steals(&vm), steals(&self.prev_vm)) {
                (Some(now), Some(before)) => now != before,
                _ => true,
            };
        self.samples += 1;
        // Seconds since boot, to tell the processes born since the previous sample.
        let uptime = self.files.file("uptime").ok().and_then(|b| parse::uptime(&text(b)));
        let born_after = self.prev_uptime.zip(uptime);
        self.prev_uptime = uptime;
        let (load, last_pid) = match self.files.file("loadavg") {
            Ok(bytes) => {
                let text = text(bytes);
                (parse::loadavg(&text), parse::last_pid(&text))
            }
            Err(_) => (None, None),
        };

        // Listing /proc is a tenth of a sample's cost: see `pids` for when it is not needed.
        self.files.begin_sample();
        let mut pids = std::mem::take(&mut self.pids);
        let before = self.last_pid.filter(|_| self.prev_at.is_some());
        let tried = match pids::discovery(before, last_pid, &pids, self.samples.is_multiple_of(pids::RELIST)) {
            Discovery::Known => Vec::new(),
            Discovery::Try(new) => new,
            Discovery::List => {
                if let Err(source) = self.files.list_pids(&mut pids) {
                    let e = CollectError::List { path: self.files.root().to_string(), source };
                    self.problem = Some((SystemTime::now(), e.to_string()));
                    // The list went with the failure: the next sample lists, whatever the last pid.
                    self.last_pid = None;
                    return Err(e);
                }
                Vec::new()
            }
        };
        self.last_pid = last_pid;
        let mut processes = self.sweep(pids, tried, (clock, now, born_after));
        self.files.forget_unseen();
        // Those not seen this time are gone: their last readings wait for their parents.
        for (pid, last) in self.prev.drain() {
            self.reaping.gone(pid, &last);
        }
        self.reaping.settle(&mut processes, self.ticks_per_sec);
        std::mem::swap(&mut self.prev, &mut self.next);
        self.next.clear();
        self.prev_at = Some(now);

        let system = self.system(secs, load, vm);
        Ok(RawSample { time, elapsed, processes, system })
    }

    /// Reads and rates one process; `None` if its `stat` is unusable.
    /// `born` is the uptime of the previous sample and of this one: a process that
    /// started between them is seen for the first time, and all it did, it did since.
    /// A pid `tried` without listing may be a thread's (or nobody's): then it is
    /// `Exited` too.
    fn process(
        &mut self,
        pid: u32,
        (clock, started, born): sweep::Times<'_>,
        tried: bool,
    ) -> Result<Option<ProcessRecord>, Exited> {
        let newcomer_status = if tried { Some(self.tried_status(pid)?) } else { None };
        // Every figure of the process is taken within microseconds of this.
        let read_at = clock();
        // schedstat first: read through a descriptor kept since the last sample, it is
        // the same process's, so it can vouch for the rest.
        let (sched, same_process) = match self.files.pid_file_kept(pid, PidFile::Schedstat) {
            Ok((bytes, kept)) => (parse::schedstat(bytes), kept),
            Err(_) => (None, false),
        };
        let prev = self.prev.remove(&pid);
        // The main thread was not put on a CPU since the last sample, nor was it on one
        // all along (its run time would have grown).
        let unscheduled = |p: &Counters| sched.is_some() && p.sched == sched;
        #[cfg(test)]
        let read_everything = self.read_everything;
        #[cfg(test)]
        let unscheduled = |p: &Counters| !read_everything && unscheduled(p);
        let refresh_due = (u64::from(pid) + self.samples).is_multiple_of(STATUS_REFRESH);

        let stat = match &prev {
            Some(p) if same_process && unscheduled(p) && self.stat_holds(&p.stat) && !refresh_due => p.stat.clone(),
            _ => match self.read_stat(pid) {
                Ok(Some(stat)) => stat,
                Ok(None) => return Ok(None),
                Err(Exited) => {
                    if let Some(last) = prev {
                        self.reaping.gone(pid, &last);
                    }
                    return Err(Exited);
                }
            },
        };
        // A different start time means the pid was reused: no rates for the newcomer.
        let before = prev.filter(|p| p.stat.starttime == stat.starttime);
        let idle = before.as_ref().filter(|b| unscheduled(b));

        let (swap_bytes, ctxt_switches) = self.swap_and_switches(
            pid,
            (before.as_ref(), newcomer_status),
            (idle.is_some(), refresh_due),
            &stat,
            sched,
        )?;
        // Kernel threads make no system calls; other users' io is unreadable unless root.
        let syscalls = match idle {
            _ if stat.kernel_thread => None,
            Some(b) if b.stat.num_threads == 1 && stat.num_threads == 1 => b.syscalls,
            _ => self.files.pid_file(pid, PidFile::Io).ok().and_then(parse::io_syscalls),
        };

        let before = before.as_ref();
        let threads = self.threads(pid, before, &stat, sched);
        let span = before.map(|b| read_at.saturating_duration_since(b.read_at));
        let secs = span.and_then(rate_span);
        let usage = self
            .usage_since((before, secs), (&stat, sched, threads), born)
            .map(|u| Usage { lag: read_at.saturating_duration_since(started), ..u });
        let factors = self.factors(&stat, before, usage, secs, (ctxt_switches, swap_bytes, syscalls));
        let record = ProcessRecord {
            pid,
            command: stat.comm.clone(),
            state: stat.state,
            factors,
            ppid: Some(stat.ppid),
            scheduling: Some(scheduling(&stat)),
            kernel_thread: stat.kernel_thread,
            usage,
        };
        self.next.insert(pid, Counters { stat, sched, threads, ctxt_switches, swap_bytes, syscalls, read_at });
        Ok(Some(record))
    }

    /// The `status` of a pid tried without listing, read first to tell a thread (a
    /// newcomer's is read anyway); `Exited` for a thread or a pid nobody has.
    fn tried_status(&mut self, pid: u32) -> Result<parse::Status, Exited> {
        let status = parse::status(self.files.pid_file(pid, PidFile::Status).map_err(|_| Exited)?);
        if pids::is_process(pid, status.tgid) { Ok(status) } else { Err(Exited) }
    }

    /// `VmSwap` and the context-switch counter of a process. VmSwap grows only by
    /// swapping out, which vmstat shows; it shrinks by swapping in (shown too) or by the
    /// process itself freeing swapped pages, for which one of its threads must run: only
    /// a single-threaded process's idle main thread vouches for that. Without schedstat,
    /// status is where the switches are. A newcomer's status may have been read already.
    fn swap_and_switches(
        &mut self,
        pid: u32,
        (before, read): (Option<&Counters>, Option<parse::Status>),
        (idle, refresh_due): (bool, bool),
        stat: &parse::Stat,
        sched: Option<parse::Sched>,
    ) -> Result<(Option<u64>, Option<Switches>), Exited> {
        let single = stat.num_threads == 1;
        let swap_holds = |b: &Counters| (idle && single) || b.swap_bytes == Some(0) || stat.kernel_thread;
        #[cfg(test)]
        let swap_holds = |b: &Counters| !self.read_everything && swap_holds(b);
        let status = match before {
            _ if read.is_some() => read,
            Some(b) if sched.is_some() && !self.swapping && !refresh_due && swap_holds(b) => None,
            // status is world-readable: failing to read it means the process just exited.
            _ => Some(parse::status(self.files.pid_file(pid, PidFile::Status).map_err(|_| Exited)?)),
        };
        let swap_bytes = match &status {
            Some(s) => s.swap_bytes,
            None => before.and_then(|b| b.swap_bytes),
        };
        let switches = match sched {
            Some(s) => Some(Switches::Sched(s.timeslices)),
            None => status.and_then(|s| s.ctxt_switches).map(Switches::Status),
        };
        Ok((swap_bytes, switches))
    }

    /// The factors scored, from this reading and the one before (rates need both).
    fn factors(
        &self,
        stat: &parse::Stat,
        before: Option<&Counters>,
        usage: Option<Usage>,
        secs: Option<f64>,
        (ctxt_switches, swap_bytes, syscalls): (Option<Switches>, Option<u64>, Option<u64>),
    ) -> ProcessFactors {
        let rate = |cur: Option<u64>, old: Option<u64>| rate(cur, old, secs);
        let (switches, switches_before) = Switches::pair(ctxt_switches, before.and_then(|b| b.ctxt_switches));
        ProcessFactors {
            // A newborn's usage is no rate: the SPEC's rates start at a second reading.
            cpu_percent: usage.filter(|_| before.is_some()).map(|u| u.cpu.as_secs_f64() / u.span.as_secs_f64() * 100.0),
            pageins_per_sec: rate(Some(stat.majflt), before.map(|b| b.stat.majflt)),
            // Kernel threads have no user address space: memory does not apply.
            mem_bytes: (!stat.kernel_thread).then(|| stat.rss_pages.saturating_mul(self.page_size)),
            cmprs_bytes: swap_bytes,
            csw_per_sec: rate(switches, switches_before),
            sysbsd_per_sec: rate(syscalls, before.and_then(|b| b.syscalls)),
            threads: Some(stat.num_threads),
            // Disk bytes per process come from powermetrics only.
            disk_read_bytes_per_sec: None,
            disk_write_bytes_per_sec: None,
        }
    }

    /// A process's `stat`, read afresh; `None` (said, at most once a minute) when it
    /// makes no sense, `Exited` when it is gone.
    fn read_stat(&mut self, pid: u32) -> Result<Option<parse::Stat>, Exited> {
        let bytes = self.files.pid_file(pid, PidFile::Stat).map_err(|_| Exited)?;
        match parse::stat(bytes) {
            Ok(s) => Ok(Some(s)),
            Err(e) => {
                // Never seen from a real kernel: worth a line, but not one per sample of
                // each such process.
                let why = format!("pid {pid} skipped: {}/{pid}/stat: {e}", self.files.root());
                let now = Instant::now();
                if self.warned_at.is_none_or(|at| now.duration_since(at) >= SKIPPED_LOG) {
                    tracing::warn!("{why}");
                    self.warned_at = Some(now);
                }
                self.problem = Some((SystemTime::now(), why));
                Ok(None)
            }
        }
    }

    /// Whether the `stat` of a process whose main thread has not been scheduled since is
    /// still what it was. Its CPU time, faults, thread count and name cannot change
    /// unless one of its threads runs, so it must have just one; its resident size
    /// changes only by reclaim or swapping, which vmstat shows. Its state can still
    /// change by a wake-up (to runnable, before it runs): harmless for a sleeping
    /// process, which shows as sleeping until it runs, but a process that was stuck,
    /// stopped or runnable is read every time. A zombie stays one until reaped.
    fn stat_holds(&self, stat: &parse::Stat) -> bool {
        use pmon_proto::v1::ProcessState::{Idle, Sleeping, Zombie};
        stat.num_threads == 1 && matches!(stat.state, Sleeping | Idle | Zombie) && !self.reclaiming
    }

    /// Machine-wide figures; each file that is missing leaves its figures unset.
    fn system(&mut self, secs: Option<f64>, load: Option<[f64; 3]>, vm: Option<parse::VmStat>) -> SystemFigures {
        let mem = self.files.file("meminfo").map(|b| parse::meminfo(&text(b))).unwrap_or_default();
        let mut pressure = |name| self.files.file(name).ok().and_then(|b| parse::pressure(&text(b)));
        let (cpu_pressure, memory_pressure, io_pressure) =
            (pressure("pressure/cpu"), pressure("pressure/memory"), pressure("pressure/io"));
        let rate = |pick: fn(&parse::VmStat) -> Option<u64>| {
            rate(vm.as_ref().and_then(pick), self.prev_vm.as_ref().and_then(pick), secs)
        };
        let figures = SystemFigures {
            load_1m: load.map(|l| l[0]),
            load_5m: load.map(|l| l[1]),
            load_15m: load.map(|l| l[2]),
            mem_total_bytes: mem.total,
            mem_available_bytes: mem.available,
            swap_total_bytes: mem.swap_total,
            swap_used_bytes: mem.swap_total.zip(mem.swap_free).map(|(t, f)| t.saturating_sub(f)),
            pageins_per_sec: rate(|v| v.pgmajfault),
            swapins_per_sec: rate(|v| v.pswpin),
            swapouts_per_sec: rate(|v| v.pswpout),
            cpu_pressure,
            memory_pressure,
            io_pressure,
            // macOS figures (powermetrics): not on Linux.
            thermal_pressure: ThermalPressure::Unspecified as i32,
            gpu_busy_percent: None,
            disk_read_bytes_per_sec: None,
            disk_write_bytes_per_sec: None,
        };
        self.prev_vm = vm;
        figures
    }
}

impl Collector for ProcCollector {
    fn name(&self) -> &'static str {
        "proc"
    }

    fn collect(&mut self) -> Result<RawSample, CollectError> {
        self.collect_with(&Instant::now, SystemTime::now())
    }

    fn health(&self) -> SourceHealth {
        SourceHealth { restarts: 0, last_problem: self.problem.clone() }
    }
}

/// Machine-wide /proc files are ASCII; lossy decoding only guards against surprises.
fn text(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

#[cfg(test)]
mod tests;
