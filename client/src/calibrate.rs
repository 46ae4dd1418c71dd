//! `pmon calibrate`: thresholds from this machine's own recorded history.
//!
//! ```text
//! QueryHistory (6 h chunks) ──► weighted distributions of stress (the higher of the top
//!                               process score and the machine figure), of each of the
//!                               two, and of sampling lateness
//!                           ──► ELEVATED at p99 of stress, CRITICAL at p99.9, pause ratio
//!                               from p99.9 lateness
//!
//! The pause threshold counts the sentinel's own periods; the ratio proposed is the
//! sampler's lateness (in seconds) over the sentinel's period. The sampler is an
//! ordinary thread, late as the sentinel would be, unless it runs protected (as root,
//! `sampling.protect_sampler`): then it is late hardly ever, and the proposal never
//! goes below the measured default.
//! ```
//!
//! History keeps a row every few seconds normally but every sample while stressed, so
//! each row is weighted by the time it stands for (until the next row, capped); without
//! that, stressed periods would count many times over.

use std::time::{Duration, SystemTime};

use anyhow::Context;
use pmon_proto::{
    config::Config,
    endpoint::Endpoint,
    time::{system_time, timestamp},
    v1::{GetConfigRequest, HistoryRow, QueryHistoryRequest, Tier, TimeRange, query_history_request::Query},
};
use serde::Serialize;

use crate::{Failure, config_file, connect};

/// The lowest pause ratio proposed, the default: below it, ordinary busy loads make
/// pauses (1 000 busy processes on 2 CPUs made the sentinel up to 2.9 periods late,
/// measured; see README "Pauses, escalations and evidence").
const MIN_PAUSE_RATIO: f64 = 5.0;
/// How much history a proposal needs.
const NEEDED_HOURS: f64 = 6.0;
/// Rows are read in chunks of this span (under the server's page limit even at 4 Hz).
const CHUNK: Duration = Duration::from_secs(6 * 3600);

/// `pmon calibrate` options.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  pmon calibrate\n  pmon calibrate --days 14 --apply")]
pub struct Args {
    /// Use the history of the last N days.
    #[arg(long, default_value_t = 7.0, value_name = "N")]
    days: f64,
    /// Write the proposed thresholds into the configuration file and have the server
    /// reload it.
    #[arg(long)]
    apply: bool,
    /// Print the analysis as JSON.
    #[arg(long)]
    json: bool,
}

/// Percentiles of a distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
}

/// What calibration found and proposes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// Hours of history the rows cover.
    pub hours: f64,
    /// Of those, hours with sampling lateness recorded (older versions did not keep it).
    pub lateness_hours: f64,
    /// Hours needed for a proposal.
    pub hours_needed: f64,
    /// Rows read.
    pub rows: usize,
    /// Stress per sample (what the tier follows: the higher of the top process score and
    /// the machine figure; the top score alone in rows stored before the figure was
    /// measured), weighted by time.
    pub stress: Option<Percentiles>,
    /// The top process's (or group's) score per sample.
    pub score: Option<Percentiles>,
    /// The machine figure per sample, over the rows that have it.
    pub machine: Option<Percentiles>,
    /// Share of the time the machine figure was the higher of the two (what drove the
    /// tier), over the rows that have it.
    pub machine_leads: Option<f64>,
    /// Sampling lateness: real interval minus planned interval, seconds.
    pub lateness: Option<Percentiles>,
    /// Proposed tiers.elevated_threshold.
    pub elevated_threshold: Option<f64>,
    /// Proposed tiers.critical_threshold.
    pub critical_threshold: Option<f64>,
    /// Proposed pause.threshold_ratio.
    pub pause_threshold_ratio: Option<f64>,
}

/// Weighted nearest-rank percentile: the smallest value whose cumulative weight reaches
/// `p` of the total. `values` is sorted by value.
fn percentile(values: &[(f64, f64)], total: f64, p: f64) -> f64 {
    let mut acc = 0.0;
    for (v, w) in values {
        acc += w;
        if acc >= p * total - 1e-9 {
            return *v;
        }
    }
    values.last().map_or(0.0, |(v, _)| *v)
}

