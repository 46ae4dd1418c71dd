//! `pmon prune`: apply retention now (the server also does it every hour).

use anyhow::Context;
use pmon_proto::{endpoint::Endpoint, format, v1::PruneRequest};

use crate::{Failure, connect};

/// `pmon prune` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Show what would be removed without removing anything.
    #[arg(long)]
    dry_run: bool,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args, endpoint: &Endpoint) -> Result<(), Failure> {
    let r = connect(endpoint).await?.prune(PruneRequest { dry_run: args.dry_run }).await?.into_inner();
    if args.json {
        println!("{}", serde_json::to_string(&r).context("cannot render as JSON")?);
        return Ok(());
    }
    let verb = if r.dry_run { "would remove" } else { "removed" };
    println!(
        "{verb} {} events and {} history rows, {}; kept {} old events that are pinned or unreviewed",
        r.removed_event_ids.len(),
        r.history_rows_removed,
        format::bytes(r.bytes_freed),
        r.events_kept_protected
    );
    Ok(())
}
