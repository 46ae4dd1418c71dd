//! All file access of the `proc` collector, in one place so the way files are read can
//! change without touching parsing or rates.
//!
//! Opening a /proc file costs about as much as generating it, so the per-process files
//! are opened once and kept: each later sample re-reads them with `pread` at offset 0,
//! which makes procfs generate them afresh. A kept descriptor belongs to one process,
//! not to its pid number: once that process is gone, reading fails (ESRCH) and the
//! path is opened again, so a reused pid is read from the new process.
//!
//! The more descriptors the open-file limit allows, the more can be kept; the server
//! raises its soft limit to the hard one at start ([`raise_open_file_limit`]).
//!
//! Each kept descriptor also holds kernel memory (the seq_file page and its file: about
//! 4.4 KiB unreclaimable, measured), so the number kept is capped ([`MAX_KEPT`]); past
//! the cap, files are opened, read and closed each time. The cap trades the CPU saved
//! against at most ~18 MiB of kernel memory on machines with thousands of processes.

use std::{collections::HashMap, fs::File, io, os::unix::fs::FileExt, path::Path};

/// The per-process files the collector reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PidFile {
    Stat = 0,
    Status = 1,
    Io = 2,
}

impl PidFile {
    fn name(self) -> &'static str {
        match self {
            PidFile::Stat => "stat",
            PidFile::Status => "status",
            PidFile::Io => "io",
        }
    }
}

/// At most this many descriptors are kept open (3 per process: ~1 360 processes).
/// Bounded further by the open-file limit.
const MAX_KEPT: usize = 4096;
/// Descriptors left for everything else the server opens (sockets, clients, database).
const RESERVED_FDS: u64 = 512;
/// Room for the largest file read per pid (`status`, ~1.5 KiB) in one `read` call.
const INITIAL_BUFFER: usize = 8192;

#[derive(Debug)]
struct Kept {
    files: [Option<File>; 3],
    /// Files this process does not let us read (another user's `io` when not root):
    /// not retried every sample, only once the pid belongs to a new process.
    denied: [bool; 3],
    /// The sample in which this pid was last listed.
    seen: u64,
}

/// Reads files under a /proc root into one reused buffer.
pub(super) struct ProcFiles {
    root: String,
    path: String,
    buf: Vec<u8>,
    kept: HashMap<u32, Kept>,
    kept_count: usize,
    max_kept: usize,
    generation: u64,
}

impl ProcFiles {
    pub(super) fn new(root: &Path) -> Self {
        Self {
            root: root.to_string_lossy().trim_end_matches('/').to_string(),
            path: String::with_capacity(64),
            buf: vec![0; INITIAL_BUFFER],
            kept: HashMap::new(),
            kept_count: 0,
            max_kept: usize::try_from(open_file_limit(false).saturating_sub(RESERVED_FDS))
                .unwrap_or(usize::MAX)
                .min(MAX_KEPT),
            generation: 0,
        }
    }

    pub(super) fn root(&self) -> &str {
        &self.root
    }

    /// Lists the numeric entries of the root (one per process) and starts a sample.
    pub(super) fn list_pids(&mut self, out: &mut Vec<u32>) -> io::Result<()> {
        out.clear();
        self.generation += 1;
        for entry in std::fs::read_dir(&self.root)? {
            // An entry that vanishes while listing is just a process that exited.
            let Ok(entry) = entry else { continue };
            if let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) {
                out.push(pid);
            }
        }
        Ok(())
    }

    /// Closes the descriptors of processes not read since the last listing.
    pub(super) fn forget_unseen(&mut self) {
        let generation = self.generation;
        let mut closed = 0;
        self.kept.retain(|_, k| {
            let keep = k.seen == generation;
            if !keep {
                closed += k.files.iter().flatten().count();
            }
            keep
        });
        self.kept_count -= closed;
    }

    /// `<root>/<pid>/<file>`.
    pub(super) fn pid_file(&mut self, pid: u32, file: PidFile) -> io::Result<&[u8]> {
        let slot = file as usize;
        let generation = self.generation;
        let kept = self.kept.entry(pid).or_insert_with(|| Kept {
            files: [None, None, None],
            denied: [false; 3],
            seen: generation,
        });
        kept.seen = generation;
        if let Some(f) = &kept.files[slot] {
            match read_all_at(f, &mut self.buf) {
                Ok(len) => return Ok(&self.buf[..len]),
                Err(_) => {
                    // The process it belonged to is gone; the pid may be a new one.
                    kept.files[slot] = None;
                    self.kept_count -= 1;
                    if file == PidFile::Stat {
                        kept.denied = [false; 3];
                    }
                }
            }
        }
        if kept.denied[slot] {
            return Err(io::ErrorKind::PermissionDenied.into());
        }
        use std::fmt::Write;
        self.path.clear();
        // Writing into a String cannot fail.
        let _ = write!(self.path, "{}/{pid}/{}", self.root, file.name());
        let f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) => {
                kept.denied[slot] = e.kind() == io::ErrorKind::PermissionDenied;
                return Err(e);
            }
        };
        let len = read_all_at(&f, &mut self.buf)?;
        if self.kept_count < self.max_kept {
            kept.files[slot] = Some(f);
            self.kept_count += 1;
        }
        Ok(&self.buf[..len])
    }

    /// `<root>/<name>`, opened and closed each time (a handful per sample).
    pub(super) fn file(&mut self, name: &str) -> io::Result<&[u8]> {
        self.path.clear();
        self.path.push_str(&self.root);
        self.path.push('/');
        self.path.push_str(name);
        let len = read_all_at(&File::open(&self.path)?, &mut self.buf)?;
        Ok(&self.buf[..len])
    }

    /// Descriptors kept open now.
    #[cfg(test)]
    pub(super) fn kept_count(&self) -> usize {
        self.kept_count
    }
}

/// Reads a whole file from offset 0 into `buf`, growing it if needed. One `pread` in
/// the common case: /proc files are generated whole on the first read, so a read that
/// does not fill the buffer has everything.
fn read_all_at(f: &File, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut len = 0;
    loop {
        let n = f.read_at(&mut buf[len..], len as u64)?;
        len += n;
        if n == 0 || len < buf.len() {
            return Ok(len);
        }
        buf.resize(buf.len() * 2, 0);
    }
}

/// Raises the soft limit on open files to the hard limit, so the collector has room
/// to keep descriptors. Call once at start, before creating the collector.
pub fn raise_open_file_limit() {
    let limit = open_file_limit(true);
    tracing::debug!(limit, "open-file limit");
}

/// The soft limit on open files, after raising it to the hard limit if `raise`.
fn open_file_limit(raise: bool) -> u64 {
    // SAFETY: getrlimit/setrlimit read and write the struct we pass; RLIMIT_NOFILE is valid.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if raise && lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        lim.rlim_cur
    }
}
