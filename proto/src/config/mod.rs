//! The configuration file (`config.toml`): its schema, every default, and validation.
//!
//! Every key is optional; a missing key takes the default written next to it below.
//! Unknown keys are errors (a typo must not silently fall back to a default), and every
//! error names the file, line and key at fault and what is accepted.

use std::{fmt, fs, io, path::Path};

use serde::{Deserialize, Serialize};

use crate::v1::ProcessState;

mod validate;
pub use validate::Invalid;

/// The configuration file `pmon config reset` writes: every key at its default, each
/// with a comment saying what it does (tests check it parses to exactly the defaults).
pub const DEFAULT_FILE: &str = include_str!("../../../fixtures/config/defaults.toml");

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How and how often processes are sampled.
    pub sampling: Sampling,
    /// Tier thresholds and hysteresis.
    pub tiers: Tiers,
    /// How a process's factors become a score.
    pub scoring: Scoring,
    /// Which processes are selected as rogues.
    pub rogues: Rogues,
    /// Limits for `WatchSamples` clients.
    pub watchers: Watchers,
    /// `[limits]`
    pub limits: Limits,
    /// Escalation events.
    pub events: Events,
    /// Compact history rows.
    pub history: History,
    /// Pause detection and forensics.
    pub pause: Pause,
    /// How long data is kept.
    pub retention: Retention,
    /// Desktop notifications.
    pub alerts: Alerts,
    /// Processes already known to cause trouble.
    pub suspects: Suspects,
    /// Record everything but send no notifications, while `pmon calibrate` learns this
    /// machine's normal. Default false.
    pub learning_mode: bool,
}

/// `[sampling]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sampling {
    /// Collector: `auto` picks the platform default (`proc` on Linux).
    pub source: SourceKind,
    /// Seconds between samples at tier SENTINEL. Default 1.0.
    pub interval_seconds: f64,
    /// Seconds between samples while ELEVATED or CRITICAL. Default 0.25.
    pub elevated_interval_seconds: f64,
    /// Seconds of samples the ring buffer keeps. Default 30.
    pub ring_buffer_seconds: f64,
    /// Run the sampler at a priority hogs cannot starve (Linux `SCHED_DEADLINE`), where
    /// the server may (root or CAP_SYS_NICE), so that it keeps recording inside a
    /// freeze. Read at start. Default true.
    pub protect_sampler: bool,
}

/// Which collector produces samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// The platform default.
    Auto,
    /// Linux `/proc`.
    Proc,
    /// macOS libproc calls.
    Libproc,
    /// A long-lived `top -l 0` child (macOS).
    Top,
    /// A long-lived `powermetrics -f plist` child (macOS, root).
    Powermetrics,
}

/// `[tiers]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tiers {
    /// Max score at which ELEVATED begins. Default 50.
    pub elevated_threshold: f64,
    /// Max score at which CRITICAL begins. Default 75.
    pub critical_threshold: f64,
    /// Seconds the score must stay below a threshold before the tier drops. Default 5.
    pub hysteresis_seconds: f64,
}

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
            fn entries(&self) -> [(&'static str, f64); 7] {
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

/// `[watchers]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Watchers {
    /// Samples queued per watcher before it is told it missed some. Default 128.
    pub queue_samples: u32,
}

/// `[limits]`: what one client may ask of the server. Every refusal is a gRPC status
/// naming the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// `WatchSamples` streams open at once; more get RESOURCE_EXHAUSTED. Default 1024.
    pub max_watchers: u32,
    /// Events in one `ListEvents` page. Default 1000.
    pub max_events_page: u32,
    /// Rows one `QueryHistory` returns. Default 100 000.
    pub max_history_rows: u32,
    /// Bytes of an event's notes. Default 4096.
    pub max_notes_bytes: u32,
    /// Bytes of one request message; read at start. Default 65 536.
    pub max_request_bytes: u32,
}

