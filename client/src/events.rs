//! `pmon events`: list recorded pauses and escalations, show one as an incident report,
//! mark it reviewed / pinned / dismissed.

use std::fmt::Write as _;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use pmon_proto::{
    endpoint::Endpoint,
    format,
    time::timestamp,
    v1::{
        Event, EventKind, EventStatus, FindingOutcome, GetEventRequest, GetEventResponse, ListEventsRequest,
        UpdateEventRequest,
    },
    when::parse_time_now,
};

use crate::{Failure, connect};

/// `pmon events` options.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    list: ListArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One event as an incident report: what happened, the culprits and why, the
    /// forensic findings and where the raw artefacts are.
    ///
    /// Example: pmon events show 12
    Show {
        /// Event id (from `pmon events`).
        id: u64,
        /// The full event as JSON (proto3 JSON mapping).
        #[arg(long)]
        json: bool,
    },
    /// Sets an event's review status, and optionally its notes.
    ///
    /// Example: pmon events mark 12 reviewed --notes "backup job; rescheduled"
    Mark {
        /// Event id.
        id: u64,
        /// New status. Pruning never removes pinned or unreviewed events.
        status: Status,
        /// Notes to keep with the event (replaces earlier notes).
        #[arg(long, value_name = "TEXT")]
        notes: Option<String>,
        /// Print the updated event as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Only events with this status (repeatable).
    #[arg(long, value_name = "STATUS")]
    status: Vec<Status>,
    /// Only this kind.
    #[arg(long, value_name = "KIND")]
    kind: Option<Kind>,
    /// Only events that started at or after this time: ISO-8601, "10 min ago",
    /// "yesterday 14:05", "today", …
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only events that started before this time (same forms as --since).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// At most this many (1 to 1000).
    #[arg(long, default_value_t = 50, value_name = "N")]
    limit: u32,
    /// Print the response as JSON (proto3 JSON mapping).
    #[arg(long)]
    json: bool,
}

/// Review statuses, as typed.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Status {
    /// Not looked at yet.
    Unreviewed,
    /// Looked at.
    Reviewed,
    /// Kept for good.
    Pinned,
    /// Not interesting; pruned first.
    Dismissed,
}

impl From<Status> for EventStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Unreviewed => EventStatus::Unreviewed,
            Status::Reviewed => EventStatus::Reviewed,
            Status::Pinned => EventStatus::Pinned,
            Status::Dismissed => EventStatus::Dismissed,
        }
    }
}

/// Event kinds, as typed.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    /// The machine stalled.
    Pause,
    /// Stress above the elevated threshold.
    Escalation,
}

pub async fn run(args: Args, endpoint: &Endpoint) -> Result<(), Failure> {
    let mut client = connect(endpoint).await?;
    match args.command {
        None => list(args.list, &mut client).await,
        Some(Command::Show { id, json }) => {
            let event = client.get_event(GetEventRequest { id }).await?.into_inner();
            if json {
                println!("{}", serde_json::to_string(&event).context("cannot render as JSON")?);
            } else {
                print!("{}", report(&event));
            }
            Ok(())
        }
        Some(Command::Mark { id, status, notes, json }) => {
            let request = UpdateEventRequest { id, status: EventStatus::from(status) as i32, notes };
            let event = client.update_event(request).await?.into_inner().event.unwrap_or_default();
            if json {
                println!("{}", serde_json::to_string(&event).context("cannot render as JSON")?);
            } else {
                println!("{}", row(&event));
            }
            Ok(())
        }
    }
}

async fn list(a: ListArgs, client: &mut pmon_proto::endpoint::Client) -> Result<(), Failure> {
    let time = |t: Option<String>, flag: &str| -> Result<_, Failure> {
        t.map(|t| parse_time_now(&t).map(timestamp).with_context(|| format!("--{flag}")))
            .transpose()
            .map_err(Failure::from)
    };
    let request = ListEventsRequest {
        statuses: a.status.iter().map(|s| EventStatus::from(*s) as i32).collect(),
        kind: a.kind.map_or(EventKind::Unspecified, |k| match k {
            Kind::Pause => EventKind::Pause,
            Kind::Escalation => EventKind::Escalation,
        }) as i32,
        since: time(a.since, "since")?,
        until: time(a.until, "until")?,
        limit: a.limit,
        before_id: None,
    };
    let page = client.list_events(request).await?.into_inner();
    if a.json {
        println!("{}", serde_json::to_string(&page).context("cannot render as JSON")?);
        return Ok(());
    }
    if page.events.is_empty() {
        println!("no events match");
        return Ok(());
    }
    println!(
        "{:>5}  {:<10}  {:<10}  {:<19}  {:>9}  {:>5}  top culprit",
        "id", "kind", "status", "started", "length", "peak"
    );
    for e in &page.events {
        println!("{}", row(e));
    }
    if page.next_before_id.is_some() {
        println!("(more: raise --limit, or narrow with --since / --status)");
    }
    Ok(())
}

/// One line per event.
fn row(e: &Event) -> String {
    let culprit = format::top_culprit(e);
    format!(
        "{:>5}  {:<10}  {:<10}  {:<19}  {:>9}  {:>5.1}  {culprit}",
        e.id,
        format::event_kind(e.kind),
        format::event_status(e.status),
        format::date_time(e.started_at.as_ref()),
        format::event_length(e),
        e.peak_score
    )
}

