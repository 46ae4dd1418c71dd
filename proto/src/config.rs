//! The configuration file (`config.toml`): its schema, every default, and validation.
//!
//! Every key is optional; a missing key takes the default written next to it below.
//! Unknown keys are errors (a typo must not silently fall back to a default), and every
//! error names the file, line and key at fault and what is accepted.

use std::{fmt, fs, io, path::Path};

use serde::{Deserialize, Serialize};

use crate::v1::ProcessState;

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
}

/// Which collector produces samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// The platform default.
    Auto,
    /// Linux `/proc`.
    Proc,
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rogues {
    /// By CPU percent. Default count 5, threshold 0.
    pub cpu: Category,
    /// By memory bytes. Default count 3, threshold 0.
    pub mem: Category,
    /// By page-ins per second. Default count 3, threshold 0.
    pub pageins: Category,
    /// By compressed / swapped bytes. Default count 3, threshold 0.
    pub cmprs: Category,
    /// By context switches per second. Default count 3, threshold 0.
    pub csw: Category,
    /// By system calls per second. Default count 3, threshold 0.
    pub sysbsd: Category,
    /// By thread count. Default count 0 (off), threshold 0.
    pub threads: Category,
    /// By scheduler state.
    pub states: StateSelection,
}

/// One ranking category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    /// How many of the top processes to take; 0 turns the category off.
    #[serde(default)]
    pub count: u32,
    /// Only values strictly above this count.
    #[serde(default)]
    pub threshold: f64,
}

/// Selection by state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateSelection {
    /// At most this many processes. Default 10.
    pub count: u32,
    /// States that select a process. Default `["stuck", "zombie"]`.
    pub states: Vec<StateName>,
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

impl Default for Sampling {
    fn default() -> Self {
        Self {
            source: SourceKind::Auto,
            interval_seconds: 1.0,
            elevated_interval_seconds: 0.25,
            ring_buffer_seconds: 30.0,
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

impl Category {
    const fn top(count: u32) -> Self {
        Self { count, threshold: 0.0 }
    }
}

impl Default for Rogues {
    fn default() -> Self {
        Self {
            cpu: Category::top(5),
            mem: Category::top(3),
            pageins: Category::top(3),
            cmprs: Category::top(3),
            csw: Category::top(3),
            sysbsd: Category::top(3),
            threads: Category::top(0),
            states: StateSelection::default(),
        }
    }
}

impl Default for StateSelection {
    fn default() -> Self {
        Self { count: 10, states: vec![StateName::Stuck, StateName::Zombie] }
    }
}

impl Default for Watchers {
    fn default() -> Self {
        Self { queue_samples: 128 }
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

/// A 1-based line and column, or "unknown" for a key that took its default.
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
    /// Loads `path`; a missing file means all defaults. Returns the config and whether
    /// the file existed.
    pub fn load(path: &Path) -> Result<(Config, bool), ConfigError> {
        match fs::read_to_string(path) {
            Ok(text) => Ok((Config::parse(&text, &path.display().to_string())?, true)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok((Config::default(), false)),
            Err(source) => Err(ConfigError::Read { path: path.display().to_string(), source }),
        }
    }

    /// Parses and validates configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            location: Location(e.span().map(|s| line_col(text, s.start))),
            message: e.message().trim_end().to_string(),
        })?;
        config.validate().map_err(|(key, message)| ConfigError::Invalid {
            path: origin.to_string(),
            location: Location(key_offset(text, &key).map(|at| line_col(text, at))),
            key,
            message,
        })?;
        Ok(config)
    }

    /// The configuration as TOML, every key written.
    pub fn to_toml(&self) -> String {
        // Serialising plain structs of numbers, strings and lists cannot fail.
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
    }

    /// Checks ranges and relations between keys; `Err((key, message))`.
    fn validate(&self) -> Result<(), (String, String)> {
        let s = &self.sampling;
        range("sampling.interval_seconds", s.interval_seconds, 0.05, 3600.0)?;
        range("sampling.elevated_interval_seconds", s.elevated_interval_seconds, 0.05, s.interval_seconds)?;
        range("sampling.ring_buffer_seconds", s.ring_buffer_seconds, 1.0, 3600.0)?;

        let t = &self.tiers;
        range("tiers.elevated_threshold", t.elevated_threshold, 0.0, 100.0)?;
        range("tiers.critical_threshold", t.critical_threshold, 0.0, 100.0)?;
        if t.critical_threshold <= t.elevated_threshold {
            return Err((
                "tiers.critical_threshold".into(),
                format!("{} must be above tiers.elevated_threshold ({})", t.critical_threshold, t.elevated_threshold),
            ));
        }
        range("tiers.hysteresis_seconds", t.hysteresis_seconds, 0.0, 3600.0)?;

        let w = &self.scoring.weights;
        let weights = [
            ("cpu", w.cpu),
            ("state", w.state),
            ("pageins", w.pageins),
            ("mem", w.mem),
            ("cmprs", w.cmprs),
            ("csw", w.csw),
            ("sysbsd", w.sysbsd),
            ("threads", w.threads),
        ];
        for (name, value) in weights {
            range(&format!("scoring.weights.{name}"), value, 0.0, 100.0)?;
        }
        if weights.iter().map(|(_, v)| v).sum::<f64>() <= 0.0 {
            return Err(("scoring.weights".into(), "at least one weight must be above 0".into()));
        }
        let d = &self.scoring.divisors;
        for (name, value) in [
            ("cpu_percent", d.cpu_percent),
            ("pageins_per_sec", d.pageins_per_sec),
            ("mem_bytes", d.mem_bytes),
            ("cmprs_bytes", d.cmprs_bytes),
            ("csw_per_sec", d.csw_per_sec),
            ("sysbsd_per_sec", d.sysbsd_per_sec),
            ("threads", d.threads),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err((format!("scoring.divisors.{name}"), format!("{value} must be a number above 0")));
            }
        }
        for (name, value) in self.scoring.state_scores.entries() {
            range(&format!("scoring.state_scores.{name}"), value, 0.0, 1.0)?;
        }
        for (name, value) in self.scoring.state_multipliers.entries() {
            range(&format!("scoring.state_multipliers.{name}"), value, 0.0, 1.0)?;
        }

        let r = &self.rogues;
        for (name, c) in [
            ("cpu", &r.cpu),
            ("mem", &r.mem),
            ("pageins", &r.pageins),
            ("cmprs", &r.cmprs),
            ("csw", &r.csw),
            ("sysbsd", &r.sysbsd),
            ("threads", &r.threads),
        ] {
            range(&format!("rogues.{name}.count"), f64::from(c.count), 0.0, 100.0)?;
            range(&format!("rogues.{name}.threshold"), c.threshold, 0.0, f64::MAX)?;
        }
        range("rogues.states.count", f64::from(r.states.count), 0.0, 100.0)?;
        range("watchers.queue_samples", f64::from(self.watchers.queue_samples), 1.0, 65_536.0)?;
        Ok(())
    }
}

fn range(key: &str, value: f64, min: f64, max: f64) -> Result<(), (String, String)> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(())
    } else {
        Err((key.to_string(), format!("{value} is out of range; accepted: {min} to {max}")))
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
    (line, col)
}

