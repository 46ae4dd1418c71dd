//! `pmon-server`: command line, logging and signals around [`pmon_server::run`].

use std::{io::IsTerminal, path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Parser;
use pmon_proto::{config::SourceKind, paths};
use tracing_subscriber::EnvFilter;

/// The pause-monitor daemon: samples every process, scores stress, and serves it over
/// gRPC on a Unix socket (<data dir>/daemon.sock), and optionally on TCP with TLS and
/// a bearer token (--listen).
///
/// Watch it with `pmon watch`, `pmon status`, or any gRPC client (reflection is on):
///   grpcurl -plaintext -unix -authority localhost <data dir>/daemon.sock list
///
/// Examples:
///   pmon-server                                  default paths, 1 s interval
///   pmon-server --data-dir /tmp/pmon --interval 0.5
///   PMON_LOG=debug pmon-server --config ./pmon.toml
///   pmon-server --source replay:capture.log --replay-speed max   a top log made elsewhere
///   pmon-server --listen 0.0.0.0:7070    TLS with its own certificate; prints what to run elsewhere
///   pmon-server --listen 0.0.0.0:7070 --tls-cert cert.pem --tls-key key.pem --token-file token
#[derive(Debug, Parser)]
#[command(name = "pmon-server", version, verbatim_doc_comment)]
struct Args {
    /// Configuration file [default: ~/.config/pause-monitor/config.toml]. A missing
    /// file means built-in defaults; an invalid one stops the server with the line at fault.
    #[arg(long, env = paths::CONFIG_ENV, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Data directory holding the socket and lock [default: ~/.local/share/pause-monitor].
    #[arg(long, env = paths::DATA_DIR_ENV, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Seconds between samples at tier SENTINEL (overrides sampling.interval_seconds;
    /// 0.05 to 3600).
    #[arg(long, value_name = "SECS")]
    interval: Option<f64>,

    /// Collector (overrides sampling.source): auto (the platform default), proc (Linux),
    /// libproc, top or powermetrics (macOS; the last two run a long-lived `top -l 0` or
    /// `powermetrics -f plist`; powermetrics needs root, or runs through `sudo -n` with the
    /// rule `sudo pmon install --forensics` writes), or replay:PATH
    /// (a `top -l` log, a `powermetrics -f plist` stream or a --record recording).
    #[arg(long, value_name = "SOURCE")]
    source: Option<SourceArg>,

    /// Replay speed: a factor of the recorded pace (1 = as recorded) or max.
    #[arg(long, value_name = "N|max", default_value = "1")]
    replay_speed: pmon_server::collect::replay::Speed,

    /// After a replay, keep serving (otherwise print a summary line and exit 0).
    #[arg(long)]
    keep_serving: bool,

    /// Write every sample to this file (pmon's own recording, for --source replay:FILE).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,

    /// Also serve on TCP, for watching this machine from another one (off by default).
    /// Without --tls-cert/--tls-key it uses its own CA and certificate (made once, in
    /// <data dir>/tls), and without --token-file a random token (<data dir>/remote.token);
    /// it prints the fingerprint and the `pmon remote add` command to run on the
    /// watching machine, and `pmon status` shows them.
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,

    /// TLS certificate chain (PEM) for --listen.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,

    /// TLS private key (PEM) for --listen.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,

    /// CA certificate (PEM): --listen then accepts only clients with a certificate it
    /// signed (mutual TLS).
    #[arg(long, value_name = "FILE")]
    client_ca: Option<PathBuf>,

    /// File holding the bearer token TCP clients must send; it must be mode 0600
    /// [default: <data dir>/remote.token, made with a random token]. Make one with:
    /// (umask 077; head -c 32 /dev/urandom | base64 > FILE)
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,

    /// Plaintext TCP for --listen, allowed only on a loopback address, with --token-file.
    #[arg(long)]
    insecure: bool,

    /// Another name or address for the server's own certificate (repeatable); the
    /// host name, `localhost` and the machine's addresses are always in it. Adding one
    /// makes a new certificate signed by the same CA, so pinned fingerprints still hold.
    #[arg(long, value_name = "NAME")]
    tls_name: Vec<String>,

    /// Serve Prometheus/OpenMetrics text at http://HOST:PORT/metrics (off by default).
    /// It has no authentication: use a loopback address such as 127.0.0.1:9187 unless
    /// the network is trusted.
    #[arg(long, value_name = "HOST:PORT")]
    metrics: Option<String>,

    /// Log filter, e.g. info, debug, pmon_server=trace.
    #[arg(long, env = "PMON_LOG", default_value = "info", value_name = "FILTER")]
    log: String,
}

/// `--source`: a collector, or a capture to replay.
#[derive(Debug, Clone)]
enum SourceArg {
    Kind(SourceKind),
    Replay(PathBuf),
}

impl std::str::FromStr for SourceArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("replay:") {
            Some("") => Err("replay: needs the capture's path, e.g. replay:./top.log".into()),
            Some(path) => Ok(SourceArg::Replay(PathBuf::from(path))),
            None => s.parse().map(SourceArg::Kind).map_err(|e| format!("{e}, or replay:PATH")),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = match EnvFilter::try_new(&args.log) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("pmon-server: invalid --log filter {:?}: {e}", args.log);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match start(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pmon-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn start(args: Args) -> anyhow::Result<()> {
    let remote = remote_settings(&args)?;
    // A path given by flag or environment must exist; the default location may not.
    let explicit = args.config.is_some();
    let config_path = match args.config {
        Some(p) => p,
        None => paths::default_config_path()?,
    };
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => paths::default_data_dir()?,
    };
    let (source, replay) = match args.source {
        Some(SourceArg::Kind(kind)) => (Some(kind), None),
        Some(SourceArg::Replay(path)) => {
            (None, Some(pmon_server::ReplayOptions { path, speed: args.replay_speed, keep_serving: args.keep_serving }))
        }
        None => (None, None),
    };
    let overrides = pmon_server::Overrides { interval_seconds: args.interval, source };
    let (config, config_file_exists) =
        pmon_server::load_config(&config_path, explicit, &overrides).map_err(anyhow::Error::msg)?;
    pmon_server::collect::proc::raise_open_file_limit();
    ignore_file_size_signal();
    let options = pmon_server::Options {
        data_dir,
        config,
        config_path,
        config_file_exists,
        config_explicit: explicit,
        overrides,
        replay,
        record: args.record,
        remote,
        metrics: args.metrics.clone(),
    };

    // One thread serves every client; the sampler has its own. A monitor stays small.
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Handlers are registered before anything else, so a signal during start-up
        // still ends in a clean stop rather than the default kill.
        let shutdown = shutdown_signal()?;
        let hangups =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).context("cannot handle SIGHUP")?;
        let reloads = tokio_stream::wrappers::SignalStream::new(hangups);
        pmon_server::run(options, shutdown, reloads).await.map_err(anyhow::Error::from)
    })
}

/// The TCP listener's settings, if `--listen` was given; its other flags need it.
fn remote_settings(args: &Args) -> anyhow::Result<Option<pmon_server::remote::Settings>> {
    let settings = pmon_server::remote::Settings {
        listen: args.listen.clone().unwrap_or_default(),
        tls_cert: args.tls_cert.clone(),
        tls_key: args.tls_key.clone(),
        client_ca: args.client_ca.clone(),
        token_file: args.token_file.clone(),
        insecure: args.insecure,
        tls_names: args.tls_name.clone(),
    };
    match (&args.listen, pmon_server::remote::stray_flag(&settings)) {
        (Some(_), _) => Ok(Some(settings)),
        (None, Some(flag)) => anyhow::bail!("{flag} applies only to a TCP listener: add --listen HOST:PORT"),
        (None, None) => Ok(None),
    }
}

/// A file size limit (`ulimit -f`) would kill the server with SIGXFSZ at the first
/// database write past it. Ignored, that write fails instead, and is counted and
/// reported like a full disk while the server goes on.
fn ignore_file_size_signal() {
    // SAFETY: setting a signal's disposition to "ignore" runs no code of ours.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
}

/// Registers SIGINT and SIGTERM now; the returned future completes on either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
