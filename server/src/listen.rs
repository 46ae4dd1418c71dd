//! Claiming the data directory and its Unix socket (SPEC §6).
//!
//! ```text
//! mkdir data dir (0700) ─► lock pmon-server.lock (one server per dir) ─► socket:
//!     none ─────────────────────────────► bind
//!     stale (connect refused) ──► remove ─► bind        then chmod 0600
//!     live (connect succeeds) ──► refuse: never steal a running server's socket
//! ```
//!
//! The lock is what keeps a second server out; the connect probe protects a live
//! socket even from a server that does not take the lock (an older version, say).

use std::{
    fs::{self, File, OpenOptions, Permissions},
    io::{self, Read, Seek, Write},
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::{Path, PathBuf},
};

use pmon_proto::paths;
use tokio::net::UnixListener;

/// The server's claim on a data directory: the lock and the bound socket. Dropping it
/// removes the socket file (the lock goes with the file handle).
#[derive(Debug)]
pub struct Claim {
    /// The socket path.
    pub socket: PathBuf,
    _lock: File,
}

/// Why the data directory or socket could not be claimed.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// Another server holds the lock or serves the socket.
    #[error(
        "another pmon-server{pid} is already running with data directory {dir}; stop it first, \
         or give this one its own directory with --data-dir or $PMON_DATA_DIR"
    )]
    AlreadyRunning {
        /// The data directory.
        dir: String,
        /// " (pid N)" when the lock file says.
        pid: String,
    },
    /// Something that is not a socket sits where the socket goes.
    #[error("{path} exists and is not a socket; move it away so pmon-server can create its socket there")]
    NotASocket {
        /// The path.
        path: String,
    },
    /// A filesystem operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On what.
        path: String,
        /// Why it failed.
        source: io::Error,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ListenError + 'a {
    move |source| ListenError::Io { action, path: path.display().to_string(), source }
}

/// Creates the data directory (0700), takes its lock and binds the socket (0600).
/// Must run inside a tokio runtime.
pub fn claim(data_dir: &Path) -> Result<(Claim, UnixListener), ListenError> {
    fs::create_dir_all(data_dir).map_err(io_err("cannot create data directory", data_dir))?;
    // The directory guards the socket: nobody else may even reach it.
    fs::set_permissions(data_dir, Permissions::from_mode(0o700))
        .map_err(io_err("cannot set mode 0700 on", data_dir))?;

    let lock_path = paths::lock_path(data_dir);
    let mut lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io_err("cannot open lock file", &lock_path))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = lock.read_to_string(&mut holder);
            return Err(already_running(data_dir, holder.trim()));
        }
        Err(fs::TryLockError::Error(e)) => return Err(io_err("cannot lock", &lock_path)(e)),
    }
    // Record who holds it, so a refused second server can say which pid to look at.
    lock.set_len(0)
        .and_then(|()| lock.rewind())
        .and_then(|()| writeln!(lock, "{}", std::process::id()))
        .map_err(io_err("cannot write lock file", &lock_path))?;

    let socket = paths::socket_path(data_dir);
    match fs::symlink_metadata(&socket) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("cannot inspect", &socket)(e)),
        Ok(meta) if !meta.file_type().is_socket() => {
            return Err(ListenError::NotASocket { path: socket.display().to_string() });
        }
        Ok(_) => match std::os::unix::net::UnixStream::connect(&socket) {
            Ok(_) => return Err(already_running(data_dir, "")),
            Err(_) => {
                // Nobody accepts on it: left behind by a server that crashed.
                fs::remove_file(&socket).map_err(io_err("cannot remove stale socket", &socket))?;
                tracing::info!(socket = %socket.display(), "replaced a stale socket left by an earlier server");
            }
        },
    }
    let listener = UnixListener::bind(&socket).map_err(io_err("cannot listen on", &socket))?;
    fs::set_permissions(&socket, Permissions::from_mode(0o600)).map_err(io_err("cannot set mode 0600 on", &socket))?;
    Ok((Claim { socket, _lock: lock }, listener))
}

fn already_running(data_dir: &Path, pid: &str) -> ListenError {
    ListenError::AlreadyRunning {
        dir: data_dir.display().to_string(),
        pid: if pid.is_empty() { String::new() } else { format!(" (pid {pid})") },
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.socket)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(socket = %self.socket.display(), "cannot remove socket: {e}");
        }
    }
}