/// `[events]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Events {
    /// A new peak's sample is kept at most this often during an escalation. Default 30.
    pub peak_tracking_seconds: f64,
}

/// `[history]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct History {
    /// A row every this many seconds at tier SENTINEL (every sample while elevated).
    /// Default 5.
    pub interval_seconds: f64,
    /// Rogues kept per row. Default 3.
    pub top_rogues: u32,
}

/// `[pause]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pause {
    /// A stall is recorded when the sentinel wakes this many sampling intervals late
    /// (2 s at 1 Hz, 0.5 s at 4 Hz). Default 2.0.
    pub threshold_ratio: f64,
    /// How often the sentinel thread wakes, milliseconds. Default 100.
    pub sentinel_interval_ms: u32,
    /// Each forensic step gets at most this long. Default 10.
    pub step_timeout_seconds: f64,
    /// A pause's culprits are looked for in the stall and this long before it (the
    /// lead-up): whatever exited or went quiet earlier is never one. Default 3.
    pub lead_up_seconds: f64,
    /// Late wake-ups less than this apart are one freeze, one pause event (a starved
    /// machine still lets the sentinel run now and then). Default 2.
    pub merge_seconds: f64,
}

/// `[retention]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// History rows older than this are pruned. Default 30.
    pub samples_days: f64,
    /// Events older than this are pruned, unless pinned or unreviewed. Default 90.
    pub events_days: f64,
    /// Above this total (database + artefacts), the oldest prunable events go first,
    /// then the oldest history. Default 1 GiB.
    pub max_bytes: u64,
    /// Pruning runs by itself this often. Default 1.
    pub prune_interval_hours: f64,
}

/// `[alerts]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Alerts {
    /// Master switch. Default true.
    pub enabled: bool,
    /// Announce pauses (after recovery). Default true.
    pub pause_detected: bool,
    /// Only pauses at least this long are announced (all are recorded). Default 2.0.
    pub pause_min_duration_seconds: f64,
    /// Announce sustained CRITICAL stress. Default true.
    pub critical_stress: bool,
    /// CRITICAL must last this long to be announced. Default 30.
    pub critical_duration_seconds: f64,
    /// Announce entering ELEVATED. Default false.
    pub elevated_entered: bool,
    /// Announce when a pause's forensics are complete. Default true.
    pub forensics_completed: bool,
    /// At most one notification of a kind this often. Default 60.
    pub min_interval_seconds: f64,
}

/// `[suspects]`
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Suspects {
    /// Command names or globs (`*` any run, `?` one character; case-insensitive) that mark a
    /// rogue as a known suspect. Names are the process names the system reports (on
    /// Linux the kernel's `comm`, at most 15 characters). Default none.
    pub patterns: Vec<String>,
}

impl Suspects {
    /// Whether a command name matches any pattern.
    pub fn matches(&self, command: &str) -> bool {
        self.patterns.iter().any(|p| wildmatch::WildMatch::new_case_insensitive(p).matches(command))
    }
}

impl Default for Events {
    fn default() -> Self {
        Self { peak_tracking_seconds: 30.0 }
    }
}

impl Default for History {
    fn default() -> Self {
        Self { interval_seconds: 5.0, top_rogues: 3 }
    }
}

impl Default for Pause {
    fn default() -> Self {
        Self {
            threshold_ratio: 2.0,
            sentinel_interval_ms: 100,
            step_timeout_seconds: 10.0,
            lead_up_seconds: 3.0,
            merge_seconds: 2.0,
        }
    }
}

impl Default for Retention {
    fn default() -> Self {
        Self { samples_days: 30.0, events_days: 90.0, max_bytes: 1 << 30, prune_interval_hours: 1.0 }
    }
}

impl Default for Alerts {
    fn default() -> Self {
        Self {
            enabled: true,
            pause_detected: true,
            pause_min_duration_seconds: 2.0,
            critical_stress: true,
            critical_duration_seconds: 30.0,
            elevated_entered: false,
            forensics_completed: true,
            min_interval_seconds: 60.0,
        }
    }
}

