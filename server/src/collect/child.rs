//! A long-lived child process whose output is a stream of samples (`top -l 0`,
//! `powermetrics`), supervised: when it exits it is started again after a backoff, and
//! each start and exit is reported in the stream so the collector can reset its
//! parser and say so in status.
//!
//! ```text
//! supervisor thread: spawn ─► read stdout ─► Output::Bytes … ─► Output::Exited ─► backoff ─► spawn …
//! ```
//!
//! The child runs in a process group of its own; dropping the [`Child`] kills that group
//! and stops the supervisor. Should the server die without dropping it, the child's next
//! write fails on the closed pipe (SIGPIPE), so it does not outlive the server for long.

use std::{
    io::Read,
    os::unix::process::CommandExt,
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// First wait before a restart; doubled after each quick exit, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A child that ran this long was healthy: the next restart is quick again.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
/// Steps in which the backoff wait watches for a stop request.
const STOP_POLL: Duration = Duration::from_millis(50);

/// What the supervised child produced.
#[derive(Debug, PartialEq)]
pub enum Output {
    /// A (re)start: whatever came before belongs to an earlier run.
    Started,
    /// Bytes from its standard output, cut anywhere.
    Bytes(Vec<u8>),
    /// It exited or could not be started; the sentence says how, and when the next
    /// attempt is.
    Exited(String),
}

/// A supervised child. Dropping it kills the child and stops supervising.
#[derive(Debug)]
pub struct Child {
    output: mpsc::Receiver<Output>,
    stop: Arc<AtomicBool>,
    group: Arc<Mutex<Option<i32>>>,
    thread: Option<JoinHandle<()>>,
}

impl Child {
    /// Starts `program args` and keeps it running.
    pub fn spawn(program: String, args: Vec<String>) -> std::io::Result<Self> {
        let (tx, output) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let group = Arc::new(Mutex::new(None));
        let thread = {
            let (stop, group) = (Arc::clone(&stop), Arc::clone(&group));
            std::thread::Builder::new()
                .name(format!("pmon-{program}"))
                .spawn(move || supervise(&program, &args, &tx, &stop, &group))?
        };
        Ok(Self { output, stop, group, thread: Some(thread) })
    }

    /// The next output, waiting at most `limit`; `None` if nothing came.
    pub fn next(&self, limit: Duration) -> Option<Output> {
        self.output.recv_timeout(limit).ok()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        kill_group(&self.group);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn kill_group(group: &Mutex<Option<i32>>) {
    if let Some(pgid) = *group.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
        // SAFETY: kill has no memory-safety preconditions; the negative pid names the
        // child's own process group, which only it and its descendants are in.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
}

fn supervise(program: &str, args: &[String], tx: &mpsc::Sender<Output>, stop: &AtomicBool, group: &Mutex<Option<i32>>) {
    let mut backoff = FIRST_BACKOFF;
    while !stop.load(Ordering::SeqCst) {
        let started = Instant::now();
        let how = run_once(program, args, tx, stop, group);
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if started.elapsed() >= HEALTHY_RUN {
            backoff = FIRST_BACKOFF;
        }
        let message = format!("{how}; restarting in {:.1} s", backoff.as_secs_f64());
        tracing::warn!("{message}");
        if tx.send(Output::Exited(message)).is_err() {
            return;
        }
        let until = Instant::now() + backoff;
        while Instant::now() < until {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(STOP_POLL.min(until.saturating_duration_since(Instant::now())));
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Runs the child until its output ends; returns how it ended.
fn run_once(
    program: &str,
    args: &[String],
    tx: &mpsc::Sender<Output>,
    stop: &AtomicBool,
    group: &Mutex<Option<i32>>,
) -> String {
    let mut child = match Command::new(program)
        .args(args)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return format!("cannot run {program}: {e}"),
    };
    *group.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = i32::try_from(child.id()).ok();
    // A stop requested while spawning found no group to kill.
    if stop.load(Ordering::SeqCst) {
        kill_group(group);
    }
    let _ = tx.send(Output::Started);
    if let Some(mut out) = child.stdout.take() {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(Output::Bytes(buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    }
    // Whatever the child left in its group would otherwise linger.
    kill_group(group);
    let status = child.wait();
    *group.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    match status {
        Ok(s) => format!("{program} exited ({s})"),
        Err(e) => format!("{program} could not be waited for: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect_until(child: &Child, want: impl Fn(&[Output]) -> bool) -> Vec<Output> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        while !want(&seen) && Instant::now() < deadline {
            if let Some(o) = child.next(Duration::from_millis(100)) {
                seen.push(o);
            }
        }
        seen
    }

    #[test]
    fn a_child_that_exits_is_restarted_and_each_run_is_announced() {
        let child = Child::spawn("sh".into(), vec!["-c".into(), "printf 'one\\n'".into()]).expect("spawn");
        let seen = collect_until(&child, |s| s.iter().filter(|o| **o == Output::Started).count() >= 2);
        let starts = seen.iter().filter(|o| **o == Output::Started).count();
        assert!(starts >= 2, "restarted: {seen:?}");
        assert!(seen.contains(&Output::Bytes(b"one\n".to_vec())));
        let exit = seen.iter().find_map(|o| if let Output::Exited(m) = o { Some(m.clone()) } else { None });
        let exit = exit.expect("an exit is reported");
        assert!(exit.contains("sh exited") && exit.contains("restarting in"), "{exit}");
    }

    #[test]
    fn a_missing_program_is_reported_not_fatal() {
        let child = Child::spawn("/nonexistent/pmon-tool".into(), Vec::new()).expect("supervisor starts");
        let seen = collect_until(&child, |s| !s.is_empty());
        assert!(
            matches!(&seen[..], [Output::Exited(m)] if m.contains("cannot run /nonexistent/pmon-tool")),
            "{seen:?}"
        );
    }

    #[test]
    fn dropping_the_child_kills_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("pid");
        let script = format!("echo $$ > {}; exec sleep 600", pidfile.display());
        let child = Child::spawn("sh".into(), vec!["-c".into(), script]).expect("spawn");
        let _ = collect_until(&child, |s| s.contains(&Output::Started));
        let deadline = Instant::now() + Duration::from_secs(10);
        let pid = loop {
            if let Some(pid) = std::fs::read_to_string(&pidfile).ok().and_then(|p| p.trim().parse::<i32>().ok()) {
                break pid;
            }
            assert!(Instant::now() < deadline, "the child never wrote its pid");
            std::thread::sleep(Duration::from_millis(20));
        };
        drop(child);
        // SAFETY: signal 0 only checks that the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive, "the child outlived its supervisor");
    }
}
