//! `pmon history`: what was happening at a moment, or over a span, from the compact rows
//! the server keeps (one every few seconds; every sample while stressed).

use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::ValueEnum;
use pmon_proto::{
    endpoint::Endpoint,
    format,
    time::timestamp,
    v1::{HistoryRow, QueryHistoryRequest, TimeRange, query_history_request::Query},
    when::parse_time_now,
};

use crate::{Failure, connect};

/// `pmon history` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The last N hours [default: 1].
    #[arg(long, value_name = "N", conflicts_with_all = ["at", "since"])]
    hours: Option<f64>,
    /// What was happening at this moment: ISO-8601, "10 min ago", "yesterday 14:05", …
    #[arg(long, value_name = "TIME", conflicts_with = "since")]
    at: Option<String>,
    /// From this time (same forms as --at) …
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// … until this time [default: now].
    #[arg(long, value_name = "TIME", requires = "since")]
    until: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// At most this many rows (1 to 100000; a day at defaults is 17 280).
    #[arg(long, default_value_t = 100_000, value_name = "N")]
    limit: u32,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// Aligned columns for people.
    Table,
    /// One JSON object (proto3 JSON of the response).
    Json,
    /// Comma-separated values with a header row, for spreadsheets.
    Csv,
}

pub async fn run(args: Args, endpoint: &Endpoint) -> Result<(), Failure> {
    let parse = |t: &str, flag: &str| parse_time_now(t).with_context(|| format!("--{flag}"));
    let query = if let Some(at) = &args.at {
        Query::At(timestamp(parse(at, "at")?))
    } else {
        let (start, end) = match &args.since {
            Some(since) => {
                let end = args.until.as_deref().map(|u| parse(u, "until")).transpose()?.unwrap_or_else(SystemTime::now);
                (parse(since, "since")?, end)
            }
            None => {
                let hours = args.hours.unwrap_or(1.0);
                if !(hours.is_finite() && hours > 0.0 && hours <= 24.0 * 366.0) {
                    return Err(anyhow::anyhow!("--hours {hours}: accepted: above 0, at most 8784 (a year)").into());
                }
                let now = SystemTime::now();
                (now.checked_sub(Duration::from_secs_f64(hours * 3600.0)).unwrap_or(SystemTime::UNIX_EPOCH), now)
            }
        };
        Query::Range(TimeRange { start: Some(timestamp(start)), end: Some(timestamp(end)) })
    };
    let request = QueryHistoryRequest { query: Some(query), limit: args.limit };
    let answer = connect(endpoint).await?.query_history(request).await?.into_inner();
    match args.format {
        Format::Json => println!("{}", serde_json::to_string(&answer).context("cannot render as JSON")?),
        Format::Csv => {
            println!(
                "time,tier,max_score,process_count,top_pid,top_command,top_score,top_factor,load_1m,mem_available_bytes,\
                 stress,machine_score,machine_reason"
            );
            for r in &answer.rows {
                println!("{}", csv(r));
            }
        }
        Format::Table => {
            if answer.rows.is_empty() {
                println!("no history in that span (the server keeps a row every few seconds while it runs)");
            }
            for r in &answer.rows {
                let top = r.top_rogues.first().map_or_else(|| "-".into(), format::rogue);
                let machine = r.machine.as_ref().map_or_else(String::new, |m| format!("  {}", format::machine(m)));
                println!(
                    "{}  {:<8} stress {:5.1}  {:>4} procs  top {top}{machine}",
                    format::date_time(r.time.as_ref()),
                    format::tier(r.tier),
                    stress(r),
                    r.process_count
                );
            }
            if answer.truncated {
                println!("(cut at {} rows: narrow the span or raise --limit)", args.limit);
            }
        }
    }
    Ok(())
}

/// What the tier followed; rows stored before the machine's figure was measured had
/// only the top rogue's score.
fn stress(r: &HistoryRow) -> f64 {
    if r.machine.is_some() { r.stress } else { r.max_score }
}

/// A CSV row; the command and the reason are quoted, since they may hold commas or quotes.
fn csv(r: &HistoryRow) -> String {
    let top = r.top_rogues.first();
    let time = r.time.as_ref().and_then(pmon_proto::time::system_time).map_or(String::new(), |t| {
        chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    });
    let sys = r.system.unwrap_or_default();
    let quoted = |t: &str| format!("\"{}\"", t.replace('"', "\"\""));
    format!(
        "{time},{},{:.3},{},{},{},{},{},{},{},{:.3},{},{}",
        format::tier(r.tier),
        r.max_score,
        r.process_count,
        top.map_or(String::new(), |t| t.pid.to_string()),
        top.map_or(String::new(), |t| quoted(&t.command)),
        top.map_or(String::new(), |t| format!("{:.3}", t.score)),
        top.and_then(|t| t.explanation.first()).map_or("", |f| format::factor_name(f.factor)),
        sys.load_1m.map_or(String::new(), |l| l.to_string()),
        sys.mem_available_bytes.map_or(String::new(), |m| m.to_string()),
        stress(r),
        r.machine.as_ref().map_or(String::new(), |m| format!("{:.3}", m.score)),
        r.machine.as_ref().map_or(String::new(), |m| quoted(&m.reason)),
    )
}

#[cfg(test)]
mod tests {
    use pmon_proto::v1::MachineStress;

    use super::*;

    #[test]
    fn rows_stored_before_the_machine_figure_read_as_their_top_score() {
        let old = HistoryRow { max_score: 31.5, ..Default::default() };
        assert_eq!(stress(&old), 31.5);
        assert!(csv(&old).ends_with(",31.500,,"), "no machine figure: empty cells, {}", csv(&old));
        let machine =
            MachineStress { score: 60.0, reason: "cpu: 23.0 tasks waited, \"storm\"".into(), ..Default::default() };
        let new = HistoryRow { max_score: 22.5, stress: 60.0, machine: Some(machine), ..Default::default() };
        assert_eq!(stress(&new), 60.0);
        assert!(csv(&new).ends_with(",60.000,60.000,\"cpu: 23.0 tasks waited, \"\"storm\"\"\""), "{}", csv(&new));
    }
}
