//! `pmon explain FILE`: who a stack report says everyone waited on, offline and on any
//! platform, for a report a person already has (Activity Monitor's Sample Process, a
//! sysdiagnose's spindump, a tailspin trace decoded with `spindump -i`, a colleague's).
//!
//! ```text
//! FILE ──► pmon_spindump::explain ──► culprit, chains of waits, main-thread hangs ──► text | JSON
//! ```

use std::{io::Read, path::PathBuf};

use anyhow::Context;
use pmon_proto::format;
use pmon_spindump::{Analysis, model::Format};

use crate::Failure;

/// `pmon explain` options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The report: spindump text (a `.spin`/`.hang` file, sysdiagnose's spindump, or
    /// `spindump -i trace.tailspin -stdout`) or `sample`'s output; `-` reads stdin.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Print the answer as JSON (the proto3 JSON of pmon's WaitChain and AppHang).
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args) -> Result<(), Failure> {
    let bytes = read(&args.file)?;
    let name = args.file.display();
    let analysis = pmon_spindump::explain(&String::from_utf8_lossy(&bytes)).map_err(|e| {
        // A binary trace is the likeliest wrong file: say how to turn it into text.
        let hint = if bytes.contains(&0) {
            "; a binary .tailspin trace must be decoded first, on a Mac: spindump -i FILE -stdout > report.txt"
        } else {
            ""
        };
        Failure { code: 1, message: format!("{name}: {e}{hint}") }
    })?;
    if args.json {
        println!("{}", json(&analysis).context("cannot render as JSON")?);
    } else {
        print!("{}", text(&analysis));
    }
    Ok(())
}

fn read(file: &PathBuf) -> Result<Vec<u8>, Failure> {
    let mut bytes = Vec::new();
    let done = if file.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::File::open(file).and_then(|mut f| f.read_to_end(&mut bytes)).map(|_| ())
    };
    done.map_err(|e| Failure { code: 1, message: format!("cannot read {}: {e}", file.display()) })?;
    Ok(bytes)
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Spindump => "spindump",
        Format::Sample => "sample",
    }
}

/// The report for a person: the culprit first (or why there is none), then each chain
/// and each hung app.
fn text(a: &Analysis) -> String {
    let mut out = String::new();
    let read = format!("{} report, {} processes, {} threads read", format_name(a.format), a.processes, a.threads);
    match (a.culprit(), a.why(), a.none_named()) {
        (Some(c), Some(why), _) => {
            out += &format!("culprit: {}\n  why: {why}\n  ({read})\n", format::stack_thread(c));
        }
        (_, _, reason) => out += &format!("culprit: none: {} ({read})\n", reason.unwrap_or_default()),
    }
    if !a.chains.is_empty() {
        out += "\nchains of waits, most waited on first:\n";
        for chain in &a.chains {
            for line in format::wait_chain(chain) {
                out += &format!("  {line}\n");
            }
        }
    }
    if !a.hangs.is_empty() {
        out += "\nmain threads blocked or busy for 90 % of the report or more (the app hung):\n";
        for hang in &a.hangs {
            out += &format!("  {}\n", format::app_hang(hang));
        }
    }
    out
}

fn json(a: &Analysis) -> serde_json::Result<String> {
    serde_json::to_string(&serde_json::json!({
        "format": format_name(a.format),
        "processes": a.processes,
        "threads": a.threads,
        "culprit": a.culprit(),
        "why": a.why(),
        "waitChains": a.chains,
        "appHangs": a.hangs,
    }))
}
