//! `pmon config show | path`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use pmon_proto::{config::Config, endpoint::Endpoint, paths, v1::GetConfigRequest};

use crate::{Failure, connect, endpoint};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The configuration the server is running with, every key shown (defaults filled in).
    ///
    /// Example: pmon config show --file    (the local file instead, no server needed)
    Show {
        /// Print the server's answer as JSON (config_toml, config_path, config_file_exists).
        #[arg(long, conflicts_with = "file")]
        json: bool,
        /// Show the local configuration file with defaults filled in, without asking a
        /// server; this also checks the file and reports the line of any error.
        #[arg(long)]
        file: bool,
        /// The local file for --file [default: $PMON_CONFIG, then
        /// ~/.config/pause-monitor/config.toml].
        #[arg(long, value_name = "FILE", requires = "file")]
        config: Option<PathBuf>,
    },
    /// The path of the local configuration file ($PMON_CONFIG, or the XDG default).
    ///
    /// Example: $EDITOR "$(pmon config path)"
    Path,
}

pub async fn run(command: Command, connect_to: Option<Endpoint>, data_dir: Option<PathBuf>) -> Result<(), Failure> {
    match command {
        Command::Path => {
            println!("{}", local_path(None)?.display());
            Ok(())
        }
        Command::Show { file: true, config, .. } => {
            let explicit = config.is_some() || std::env::var_os(paths::CONFIG_ENV).is_some();
            let path = local_path(config)?;
            let (config, exists) = Config::load(&path, explicit).context("the configuration is invalid")?;
            let origin = if exists { "" } else { " (not present: built-in defaults)" };
            print!("# {}{origin}\n{}", path.display(), config.to_toml());
            Ok(())
        }
        Command::Show { json, .. } => {
            let endpoint = endpoint(connect_to, data_dir)?;
            let answer = connect(&endpoint).await?.get_config(GetConfigRequest {}).await?.into_inner();
            if json {
                println!("{}", serde_json::to_string(&answer).context("cannot render as JSON")?);
            } else {
                let origin = if answer.config_file_exists { "" } else { " (not present: built-in defaults)" };
                print!("# {}{origin}\n{}", answer.config_path, answer.config_toml);
            }
            Ok(())
        }
    }
}

fn local_path(given: Option<PathBuf>) -> Result<PathBuf, Failure> {
    match given.or_else(|| std::env::var_os(paths::CONFIG_ENV).map(PathBuf::from)) {
        Some(p) => Ok(p),
        None => paths::default_config_path().map_err(|e| anyhow::Error::from(e).into()),
    }
}
