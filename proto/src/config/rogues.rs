//! `[rogues]`: which processes are selected as rogues, per ranking category and by
//! state, with their defaults.

use serde::{Deserialize, Serialize};

use crate::v1::ProcessState;

/// `[rogues]`: per category, the top `count` processes whose raw value is above
/// `threshold` (in the factor's own unit); plus processes in chosen states.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rogues {
    /// By CPU percent. Default count 5, threshold 0.
    pub cpu: Category<5>,
    /// By memory bytes. Default count 3, threshold 0.
    pub mem: Category<3>,
    /// By page-ins per second. Default count 3, threshold 0.
    pub pageins: Category<3>,
    /// By compressed / swapped bytes. Default count 3, threshold 0.
    pub cmprs: Category<3>,
    /// By context switches per second. Default count 3, threshold 0.
    pub csw: Category<3>,
    /// By system calls per second. Default count 3, threshold 0.
    pub sysbsd: Category<3>,
    /// By thread count. Default count 0 (off), threshold 0.
    pub threads: Category<0>,
    /// By scheduler state.
    pub states: StateSelection,
}

impl Rogues {
    /// Every ranking category as (name, count, threshold), in a fixed order.
    pub fn categories(&self) -> [(&'static str, u32, f64); 7] {
        [
            ("cpu", self.cpu.count, self.cpu.threshold),
            ("mem", self.mem.count, self.mem.threshold),
            ("pageins", self.pageins.count, self.pageins.threshold),
            ("cmprs", self.cmprs.count, self.cmprs.threshold),
            ("csw", self.csw.count, self.csw.threshold),
            ("sysbsd", self.sysbsd.count, self.sysbsd.threshold),
            ("threads", self.threads.count, self.threads.threshold),
        ]
    }
}

/// One ranking category; `COUNT` is its default count, so a table that sets only
/// `threshold` keeps the category's own default `count`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category<const COUNT: u32> {
    /// How many of the top processes to take; 0 turns the category off.
    #[serde(default = "default_count::<COUNT>")]
    pub count: u32,
    /// Only values strictly above this count.
    #[serde(default)]
    pub threshold: f64,
}

fn default_count<const COUNT: u32>() -> u32 {
    COUNT
}

impl<const COUNT: u32> Default for Category<COUNT> {
    fn default() -> Self {
        Self { count: COUNT, threshold: 0.0 }
    }
}

/// Selection by state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateSelection {
    /// At most this many processes. Default 10.
    pub count: u32,
    /// States that select a process. Default `["stuck", "zombie"]`.
    pub states: Vec<StateName>,
    /// A zombie is selected and scores for its state only once it has stayed unreaped
    /// this long: every process is briefly a zombie as it exits. Default 5.
    pub zombie_grace_seconds: f64,
}

impl Default for StateSelection {
    fn default() -> Self {
        Self { count: 10, states: vec![StateName::Stuck, StateName::Zombie], zombie_grace_seconds: 5.0 }
    }
}

/// A process state as written in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateName {
    /// Running.
    Running,
    /// Sleeping.
    Sleeping,
    /// Stuck (uninterruptible).
    Stuck,
    /// Zombie.
    Zombie,
    /// Halted.
    Halted,
    /// Stopped.
    Stopped,
    /// Idle.
    Idle,
}

impl From<StateName> for ProcessState {
    fn from(s: StateName) -> Self {
        match s {
            StateName::Running => ProcessState::Running,
            StateName::Sleeping => ProcessState::Sleeping,
            StateName::Stuck => ProcessState::Stuck,
            StateName::Zombie => ProcessState::Zombie,
            StateName::Halted => ProcessState::Halted,
            StateName::Stopped => ProcessState::Stopped,
            StateName::Idle => ProcessState::Idle,
        }
    }
}
