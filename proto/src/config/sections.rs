//! The flat tables of the configuration: `[sampling]`, `[tiers]`, `[watchers]`,
//! `[limits]`, `[events]`, `[history]`, `[pause]`, `[retention]`, `[alerts]` and
//! `[suspects]`, each with its defaults. The nested `[scoring]` and `[rogues]` have
//! files of their own.

use serde::{Deserialize, Serialize};

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

impl std::str::FromStr for SourceKind {
    type Err = String;

    /// The same names as in the file, from the same definition.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use serde::de::{IntoDeserializer, value::Error};
        SourceKind::deserialize(IntoDeserializer::<Error>::into_deserializer(s)).map_err(|e| e.to_string())
    }
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

impl Default for Tiers {
    fn default() -> Self {
        Self { elevated_threshold: 50.0, critical_threshold: 75.0, hysteresis_seconds: 5.0 }
    }
}

/// `[watchers]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Watchers {
    /// Samples queued per watcher before it is told it missed some. Default 128.
    pub queue_samples: u32,
}

impl Default for Watchers {
    fn default() -> Self {
        Self { queue_samples: 128 }
    }
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

/// `[events]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Events {
    /// A new peak's sample is kept at most this often during an escalation. Default 30.
    pub peak_tracking_seconds: f64,
}

impl Default for Events {
    fn default() -> Self {
        Self { peak_tracking_seconds: 30.0 }
    }
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

impl Default for History {
    fn default() -> Self {
        Self { interval_seconds: 5.0, top_rogues: 3 }
    }
}

/// `[pause]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Pause {
    /// A stall is recorded when the sentinel wakes this many of its own periods late
    /// (0.5 s at the default 100 ms), whatever the sampling interval: a freeze that lets
    /// the sentinel run once a second is a freeze at any sampling rate. Default 5.0
    /// (measured: 200 and 1 000 busy processes on 2 CPUs made the sentinel at most 0.11
    /// and 0.29 s late; real-time hogs on every CPU, 0.95 s every tick).
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

impl Default for Pause {
    fn default() -> Self {
        Self {
            threshold_ratio: 5.0,
            sentinel_interval_ms: 100,
            step_timeout_seconds: 10.0,
            lead_up_seconds: 3.0,
            merge_seconds: 2.0,
        }
    }
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

impl Default for Retention {
    fn default() -> Self {
        Self { samples_days: 30.0, events_days: 90.0, max_bytes: 1 << 30, prune_interval_hours: 1.0 }
    }
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
