//! `pmon`: the pause-monitor command line.
//!
//! ```text
//! pmon [--connect URL [--token-file F] [--ca-file F] | --data-dir DIR] <command>
//!   status ──► GetStatus ─────► one line (or JSON)
//!   watch  ──► WatchSamples ──► one line per sample (or JSON lines)
//!   config ──► GetConfig / local paths
//!   tui    ──► pmon_tui::run (the live dashboard)
//! ```
//!
//! One file per subcommand; `format` holds the shared human-readable rendering. JSON
//! output is the proto3 JSON mapping, the same shape grpcurl prints.

mod calibrate;
mod config;
mod config_file;
mod events;
mod history;
mod lines;
mod prune;
mod shell;
mod status;
mod watch;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use pmon_proto::{
    endpoint::{Client, ConnectError, Endpoint},
    paths, token,
};

/// pmon — find out what froze your machine.
///
/// Talks to pmon-server, which samples every process, scores stress and keeps the
/// evidence. By default it connects to the local server's socket.
///
/// Exit codes: 0 success, 1 error, 2 usage error, 3 server not reachable.
#[derive(Debug, Parser)]
#[command(
    name = "pmon",
    version,
    verbatim_doc_comment,
    after_help = "Examples:\n  pmon status\n  pmon watch --json --count 10\n  pmon events --status unreviewed\n  pmon --connect unix:///tmp/pmon/daemon.sock history --at \"10 min ago\"\n  pmon --connect https://mac.local:7070 --token-file mac.token --ca-file ca.pem status"
)]
struct Cli {
    #[command(flatten)]
    target: Target,

    #[command(subcommand)]
    command: Command,
}

// Which server to talk to, and the credentials for it.
#[derive(Debug, clap::Args)]
struct Target {
    /// Server address: unix:///path/daemon.sock, https://host:port or http://host:port
    /// [default: unix://<data dir>/daemon.sock]. Takes precedence over --data-dir.
    #[arg(long, global = true, value_name = "URL")]
    connect: Option<Endpoint>,

    /// File holding the bearer token of a TCP server (mode 0600, like the server's).
    /// Not used for the local socket.
    #[arg(long, global = true, env = token::TOKEN_FILE_ENV, value_name = "FILE")]
    token_file: Option<PathBuf>,

    /// CA certificate (PEM) that signed an https:// server's certificate [default: the
    /// public web roots].
    #[arg(long, global = true, value_name = "FILE")]
    ca_file: Option<PathBuf>,

    /// The local server's data directory, whose socket to use [default:
    /// ~/.local/share/pause-monitor].
    #[arg(long, global = true, env = paths::DATA_DIR_ENV, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One line: tier, score, samples, top rogue and the server's own cost.
    ///
    /// Example: pmon status --json | jq .tier
    Status(status::Args),
    /// Live samples, one line each: tier, max score and the top rogue with its main factor.
    ///
    /// Example: pmon watch --count 5 --json
    Watch(watch::Args),
    /// The live dashboard: score, tier, rogues and why, events and incident reports.
    ///
    /// Mark events reviewed, pinned or dismissed and write notes from their incident
    /// report. Press ? for the keys. It keeps running when the server goes away, says
    /// so, and reconnects.
    ///
    /// Example: pmon --connect https://mac.local:7070 --token-file ~/.pmon-mac.token tui
    Tui,
    /// The configuration: what the server runs with, and where the file is.
    ///
    /// Example: pmon config show --file
    #[command(subcommand)]
    Config(config::Command),
    /// Recorded pauses and escalations: list them, show one, mark it reviewed.
    ///
    /// Examples: pmon events --status unreviewed --since "yesterday"
    ///           pmon events show 12
    ///           pmon events mark 12 pinned --notes "the nightly backup"
    Events(events::Args),
    /// What was happening at a moment, or over a span.
    ///
    /// Examples: pmon history --at "10 min ago"
    ///           pmon history --hours 24 --format csv > day.csv
    History(history::Args),
    /// Apply retention now: old history and reviewed/dismissed events go; pinned and
    /// unreviewed events stay.
    ///
    /// Example: pmon prune --dry-run
    Prune(prune::Args),
    /// Propose tier thresholds and a pause threshold from this machine's own history.
    ///
    /// Example: pmon calibrate --apply
    Calibrate(calibrate::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(shell::CompletionsArgs),
    /// Print the man page, or write one page per command into a directory.
    Man(shell::ManArgs),
}

/// An error that carries its own exit code.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    message: String,
}

impl From<ConnectError> for Failure {
    fn from(e: ConnectError) -> Self {
        // Only a data directory's own socket can be recreated by starting a server there.
        let hint = match (&e.endpoint, e.not_running) {
            (Endpoint::Unix(sock), true) if sock.file_name().is_some_and(|n| n == "daemon.sock") => {
                let dir = sock.parent().map(|d| d.display().to_string()).unwrap_or_default();
                format!("; start it with: pmon-server --data-dir {dir}")
            }
            _ => String::new(),
        };
        Failure { code: 3, message: format!("{e}{hint}") }
    }
}

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Self {
        if s.code() == tonic::Code::Unauthenticated {
            return Failure { code: 3, message: format!("the server refused the token: {}", s.message()) };
        }
        // A plaintext client talking to a TLS listener gets no gRPC answer at all.
        if s.message().contains("h2 protocol error") {
            let message = format!(
                "the connection failed below gRPC ({}); if the server's listener uses TLS, connect with https://",
                s.message()
            );
            return Failure { code: 3, message };
        }
        Failure { code: 1, message: format!("server answered {:?}: {}", s.code(), s.message()) }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure { code: 1, message: format!("{e:#}") }
    }
}

/// Where to connect and with which credentials, from the flags.
fn endpoint(t: &Target) -> Result<Endpoint, Failure> {
    let address = local_or(t.connect.clone(), t.data_dir.clone())?;
    address.with_credentials(t.token_file.clone(), t.ca_file.clone()).map_err(|message| Failure { code: 2, message })
}

/// The address given, or the socket of the data directory.
fn local_or(cli_connect: Option<Endpoint>, data_dir: Option<PathBuf>) -> Result<Endpoint, Failure> {
    if let Some(e) = cli_connect {
        return Ok(e);
    }
    let dir = match data_dir {
        Some(d) => d,
        None => paths::default_data_dir().map_err(|e| Failure { code: 1, message: e.to_string() })?,
    };
    Ok(Endpoint::local(&dir))
}

async fn connect(endpoint: &Endpoint) -> Result<Client, Failure> {
    Ok(endpoint.connect().await?)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pmon: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Config(c) => {
                let target = cli.target.connect.is_some().then(|| endpoint(&cli.target)).transpose()?;
                config::run(c, target, cli.target.data_dir).await
            }
            Command::Completions(a) => {
                shell::completions(&a);
                Ok(())
            }
            Command::Man(a) => shell::man(&a),
            Command::Status(a) => status::run(a, &endpoint(&cli.target)?).await,
            Command::Watch(a) => watch::run(a, &endpoint(&cli.target)?).await,
            Command::Tui => {
                pmon_tui::run(endpoint(&cli.target)?).await.map_err(|e| Failure { code: 1, message: e.to_string() })
            }
            Command::Events(a) => events::run(a, &endpoint(&cli.target)?).await,
            Command::History(a) => history::run(a, &endpoint(&cli.target)?).await,
            Command::Prune(a) => prune::run(a, &endpoint(&cli.target)?).await,
            Command::Calibrate(a) => {
                let endpoint = endpoint(&cli.target)?;
                calibrate::run(a, &endpoint, cli.target.data_dir).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("pmon: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
