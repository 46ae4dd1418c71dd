//! `pmon config show | path | get | set | edit | reset`.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use pmon_proto::{config::Config, endpoint::Endpoint, paths, v1::GetConfigRequest};

use crate::{Failure, config_file, connect, local_or};

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
    /// One setting's value: from the file, or its default.
    ///
    /// Example: pmon config get tiers.elevated_threshold
    Get {
        /// Dotted key, e.g. sampling.interval_seconds.
        key: String,
        /// Print the value as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Changes one setting in the file, keeping its comments and layout, and has the
    /// running server reload. Nothing invalid is written.
    ///
    /// Example: pmon config set tiers.elevated_threshold 60
    Set {
        /// Dotted key, e.g. sampling.interval_seconds.
        key: String,
        /// The value, as in TOML: 60, 0.5, true, "text", ["a", "b*"].
        value: String,
    },
    /// Opens the file in $VISUAL or $EDITOR; an invalid result is refused with the line
    /// and the reason, and the server reloads a valid one.
    ///
    /// Example: EDITOR=nano pmon config edit
    Edit,
    /// Writes the default file with a comment on every key (an existing file is kept as
    /// config.toml.bak), and has the server reload.
    ///
    /// Example: pmon config reset
    Reset,
}

pub async fn run(command: Command, connect_to: Option<Endpoint>, data_dir: Option<PathBuf>) -> Result<(), Failure> {
    match command {
        Command::Get { key, json } => {
            let value = config_file::get(&local_path(None)?, &key)?;
            if json {
                println!("{}", serde_json::to_string(&value).context("cannot render as JSON")?);
            } else {
                println!("{}", value_text(&value));
            }
            Ok(())
        }
        Command::Set { key, value } => {
            let path = local_path(None)?;
            config_file::set(&path, &key, &value)?;
            println!("{key} = {value} in {}", path.display());
            println!("{}", reload(data_dir, &path).await?);
            Ok(())
        }
        Command::Edit => {
            let path = local_path(None)?;
            config_file::edit(&path)?;
            println!("saved {}", path.display());
            println!("{}", reload(data_dir, &path).await?);
            Ok(())
        }
        Command::Reset => {
            let path = local_path(None)?;
            let kept = config_file::reset(&path)?;
            println!("wrote the defaults to {}", path.display());
            if let Some(backup) = kept {
                println!("the previous file is kept as {}", backup.display());
            }
            println!("{}", reload(data_dir, &path).await?);
            Ok(())
        }
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
            let endpoint = local_or(connect_to, data_dir)?;
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

/// A value as a person reads it: strings without quotes, tables as TOML.
fn value_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Table(t) => toml::to_string(t).unwrap_or_default().trim_end().to_string(),
        other => other.to_string(),
    }
}

/// Has the local server reload `edited`, and says what happened. A server that reads
/// another file is not signalled: reloading its unchanged file would help nobody.
pub async fn reload(data_dir: Option<PathBuf>, edited: &Path) -> Result<String, Failure> {
    let dir = match data_dir {
        Some(d) => d,
        None => paths::default_data_dir().map_err(anyhow::Error::from)?,
    };
    if !config_file::server_running(&dir)? {
        return Ok(format!("no pmon-server is running on {}; it will read the file when it starts", dir.display()));
    }
    let theirs = connect(&Endpoint::local(&dir)).await?.get_config(GetConfigRequest {}).await?.into_inner().config_path;
    let same = match (std::fs::canonicalize(&theirs), std::fs::canonicalize(edited)) {
        (Ok(a), Ok(b)) => a == b,
        _ => Path::new(&theirs) == edited,
    };
    if !same {
        return Ok(format!(
            "the pmon-server on {} reads {theirs}, not this file: it was not asked to reload",
            dir.display()
        ));
    }
    match config_file::reload(&dir)? {
        Some(pid) => {
            Ok(format!("pmon-server (pid {pid}) is reloading its configuration; `pmon status` shows any problem"))
        }
        None => Ok(format!("no pmon-server is running on {}; it will read the file when it starts", dir.display())),
    }
}

fn local_path(given: Option<PathBuf>) -> Result<PathBuf, Failure> {
    match given.or_else(|| std::env::var_os(paths::CONFIG_ENV).map(PathBuf::from)) {
        Some(p) => Ok(p),
        None => paths::default_config_path().map_err(|e| anyhow::Error::from(e).into()),
    }
}
