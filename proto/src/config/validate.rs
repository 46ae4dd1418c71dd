//! Range and relation checks, and finding where a key is written in a file so errors
//! can name its line.

use super::{Alerts, Config, Divisors, Limits, Retention, Rogues, Sampling, Scoring, Stress, Suspects, Tiers, Weights};

/// A value out of range. `keys` names the setting at fault first, then any other
/// setting the rule relates it to.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {message}", keys[0])]
pub struct Invalid {
    /// Dotted keys, e.g. `tiers.critical_threshold`.
    pub keys: Vec<String>,
    /// What is wrong and what is accepted.
    pub message: String,
}

impl Config {
    /// Checks every range and the relations between keys. Also used after command-line
    /// overrides, so flags and the file follow the same rules.
    pub fn check(&self) -> Result<(), Invalid> {
        // The order is part of the behaviour: the first failing check is the one reported.
        check_sampling(&self.sampling)?;
        check_tiers(&self.tiers)?;
        check_weights(&self.scoring.weights)?;
        check_divisors(&self.scoring.divisors)?;
        check_state_tables(&self.scoring)?;
        check_stress(&self.stress)?;

        check_rogues(&self.rogues)?;
        range("watchers.queue_samples", f64::from(self.watchers.queue_samples), 1.0, 65_536.0)?;
        check_limits(&self.limits)?;

        range("events.peak_tracking_seconds", self.events.peak_tracking_seconds, 0.0, 86_400.0)?;
        range("history.interval_seconds", self.history.interval_seconds, 0.05, 86_400.0)?;
        range("history.top_rogues", f64::from(self.history.top_rogues), 0.0, 50.0)?;
        let p = &self.pause;
        range("pause.threshold_ratio", p.threshold_ratio, 1.1, 1000.0)?;
        range("pause.lead_up_seconds", p.lead_up_seconds, 0.0, 60.0)?;
        range("pause.merge_seconds", p.merge_seconds, 0.0, 60.0)?;
        range("rogues.states.zombie_grace_seconds", self.rogues.states.zombie_grace_seconds, 0.0, 3600.0)?;
        range("pause.sentinel_interval_ms", f64::from(p.sentinel_interval_ms), 10.0, 10_000.0)?;
        range("pause.step_timeout_seconds", p.step_timeout_seconds, 0.1, 600.0)?;
        check_retention(&self.retention)?;
        check_alerts(&self.alerts)?;
        check_suspects(&self.suspects)
    }
}

/// `[sampling]`: the intervals, and that stress never slows sampling down.
fn check_sampling(s: &Sampling) -> Result<(), Invalid> {
    range("sampling.interval_seconds", s.interval_seconds, 0.05, 3600.0)?;
    range("sampling.elevated_interval_seconds", s.elevated_interval_seconds, 0.05, 3600.0)?;
    if s.elevated_interval_seconds > s.interval_seconds {
        return Err(Invalid {
            keys: vec!["sampling.elevated_interval_seconds".into(), "sampling.interval_seconds".into()],
            message: format!(
                "elevated_interval_seconds ({}) must not be longer than interval_seconds ({}): \
                 sampling speeds up under stress, never slows down",
                s.elevated_interval_seconds, s.interval_seconds
            ),
        });
    }
    range("sampling.ring_buffer_seconds", s.ring_buffer_seconds, 1.0, 3600.0)
}

/// `[tiers]`: the thresholds, CRITICAL above ELEVATED, and the hysteresis.
fn check_tiers(t: &Tiers) -> Result<(), Invalid> {
    range("tiers.elevated_threshold", t.elevated_threshold, 0.0, 100.0)?;
    range("tiers.critical_threshold", t.critical_threshold, 0.0, 100.0)?;
    if t.critical_threshold <= t.elevated_threshold {
        return Err(Invalid {
            keys: vec!["tiers.critical_threshold".into(), "tiers.elevated_threshold".into()],
            message: format!(
                "critical_threshold ({}) must be above elevated_threshold ({})",
                t.critical_threshold, t.elevated_threshold
            ),
        });
    }
    range("tiers.hysteresis_seconds", t.hysteresis_seconds, 0.0, 3600.0)
}

/// `[scoring.weights]`: each in range, and not all zero.
fn check_weights(w: &Weights) -> Result<(), Invalid> {
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
        return Err(Invalid {
            keys: vec!["scoring.weights".into()],
            message: "at least one weight must be above 0".into(),
        });
    }
    Ok(())
}

/// `[scoring.divisors]`: every one a finite number above 0, since factors divide by it.
fn check_divisors(d: &Divisors) -> Result<(), Invalid> {
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
            return Err(Invalid {
                keys: vec![format!("scoring.divisors.{name}")],
                message: format!("{value} must be a number above 0"),
            });
        }
    }
    Ok(())
}

