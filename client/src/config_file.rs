//! Changing the configuration file: `pmon config get | set | edit | reset`, then asking
//! the local server to reload it.
//!
//! `set` and `edit` keep the user's comments and layout (toml_edit), and nothing invalid
//! is ever written: the whole file is checked the way the server checks it first.

use std::{
    fs::{self, OpenOptions},
    io::Read,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, anyhow, bail};
use pmon_proto::{
    config::{Config, DEFAULT_FILE},
    paths,
};

/// The value of a dotted key in the effective configuration (file plus defaults).
pub fn get(path: &Path, key: &str) -> anyhow::Result<toml::Value> {
    let (config, _) = Config::load(path, false)?;
    let all: toml::Table = toml::from_str(&config.to_toml()).context("rendering the configuration")?;
    let mut at = toml::Value::Table(all);
    for part in key.split('.') {
        at = at
            .get(part)
            .cloned()
            .ok_or_else(|| anyhow!("unknown setting {key:?}; `pmon config show --file` lists every key"))?;
    }
    Ok(at)
}

/// Sets one dotted key, keeping everything else in the file as it was.
pub fn set(path: &Path, key: &str, value: &str) -> anyhow::Result<()> {
    set_many(path, &[(key, value)])
}

/// Sets several dotted keys at once (checked together, so related values such as two
/// thresholds can move past each other), keeping everything else as it was.
pub fn set_many(path: &Path, settings: &[(&str, &str)]) -> anyhow::Result<()> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut doc: toml_edit::DocumentMut =
        text.parse().map_err(|e| anyhow!("{} is not valid TOML: {e}", path.display()))?;
    for (key, value) in settings {
        set_in(&mut doc, key, value)?;
    }
    let updated = doc.to_string();
    Config::parse(&updated, &path.display().to_string()).context("not changed")?;
    write_atomically(path, &updated)
}

fn set_in(doc: &mut toml_edit::DocumentMut, key: &str, value: &str) -> anyhow::Result<()> {
    // A value as TOML (60, true, "x", ["a", "b"]); anything else is taken as a string.
    let new = format!("v = {value}")
        .parse::<toml_edit::DocumentMut>()
        .ok()
        .and_then(|d| d.get("v").and_then(|v| v.as_value()).cloned())
        .unwrap_or_else(|| toml_edit::Value::from(value));
    let parts: Vec<&str> = key.split('.').collect();
    let (leaf, tables) = parts.split_last().ok_or_else(|| anyhow!("empty key"))?;
    // Tables written either way (`[tiers]` or `tiers = { … }`) are followed.
    let mut table: &mut dyn toml_edit::TableLike = doc.as_table_mut();
    for part in tables {
        let entry = table.entry(part).or_insert(toml_edit::table());
        table = entry.as_table_like_mut().ok_or_else(|| anyhow!("{part} in {key:?} is not a table"))?;
    }
    match table.get_mut(leaf).and_then(|item| item.as_value_mut()) {
        // Keep the spacing and the trailing comment that belong to the old value.
        Some(old) => {
            let decor = old.decor().clone();
            *old = new;
            *old.decor_mut() = decor;
        }
        None => {
            table.insert(leaf, toml_edit::Item::Value(new));
        }
    }
    Ok(())
}

/// Writes the commented default file; an existing file is kept as `<name>.bak`.
pub fn reset(path: &Path) -> anyhow::Result<Option<PathBuf>> {
    let backup = path.with_extension("toml.bak");
    let kept = if path.exists() {
        fs::rename(path, &backup).with_context(|| format!("cannot keep the old file as {}", backup.display()))?;
        Some(backup)
    } else {
        None
    };
    write_atomically(path, DEFAULT_FILE)?;
    Ok(kept)
}

/// Opens a copy in $VISUAL / $EDITOR; saves it only if it is a valid configuration.
pub fn edit(path: &Path) -> anyhow::Result<()> {
    let draft = path.with_extension("toml.edit");
    if draft.exists() {
        // An earlier edit was refused: carry on from it rather than lose it.
        eprintln!("continuing your earlier draft {}", draft.display());
    } else {
        let original = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DEFAULT_FILE.to_string(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        fs::write(&draft, &original).with_context(|| format!("cannot write {}", draft.display()))?;
    }
    let editor = std::env::var("VISUAL").or_else(|_| std::env::var("EDITOR")).unwrap_or_else(|_| "vi".into());
    // Through the shell, so an editor given with arguments ("code -w") works.
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(&draft)
        .status()
        .with_context(|| format!("cannot run the editor {editor:?}"))?;
    if !status.success() {
        bail!("the editor {editor:?} failed ({status}); nothing changed, your draft is {}", draft.display());
    }
    let edited = fs::read_to_string(&draft).with_context(|| format!("cannot read {}", draft.display()))?;
    if let Err(e) = Config::parse(&edited, &path.display().to_string()) {
        bail!("{e}\nnot saved: your edit is kept in {}; fix it there or run `pmon config edit` again", draft.display());
    }
    write_atomically(path, &edited)?;
    let _ = fs::remove_file(&draft);
    Ok(())
}

/// Replaces the file in one step (a crash leaves the old or the new one, never half),
/// writing through a symlink (dotfile managers) and keeping the file's mode.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let target = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if let Some(dir) = target.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // Unique per process: two `pmon config set` at once must not share a temp file.
    let tmp = target.with_extension(format!("toml.{}.tmp", std::process::id()));
    fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    if let Ok(meta) = fs::metadata(&target) {
        let _ = fs::set_permissions(&tmp, meta.permissions());
    }
    fs::rename(&tmp, &target).with_context(|| format!("cannot replace {}", target.display()))
}

/// The server's lock file, if a server holds it (a file nobody holds is left by a
/// server long gone).
fn held_lock(data_dir: &Path) -> anyhow::Result<Option<fs::File>> {
    let Ok(lock) = OpenOptions::new().read(true).open(paths::lock_path(data_dir)) else { return Ok(None) };
    match lock.try_lock_shared() {
        Ok(()) => Ok(None),
        Err(fs::TryLockError::WouldBlock) => Ok(Some(lock)),
        Err(fs::TryLockError::Error(e)) => Err(e).context("cannot check the server's lock"),
    }
}

/// Whether a server runs on `data_dir`.
pub fn server_running(data_dir: &Path) -> anyhow::Result<bool> {
    Ok(held_lock(data_dir)?.is_some())
}

/// Asks the server running on `data_dir` to reload its configuration (SIGHUP). The pid
/// in the lock file is only trusted while the lock is held: a stale file from a server
/// long gone must never send a signal to whatever process now has that pid.
pub fn reload(data_dir: &Path) -> anyhow::Result<Option<u32>> {
    let lock_path = paths::lock_path(data_dir);
    let Some(mut lock) = held_lock(data_dir)? else { return Ok(None) };
    let mut text = String::new();
    lock.read_to_string(&mut text).context("cannot read the server's pid")?;
    let pid: i32 = text.trim().parse().with_context(|| format!("{} holds no pid", lock_path.display()))?;
    // SAFETY: kill has no memory-safety preconditions.
    if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
        bail!("cannot signal pmon-server (pid {pid}): {}", std::io::Error::last_os_error());
    }
    Ok(u32::try_from(pid).ok())
}
