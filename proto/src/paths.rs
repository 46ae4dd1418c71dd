//! Where pmon keeps things: the XDG layout on Linux, and the same layout on macOS.
//!
//! ```text
//! ~/.config/pause-monitor/config.toml       ($XDG_CONFIG_HOME)
//! ~/.local/share/pause-monitor/             ($XDG_DATA_HOME, or $PMON_DATA_DIR / --data-dir)
//!     daemon.sock  pmon-server.lock  data.db  events/  pmon-server.log
//! ```

use std::path::{Path, PathBuf};

/// Environment variable that overrides the data directory (same as `--data-dir`).
pub const DATA_DIR_ENV: &str = "PMON_DATA_DIR";
/// Environment variable that overrides the configuration file (same as `--config`).
pub const CONFIG_ENV: &str = "PMON_CONFIG";

const APP: &str = "pause-monitor";

/// The home directory could not be determined.
#[derive(Debug, thiserror::Error)]
#[error("cannot locate the {what}: neither ${xdg} nor $HOME is set; pass {flag} or set ${env}")]
pub struct NoHomeError {
    what: &'static str,
    xdg: &'static str,
    flag: &'static str,
    env: &'static str,
}

/// `$XDG_CONFIG_HOME/pause-monitor/config.toml`, or `~/.config/pause-monitor/config.toml`.
pub fn default_config_path() -> Result<PathBuf, NoHomeError> {
    base_dir("XDG_CONFIG_HOME", ".config").map(|d| d.join(APP).join("config.toml")).ok_or(NoHomeError {
        what: "configuration file",
        xdg: "XDG_CONFIG_HOME",
        flag: "--config",
        env: CONFIG_ENV,
    })
}

/// `$XDG_DATA_HOME/pause-monitor`, or `~/.local/share/pause-monitor`.
pub fn default_data_dir() -> Result<PathBuf, NoHomeError> {
    base_dir("XDG_DATA_HOME", ".local/share").map(|d| d.join(APP)).ok_or(NoHomeError {
        what: "data directory",
        xdg: "XDG_DATA_HOME",
        flag: "--data-dir",
        env: DATA_DIR_ENV,
    })
}

/// The server's Unix socket inside a data directory.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("daemon.sock")
}

/// The lock file that keeps a second server off the same data directory.
pub fn lock_path(data_dir: &Path) -> PathBuf {
    data_dir.join("pmon-server.lock")
}

fn base_dir(xdg_var: &str, home_relative: &str) -> Option<PathBuf> {
    // XDG says relative values are invalid and must be ignored.
    if let Some(dir) = std::env::var_os(xdg_var).map(PathBuf::from)
        && dir.is_absolute()
    {
        return Some(dir);
    }
    std::env::var_os("HOME").map(PathBuf::from).filter(|h| h.is_absolute()).map(|h| h.join(home_relative))
}

/// Writes `contents` to `path` whole, with permission bits `mode`, replacing any file
/// there: written to a file of its own beside it (made fresh, never one left by an
/// earlier crash with other bits), synced, then renamed over, so a crash leaves the old
/// file or the new one, never half of one, and a key never gets looser bits.
pub fn write_whole(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    use std::{
        io::Write,
        os::unix::fs::{OpenOptionsExt, PermissionsExt},
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let aside = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    // A file of that name is a leftover of this pid's earlier life: never reused.
    let _ = std::fs::remove_file(&aside);
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&aside)?;
        // The umask may only have narrowed the bits; this sets exactly these.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&aside, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&aside);
    }
    result
}
