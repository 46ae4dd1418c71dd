//! `pmon-server`: command line, logging and signals around [`pmon_server::run`].

use std::{io::IsTerminal, path::PathBuf, process::ExitCode};

use anyhow::{Context, bail};
use clap::Parser;
use pmon_proto::{
    config::{Config, SourceKind},
    paths,
};
use tracing_subscriber::EnvFilter;

/// The pause-monitor daemon: samples every process, scores stress, and serves it over
/// gRPC on a Unix socket (<data dir>/daemon.sock).
///
/// Watch it with `pmon watch`, `pmon status`, or any gRPC client (reflection is on):
///   grpcurl -plaintext -unix -authority localhost <data dir>/daemon.sock list
///
/// Examples:
///   pmon-server                                  default paths, 1 s interval
///   pmon-server --data-dir /tmp/pmon --interval 0.5
///   PMON_LOG=debug pmon-server --config ./pmon.toml
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

    /// Collector (overrides sampling.source): auto or proc.
    #[arg(long, value_name = "SOURCE", value_parser = parse_source)]
    source: Option<SourceKind>,

    /// Log filter, e.g. info, debug, pmon_server=trace.
    #[arg(long, env = "PMON_LOG", default_value = "info", value_name = "FILTER")]
    log: String,
}

fn parse_source(s: &str) -> Result<SourceKind, String> {
    match s {
        "auto" => Ok(SourceKind::Auto),
        "proc" => Ok(SourceKind::Proc),
        _ => Err(format!("unknown source {s:?}; accepted: auto, proc")),
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
    let config_path = match args.config {
        Some(p) => p,
        None => paths::default_config_path()?,
    };
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => paths::default_data_dir()?,
    };
    let (mut config, config_file_exists) = Config::load(&config_path)?;
    if let Some(interval) = args.interval {
        if !(interval.is_finite() && (0.05..=3600.0).contains(&interval)) {
            bail!("--interval {interval} is out of range; accepted: 0.05 to 3600 seconds");
        }
        config.sampling.interval_seconds = interval;
        // Elevated sampling is never slower than normal sampling.
        config.sampling.elevated_interval_seconds = config.sampling.elevated_interval_seconds.min(interval);
    }
    if let Some(source) = args.source {
        config.sampling.source = source;
    }
    let options = pmon_server::Options { data_dir, config, config_path, config_file_exists };

    // One thread serves every client; the sampler has its own. A monitor stays small.
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    runtime.block_on(pmon_server::run(options, shutdown_signal()))?;
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM ({e}); stop with SIGINT");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