/// An event as a short incident report.
fn report(r: &GetEventResponse) -> String {
    let mut out = String::new();
    let Some(e) = &r.event else { return "empty answer from the server\n".into() };
    let what = if e.kind == EventKind::Pause as i32 { "Pause" } else { "Escalation" };
    let _ = writeln!(out, "{what} {} ({})", e.id, format::event_status(e.status));
    let ended = e.ended_at.as_ref().map_or_else(|| "still open".into(), |t| format::date_time(Some(t)));
    let _ = writeln!(out, "  {} to {ended}, {}", format::date_time(e.started_at.as_ref()), format::event_length(e));
    let _ = writeln!(out, "  peak score {:.1}, tier {}", e.peak_score, format::tier(e.peak_tier));
    if !e.notes.is_empty() {
        let _ = writeln!(out, "  notes: {}", e.notes);
    }
    if let Some(cause) = format::cause(e) {
        let _ = writeln!(out, "  {cause}");
    }
    if let Some(w) = &e.window {
        let _ = writeln!(out, "  blame taken from the {}", format::window(w));
    }
    culprits(&mut out, e);
    if !e.wait_chains.is_empty() {
        let _ = writeln!(out, "\nWho waited on whom (stack report)");
        for line in e.wait_chains.iter().flat_map(format::wait_chain) {
            let _ = writeln!(out, "  {line}");
        }
    }
    if !e.app_hangs.is_empty() {
        let _ = writeln!(out, "\nHung apps (main thread blocked or busy)");
        for h in &e.app_hangs {
            let _ = writeln!(out, "  {}", format::app_hang(h));
        }
    }
    if !e.groups.is_empty() {
        let _ = writeln!(out, "\nGroups");
        for g in &e.groups {
            let _ = writeln!(out, "  {}", format::group(g));
        }
    }
    if !e.victims.is_empty() {
        let _ = writeln!(out, "\nVictims (waited longest)");
        for v in &e.victims {
            let _ = writeln!(out, "  {}", format::victim(v));
        }
    }
    if !r.findings.is_empty() {
        let _ = writeln!(out, "\nForensics");
        for f in &r.findings {
            let outcome = match FindingOutcome::try_from(f.outcome) {
                Ok(FindingOutcome::Ok) => "ok",
                Ok(FindingOutcome::TimedOut) => "timeout",
                _ => "failed",
            };
            let _ = writeln!(out, "  {outcome:<7} {:<16} {}", f.step, f.summary);
            for line in f.detail.lines().take(8).filter(|l| !l.trim().is_empty() && *l != f.summary) {
                let _ = writeln!(out, "          {line}");
            }
        }
    }
    if !e.artefact_dir.is_empty() {
        let _ = writeln!(out, "\nArtefacts in <data dir>/{}", e.artefact_dir);
        let _ = writeln!(out, "  {}", r.artefacts.join("  "));
    }
    let _ = writeln!(out, "\nSamples kept: {}", r.samples.len());
    for n in &r.notifications {
        let delivered = if n.delivered { "sent".to_string() } else { format!("not delivered: {}", n.error) };
        let _ = writeln!(out, "Notification: {}: {} ({delivered})", n.title, n.body);
    }
    out
}

/// The culprits section of an incident report.
fn culprits(out: &mut String, e: &Event) {
    let _ = writeln!(out, "\nCulprits");
    if e.culprits.is_empty() {
        let _ = writeln!(out, "  {}", format::no_culprit(e));
    }
    for (i, c) in e.culprits.iter().enumerate() {
        let _ = writeln!(out, "  {}. {}", i + 1, format::culprit(c));
        if let Some(u) = &c.usage {
            let _ = writeln!(out, "     {}", format::process_use(u));
        }
        if let Some(rogue) = c.rogue.as_ref().filter(|r| r.score > 0.0) {
            let shares = format::explanation(rogue);
            let _ = writeln!(out, "     score {:.1} in {} samples: {shares}", rogue.score, c.samples_seen);
        }
    }
}

#[cfg(test)]
mod tests {
    use pmon_proto::v1::{AppHang, Culprit, StackThread, WaitChain, WaitGroup};

    use super::*;

    #[test]
    fn a_mac_pause_report_leads_with_the_thread_everyone_waited_on() {
        let root = StackThread {
            process: "WindowServer".into(),
            pid: Some(153),
            thread: "0x3e2".into(),
            main: true,
            ..Default::default()
        };
        let why = "9 threads of Safari [2210] waited on WindowServer [153] main thread 0x3e2 (12/12 samples in waitForStamp (AMDRadeonX5000))";
        let event = Event {
            kind: EventKind::Pause as i32,
            culprits: vec![Culprit { why: why.into(), waited_on: Some(root.clone()), ..Default::default() }],
            wait_chains: vec![WaitChain {
                root: Some(root),
                why: why.into(),
                waiters: vec![WaitGroup {
                    process: "Safari".into(),
                    pid: Some(2210),
                    threads: 9,
                    samples: 98,
                    main: true,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            app_hangs: vec![AppHang {
                thread: Some(StackThread {
                    process: "Safari".into(),
                    pid: Some(2210),
                    thread: "0x1f00a".into(),
                    main: true,
                    ..Default::default()
                }),
                samples: 12,
                total_samples: 12,
                doing: "mach_msg2_trap (libsystem_kernel.dylib)".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = report(&GetEventResponse { event: Some(event), ..Default::default() });
        let culprits = text.find("  1. WindowServer[153]: 9 threads of Safari [2210]").expect(&text);
        let chain =
            text.find("Who waited on whom (stack report)\n  9 threads of Safari [2210] waited on").expect(&text);
        assert!(culprits < chain, "{text}");
        assert!(
            text.contains("\n    Safari [2210]: 9 threads (its main thread among them), 98 samples waiting\n"),
            "{text}"
        );
        assert!(text.contains("Hung apps (main thread blocked or busy)\n  Safari [2210] main thread 0x1f00a: hung 12/12 samples, mostly blocked in mach_msg2_trap"), "{text}");
    }
}
