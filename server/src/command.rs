//! Running an outside tool with a time limit (notifications, `pmset`, forensic tools):
//! a tool that hangs is killed, and its output is read while it runs so a large one
//! cannot fill the pipe and block it.

use std::{
    io::Read,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// Runs `program args`, returns its standard output if it succeeds within `limit`;
/// otherwise a sentence saying what went wrong (including its standard error).
pub fn run(program: &str, args: &[String], limit: Duration) -> Result<Vec<u8>, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let read_all = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = read_all(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = read_all(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{program} did not finish within {limit:?}"));
            }
            Err(e) => return Err(format!("waiting for {program}: {e}")),
        }
    };
    let out = stdout.join().unwrap_or_default();
    if status.success() {
        return Ok(out);
    }
    let err = String::from_utf8_lossy(&stderr.join().unwrap_or_default()).trim().to_string();
    Err(format!("{program} failed ({status}){}", if err.is_empty() { String::new() } else { format!(": {err}") }))
}

#[cfg(test)]
mod tests {
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
}