/// `[stress]`: the window, and each factor's weight and two distinct ends.
fn check_stress(s: &Stress) -> Result<(), Invalid> {
    range("stress.window_seconds", s.window_seconds, 0.1, 600.0)?;
    range("stress.others_share", s.others_share, 0.0, 1.0)?;
    for (name, ramp) in s.ramps() {
        range(&format!("stress.{name}.weight"), ramp.weight, 0.0, 100.0)?;
        for (end, value) in [("from", ramp.from), ("to", ramp.to)] {
            if !value.is_finite() || value < 0.0 {
                return Err(Invalid {
                    keys: vec![format!("stress.{name}.{end}")],
                    message: format!("{value} must be a number of 0 or more"),
                });
            }
        }
        if ramp.from == ramp.to {
            return Err(Invalid {
                keys: vec![format!("stress.{name}.to"), format!("stress.{name}.from")],
                message: format!("to ({}) must differ from from: the factor rises between them", ramp.to),
            });
        }
    }
    Ok(())
}

/// `[scoring.state_scores]` and `[scoring.state_multipliers]`: every entry in 0..1.
fn check_state_tables(scoring: &Scoring) -> Result<(), Invalid> {
    for (name, value) in scoring.state_scores.entries() {
        range(&format!("scoring.state_scores.{name}"), value, 0.0, 1.0)?;
    }
    for (name, value) in scoring.state_multipliers.entries() {
        range(&format!("scoring.state_multipliers.{name}"), value, 0.0, 1.0)?;
    }
    Ok(())
}

/// `[rogues]`: every category's count and threshold, and the state selection's count.
fn check_rogues(r: &Rogues) -> Result<(), Invalid> {
    for (name, count, threshold) in r.categories() {
        range(&format!("rogues.{name}.count"), f64::from(count), 0.0, 100.0)?;
        range(&format!("rogues.{name}.threshold"), threshold, 0.0, f64::MAX)?;
    }
    range("rogues.states.count", f64::from(r.states.count), 0.0, 100.0)
}

/// `[limits]`
fn check_limits(l: &Limits) -> Result<(), Invalid> {
    range("limits.max_watchers", f64::from(l.max_watchers), 1.0, 65_536.0)?;
    range("limits.max_events_page", f64::from(l.max_events_page), 1.0, 100_000.0)?;
    range("limits.max_history_rows", f64::from(l.max_history_rows), 1.0, 10_000_000.0)?;
    range("limits.max_notes_bytes", f64::from(l.max_notes_bytes), 1.0, 1_048_576.0)?;
    range("limits.max_request_bytes", f64::from(l.max_request_bytes), 1024.0, 16_777_216.0)
}

/// `[retention]`
fn check_retention(r: &Retention) -> Result<(), Invalid> {
    range("retention.samples_days", r.samples_days, 0.01, 36_500.0)?;
    range("retention.events_days", r.events_days, 0.01, 36_500.0)?;
    range("retention.max_bytes", r.max_bytes as f64, 1_048_576.0, 1e15)?;
    range("retention.prune_interval_hours", r.prune_interval_hours, 0.01, 8760.0)
}

/// `[alerts]`
fn check_alerts(a: &Alerts) -> Result<(), Invalid> {
    range("alerts.pause_min_duration_seconds", a.pause_min_duration_seconds, 0.0, 86_400.0)?;
    range("alerts.critical_duration_seconds", a.critical_duration_seconds, 0.0, 86_400.0)?;
    range("alerts.min_interval_seconds", a.min_interval_seconds, 0.0, 86_400.0)
}

/// `[suspects]`: a bounded number of non-empty, bounded patterns.
fn check_suspects(s: &Suspects) -> Result<(), Invalid> {
    let patterns = &s.patterns;
    if patterns.len() > 200 || patterns.iter().any(|p| p.is_empty() || p.len() > 256) {
        return Err(Invalid {
            keys: vec!["suspects.patterns".into()],
            message: "accepted: at most 200 patterns, each 1 to 256 characters".into(),
        });
    }
    Ok(())
}

fn range(key: &str, value: f64, min: f64, max: f64) -> Result<(), Invalid> {
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(Invalid {
            keys: vec![key.to_string()],
            message: format!("{value} is out of range; accepted: {min} to {max}"),
        })
    }
}

/// 1-based line and column of a byte offset.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
    (line, col)
}

/// Byte offset where a dotted key is written: under its `[table]` header, or as a
/// dotted key at the top level. Good enough for a hand-written file; `None` when the
/// key is not written (it took its default).
pub(super) fn key_offset(text: &str, dotted: &str) -> Option<usize> {
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
