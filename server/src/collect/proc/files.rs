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
//! the cap, files are opened, read and closed each time. The files read every sample
//! (`stat`, `schedstat`) have the whole budget; those read only for processes that ran
//! (`status`, `io`) stop being kept at half of it, so on a machine with thousands of
//! processes the descriptors go where they save the most. The cap trades the CPU saved
//! against at most ~36 MiB of kernel memory, reached only past ~3 000 processes.

use std::{collections::HashMap, fs::File, io, os::unix::fs::FileExt, path::Path};

/// The per-process files the collector reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PidFile {
    Stat = 0,
    Status = 1,
    Io = 2,
    Schedstat = 3,
}

/// How many kinds of [`PidFile`] there are.
const KINDS: usize = 4;

impl PidFile {
    fn name(self) -> &'static str {
        match self {
            PidFile::Stat => "stat",
            PidFile::Status => "status",
            PidFile::Io => "io",
            PidFile::Schedstat => "schedstat",
        }
    }

    /// Read for every process in every sample, rather than only for those that ran.
    fn every_sample(self) -> bool {
        matches!(self, PidFile::Stat | PidFile::Schedstat)
    }
}

/// At most this many descriptors are kept open: `stat` and `schedstat` of ~4 000
/// processes, or of ~3 000 plus `status` and `io` of ~1 000 that run. Bounded further by
/// the open-file limit.
const MAX_KEPT: usize = 8192;
/// Descriptors left for everything else the server opens (sockets, clients, database).
const RESERVED_FDS: u64 = 512;
/// Room for the largest file read per pid (`status`, ~1.5 KiB) in one `read` call.
const INITIAL_BUFFER: usize = 8192;

#[derive(Debug)]
struct Kept {
    files: [Option<File>; KINDS],
    /// Files this process does not let us read (another user's `io` when not root):
    /// not retried every sample, only once the pid belongs to a new process.
    denied: [bool; KINDS],
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
    /// Machine-wide files by name (`vmstat`, `pressure/cpu`, …).
    machine: Vec<(&'static str, File)>,
    max_kept: usize,
    generation: u64,
    /// Reads per kind of file, so tests can see which files a sample touched.
    #[cfg(test)]
    reads: [usize; KINDS],
    /// Times the root was listed.
    #[cfg(test)]
    listings: usize,
}

impl ProcFiles {
    pub(super) fn new(root: &Path) -> Self {
        Self {
            root: root.to_string_lossy().trim_end_matches('/').to_string(),
            path: String::with_capacity(64),
            buf: vec![0; INITIAL_BUFFER],
            kept: HashMap::new(),
            kept_count: 0,
            machine: Vec::new(),
            max_kept: usize::try_from(open_file_limit(false).saturating_sub(RESERVED_FDS))
                .unwrap_or(usize::MAX)
                .min(MAX_KEPT),
            generation: 0,
            #[cfg(test)]
            reads: [0; KINDS],
            #[cfg(test)]
            listings: 0,
        }
    }

    pub(super) fn root(&self) -> &str {
        &self.root
    }

    /// Starts a sample: descriptors not read from now until [`Self::forget_unseen`] are
    /// closed then.
    pub(super) fn begin_sample(&mut self) {
        self.generation += 1;
    }

    /// Lists the numeric entries of the root (one per process).
    pub(super) fn list_pids(&mut self, out: &mut Vec<u32>) -> io::Result<()> {
        out.clear();
        #[cfg(test)]
        {
            self.listings += 1;
        }
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
        self.pid_file_kept(pid, file).map(|(bytes, _)| bytes)
    }

    /// `<root>/<pid>/<file>`, and whether it was read through a descriptor kept from an
    /// earlier sample: then it is the same process's, whatever became of its pid.
    pub(super) fn pid_file_kept(&mut self, pid: u32, file: PidFile) -> io::Result<(&[u8], bool)> {
        let slot = file as usize;
        let generation = self.generation;
        let kept = self.kept.entry(pid).or_insert_with(|| Kept {
            files: [None, None, None, None],
            denied: [false; KINDS],
            seen: generation,
        });
        kept.seen = generation;
        #[cfg(test)]
        {
            self.reads[slot] += 1;
        }
        if let Some(f) = &kept.files[slot] {
            match read_all_at(f, &mut self.buf) {
                Ok(len) => return Ok((&self.buf[..len], true)),
                Err(_) => {
                    // The process it belonged to is gone; the pid may be a new one.
                    kept.files[slot] = None;
                    self.kept_count -= 1;
                    if file == PidFile::Stat {
                        kept.denied = [false; KINDS];
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
        let budget = if file.every_sample() { self.max_kept } else { self.max_kept / 2 };
        if self.kept_count < budget {
            kept.files[slot] = Some(f);
            self.kept_count += 1;
        }
        Ok((&self.buf[..len], false))
    }

    /// `<root>/<pid>/task/<tid>/<name>` of every thread of a process, each passed to
    /// `each`: opened and closed every time (threads come and go, and only processes
    /// with several threads that ran are read this way). A thread that exits meanwhile
    /// is skipped; an error means the process is gone.
    pub(super) fn each_thread(&mut self, pid: u32, name: &str, mut each: impl FnMut(&[u8])) -> io::Result<()> {
        self.path.clear();
        self.path.push_str(&self.root);
        self.path.push('/');
        self.path.push_str(&pid.to_string());
        self.path.push_str("/task");
        for entry in std::fs::read_dir(&self.path)? {
            let Ok(entry) = entry else { continue };
            let Ok(f) = File::open(entry.path().join(name)) else { continue };
            if let Ok(len) = read_all_at(&f, &mut self.buf) {
                each(&self.buf[..len]);
            }
        }
        Ok(())
    }

    /// `<root>/<name>`, a machine-wide file: kept open once opened (a handful, read
    /// every sample). One that does not exist is looked for again each time.
    pub(super) fn file(&mut self, name: &'static str) -> io::Result<&[u8]> {
        if let Some(i) = self.machine.iter().position(|(n, _)| *n == name) {
            match read_all_at(&self.machine[i].1, &mut self.buf) {
                Ok(len) => return Ok(&self.buf[..len]),
                Err(e) => {
                    tracing::debug!(name, "re-opening after a failed read: {e}");
                    self.machine.swap_remove(i);
                }
            }
        }
        self.path.clear();
        self.path.push_str(&self.root);
        self.path.push('/');
        self.path.push_str(name);
        let f = File::open(&self.path)?;
        let len = read_all_at(&f, &mut self.buf)?;
        self.machine.push((name, f));
        Ok(&self.buf[..len])
    }

    /// Descriptors kept open now.
    #[cfg(test)]
    pub(super) fn kept_count(&self) -> usize {
        self.kept_count
    }

    /// Keeps no descriptors: every file is opened each time, so a process removed from
    /// a fixture tree is gone at once, as a real one is.
    #[cfg(test)]
    pub(super) fn keep_none(&mut self) {
        self.max_kept = 0;
    }

    /// How many times the root was listed so far.
    #[cfg(test)]
    pub(super) fn listings(&self) -> usize {
        self.listings
    }

    /// How many times a kind of file was read (or tried) so far.
    #[cfg(test)]
    pub(super) fn reads(&self, file: PidFile) -> usize {
        self.reads[file as usize]
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
