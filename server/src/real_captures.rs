//! Real macOS captures for parser tests, where this checkout has them: they sit beside
//! the repository in the project's workspace, never in users' clones, so tests that use
//! them say they skipped when the folder is missing. The fixtures in `fixtures/macos/`
//! are what every clone tests.

use std::path::PathBuf;

/// The captures whose file names start with `prefix`, as (name, bytes), sorted by name;
/// `None` (with a notice) where the folder is missing.
pub fn starting_with(prefix: &str) -> Option<Vec<(String, Vec<u8>)>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/macos-samples");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("skipped: no real captures at {}", dir.display());
        return None;
    };
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
    Some(found)
}
