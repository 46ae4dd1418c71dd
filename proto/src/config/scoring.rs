//! `[scoring]`: the factor weights, the divisors that normalise each factor, and the
//! per-state tables, with their defaults.

use serde::{Deserialize, Serialize};

use crate::v1::ProcessState;

/// `[scoring]`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scoring {
    /// `[scoring.weights]`: points each factor can contribute (they sum to 100 by default).
    pub weights: Weights,
    /// `[scoring.divisors]`: the raw value at which a factor counts in full.
    pub divisors: Divisors,
    /// `[scoring.state_scores]`: the state factor's value (0..1) per state.
    pub state_scores: StateScores,
    /// `[scoring.state_multipliers]`: the final score is multiplied by this per state.
    pub state_multipliers: StateMultipliers,
}

/// Factor weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    /// CPU. Default 25.
    pub cpu: f64,
    /// Scheduler state. Default 20.
    pub state: f64,
    /// Page-ins per second. Default 15.
    pub pageins: f64,
    /// Memory. Default 15.
    pub mem: f64,
    /// Compressed / swapped memory. Default 10.
    pub cmprs: f64,
    /// Context switches per second. Default 10.
    pub csw: f64,
    /// System calls per second. Default 5.
    pub sysbsd: f64,
    /// Threads. Default 0.
    pub threads: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self { cpu: 25.0, state: 20.0, pageins: 15.0, mem: 15.0, cmprs: 10.0, csw: 10.0, sysbsd: 5.0, threads: 0.0 }
    }
}

/// Raw values at which a factor's normalised value reaches 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Divisors {
    /// Default 100 (one full core).
    pub cpu_percent: f64,
    /// Default 1000.
    pub pageins_per_sec: f64,
    /// Default 8 GiB.
    pub mem_bytes: f64,
    /// Default 1 GiB.
    pub cmprs_bytes: f64,
    /// Default 100 000.
    pub csw_per_sec: f64,
    /// Default 100 000.
    pub sysbsd_per_sec: f64,
    /// Default 1000.
    pub threads: f64,
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

impl Default for Divisors {
    fn default() -> Self {
        Self {
            cpu_percent: 100.0,
            pageins_per_sec: 1000.0,
            mem_bytes: 8.0 * GIB,
            cmprs_bytes: GIB,
            csw_per_sec: 100_000.0,
            sysbsd_per_sec: 100_000.0,
            threads: 1000.0,
        }
    }
}

/// A value per process state.
macro_rules! state_table {
    ($(#[$doc:meta])* $name:ident { $($field:ident = $default:expr),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            $(#[doc = concat!("Default ", stringify!($default), ".")] pub $field: f64,)*
        }
        impl Default for $name {
            fn default() -> Self {
                Self { $($field: $default),* }
            }
        }
        impl $name {
            /// The value for a state; an unknown state gets the neutral value.
            pub fn get(&self, state: ProcessState, unknown: f64) -> f64 {
                match state {
                    ProcessState::Running => self.running,
                    ProcessState::Sleeping => self.sleeping,
                    ProcessState::Stuck => self.stuck,
                    ProcessState::Zombie => self.zombie,
                    ProcessState::Halted => self.halted,
                    ProcessState::Stopped => self.stopped,
                    ProcessState::Idle => self.idle,
                    ProcessState::Unspecified => unknown,
                }
            }
            // For validate, which checks each entry under its own key.
            pub(super) fn entries(&self) -> [(&'static str, f64); 7] {
                [$((stringify!($field), self.$field)),*]
            }
        }
    };
}

state_table!(
    /// The state factor's normalised value: how alarming a state is by itself.
    StateScores {
        running = 0.0,
        sleeping = 0.0,
        stuck = 1.0,
        zombie = 0.8,
        halted = 0.6,
        stopped = 0.4,
        idle = 0.0,
    }
);

state_table!(
    /// Multiplier applied to the capped score: a sleeping process weighs less than a
    /// running one with the same figures.
    StateMultipliers {
        running = 0.9,
        sleeping = 0.7,
        stuck = 1.0,
        zombie = 1.0,
        halted = 1.0,
        stopped = 1.0,
        idle = 0.5,
    }
);
