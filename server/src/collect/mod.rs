//! Collectors: one trait, one implementation per source (SPEC §3.1).
//!
//! A collector turns what the OS reports into a [`RawSample`]: per-process records with
//! cumulative counters already turned into per-second rates (from the previous sample of
//! the same pid and the real elapsed time), plus machine-wide figures. Everything after
//! the collector is a pure function of samples and configuration.

pub mod child;
pub mod libproc;
pub mod powermetrics;
pub mod proc;
pub mod rates;
pub mod recording;
pub mod replay;
pub mod top;

use std::time::{Duration, SystemTime};

use pmon_proto::{
    config::SourceKind,
    v1::{ProcessFactors, ProcessState, SchedPolicy, SystemFigures},
};

/// One process as a collector saw it. Factors the source cannot give are `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessRecord {
    /// Process id.
    pub pid: u32,
    /// Command name.
    pub command: String,
    /// Scheduler state.
    pub state: ProcessState,
    /// Raw factors, rates per second.
    pub factors: ProcessFactors,
    /// Parent process id, where the source tells.
    pub ppid: Option<u32>,
    /// How it is scheduled, where the source tells.
    pub scheduling: Option<Scheduling>,
    /// A kernel thread: it has no user memory and makes no system calls.
    pub kernel_thread: bool,
    /// What it consumed and waited since the previous reading of it; `None` at first
    /// sight, and when the two readings were too close together to tell.
    pub usage: Option<Usage>,
}

/// How a process is scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheduling {
    /// Scheduling class.
    pub policy: SchedPolicy,
    /// Real-time priority (1..99 for FIFO and RR, 0 otherwise).
    pub rt_priority: u32,
    /// Nice value, where the source tells.
    pub nice: Option<i32>,
}

impl Scheduling {
    /// A real-time class (FIFO, round robin, deadline): it runs ahead of every ordinary
    /// task.
    pub fn real_time(&self) -> bool {
        matches!(self.policy, SchedPolicy::Fifo | SchedPolicy::Rr | SchedPolicy::Deadline)
    }
}

/// What a process did between two readings of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Time between the two readings.
    pub span: Duration,
    /// CPU time it consumed, all threads.
    pub cpu: Duration,
    /// Time it was runnable but waited for a CPU, where the source tells: every
    /// thread's where they were read, else its main thread's.
    pub run_delay: Option<Duration>,
    /// Time it waited for block I/O, where the source tells (Linux delay accounting).
    pub io_delay: Option<Duration>,
    /// Major page faults, where the source tells.
    pub pageins: Option<u64>,
    /// How much its resident memory grew (negative: shrank), bytes, where the source
    /// tells.
    pub mem_growth: Option<i64>,
    /// How long after the start of the collection this reading was taken: a collection
    /// held up half-way reads its last processes seconds after its first.
    pub lag: Duration,
    /// CPU time of children it reaped between the readings that no reading of theirs
    /// accounts for (they ran after their last reading, or were never read), where the
    /// source tells; and the one child it came from, when a single read child exited.
    pub reaped: Option<Reaped>,
}

/// CPU time a parent's reaped children used beyond what was read of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    /// The CPU time.
    pub cpu: Duration,
    /// The child it belongs to, when exactly one child that had been read exited;
    /// otherwise it belongs to the parent's children as a whole.
    pub child: Option<u32>,
}

impl Usage {
    /// CPU time alone, for sources that tell nothing else: `cpu_percent` of one core over
    /// `span`; `None` for a percentage that makes no time (negative, not finite).
    pub fn of_cpu(span: Duration, cpu_percent: f64) -> Option<Usage> {
        let cpu = Duration::try_from_secs_f64(span.as_secs_f64() * cpu_percent / 100.0).ok()?;
        Some(Usage {
            span,
            cpu,
            run_delay: None,
            io_delay: None,
            pageins: None,
            mem_growth: None,
            lag: Duration::ZERO,
            reaped: None,
        })
    }
}

/// Everything one collection produced.
#[derive(Debug, Clone, PartialEq)]
pub struct RawSample {
    /// Wall-clock time of the collection.
    pub time: SystemTime,
    /// Real time since the previous collection; `None` for the first.
    pub elapsed: Option<Duration>,
    /// Every process seen.
    pub processes: Vec<ProcessRecord>,
    /// Machine-wide figures.
    pub system: SystemFigures,
}

