//! `pmon status`: one line about the server, or its full status as JSON.

use std::time::Duration;

use anyhow::Context;
use pmon_proto::{endpoint::Endpoint, time::system_time, v1::GetStatusRequest};

use pmon_proto::format;

use crate::{Failure, connect};

/// `pmon status` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the whole status as JSON (proto3 JSON mapping).
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args, endpoint: &Endpoint) -> Result<(), Failure> {
    let status = connect(endpoint).await?.get_status(GetStatusRequest {}).await?.into_inner();
    if args.json {
        println!("{}", serde_json::to_string(&status).context("cannot render status as JSON")?);
        return Ok(());
    }
    let mut parts = vec![
        format!("pmon-server {} ({})", status.version, status.source),
        format::tier(status.tier).to_string(),
        // A server that does not measure the machine yet sends its top score alone.
        status.stress.or(status.max_score).map_or_else(|| "no sample yet".into(), |s| format!("stress {s:.1}")),
        format!("{} samples", status.sample_count),
    ];
    if let Some(m) = &status.machine {
        parts.push(format::machine(m));
    }
    if let Some(n) = status.process_count {
        parts.push(format!("{n} procs"));
    }
    if let Some(top) = &status.top_rogue {
        parts.push(format!("top {}", format::rogue(top)));
    }
    if let Some(cost) = &status.cost {
        let cpu = cost.cpu_percent.map_or_else(|| "n/a".into(), |c| format!("{c:.2}%"));
        let rss = cost.resident_bytes.map_or_else(|| "rss n/a".into(), format::bytes);
        let per_sample = cost.mean_sample_cpu_micros.map_or_else(|| "n/a".into(), |m| format!("{:.2} ms", m / 1000.0));
        parts.push(format!("self {cpu} cpu, {rss}, {per_sample}/sample"));
    }
    parts.push(format!("{} watcher{}", status.watchers, if status.watchers == 1 { "" } else { "s" }));
    if status.source_restarts > 0 {
        // A gap in sampling: the source's child process had to be started again.
        let times =
            if status.source_restarts == 1 { "once".into() } else { format!("{} times", status.source_restarts) };
        parts.push(format!("{} restarted {times} (last: {})", status.source, status.source_problem));
    } else if !status.source_problem.is_empty() {
        parts.push(format!("source problem{}: {}", ago(status.source_problem_at.as_ref()), status.source_problem));
    }
    if !status.sampler_protected && !status.sampler_priority.is_empty() {
        // Inside a freeze such a sampler is starved too: pauses are seen, their insides less so.
        parts.push(format!("sampler at {}", status.sampler_priority));
    }
    if status.failed_samples > 0 {
        parts.push(format!("{} failed samples", status.failed_samples));
    }
    if status.sampler_panics > 0 {
        let last = ago(status.last_sampler_panic_at.as_ref());
        parts.push(format!(
            "SAMPLER PANICKED {} times, recovered (last{last}: {})",
            status.sampler_panics, status.last_sampler_panic
        ));
    }
    if status.forensic_panics > 0 {
        parts.push(format!("{} forensic steps panicked", status.forensic_panics));
    }
    if status.lost_writes > 0 {
        let last = ago(status.store_problem_at.as_ref());
        parts.push(format!("{} WRITES LOST (last{last}: {})", status.lost_writes, status.store_problem));
    }
    if !status.config_error.is_empty() {
        parts.push(format!("CONFIG NOT RELOADED: {}", status.config_error));
    }
    if let Some(started) = status.started_at.as_ref().and_then(system_time) {
        let up = started.elapsed().unwrap_or(Duration::ZERO);
        parts.push(format!("up {}", uptime(up)));
    }
    println!("{}", parts.join(" · "));
    Ok(())
}

/// ` 3m12s ago`, or nothing for no time: a problem's age tells an old one from a live one.
fn ago(at: Option<&pbjson_types::Timestamp>) -> String {
    at.and_then(system_time).map_or_else(String::new, |t| format!(" {} ago", uptime(t.elapsed().unwrap_or_default())))
}

fn uptime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_is_short_and_exact() {
        assert_eq!(uptime(Duration::from_secs(59)), "59s");
        assert_eq!(uptime(Duration::from_secs(192)), "3m12s");
        assert_eq!(uptime(Duration::from_secs(3 * 3600 + 5 * 60)), "3h05m");
        assert_eq!(uptime(Duration::from_secs(2 * 86_400 + 3600)), "2d01h");
    }
}
