//! The machine's stress (SPEC §3.2 "Contention and groups"): what the kernel says
//! about waiting, beside the per-process score. A per-process score shows who is big;
//! this shows whether the others wait.
//!
//! ```text
//! each sample: Σ run delay, Σ real-time CPU, PSI totals ─► running totals (kept for a window)
//! window: Δ totals ÷ Δt ─► factor values ─► points (each factor's ramp)
//!         ─► the highest of each kind ─► the top kind + a share of the others = score
//! ```
//!
//! The counters are cumulative (PSI totals, every process's run delay), so shares are
//! measured over `stress.window_seconds` from the kernel's own accounting, not from its
//! 10-second averages, which lag a flood by several seconds.

use std::{
    collections::VecDeque,
    time::{Duration, SystemTime},
};

use pmon_proto::{
    config::Stress,
    v1::{MachineStress, StressFactor, StressShare, SystemFigures, ThermalPressure},
};

use crate::collect::ProcessRecord;

/// Points from which a second kind of waiting is named in the reason (below, "and io:
/// some task waited on I/O 0%" would say nothing).
const SECOND_NAMED: f64 = 5.0;

/// One factor's value and what it means in words.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub factor: StressFactor,
    pub value: f64,
    pub detail: String,
}

/// Running totals of the cumulative figures, at one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Totals {
    at: SystemTime,
    /// Run delay of every process; `None` where the source does not tell it.
    waited: Option<Duration>,
    /// Run delay of processes that are not real-time.
    ordinary_waited: Duration,
    /// CPU time of real-time processes.
    realtime_cpu: Duration,
    /// PSI "some" and "full" totals, microseconds.
    memory_some: Option<u64>,
    memory_full: Option<u64>,
    io_some: Option<u64>,
}

/// The totals of the last window of samples, for measuring shares over it.
#[derive(Debug)]
pub struct Contention {
    history: VecDeque<Totals>,
}

impl Contention {
    pub fn new() -> Self {
        Self { history: VecDeque::new() }
    }

    /// Adds a sample and measures every factor the platform gives over the window
    /// ending at it; `cpus` are the CPUs online.
    pub fn measure(
        &mut self,
        at: SystemTime,
        processes: &[ProcessRecord],
        system: &SystemFigures,
        cpus: u32,
        window: Duration,
    ) -> Vec<Measured> {
        let totals = self.add(at, processes, system);
        // The newest sample at least a window old, else the oldest there is.
        let start = self
            .history
            .iter()
            .rev()
            .find(|t| at.duration_since(t.at).is_ok_and(|d| d >= window))
            .or_else(|| self.history.front())
            .copied();
        if let Some(start) = start {
            let keep = start.at;
            self.history.retain(|t| t.at >= keep);
        }
        let mut out = Vec::new();
        if let Some(start) = start.filter(|s| s.at != at) {
            out.extend(waits(&start, &totals, system, cpus));
        }
        out.extend(levels(system));
        out
    }

    /// The running totals after this sample (the history restarts when time went back).
    fn add(&mut self, at: SystemTime, processes: &[ProcessRecord], system: &SystemFigures) -> Totals {
        if self.history.back().is_some_and(|last| last.at > at) {
            self.history.clear();
        }
        let before = self.history.back().copied();
        let mut waited: Option<Duration> = None;
        let (mut ordinary_waited, mut realtime_cpu) = (Duration::ZERO, Duration::ZERO);
        for p in processes {
            let Some(usage) = &p.usage else { continue };
            let real_time = p.scheduling.is_some_and(|s| s.real_time());
            if real_time {
                realtime_cpu += usage.cpu;
            }
            if let Some(delay) = usage.run_delay {
                *waited.get_or_insert(Duration::ZERO) += delay;
                if !real_time {
                    ordinary_waited += delay;
                }
            }
        }
        let totals = Totals {
            at,
            waited: match (before.and_then(|b| b.waited), waited) {
                (Some(b), Some(w)) => Some(b + w),
                (b, w) => b.or(w),
            },
            ordinary_waited: before.map_or(Duration::ZERO, |b| b.ordinary_waited) + ordinary_waited,
            realtime_cpu: before.map_or(Duration::ZERO, |b| b.realtime_cpu) + realtime_cpu,
            memory_some: system.memory_pressure.as_ref().map(|p| p.some_total_micros),
            memory_full: system.memory_pressure.as_ref().and_then(|p| p.full_total_micros),
            io_some: system.io_pressure.as_ref().map(|p| p.some_total_micros),
        };
        self.history.push_back(totals);
        totals
    }
}

