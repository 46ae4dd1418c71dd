//! Other users' processes without root: the kernel refuses libproc's per-process calls
//! for them (see [`super::raw`]), so their CPU and memory come from a way that works
//! unprivileged, and are merged into the sample for exactly the refused pids.
//!
//! ```text
//! KERN_PROC_ALL (every pid) ─► libproc calls ─► own: libproc's figures
//!                                            └► refused ─► fill() ◄─ OtherUsers::latest()
//! ```
//!
//! The way in use is [`TopStream`]: one long-lived `top -l 0` child (privileged —
//! setuid root or entitled, depending on the macOS release — so it reads every process), parsed by the `top` source's own parser. It is chosen over
//! running `ps -axo pid=,time=,rss=` each sample for three reasons, with costs at ~500
//! processes and ~2 500 threads reasoned from Apple's sources:
//!
//! - `ps` starts a setuid binary every sample (fork, exec, dyld: a few ms), then per
//!   process makes `task_for_pid`, three `task_info`, `vm_region_64` and
//!   `task_threads`, and per thread two `thread_info` and a port release (adv_cmds
//!   `ps/tasks.c`): ~11 000 kernel calls, about 10–20 ms of CPU a sample at ~1–2 µs each.
//! - `top -l 0` pays no start-up per sample; libtop makes ~15 calls per process and two
//!   per thread (`top/libtop.c`, `libtop_p_task_update`): ~12 000 calls, the same
//!   10–20 ms a sample, plus ~500 text rows that pmon parses in one pass (not
//!   measured on a Mac).
//! - `ps` leaves out pid 0 (`ps.c` skips it), so kernel_task, a usual suspect, would
//!   have no CPU at all; `top` shows it, with states (stuck), threads, context
//!   switches, system calls and page-ins besides CPU and memory.
//!
//! Either costs 1–2 % of one core at 1 Hz, above the 0.5 % pmon aims at, which is
//! why it runs only without root (as root the kernel answers for everyone) and is a
//! replaceable part: another way (coalition usage, a privileged helper) implements
//! [`OtherUsers`].

use std::{
    collections::HashMap,
    time::{Duration, Instant, SystemTime},
};

use pmon_proto::v1::ProcessState;

use super::super::{
    CollectError, ProcessRecord, SourceHealth,
    child::{Child, Output},
    top::{self, TopConverter, TopParser},
};

/// A way to read processes that libproc may not.
pub trait OtherUsers: Send {
    /// Its newest complete reading of every process it sees, taken in without waiting;
    /// `None` before the first one and once the newest is too old to trust.
    fn latest(&mut self) -> Option<Reading<'_>>;
    /// How its child process has fared.
    fn health(&self) -> SourceHealth;
}

/// Another way's reading of every process it sees, by pid.
#[derive(Debug, Clone, Copy)]
pub struct Reading<'a> {
    /// The processes.
    pub processes: &'a HashMap<u32, ProcessRecord>,
    /// First handed out now. The sampler may collect several times within one of the
    /// other way's intervals (4 Hz while stressed, top at whole seconds): each time the
    /// same reading gives its figures, but its consumption counts once, or attribution
    /// would add the same CPU up several times over.
    pub new: bool,
}

/// Gives a refused process the figures another way read of it, when that way saw the
/// same process: the same pid under the same name (`top` cuts names to 16 characters,
/// `p_comm` holds 16 bytes, so one name may be the start of the other). Without such a
/// reading its figures stay unavailable.
pub fn fill(record: &mut ProcessRecord, reading: Option<Reading<'_>>) {
    let Some(r) = reading else { return };
    let Some(other) = r.processes.get(&record.pid).filter(|o| same_name(&o.command, &record.command)) else {
        return;
    };
    record.factors = other.factors;
    if other.state != ProcessState::Unspecified {
        record.state = other.state;
    }
    record.usage = if r.new { other.usage } else { None };
}

fn same_name(a: &str, b: &str) -> bool {
    !a.is_empty() && !b.is_empty() && (a.starts_with(b) || b.starts_with(a))
}

/// Other users' processes from a long-lived `top -l 0` stream.
pub struct TopStream {
    child: Child,
    parser: TopParser,
    converter: TopConverter,
    /// When bytes last came, and when the newest sample was complete.
    last_bytes: Option<Instant>,
    last_sample: Option<Instant>,
    latest: HashMap<u32, ProcessRecord>,
    /// Whether the newest reading has been handed out already.
    handed: bool,
    /// top's interval: its samples are this far apart by its own clock.
    interval: Duration,
    /// A reading older than this is not used: top has stopped or fallen behind.
    max_age: Duration,
    health: SourceHealth,
}

impl TopStream {
    /// Starts `program` (normally `top` on PATH) at `interval`, rounded up to whole
    /// seconds.
    pub fn start(program: &str, interval: Duration) -> Result<Self, CollectError> {
        let (child, secs) = top::spawn(program, interval)?;
        Ok(Self {
            child,
            parser: TopParser::default(),
            converter: TopConverter::default(),
            last_bytes: None,
            last_sample: None,
            latest: HashMap::new(),
            handed: false,
            interval: Duration::from_secs(secs),
            max_age: Duration::from_secs(secs * 3 + 1),
            health: SourceHealth::default(),
        })
    }

    fn take(&mut self, sample: &top::TopSample) {
        // top's samples are its interval apart, whenever pmon happens to read them (two
        // may come in one read): the rates are over that interval.
        let elapsed = self.last_sample.map(|_| self.interval);
        self.last_sample = Some(Instant::now());
        let converted = self.converter.convert(sample, SystemTime::now(), elapsed);
        self.latest = converted.processes.into_iter().map(|p| (p.pid, p)).collect();
        self.handed = false;
    }
}

impl OtherUsers for TopStream {
    fn latest(&mut self) -> Option<Reading<'_>> {
        while let Some(output) = self.child.next(Duration::ZERO) {
            match output {
                Output::Bytes(bytes) => {
                    self.last_bytes = Some(Instant::now());
                    for sample in self.parser.push(&bytes) {
                        self.take(&sample);
                    }
                }
                Output::Started => {
                    self.parser = TopParser::default();
                    self.converter.restart();
                    self.last_sample = None;
                }
                Output::Exited(message) => {
                    self.health.restarts += 1;
                    self.health.last_problem = Some((SystemTime::now(), message));
                }
            }
        }
        // top writes a sample in one go: rows followed by a short silence are complete.
        let quiet = self.last_bytes.is_some_and(|at| at.elapsed() >= top::QUIET);
        if quiet
            && self.parser.has_rows()
            && let Some(sample) = self.parser.finish()
        {
            self.take(&sample);
        }
        let fresh = self.last_sample.is_some_and(|at| at.elapsed() <= self.max_age);
        if !fresh {
            return None;
        }
        let new = !std::mem::replace(&mut self.handed, true);
        Some(Reading { processes: &self.latest, new })
    }

    fn health(&self) -> SourceHealth {
        self.health.clone()
    }
}