fn percentiles(mut values: Vec<(f64, f64)>) -> Option<Percentiles> {
    values.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = values.iter().map(|(_, w)| w).sum();
    (total > 0.0).then(|| Percentiles {
        p50: percentile(&values, total, 0.5),
        p90: percentile(&values, total, 0.9),
        p99: percentile(&values, total, 0.99),
        p999: percentile(&values, total, 0.999),
    })
}

/// The analysis of `rows` (oldest first) under `config` (its sampling and history
/// intervals say what each row stands for and how late it was).
pub fn analyse(rows: &[HistoryRow], config: &Config) -> Analysis {
    let history_every = config.history.interval_seconds;
    let times: Vec<f64> =
        rows.iter().map(|r| r.time.as_ref().and_then(system_time).map_or(0.0, secs_since_epoch)).collect();
    let (mut stress, mut scores, mut machine) = (Vec::new(), Vec::new(), Vec::new());
    let (mut machine_time, mut machine_led) = (0.0, 0.0);
    let mut late = Vec::with_capacity(rows.len());
    let (mut hours, mut late_hours) = (0.0, 0.0);
    for (i, row) in rows.iter().enumerate() {
        // Time until the next row, capped at twice the history interval: a long gap (the
        // server was stopped) must not count as hours of the last row's state.
        let weight = times.get(i + 1).map_or(history_every, |next| (next - times[i]).clamp(0.0, 2.0 * history_every));
        hours += weight / 3600.0;
        scores.push((row.max_score, weight));
        match &row.machine {
            Some(m) => {
                stress.push((row.stress, weight));
                machine.push((m.score, weight));
                machine_time += weight;
                if m.score > row.max_score {
                    machine_led += weight;
                }
            }
            None => stress.push((row.max_score, weight)),
        }
        // The wait before a sample was planned under the tier of the sample before it (the
        // sample that enters ELEVATED still came after a normal interval).
        let tier_before = if i > 0 { rows[i - 1].tier } else { row.tier };
        let planned = if tier_before >= Tier::Elevated as i32 {
            config.sampling.elevated_interval_seconds
        } else {
            config.sampling.interval_seconds
        };
        if let Some(ms) = row.elapsed_ms {
            late.push(((ms / 1000.0 - planned).max(0.0), weight));
            late_hours += weight / 3600.0;
        }
    }
    let (stress, score, machine) = (percentiles(stress), percentiles(scores), percentiles(machine));
    let lateness = percentiles(late);
    // Rows recorded before sampling lateness was kept have none: that needs its own hours.
    let enough = hours >= NEEDED_HOURS && late_hours >= NEEDED_HOURS;
    let elevated = stress.filter(|_| enough).map(|s| s.p99.ceil().clamp(10.0, 90.0));
    let critical = stress.zip(elevated).map(|(s, e)| s.p999.ceil().max(e + 10.0).min(100.0));
    let period = f64::from(config.pause.sentinel_interval_ms) / 1000.0;
    let ratio = lateness
        .filter(|_| enough)
        .map(|l| (l.p999 * 1.25 / period).max(MIN_PAUSE_RATIO) * 10.0)
        .map(|r| r.ceil() / 10.0);
    Analysis {
        hours,
        lateness_hours: late_hours,
        hours_needed: NEEDED_HOURS,
        rows: rows.len(),
        stress,
        score,
        machine,
        machine_leads: (machine_time > 0.0).then(|| machine_led / machine_time),
        lateness,
        elevated_threshold: elevated,
        critical_threshold: critical,
        pause_threshold_ratio: ratio,
    }
}

