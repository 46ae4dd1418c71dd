//! What the server itself costs (SPEC §3.9): CPU over a recent window, CPU per
//! sample, resident memory. Reported by `GetStatus`.
//!
//! CPU figures come from `getrusage` and the per-thread CPU clock, which exist on every
//! Unix; memory comes from an OS-specific twin module.

#[cfg_attr(target_os = "linux", path = "linux.rs")]
#[cfg_attr(target_os = "macos", path = "macos.rs")]
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), path = "other.rs")]
mod os;

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

pub use os::memory;

/// Resident memory now and its peak since start, bytes; `None` where not available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// Resident now.
    pub resident: Option<u64>,
    /// Highest resident since start.
    pub peak: Option<u64>,
}

/// CPU time (user + system) of the whole process.
pub fn process_cpu_time() -> Duration {
    // SAFETY: getrusage writes into the struct we pass; RUSAGE_SELF is always valid.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

/// CPU time (user + system) of the calling thread.
pub fn thread_cpu_time() -> Duration {
    // SAFETY: clock_gettime writes into the timespec we pass; the clock id is valid on
    // Linux and macOS. On failure the zeroed value is returned, which only understates.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
        ts
    };
    Duration::new(u64::try_from(ts.tv_sec).unwrap_or(0), u32::try_from(ts.tv_nsec).unwrap_or(0))
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::new(u64::try_from(tv.tv_sec).unwrap_or(0), 0)
        + Duration::from_micros(u64::try_from(tv.tv_usec).unwrap_or(0))
}

/// How far back the recent CPU percentage looks.
const WINDOW: Duration = Duration::from_secs(60);

/// Accumulates the sampler's cost, one sample at a time (no allocation once the
/// window is full: one entry per sample within 60 s).
#[derive(Debug)]
pub struct CostMeter {
    started: Instant,
    window: VecDeque<(Instant, Duration)>,
    samples: u64,
    total_sample_cpu: Duration,
    last_sample_cpu: Duration,
}

/// A snapshot of the meter; `None` before the first sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CostFigures {
    /// Process CPU over the window, percent of one core.
    pub cpu_percent: Option<f64>,
    /// Process CPU since start.
    pub cpu_total: Duration,
    /// CPU of the latest sample.
    pub last_sample_cpu: Option<Duration>,
    /// Mean CPU per sample.
    pub mean_sample_cpu: Option<Duration>,
}

impl CostMeter {
    /// A meter starting now.
    pub fn new(now: Instant, cpu_now: Duration) -> Self {
        let mut window = VecDeque::new();
        window.push_back((now, cpu_now));
        Self { started: now, window, samples: 0, total_sample_cpu: Duration::ZERO, last_sample_cpu: Duration::ZERO }
    }

    /// Records one sample's own CPU and the process CPU total at `now`.
    pub fn record(&mut self, now: Instant, process_cpu: Duration, sample_cpu: Duration) {
        self.samples += 1;
        self.total_sample_cpu += sample_cpu;
        self.last_sample_cpu = sample_cpu;
        self.window.push_back((now, process_cpu));
        // Keep one entry at or beyond the window's start as the reference point.
        while self.window.len() > 2 && self.window.get(1).is_some_and(|(t, _)| now.duration_since(*t) >= WINDOW) {
            self.window.pop_front();
        }
    }

    /// The figures so far.
    pub fn figures(&self) -> CostFigures {
        let (first, last) = match (self.window.front(), self.window.back()) {
            (Some(f), Some(l)) => (*f, *l),
            _ => ((self.started, Duration::ZERO), (self.started, Duration::ZERO)),
        };
        let wall = last.0.saturating_duration_since(first.0).as_secs_f64();
        let cpu = last.1.saturating_sub(first.1).as_secs_f64();
        let sampled = self.samples > 0;
        CostFigures {
            cpu_percent: (sampled && wall > 0.0).then(|| cpu / wall * 100.0),
            cpu_total: last.1,
            last_sample_cpu: sampled.then_some(self.last_sample_cpu),
            mean_sample_cpu: self.total_sample_cpu.checked_div(u32::try_from(self.samples).unwrap_or(u32::MAX)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_over_the_recent_window() {
        let t0 = Instant::now();
        let mut m = CostMeter::new(t0, Duration::ZERO);
        // 10 ms of process CPU per second for 2 minutes: 1 %.
        for s in 1..=120u64 {
            m.record(t0 + Duration::from_secs(s), Duration::from_millis(10 * s), Duration::from_millis(2));
        }
        let f = m.figures();
        assert!(f.cpu_percent.is_some_and(|c| (c - 1.0).abs() < 1e-9), "{:?}", f.cpu_percent);
        assert_eq!(f.cpu_total, Duration::from_millis(1200));
        let two_ms = Some(Duration::from_millis(2));
        assert_eq!((f.last_sample_cpu, f.mean_sample_cpu), (two_ms, two_ms));
        assert!(m.window.len() <= 62, "window stays bounded: {}", m.window.len());
    }

    #[test]
    fn no_samples_yet_is_unknown_not_zero() {
        let f = CostMeter::new(Instant::now(), Duration::from_millis(5)).figures();
        assert_eq!((f.cpu_percent, f.last_sample_cpu, f.mean_sample_cpu), (None, None, None));
        assert_eq!(f.cpu_total, Duration::from_millis(5));
    }

    #[test]
    fn own_clocks_move_with_work() {
        let (p0, t0) = (process_cpu_time(), thread_cpu_time());
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(thread_cpu_time() > t0);
        assert!(process_cpu_time() > p0);
    }

    #[cfg(any(target_os = "linux", target_os = "macos"))]
    #[test]
    fn memory_is_known_here() {
        let m = memory();
        assert!(m.resident.is_some_and(|r| r > 0), "{m:?}");
        assert!(m.peak >= m.resident, "{m:?}");
    }
}