/// A source of samples.
pub trait Collector: Send {
    /// The source's name as shown in status (`proc`, …).
    fn name(&self) -> &'static str;
    /// Takes one sample. Blocking; called from the sampler thread.
    fn collect(&mut self) -> Result<RawSample, CollectError>;
    /// Restarts of the source's child process and the latest problem, for status.
    fn health(&self) -> SourceHealth {
        SourceHealth::default()
    }
    /// A replayed sample's place in the recording's time (since its first sample): the
    /// engine runs its clock on it, so a replay's tiers and events do not depend on its
    /// speed. `None` for live sources.
    fn recorded_offset(&self) -> Option<Duration> {
        None
    }
    /// Whether `collect` itself waits for the next sample (a replay at its own pace):
    /// then the engine does not wait between samples as well.
    fn self_paced(&self) -> bool {
        false
    }
    /// What a replay has done, for its closing summary; `None` for live sources.
    fn replay_summary(&self) -> Option<replay::Summary> {
        None
    }
}

/// How a source that runs a child process (`top`, `powermetrics`) has fared.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceHealth {
    /// Times the child exited and had to be started again.
    pub restarts: u64,
    /// When the latest exit happened, and how.
    pub last_problem: Option<(SystemTime, String)>,
}

/// A collection that failed as a whole (single processes vanishing are not errors).
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// The source does not exist on this platform.
    #[error("the {source_name} source is not available on {platform}; accepted here: {accepted}")]
    Unsupported {
        /// The source asked for.
        source_name: &'static str,
        /// This platform.
        platform: &'static str,
        /// Sources that work here.
        accepted: &'static str,
    },
    /// The process table could not be listed at all.
    #[error("cannot list processes in {path}: {source}")]
    List {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A finite source (a replayed capture) has no more samples.
    #[error("the capture has been replayed to its end")]
    Finished,
    /// A capture to replay could not be read.
    #[error("cannot replay {path}: {message}")]
    Replay {
        /// The capture.
        path: String,
        /// Why.
        message: String,
    },
    /// A source's child process or stream failed (it is being restarted).
    #[error("{source_name} source: {message}")]
    Source {
        /// The source.
        source_name: &'static str,
        /// What happened.
        message: String,
    },
}

/// Sources that work on this platform, for error messages. `top` and `powermetrics`
/// are macOS tools; elsewhere they run whatever program of that name comes first on
/// PATH (a stand-in replaying a capture).
const ACCEPTED: &str = if cfg!(target_os = "linux") {
    "auto, proc, top, powermetrics"
} else if cfg!(target_os = "macos") {
    "auto, libproc, top, powermetrics"
} else {
    "top, powermetrics"
};

/// Opens the collector a configuration asks for; `interval` is the sampling interval
/// (sources that run a child pass it on).
///
/// powermetrics needs root. A server that is not root on macOS runs it through
/// `sudo -n`, which `sudo pmon install --forensics` allows for exactly these arguments.
pub fn open(kind: SourceKind, interval: Duration) -> Result<Box<dyn Collector>, CollectError> {
    let unsupported =
        |source_name| CollectError::Unsupported { source_name, platform: std::env::consts::OS, accepted: ACCEPTED };
    match kind {
        #[cfg(target_os = "linux")]
        SourceKind::Auto | SourceKind::Proc => Ok(Box::new(proc::ProcCollector::new("/proc"))),
        #[cfg(target_os = "macos")]
        SourceKind::Auto | SourceKind::Libproc => {
            // As root the kernel answers for every process; otherwise other users'
            // processes get their figures from a `top` stream (see libproc::others).
            let others: Option<Box<dyn libproc::others::OtherUsers>> = if running_as_root() {
                None
            } else {
                Some(Box::new(libproc::others::TopStream::start("top", interval)?))
            };
            Ok(Box::new(libproc::LibprocCollector::new(libproc::native::Native::default(), others)))
        }
        SourceKind::Top => Ok(Box::new(top::TopCollector::start("top", interval)?)),
        SourceKind::Powermetrics => {
            let (program, prefix) = powermetrics_command();
            Ok(Box::new(powermetrics::PowermetricsCollector::start(program, prefix, interval)?))
        }
        #[cfg(not(any(target_os = "linux", target_os = "macos")))]
        SourceKind::Auto => Err(unsupported("auto")),
        #[cfg(not(target_os = "linux"))]
        SourceKind::Proc => Err(unsupported("proc")),
        #[cfg(not(target_os = "macos"))]
        SourceKind::Libproc => Err(unsupported("libproc")),
    }
}

#[cfg(test)]
pub(crate) mod no_panic_tests;

/// How to run powermetrics: directly as root (and on PATH elsewhere, where only
/// stand-ins exist), through `sudo -n` with its full path on macOS otherwise.
fn powermetrics_command() -> (&'static str, &'static [&'static str]) {
    if cfg!(target_os = "macos") && !running_as_root() {
        ("sudo", &["-n", "/usr/bin/powermetrics"])
    } else {
        ("powermetrics", &[])
    }
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