impl Default for Sampling {
    fn default() -> Self {
        Self {
            source: SourceKind::Auto,
            interval_seconds: 1.0,
            elevated_interval_seconds: 0.25,
            ring_buffer_seconds: 30.0,
            protect_sampler: true,
        }
    }
}

impl Default for Tiers {
    fn default() -> Self {
        Self { elevated_threshold: 50.0, critical_threshold: 75.0, hysteresis_seconds: 5.0 }
    }
}

impl Default for Weights {
    fn default() -> Self {
        Self { cpu: 25.0, state: 20.0, pageins: 15.0, mem: 15.0, cmprs: 10.0, csw: 10.0, sysbsd: 5.0, threads: 0.0 }
    }
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

impl Default for StateSelection {
    fn default() -> Self {
        Self { count: 10, states: vec![StateName::Stuck, StateName::Zombie], zombie_grace_seconds: 5.0 }
    }
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

impl Default for Watchers {
    fn default() -> Self {
        Self { queue_samples: 128 }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_watchers: 1024,
            max_events_page: 1000,
            max_history_rows: 100_000,
            max_notes_bytes: 4096,
            max_request_bytes: 65_536,
        }
    }
}

/// A configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// A file named explicitly (not the default location) does not exist.
    #[error(
        "config file {path} does not exist; create it, or leave out --config and $PMON_CONFIG to use the default location"
    )]
    Missing {
        /// The file.
        path: String,
    },
    /// Not valid TOML, an unknown key, or a value of the wrong type.
    #[error("{path}:{location}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// Line and column.
        location: Location,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// A well-formed value outside its accepted range.
    #[error("{path}:{location}: {key}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// Line and column of the key, where it is written in the file.
        location: Location,
        /// Dotted key, e.g. `tiers.critical_threshold`.
        key: String,
        /// What is wrong and what is accepted.
        message: String,
    },
}

/// A 1-based line and column, or "(default)" for a key that took its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location(pub Option<(usize, usize)>);

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some((line, col)) => write!(f, "{line}:{col}"),
            None => f.write_str("(default)"),
        }
    }
}

impl Config {
    /// Loads `path`. A missing file means all defaults, unless `explicit` (the user
    /// named it): then it is an error, since a typo must not silently run on defaults.
    /// Returns the config and whether the file existed.
    pub fn load(path: &Path, explicit: bool) -> Result<(Config, bool), ConfigError> {
        let shown = path.display().to_string();
        match fs::read_to_string(path) {
            Ok(text) => Ok((Config::parse(&text, &shown)?, true)),
            Err(e) if e.kind() == io::ErrorKind::NotFound && !explicit => Ok((Config::default(), false)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(ConfigError::Missing { path: shown }),
            Err(source) => Err(ConfigError::Read { path: shown, source }),
        }
    }

    /// Parses and validates configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            location: Location(e.span().map(|s| validate::line_col(text, s.start))),
            message: e.message().trim_end().to_string(),
        })?;
        config.check().map_err(|invalid| {
            // Point at the first of the keys involved that the file actually writes.
            let written = invalid.keys.iter().find_map(|k| validate::key_offset(text, k).map(|at| (k, at)));
            let (key, location) = match written {
                Some((k, at)) => (k.clone(), Location(Some(validate::line_col(text, at)))),
                None => (invalid.keys[0].clone(), Location(None)),
            };
            ConfigError::Invalid { path: origin.to_string(), location, key, message: invalid.message }
        })?;
        Ok(config)
    }

    /// The configuration as TOML, every key written.
    pub fn to_toml(&self) -> String {
        // Serialising plain structs of numbers, strings and lists cannot fail.
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }
}

impl std::str::FromStr for SourceKind {
    type Err = String;

    /// The same names as in the file, from the same definition.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use serde::de::{IntoDeserializer, value::Error};
        SourceKind::deserialize(IntoDeserializer::<Error>::into_deserializer(s)).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests;