fn secs_since_epoch(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

pub async fn run(args: Args, endpoint: &Endpoint, data_dir: Option<std::path::PathBuf>) -> Result<(), Failure> {
    if !(args.days.is_finite() && args.days > 0.0 && args.days <= 366.0) {
        return Err(anyhow::anyhow!("--days {}: accepted: above 0, at most 366", args.days).into());
    }
    if args.apply && !matches!(endpoint, Endpoint::Unix(_)) {
        return Err(anyhow::anyhow!(
            "--apply writes the configuration file of a server on this machine; run it there (without --connect)"
        )
        .into());
    }
    let mut client = connect(endpoint).await?;
    let answer = client.get_config(GetConfigRequest {}).await?.into_inner();
    let config = Config::parse(&answer.config_toml, "the server's configuration")
        .context("reading the server's configuration")?;
    let end = SystemTime::now();
    let mut start = end.checked_sub(Duration::from_secs_f64(args.days * 86_400.0)).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut rows = Vec::new();
    let mut span = CHUNK;
    while start < end {
        let stop = (start + span).min(end);
        let range = TimeRange { start: Some(timestamp(start)), end: Some(timestamp(stop)) };
        let request = QueryHistoryRequest { query: Some(Query::Range(range)), limit: 100_000 };
        let page = client.query_history(request).await?.into_inner();
        // Too many rows for one answer (very fast sampling): ask for half the span.
        if page.truncated && span > Duration::from_secs(60) {
            span /= 2;
            continue;
        }
        rows.extend(page.rows);
        start = stop;
        span = CHUNK;
    }
    let a = analyse(&rows, &config);
    if args.json {
        println!("{}", serde_json::to_string(&a).context("rendering JSON")?);
    } else {
        print!("{}", report(&a, &config));
    }
    if args.apply {
        let (Some(e), Some(c), Some(r)) = (a.elevated_threshold, a.critical_threshold, a.pause_threshold_ratio) else {
            return Err(anyhow::anyhow!("nothing to apply: not enough history yet").into());
        };
        let path = std::path::PathBuf::from(&answer.config_path);
        let (e, c, r) = (e.to_string(), c.to_string(), r.to_string());
        config_file::set_many(
            &path,
            &[("tiers.elevated_threshold", &e), ("tiers.critical_threshold", &c), ("pause.threshold_ratio", &r)],
        )?;
        let reloaded = crate::config::reload(data_dir, &path).await?;
        // With --json, standard output stays one JSON document.
        if !args.json {
            println!("written to {}\n{reloaded}", path.display());
        }
    }
    Ok(())
}

fn report(a: &Analysis, config: &Config) -> String {
    let row = |name: &str, p: Option<Percentiles>| {
        p.map_or_else(
            || format!("  {name:<28} no data\n"),
            |p| {
                format!(
                    "  {name:<28} p50 {:>6.2}  p90 {:>6.2}  p99 {:>6.2}  p99.9 {:>6.2}\n",
                    p.p50, p.p90, p.p99, p.p999
                )
            },
        )
    };
    let mut out = format!("{} history rows covering {:.1} h\n", a.rows, a.hours);
    out.push_str(&row("stress (the tier follows)", a.stress));
    out.push_str(&row("  top process score", a.score));
    out.push_str(&row("  machine figure", a.machine));
    if let Some(share) = a.machine_leads {
        out.push_str(&format!("  the machine figure was the higher {:.1} % of the time\n", share * 100.0));
    }
    out.push_str(&row("sampling lateness (s)", a.lateness));
    match (a.elevated_threshold, a.critical_threshold, a.pause_threshold_ratio) {
        (Some(e), Some(c), Some(r)) => {
            out.push_str("proposal (now → proposed):\n");
            out.push_str(&format!(
                "  tiers.elevated_threshold  {} → {e}   (p99 of stress)\n",
                config.tiers.elevated_threshold
            ));
            out.push_str(&format!(
                "  tiers.critical_threshold  {} → {c}   (p99.9, at least 10 above elevated)\n",
                config.tiers.critical_threshold
            ));
            out.push_str(&format!(
                "  pause.threshold_ratio     {} → {r}   (1.25 × p99.9 lateness in {} ms sentinel periods, at least {MIN_PAUSE_RATIO})\n",
                config.pause.threshold_ratio, config.pause.sentinel_interval_ms
            ));
            out.push_str("apply with: pmon calibrate --apply\n");
        }
        _ => out.push_str(&format!(
            "not enough history to propose thresholds: {:.1} h recorded, {:.0} h needed ({:.1} h more); \
             keep pmon-server running, ideally with learning_mode = true\n",
            a.hours.min(a.lateness_hours),
            a.hours_needed,
            (a.hours_needed - a.hours.min(a.lateness_hours)).max(0.0)
        )),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows every 5 s: scores 20.00 … 29.99 evenly; one sample in 500 taken 1.5 s after
    /// the one before (0.2 %, so past the 99.9th percentile).
    fn synthetic(n: usize) -> Vec<HistoryRow> {
        (0..n)
            .map(|i| HistoryRow {
                time: Some(pbjson_types::Timestamp { seconds: 1_800_000_000 + 5 * i as i64, nanos: 0 }),
                tier: Tier::Sentinel as i32,
                max_score: 20.0 + (i % 1000) as f64 / 100.0,
                elapsed_ms: Some(if i % 500 == 499 { 1500.0 } else { 1000.0 }),
                ..Default::default()
            })
            .collect()
    }

    #[test]
    fn a_known_distribution_gives_the_expected_percentiles_and_proposal() {
        let a = analyse(&synthetic(10_000), &Config::default());
        assert!((a.hours - 10_000.0 * 5.0 / 3600.0).abs() < 1e-9);
        let s = a.score.expect("scores");
        for (got, want) in [(s.p50, 24.99), (s.p90, 28.99), (s.p99, 29.89), (s.p999, 29.98)] {
            assert!((got - want).abs() < 1e-9, "{got} != {want}");
        }
        let l = a.lateness.expect("lateness");
        assert_eq!((l.p50, l.p999), (0.0, 0.5));
        // 0.5 s late × 1.25 = 6.25 periods of 100 ms, rounded up.
        assert_eq!(
            (a.elevated_threshold, a.critical_threshold, a.pause_threshold_ratio),
            (Some(30.0), Some(40.0), Some(6.3))
        );
    }

    #[test]
    fn thresholds_follow_stress_the_higher_of_the_top_score_and_the_machine_figure() {
        // Scores 20 … 29.99 as above; every other row (the newer ones) also measured the
        // machine at 45 (an oversubscribed CPU): the tier followed 45 there.
        let rows: Vec<HistoryRow> = synthetic(10_000)
            .into_iter()
            .enumerate()
            .map(|(i, r)| match i % 2 {
                1 => HistoryRow {
                    stress: r.max_score.max(45.0),
                    machine: Some(pmon_proto::v1::MachineStress { score: 45.0, ..Default::default() }),
                    ..r
                },
                _ => r,
            })
            .collect();
        let a = analyse(&rows, &Config::default());
        let (stress, score, machine) =
            (a.stress.expect("stress"), a.score.expect("score"), a.machine.expect("machine"));
        assert_eq!((stress.p90, stress.p99), (45.0, 45.0), "half the time at 45");
        assert!((score.p99 - 29.89).abs() < 1e-9, "the top score alone: {score:?}");
        assert_eq!(machine.p50, 45.0);
        assert_eq!(a.machine_leads, Some(1.0));
        assert_eq!((a.elevated_threshold, a.critical_threshold), (Some(45.0), Some(55.0)));
        let text = report(&a, &Config::default());
        assert!(text.contains("the machine figure was the higher 100.0 % of the time"), "{text}");
        assert!(text.contains("tiers.elevated_threshold  50 → 45   (p99 of stress)"), "{text}");
    }

    #[test]
    fn too_little_history_says_how_much_more_it_needs() {
        let a = analyse(&synthetic(720), &Config::default());
        assert_eq!((a.elevated_threshold, a.pause_threshold_ratio), (None, None));
        let text = report(&a, &Config::default());
        assert!(text.contains("1.0 h recorded, 6 h needed (5.0 h more)"), "{text}");
    }

    #[test]
    fn stressed_stretches_sampled_densely_do_not_outweigh_quiet_time() {
        // One hour quiet (a row per 5 s, score 5), then 60 s stressed at 4 Hz (score 80).
        let mut rows: Vec<HistoryRow> =
            synthetic(720).into_iter().map(|r| HistoryRow { max_score: 5.0, ..r }).collect();
        let start = 1_800_000_000 + 3600;
        rows.extend((0..240).map(|i| HistoryRow {
            time: Some(pbjson_types::Timestamp { seconds: start + i / 4, nanos: (i % 4) as i32 * 250_000_000 }),
            tier: Tier::Elevated as i32,
            max_score: 80.0,
            elapsed_ms: Some(250.0),
            ..Default::default()
        }));
        let s = analyse(&rows, &Config::default()).score.expect("scores");
        // 240 of 960 rows are stressed, but only ~60 s of ~3660 s: the median stays quiet.
        assert_eq!((s.p50, s.p90), (5.0, 5.0));
        assert_eq!(s.p99, 80.0);
    }
}
