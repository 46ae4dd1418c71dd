//! The configuration file (`config.toml`): its schema, every default, and validation.
//!
//! Every key is optional; a missing key takes the default written next to its field
//! (here and in the section files).
//! Unknown keys are errors (a typo must not silently fall back to a default), and every
//! error names the file, line and key at fault and what is accepted.

use std::{fmt, fs, io, path::Path};

use serde::{Deserialize, Serialize};

mod rogues;
mod scoring;
mod sections;
mod stress;
mod validate;
pub use rogues::{Category, Rogues, StateName, StateSelection};
pub use scoring::{Divisors, Scoring, StateMultipliers, StateScores, Weights};
pub use sections::{
    Alerts, Events, History, Limits, Pause, Retention, Sampling, SourceKind, Suspects, Tiers, Watchers,
};
pub use stress::{Ramp, Stress};
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
    /// How the machine's accounting of waiting becomes its stress figure.
    pub stress: Stress,
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

#[cfg(test)]
mod tests;
