//! `[stress]`: how the machine's own accounting of waiting becomes the machine's stress
//! figure (SPEC §3.2 "Contention and groups"). Each factor rises from 0 points at its
//! `from` value to its `weight` at its `to` value (either way round: available memory
//! counts as it falls); each kind of waiting counts by its highest factor, and the
//! figure is the leading kind's points plus a share of the others'.

use serde::{Deserialize, Serialize};

/// `[stress]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Stress {
    /// Seconds the waiting shares are measured over: long enough that one busy second
    /// does not open an escalation, short enough that a flood shows within it. Default 3.
    pub window_seconds: f64,
    /// The share of each other kind's points (cpu, memory, io, heat) added to the
    /// leading kind's: several ways of waiting at once weigh more than one. Default 0.5.
    pub others_share: f64,
    /// Tasks waiting for a CPU, on average per CPU. Default weight 60, from 0 to 2.4.
    pub cpu_wait: Ramp,
    /// Share of the CPUs (0 to 1) taken by real-time tasks while ordinary ones waited.
    /// Default 100, 0 to 0.4.
    pub realtime: Ramp,
    /// Percent of the window some task waited for memory. Default 60, 0 to 40.
    pub memory_some: Ramp,
    /// Percent of the window every non-idle task waited for memory. Default 100, 5 to 40.
    pub memory_full: Ramp,
    /// Percent of the window some task waited for I/O. Default 60, 0 to 60.
    pub io_some: Ramp,
    /// Memory available, percent of physical memory. Default 100, from 10 down to 0.
    pub memory_available: Ramp,
    /// Page-ins (major faults) per second. Default 60, 500 to 5000.
    pub pageins: Ramp,
    /// Pages swapped in and out per second. Default 60, 0 to 5000.
    pub swap: Ramp,
    /// Thermal pressure, 0 nominal to 3 trapping. Default 100, 0 to 3.
    pub thermal: Ramp,
}

impl Default for Stress {
    fn default() -> Self {
        Self {
            window_seconds: 3.0,
            others_share: 0.5,
            cpu_wait: Ramp::new(60.0, 0.0, 2.4),
            realtime: Ramp::new(100.0, 0.0, 0.4),
            memory_some: Ramp::new(60.0, 0.0, 40.0),
            memory_full: Ramp::new(100.0, 5.0, 40.0),
            io_some: Ramp::new(60.0, 0.0, 60.0),
            memory_available: Ramp::new(100.0, 10.0, 0.0),
            pageins: Ramp::new(60.0, 500.0, 5000.0),
            swap: Ramp::new(60.0, 0.0, 5000.0),
            thermal: Ramp::new(100.0, 0.0, 3.0),
        }
    }
}

impl Stress {
    /// Every factor with its key, for validation and for tables.
    pub fn ramps(&self) -> [(&'static str, &Ramp); 9] {
        [
            ("cpu_wait", &self.cpu_wait),
            ("realtime", &self.realtime),
            ("memory_some", &self.memory_some),
            ("memory_full", &self.memory_full),
            ("io_some", &self.io_some),
            ("memory_available", &self.memory_available),
            ("pageins", &self.pageins),
            ("swap", &self.swap),
            ("thermal", &self.thermal),
        ]
    }
}

/// A factor's points: 0 at `from`, `weight` at `to`, straight in between and flat beyond.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ramp {
    /// Points at `to` and beyond (0 to 100; 0 turns the factor off).
    pub weight: f64,
    /// The value that gives no points.
    pub from: f64,
    /// The value that gives all `weight` points.
    pub to: f64,
}

impl Ramp {
    /// A ramp.
    pub const fn new(weight: f64, from: f64, to: f64) -> Self {
        Self { weight, from, to }
    }

    /// The points a value gives.
    pub fn points(&self, value: f64) -> f64 {
        if !value.is_finite() || self.from == self.to {
            return 0.0;
        }
        ((value - self.from) / (self.to - self.from)).clamp(0.0, 1.0) * self.weight
    }
}