/// The shares of the window spent waiting, from the growth of the totals.
fn waits(start: &Totals, end: &Totals, system: &SystemFigures, cpus: u32) -> Vec<Measured> {
    let Ok(span) = end.at.duration_since(start.at) else { return vec![] };
    let secs = span.as_secs_f64();
    if secs <= 0.0 {
        return vec![];
    }
    let window = format!("the last {secs:.1} s");
    let mut out = Vec::new();
    let per_second = |d: Duration| d.as_secs_f64() / secs;
    if let Some(b) = end.waited {
        // Nothing summed before the start counts as nothing waited.
        let a = start.waited.unwrap_or_default();
        let waiting = per_second(b.saturating_sub(a)) / f64::from(cpus.max(1));
        out.push(Measured {
            factor: StressFactor::CpuWait,
            value: waiting,
            detail: format!("{waiting:.1} tasks waited for each CPU over {window} (run-queue delay)"),
        });
        // Shares of the machine's CPUs: one real-time core of 64 is not 1 of 2.
        let n = f64::from(cpus.max(1));
        let ordinary = per_second(end.ordinary_waited.saturating_sub(start.ordinary_waited)) / n;
        let realtime = per_second(end.realtime_cpu.saturating_sub(start.realtime_cpu)) / n;
        // What real-time tasks took only counts while ordinary ones waited for it.
        let taken = realtime.min(ordinary);
        out.push(Measured {
            factor: StressFactor::Realtime,
            value: taken,
            detail: format!(
                "real-time tasks took {:.0}% of the CPUs while ordinary ones waited {:.0}% of the CPUs' time over {window}",
                realtime * 100.0,
                ordinary * 100.0
            ),
        });
    } else if let Some(load) = system.load_1m {
        // No run delay (macOS): the 1-minute load beyond the CPUs, per CPU.
        let n = f64::from(cpus.max(1));
        let waiting = ((load - n) / n).max(0.0);
        out.push(Measured {
            factor: StressFactor::CpuWait,
            value: waiting,
            detail: format!("load {load:.1} on {cpus} CPUs: {waiting:.1} tasks waiting for each (1-minute load)"),
        });
    }
    let share = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 1e6 / secs * 100.0),
        _ => None,
    };
    let psi = [
        (StressFactor::MemorySome, share(start.memory_some, end.memory_some), "some task waited for memory"),
        (StressFactor::MemoryFull, share(start.memory_full, end.memory_full), "every task waited for memory"),
        (StressFactor::IoSome, share(start.io_some, end.io_some), "some task waited on I/O"),
    ];
    for (factor, value, who) in psi {
        if let Some(value) = value {
            out.push(Measured { factor, value, detail: format!("{who} {value:.0}% of {window} (PSI)") });
        }
    }
    out
}

