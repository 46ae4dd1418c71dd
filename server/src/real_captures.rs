//! Real macOS captures for parser tests, where this checkout has them: they sit beside
//! the repository in the project's workspace (`../shared/macos-samples`, or wherever
//! `$PMON_MACOS_SAMPLES` says), never in users' clones. The tests that read them are
//! ignored by default and say so; scripts/test runs them where the folder is. The
//! fixtures in `fixtures/macos/` are what every clone tests.

use std::path::PathBuf;

/// The captures whose file names start with `prefix`, as (name, bytes), sorted by name.
/// A missing folder fails the test: it only runs when asked to.
pub fn starting_with(prefix: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::env::var_os("PMON_MACOS_SAMPLES")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/macos-samples"), PathBuf::from);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!("no real captures at {}: {e} (set $PMON_MACOS_SAMPLES to their folder)", dir.display())
    });
    let mut found: Vec<(String, Vec<u8>)> = entries
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(name, _)| name.starts_with(prefix))
        .map(|(name, path)| {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (name, bytes)
        })
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no capture named {prefix}* in {}", dir.display());
    found
}
