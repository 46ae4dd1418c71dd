//! The Linux `proc` source: `/proc/[pid]/{stat,status,io}` for every process and
//! `/proc/{loadavg,meminfo,vmstat,pressure/*}` for the machine. No subprocess.
//!
//! ```text
//! files (read into one buffer) ──► parse (pure) ──► rates vs previous sample ──► RawSample
//! ```
//!
//! Processes vanish between listing and reading, `io` is unreadable for other users'
//! processes when not root, kernel threads have no memory or system calls: all normal,
//! none an error. The root is injectable so tests run on `fixtures/proc/` trees.

mod files;
pub mod parse;

use std::{
    borrow::Cow,
    collections::HashMap,
    path::Path,
    time::{Instant, SystemTime},
};

use pmon_proto::v1::{ProcessFactors, SystemFigures};

use super::{CollectError, Collector, ProcessRecord, RawSample};
pub use files::raise_open_file_limit;
use files::{PidFile, ProcFiles};

/// Cumulative counters of one process, kept until the next sample to compute rates.
#[derive(Debug, Clone, Copy)]
struct Counters {
    starttime: u64,
    cpu_ticks: u64,
    majflt: u64,
    ctxt_switches: Option<u64>,
    syscalls: Option<u64>,
}

/// The `proc` collector.
pub struct ProcCollector {
    files: ProcFiles,
    prev: HashMap<u32, Counters>,
    next: HashMap<u32, Counters>,
    prev_at: Option<Instant>,
    prev_vm: Option<parse::VmStat>,
    pids: Vec<u32>,
    ticks_per_sec: f64,
    page_size: u64,
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
            prev_vm: None,
            pids: Vec::new(),
            ticks_per_sec,
            page_size,
        }
    }

    /// Collects at an explicit instant; `collect` passes the real clock, tests a fake one.
    pub fn collect_at(&mut self, now: Instant, time: SystemTime) -> Result<RawSample, CollectError> {
        let elapsed = self.prev_at.map(|p| now.saturating_duration_since(p));
        let secs = elapsed.map(|e| e.as_secs_f64()).filter(|s| *s > 0.0);

        let mut pids = std::mem::take(&mut self.pids);
        self.files
            .list_pids(&mut pids)
            .map_err(|source| CollectError::List { path: self.files.root().to_string(), source })?;
        let mut processes = Vec::with_capacity(pids.len());
        for &pid in &pids {
            if let Some(record) = self.process(pid, secs) {
                processes.push(record);
            }
        }
        self.pids = pids;
        self.files.forget_unseen();
        // Keep only pids seen this time: exited processes are forgotten.
        std::mem::swap(&mut self.prev, &mut self.next);
        self.next.clear();
        self.prev_at = Some(now);

        let system = self.system(secs);
        Ok(RawSample { time, elapsed, processes, system })
    }

    /// Reads and rates one process; `None` if it vanished or its `stat` is unusable.
    fn process(&mut self, pid: u32, secs: Option<f64>) -> Option<ProcessRecord> {
        let stat = match self.files.pid_file(pid, PidFile::Stat) {
            Ok(bytes) => parse::stat(bytes),
            Err(_) => return None, // exited since the listing
        };
        let stat = match stat {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(pid, "skipping process: {e}");
                return None;
            }
        };
        // status is world-readable: failing to read it means the process just exited.
        let status = parse::status(self.files.pid_file(pid, PidFile::Status).ok()?);
        // Kernel threads make no system calls; other users' io is unreadable unless root.
        let syscalls = if stat.kernel_thread {
            None
        } else {
            self.files.pid_file(pid, PidFile::Io).ok().and_then(parse::io_syscalls)
        };

        let now = Counters {
            starttime: stat.starttime,
            cpu_ticks: stat.cpu_ticks,
            majflt: stat.majflt,
            ctxt_switches: status.ctxt_switches,
            syscalls,
        };
        // A different start time means the pid was reused: no rates for the newcomer.
        let before = self.prev.get(&pid).filter(|p| p.starttime == stat.starttime);
        let rate = |cur: Option<u64>, old: Option<u64>| rate(cur, old, secs);
        let cpu_ticks_per_sec = rate(Some(now.cpu_ticks), before.map(|b| b.cpu_ticks));
        let factors = ProcessFactors {
            cpu_percent: cpu_ticks_per_sec.map(|t| t / self.ticks_per_sec * 100.0),
            pageins_per_sec: rate(Some(now.majflt), before.map(|b| b.majflt)),
            // Kernel threads have no user address space: memory does not apply.
            mem_bytes: (!stat.kernel_thread).then(|| stat.rss_pages.saturating_mul(self.page_size)),
            cmprs_bytes: status.swap_bytes,
            csw_per_sec: rate(now.ctxt_switches, before.and_then(|b| b.ctxt_switches)),
            sysbsd_per_sec: rate(now.syscalls, before.and_then(|b| b.syscalls)),
            threads: Some(stat.num_threads),
        };
        self.next.insert(pid, now);
        Some(ProcessRecord { pid, command: stat.comm, state: stat.state, factors })
    }

    /// Machine-wide figures; each file that is missing leaves its figures unset.
    fn system(&mut self, secs: Option<f64>) -> SystemFigures {
        let load = self.files.file("loadavg").ok().and_then(|b| parse::loadavg(&text(b)));
        let mem = self.files.file("meminfo").map(|b| parse::meminfo(&text(b))).unwrap_or_default();
        let mut pressure = |name| self.files.file(name).ok().and_then(|b| parse::pressure(&text(b)));
        let (cpu_pressure, memory_pressure, io_pressure) =
            (pressure("pressure/cpu"), pressure("pressure/memory"), pressure("pressure/io"));
        let vm = self.files.file("vmstat").ok().map(|b| parse::vmstat(&text(b)));
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
        self.collect_at(Instant::now(), SystemTime::now())
    }
}

/// Per-second rate of a cumulative counter; none without both readings and time, or
/// when the counter went backwards (it was reset: no meaningful rate).
fn rate(cur: Option<u64>, old: Option<u64>, secs: Option<f64>) -> Option<f64> {
    let (cur, old, secs) = (cur?, old?, secs?);
    (cur >= old).then(|| (cur - old) as f64 / secs)
}

/// Machine-wide /proc files are ASCII; lossy decoding only guards against surprises.
fn text(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

#[cfg(test)]
mod tests;
