//! Running an outside tool with a time limit (notifications, `pmset`, forensic tools):
//! a tool that hangs is killed, and its output is read while it runs so a large one
//! cannot fill the pipe and block it. The tool runs in a process group of its own, and
//! the group is killed when the tool is done: nothing it started can keep the output
//! open and hold a reader thread (or the capture) after it.

use std::{
    io::Read,
    os::unix::process::CommandExt,
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// How long output may take to arrive once the tool and its group are gone.
const DRAIN: Duration = Duration::from_secs(1);

/// Runs `program args`, returns its standard output if it succeeds within `limit`;
/// otherwise a sentence saying what went wrong (including its standard error).
pub fn run(program: &str, args: &[String], limit: Duration) -> Result<Vec<u8>, String> {
    let mut child = Command::new(program)
        .args(args)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let group = i32::try_from(child.id()).unwrap_or(0);
    let kill_group = || {
        if group > 0 {
            // SAFETY: kill has no memory-safety preconditions; the negative pid names the
            // tool's own process group, which only it and its descendants are in.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
    };
    let read_all = |pipe: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            let _ = tx.send(buf);
        });
        rx
    };
    let stdout = read_all(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = read_all(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let status = match wait_timeout::ChildExt::wait_timeout(&mut child, limit) {
        Ok(Some(status)) => status,
        Ok(None) => {
            kill_group();
            let _ = child.wait();
            return Err(format!("{program} did not finish within {limit:?}"));
        }
        Err(e) => {
            kill_group();
            return Err(format!("waiting for {program}: {e}"));
        }
    };
    // Whatever the tool left running would keep its output open.
    kill_group();
    let out = stdout.recv_timeout(DRAIN).unwrap_or_default();
    if status.success() {
        return Ok(out);
    }
    let err = String::from_utf8_lossy(&stderr.recv_timeout(DRAIN).unwrap_or_default()).trim().to_string();
    Err(format!("{program} failed ({status}){}", if err.is_empty() { String::new() } else { format!(": {err}") }))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn output_failure_timeout_and_missing_program() {
        assert_eq!(run("sh", &args(&["-c", "echo hi"]), Duration::from_secs(5)).as_deref(), Ok(&b"hi\n"[..]));
        // More than a pipe buffer of output does not block the tool.
        let big = run("sh", &args(&["-c", "head -c 300000 /dev/zero"]), Duration::from_secs(5)).expect("big");
        assert_eq!(big.len(), 300_000);
        let err = run("sh", &args(&["-c", "echo broken >&2; exit 3"]), Duration::from_secs(5)).expect_err("fails");
        assert!(err.contains("exit status: 3") && err.contains("broken"), "{err}");
        let err = run("sleep", &args(&["5"]), Duration::from_millis(100)).expect_err("too slow");
        assert!(err.contains("did not finish"), "{err}");
        let err = run("no-such-tool-pmon", &[], Duration::from_secs(1)).expect_err("missing");
        assert!(err.contains("cannot run no-such-tool-pmon"), "{err}");
    }

    #[test]
    fn what_a_tool_leaves_running_is_stopped_and_cannot_hold_its_output() {
        // The backgrounded sleep inherits stdout and would keep it open for 30 s.
        let started = Instant::now();
        let out = run("sh", &args(&["-c", "sleep 30 & echo hi"]), Duration::from_secs(10)).expect("runs");
        assert_eq!(out, b"hi\n");
        assert!(started.elapsed() < Duration::from_secs(5), "waited {:?}", started.elapsed());
    }
}
