//! `pmon`: the pause-monitor command line.
//!
//! ```text
//! pmon [--connect URL [--token-file F] [--ca-file F] | --data-dir DIR] <command>
//!   status ──► GetStatus ─────► one line (or JSON)
//!   watch  ──► WatchSamples ──► one line per sample (or JSON lines)
//!   config ──► GetConfig / local paths
//!   tui    ──► pmon_tui::run (the live dashboard)
//!   explain FILE ──► pmon_spindump (offline: who a stack report says everyone waited on)
//! ```
//!
//! One file per subcommand; `format` holds the shared human-readable rendering. JSON
//! output is the proto3 JSON mapping, the same shape grpcurl prints.

mod calibrate;
mod config;
mod config_file;
mod events;
mod explain;
mod history;
mod install;
mod lines;
mod prune;
mod remote;
mod shell;
mod status;
mod watch;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use pmon_proto::{
    endpoint::{Client, ConnectError, Credentials, Endpoint},
    paths, token,
};

/// pmon — find out what froze your machine.
///
/// Talks to pmon-server, which samples every process, scores stress and keeps the
/// evidence. By default it connects to the local server's socket.
///
/// Exit codes: 0 success, 1 error, 2 usage error, 3 server not reachable or credentials
/// refused, 4 (install) the service is written but its manager is not reachable.
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
    /// A server added with `pmon remote add NAME …`: its address, pinned certificate
    /// and token. `pmon tui` takes several, comma-separated, and shows an overview.
    #[arg(long, global = true, value_name = "NAME", conflicts_with_all = ["connect", "token_file", "ca_file", "client_cert"])]
    remote: Option<String>,

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

    /// Client certificate (PEM) for an https:// server that asks for one (--client-ca).
    #[arg(long, global = true, value_name = "FILE", requires = "client_key")]
    client_cert: Option<PathBuf>,

    /// The client certificate's private key (PEM).
    #[arg(long, global = true, value_name = "FILE", requires = "client_cert")]
    client_key: Option<PathBuf>,

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
    /// With several remotes (--remote a,b or --all-remotes), an overview first: one row
    /// per machine with its state, tier, score, top process and last pause; Enter opens
    /// that machine's dashboard, Esc there comes back.
    ///
    /// Examples: pmon --remote mac tui
    ///           pmon tui --all-remotes
    Tui(TuiArgs),
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
    /// Keep pmon-server running: a launchd agent (macOS) or a systemd user unit (Linux).
    ///
    /// Writes only what differs and says what it did; running it again does nothing.
    /// A --data-dir given here (or $PMON_DATA_DIR) is passed on to the server. With
    /// --forensics (macOS, as root), the sudoers rules for tailspin, spindump and
    /// powermetrics instead.
    ///
    /// Example: pmon install --dry-run
    Install(install::InstallArgs),
    /// Stop pmon-server's service and remove what `pmon install` wrote.
    ///
    /// Example: pmon uninstall --dry-run
    Uninstall(install::UninstallArgs),
    /// Who a macOS stack report says everyone waited on: the culprit, then the chain.
    ///
    /// Reads spindump text (a .spin or .hang report, a sysdiagnose's spindump, a tailspin
    /// trace decoded with `spindump -i`) or Activity Monitor's Sample Process output,
    /// offline, on any platform. Follows every `(blocked by …)` note to the thread they
    /// end at, and marks apps whose main thread hung for the whole report.
    ///
    /// Examples: pmon explain WindowServer_2026-11-20-140314_Mac.spin
    ///           pmon explain --json report.txt | jq .culprit
    Explain(explain::Args),
    /// Servers on other machines by name, each pinned by its certificate's fingerprint.
    ///
    /// Examples: pmon remote add mac https://192.168.1.20:7070 --fingerprint SHA256:3f…
    ///           pmon --remote mac status
    #[command(subcommand)]
    Remote(remote::Command),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(shell::CompletionsArgs),
    /// Print the man page, or write one page per command into a directory.
    Man(shell::ManArgs),
}