/// The figures that are levels or rates already: available memory, page-ins, swap,
/// thermal pressure.
fn levels(system: &SystemFigures) -> Vec<Measured> {
    let mut out = Vec::new();
    if let (Some(available), Some(total)) = (system.mem_available_bytes, system.mem_total_bytes.filter(|t| *t > 0)) {
        let value = available as f64 / total as f64 * 100.0;
        out.push(Measured {
            factor: StressFactor::MemoryAvailable,
            value,
            detail: format!("{value:.1}% of memory available ({} MiB)", available >> 20),
        });
    }
    if let Some(value) = system.pageins_per_sec {
        out.push(Measured { factor: StressFactor::Pageins, value, detail: format!("{value:.0} page-ins a second") });
    }
    if system.swapins_per_sec.is_some() || system.swapouts_per_sec.is_some() {
        let (i, o) = (system.swapins_per_sec.unwrap_or(0.0), system.swapouts_per_sec.unwrap_or(0.0));
        out.push(Measured {
            factor: StressFactor::Swap,
            value: i + o,
            detail: format!("{i:.0} pages swapped in and {o:.0} out a second"),
        });
    }
    let thermal = match system.thermal_pressure() {
        ThermalPressure::Unspecified => None,
        ThermalPressure::Nominal => Some((0.0, "nominal")),
        ThermalPressure::Moderate => Some((1.0, "moderate")),
        ThermalPressure::Heavy => Some((2.0, "heavy")),
        ThermalPressure::Trapping => Some((3.0, "trapping")),
        ThermalPressure::Sleeping => Some((3.0, "sleeping")),
    };
    if let Some((value, word)) = thermal {
        out.push(Measured { factor: StressFactor::Thermal, value, detail: format!("thermal pressure {word}") });
    }
    out
}

/// Turns the measured factors into points, most first. Factors of one kind (cpu,
/// memory, io, heat) tell of one way to wait, often at once (a thrash stalls on memory,
/// faults pages in and swaps): a kind counts by its highest factor. The score is the
/// highest kind's points plus `others_share` of each other kind's: several ways of
/// waiting at once are worse than one.
pub fn assess(measured: Vec<Measured>, config: &Stress) -> MachineStress {
    let mut factors: Vec<StressShare> = measured
        .into_iter()
        .map(|m| {
            let points = ramp(config, m.factor).map_or(0.0, |r| r.points(m.value));
            StressShare { factor: m.factor as i32, value: m.value, points, detail: m.detail }
        })
        .collect();
    factors.sort_by(|a, b| b.points.total_cmp(&a.points).then(a.factor.cmp(&b.factor)));
    // The leading factor of each kind, in order of points.
    let mut leaders: Vec<&StressShare> = Vec::new();
    for f in factors.iter().filter(|f| f.points > 0.0) {
        if !leaders.iter().any(|l| kind(l.factor()) == kind(f.factor())) {
            leaders.push(f);
        }
    }
    let others: f64 = leaders.iter().skip(1).map(|f| f.points).sum();
    let score = leaders.first().map_or(0.0, |f| (f.points + config.others_share * others).min(100.0));
    let named = |f: &StressShare| format!("{}: {}", pmon_proto::format::stress_factor(f.factor()), f.detail);
    // The leading kind, and the second where it weighs in noticeably.
    let second = leaders.get(1).filter(|f| f.points >= SECOND_NAMED);
    let reason = leaders.first().into_iter().chain(second).map(|f| named(f)).collect::<Vec<_>>().join("; and ");
    MachineStress { score, factors, reason }
}

/// The way of waiting a factor tells of.
fn kind(factor: StressFactor) -> u8 {
    match factor {
        StressFactor::CpuWait | StressFactor::Realtime => 0,
        StressFactor::MemorySome
        | StressFactor::MemoryFull
        | StressFactor::MemoryAvailable
        | StressFactor::Pageins
        | StressFactor::Swap => 1,
        StressFactor::IoSome => 2,
        StressFactor::Thermal => 3,
        StressFactor::Unspecified => 4,
    }
}

fn ramp(config: &Stress, factor: StressFactor) -> Option<&pmon_proto::config::Ramp> {
    Some(match factor {
        StressFactor::Unspecified => return None,
        StressFactor::CpuWait => &config.cpu_wait,
        StressFactor::Realtime => &config.realtime,
        StressFactor::MemorySome => &config.memory_some,
        StressFactor::MemoryFull => &config.memory_full,
        StressFactor::IoSome => &config.io_some,
        StressFactor::MemoryAvailable => &config.memory_available,
        StressFactor::Pageins => &config.pageins,
        StressFactor::Swap => &config.swap,
        StressFactor::Thermal => &config.thermal,
    })
}

#[cfg(test)]
#[path = "stress_tests.rs"]
mod tests;