/// Byte offset where a dotted key is written: under its `[table]` header, or as a
/// dotted key at the top level. Good enough for a hand-written file; `None` when the
/// key is not written (it took its default).
fn key_offset(text: &str, dotted: &str) -> Option<usize> {
    let (table, leaf) = dotted.rsplit_once('.').unwrap_or(("", dotted));
    let mut current = String::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if let Some(header) = trimmed.strip_prefix('[') {
            current = header.split(']').next().unwrap_or("").trim().to_string();
        } else if let Some((k, _)) = trimmed.split_once('=') {
            let k = k.trim();
            let full = if current.is_empty() { k.to_string() } else { format!("{current}.{k}") };
            if full == dotted || (current == table && k == leaf) {
                return Some(offset + indent);
            }
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(Config::parse("", "t").ok(), Some(Config::default()));
    }

    #[test]
    fn the_fixture_with_every_key_written_equals_the_defaults() {
        let text = include_str!("../../fixtures/config/defaults.toml");
        assert_eq!(Config::parse(text, "defaults.toml").ok(), Some(Config::default()));
    }

    #[test]
    fn rendered_defaults_parse_back_identically() {
        let rendered = Config::default().to_toml();
        assert_eq!(Config::parse(&rendered, "rendered").ok(), Some(Config::default()));
    }

    #[test]
    fn partial_tables_keep_the_other_defaults() {
        let c = Config::parse("[scoring.state_multipliers]\nidle = 0.25\n", "t").expect("valid");
        assert_eq!(c.scoring.state_multipliers.idle, 0.25);
        assert_eq!(c.scoring.state_multipliers.running, 0.9);
        assert_eq!(c.scoring.state_scores.stuck, 1.0);
    }

    #[test]
    fn unknown_key_names_line_and_accepted_keys() {
        let err = Config::parse("[sampling]\n\ninterval = 2\n", "c.toml").expect_err("unknown key");
        let msg = err.to_string();
        assert!(msg.starts_with("c.toml:3:1: "), "{msg}");
        assert!(msg.contains("interval") && msg.contains("interval_seconds"), "{msg}");
    }

    #[test]
    fn wrong_type_names_line() {
        let msg = Config::parse("[tiers]\nelevated_threshold = \"high\"\n", "c.toml")
            .expect_err("string for number")
            .to_string();
        assert!(msg.starts_with("c.toml:2:"), "{msg}");
    }

    #[test]
    fn out_of_range_values_name_key_line_and_range() {
        let cases = [
            ("[sampling]\ninterval_seconds = 0\n", "sampling.interval_seconds", "2:1"),
            ("[tiers]\nelevated_threshold = 80\n", "tiers.critical_threshold", "(default)"),
            ("[tiers]\ncritical_threshold = 40\n", "tiers.critical_threshold", "2:1"),
            ("[scoring.divisors]\nmem_bytes = -1\n", "scoring.divisors.mem_bytes", "2:1"),
            ("[scoring.weights]\n  cpu = 101\n", "scoring.weights.cpu", "2:3"),
            ("watchers.queue_samples = 0\n", "watchers.queue_samples", "1:1"),
        ];
        for (text, key, location) in cases {
            let msg = Config::parse(text, "c.toml").expect_err(text).to_string();
            assert!(msg.starts_with(&format!("c.toml:{location}: {key}: ")), "{msg}");
        }
    }

    #[test]
    fn unknown_state_name_lists_accepted_ones() {
        let msg =
            Config::parse("[rogues.states]\nstates = [\"blocked\"]\n", "c.toml").expect_err("bad state").to_string();
        assert!(msg.contains("stuck") && msg.contains("zombie"), "{msg}");
    }
}
