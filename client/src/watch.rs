//! `pmon watch`: the live sample stream, as lines for people or JSON lines for scripts.

use std::io::{self, Write};

use anyhow::Context;
use pmon_proto::{
    endpoint::Endpoint,
    v1::{WatchSamplesRequest, watch_samples_response::Item},
};

use crate::{Failure, connect, lines};

/// `pmon watch` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// One JSON object per line (proto3 JSON of each stream item: a sample, or a
    /// `missed` notice with `firstSequence` and `count`).
    #[arg(long)]
    json: bool,

    /// Exit (status 0) after this many samples. The ring buffer's contents come first,
    /// so recent history counts too.
    #[arg(long, value_name = "N")]
    count: Option<u64>,

    /// Resume after this sequence number: only later samples, from those the server
    /// still holds; anything it no longer holds is reported as missed.
    #[arg(long, value_name = "SEQ")]
    after: Option<u64>,

    /// The serverInstance that --after came from (in --json output). If the server has
    /// restarted since, its numbers started again: --after is ignored and the stream
    /// starts from what the server holds.
    #[arg(long, value_name = "ID", requires = "after")]
    instance: Option<u64>,
}

pub async fn run(args: Args, endpoint: &Endpoint) -> Result<(), Failure> {
    if args.count == Some(0) {
        return Ok(());
    }
    let mut client = connect(endpoint).await?;
    let mut stream = client
        .watch_samples(WatchSamplesRequest { after_sequence: args.after, server_instance: args.instance })
        .await?
        .into_inner();
    let mut seen = 0u64;
    let stdout = io::stdout();
    while let Some(item) = stream.message().await? {
        let line = if args.json {
            serde_json::to_string(&item).context("cannot render a sample as JSON")?
        } else {
            match &item.item {
                Some(Item::Sample(s)) => lines::sample(s),
                Some(Item::Missed(m)) => format!(
                    "... missed {} sample{} (#{}-#{}): this client read too slowly or resumed too late",
                    m.count,
                    if m.count == 1 { "" } else { "s" },
                    m.first_sequence,
                    m.first_sequence + m.count.saturating_sub(1)
                ),
                None => continue,
            }
        };
        if let Err(e) = writeln!(stdout.lock(), "{line}") {
            // The reader went away (`pmon watch | head`): that is a normal end.
            if e.kind() == io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(anyhow::Error::from(e).context("cannot write to stdout").into());
        }
        if matches!(item.item, Some(Item::Sample(_))) {
            seen += 1;
            if args.count.is_some_and(|n| seen >= n) {
                return Ok(());
            }
        }
    }
    Err(Failure { code: 1, message: format!("the server at {endpoint} ended the stream (it is shutting down)") })
}