#[derive(Debug, clap::Args)]
struct TuiArgs {
    /// Every remote added with `pmon remote add`, in the overview.
    #[arg(long)]
    all_remotes: bool,
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
        let hint = match (e.presented, REMOTE.get()) {
            (Some(presented), Some(name)) => format!(
                "; never trusted silently: if that machine made a new certificate (a new data directory), check \
                 the fingerprint there (pmon status --json) and pin it again: pmon remote add {name} {} \
                 --fingerprint {presented} --replace",
                e.endpoint
            ),
            _ => hint,
        };
        Failure { code: 3, message: format!("{e}{hint}") }
    }
}

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Self {
        if s.code() == tonic::Code::Unauthenticated {
            return Failure { code: 3, message: format!("the server refused the token: {}", s.message()) };
        }
        if let Some(message) = below_grpc(&s, TARGET.get()) {
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

/// The kind of server address in use, for explaining a connection that breaks below
/// gRPC (set once, when the address is chosen).
static TARGET: std::sync::OnceLock<Endpoint> = std::sync::OnceLock::new();
/// The named remote in use (`--remote`), for the command that re-pins it.
static REMOTE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// How a call to a TCP server failed below gRPC, in words, naming the step likely at
/// fault; `None` when the server answered (or for the local socket, where it only
/// means the server went away).
fn below_grpc(s: &tonic::Status, target: Option<&Endpoint>) -> Option<String> {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(s);
    while let Some(e) = source {
        causes.push(e.to_string());
        source = e.source();
    }
    let broken = s.message().contains("h2 protocol error")
        || (matches!(s.code(), tonic::Code::Unknown | tonic::Code::Cancelled)
            && ["transport error", "operation was canceled"].contains(&s.message()));
    if !broken {
        return None;
    }
    let detail = if causes.is_empty() { s.message().to_string() } else { causes.join(": ") };
    let hint = match target {
        // A plaintext client gets no HTTP/2 answer from a TLS listener.
        Some(Endpoint::Tcp(remote)) if !remote.tls => "(TLS?) if the server's listener uses TLS, connect with https://",
        // A TLS server that wants a client certificate says so only after the handshake
        // (TLS 1.3), so its refusal cuts off the first call.
        Some(Endpoint::Tcp(_)) => {
            "(TLS failed?) a server started with --client-ca needs --client-cert and --client-key signed by that CA"
        }
        _ => return None,
    };
    Some(format!("the connection was closed before the server answered ({detail}); {hint}"))
}

/// Where to connect and with which credentials, from the flags.
fn endpoint(t: &Target) -> Result<Endpoint, Failure> {
    let endpoint = match &t.remote {
        Some(name) if name.contains(',') => {
            return Err(Failure {
                code: 2,
                message: format!("--remote {name}: one remote at a time, except for `pmon tui`, which shows several"),
            });
        }
        Some(name) => {
            let _ = REMOTE.set(name.clone());
            remote::endpoint(name)?
        }
        None => {
            let address = local_or(t.connect.clone(), t.data_dir.clone())?;
            let credentials = Credentials {
                token_file: t.token_file.clone(),
                ca_file: t.ca_file.clone(),
                client_cert: t.client_cert.clone().zip(t.client_key.clone()),
                pin: None,
            };
            address.with_credentials(credentials).map_err(|message| Failure { code: 2, message })?
        }
    };
    let _ = TARGET.set(endpoint.clone());
    Ok(endpoint)
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
                let named = cli.target.connect.is_some() || cli.target.remote.is_some();
                let target = named.then(|| endpoint(&cli.target)).transpose()?;
                config::run(c, target, cli.target.data_dir).await
            }
            Command::Completions(a) => {
                shell::completions(&a);
                Ok(())
            }
            Command::Man(a) => shell::man(&a),
            Command::Explain(a) => explain::run(&a),
            Command::Remote(c) => remote::run(c).await,
            Command::Install(a) => install::install(a, cli.target.data_dir),
            Command::Uninstall(a) => install::uninstall(a),
            Command::Status(a) => status::run(a, &endpoint(&cli.target)?).await,
            Command::Watch(a) => watch::run(a, &endpoint(&cli.target)?).await,
            Command::Tui(a) => {
                let failed = |e: pmon_tui::Error| Failure { code: 1, message: e.to_string() };
                let several = cli.target.remote.as_deref().filter(|r| r.contains(','));
                match (a.all_remotes, several) {
                    (true, _) if cli.target.connect.is_some() || cli.target.remote.is_some() => Err(Failure {
                        code: 2,
                        message: "--all-remotes shows every remote: leave out --connect and --remote".into(),
                    }),
                    (true, _) => pmon_tui::run_fleet(remote::all()?).await.map_err(failed),
                    (false, Some(names)) => pmon_tui::run_fleet(remote::several(names)?).await.map_err(failed),
                    (false, None) => pmon_tui::run(endpoint(&cli.target)?).await.map_err(failed),
                }
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
