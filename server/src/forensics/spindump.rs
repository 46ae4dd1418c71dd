//! The most-blocked threads in a spindump text report (`spindump -i TRACE -stdout`, or
//! a live spindump): per thread, the call tree of samples; a leaf frame that spindump
//! marks `(blocked by …)` is where that thread spent those samples waiting.
//!
//! ```text
//! Process:          WindowServer [153]
//!   Thread 0x6a1    DispatchQueue "com.apple.main-thread"(1)    341 samples (1-341)    priority 79 (base 79)
//!   341  start + 7184 (dyld + 36180) [0x19df79d54]
//!     298  mach_msg_overwrite + 480 (libsystem_kernel.dylib + 28772) [0x19e2e5064]
//!      *298  ipc_mqueue_receive_continue + 0 (kernel… + 1403984) [0x…] (blocked by turnstile waiting for mds_stores [412] thread 0x9b2)
//! ```

/// A thread that spent samples blocked, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// `name [pid]` of its process.
    pub process: String,
    /// The thread id and its queue or name.
    pub thread: String,
    /// Whether it is an app's main thread (what a person sees freeze).
    pub main: bool,
    /// Samples it spent blocked, over all its blocked leaves.
    pub samples: u32,
    /// The heaviest blocked leaf: symbol and library.
    pub leaf: String,
    /// What spindump says it was blocked by.
    pub reason: String,
    /// The nearest user-space frames above that leaf, innermost first.
    pub via: Vec<String>,
}

#[derive(Debug)]
struct Frame<'a> {
    indent: usize,
    samples: u32,
    kernel: bool,
    symbol: &'a str,
    library: &'a str,
    state: Option<&'a str>,
}

/// Parses a frame line: `[*]N  symbol + off (library + off) [0xaddr] (state)`.
fn frame(line: &str) -> Option<Frame<'_>> {
    let text = line.trim_start();
    let indent = line.len() - text.len();
    let (kernel, text) = match text.strip_prefix('*') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let digits = text.find(|c: char| !c.is_ascii_digit())?;
    let samples = text[..digits].parse().ok()?;
    let rest = text[digits..].trim_start();
    let symbol_end = rest.find(" (").or_else(|| rest.find(" [")).unwrap_or(rest.len());
    let symbol = rest[..symbol_end].split(" + ").next().unwrap_or("").trim();
    let library = rest[symbol_end..]
        .strip_prefix(" (")
        .and_then(|r| r.split(" + ").next())
        .map(|l| l.trim_end_matches(')'))
        .unwrap_or("");
    // A state is a parenthesised tail after the address.
    let state = rest.rfind("] (").map(|at| rest[at + 3..].trim_end_matches(')'));
    Some(Frame { indent, samples, kernel, symbol, library, state })
}

/// Every thread with blocked samples, the most blocked first (main threads first on ties).
pub fn blocked_threads(text: &str) -> Vec<Blocked> {
    let mut out: Vec<Blocked> = Vec::new();
    let mut process = String::new();
    // The thread being read, and the samples of its heaviest blocked leaf so far.
    let mut current: Option<(Blocked, u32)> = None;
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let finish = |current: &mut Option<(Blocked, u32)>, out: &mut Vec<Blocked>| {
        if let Some((t, _)) = current.take().filter(|(t, _)| t.samples > 0) {
            out.push(t);
        }
    };
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if let Some(rest) = line.strip_prefix("Process:") {
            finish(&mut current, &mut out);
            process = rest.trim().to_string();
            continue;
        }
        if let Some(rest) = line.strip_prefix("  Thread ") {
            finish(&mut current, &mut out);
            stack.clear();
            let thread = rest.split("    ").take(2).filter(|p| !p.contains("samples")).collect::<Vec<_>>().join(" ");
            let main = rest.contains("\"com.apple.main-thread\"");
            let t = Blocked {
                process: process.clone(),
                thread,
                main,
                samples: 0,
                leaf: String::new(),
                reason: String::new(),
                via: vec![],
            };
            current = Some((t, 0));
            continue;
        }
        if line.trim_start().starts_with("Binary Images:") {
            finish(&mut current, &mut out);
            stack.clear();
            continue;
        }
        let Some((t, heaviest)) = current.as_mut() else { continue };
        let Some(f) = frame(line) else { continue };
        while stack.last().is_some_and(|top| top.indent >= f.indent) {
            stack.pop();
        }
        // A leaf: the next line is not a deeper frame.
        let next_deeper = lines.get(i + 1).and_then(|l| frame(l)).is_some_and(|n| n.indent > f.indent);
        if !next_deeper && let Some(reason) = f.state.filter(|s| s.starts_with("blocked")) {
            t.samples += f.samples;
            if f.samples > *heaviest {
                *heaviest = f.samples;
                t.leaf = format!("{} ({})", f.symbol, f.library);
                t.reason = reason.to_string();
                t.via = stack.iter().rev().filter(|s| !s.kernel).take(3).map(|s| s.symbol.to_string()).collect();
            }
        }
        stack.push(f);
    }
    finish(&mut current, &mut out);
    out.sort_by(|a, b| b.samples.cmp(&a.samples).then(b.main.cmp(&a.main)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = include_str!("../../../fixtures/macos/spindump/tailspin_decoded_stall.txt");

    #[test]
    fn frames_with_and_without_library_and_state() {
        let f = frame("           *298  ipc_mqueue_receive_continue + 0 (kernel.release.t6031 + 1403984) [0xfffffe0008a2cc50] (blocked by disk I/O)").expect("frame");
        assert_eq!(
            (f.samples, f.kernel, f.symbol, f.library, f.state),
            (298, true, "ipc_mqueue_receive_continue", "kernel.release.t6031", Some("blocked by disk I/O"))
        );
        let f = frame("      341  -[NSApplication run] + 368 (AppKit + 259720) [0x1a1f3f688]").expect("frame");
        assert_eq!((f.symbol, f.library, f.state), ("-[NSApplication run]", "AppKit", None));
        let f = frame("    1    ??? [0x11e6fd800]").expect("jit frame");
        assert_eq!((f.symbol, f.library), ("???", ""));
        assert!(frame("  Binary Images:").is_none());
    }

    #[test]
    fn the_fixture_ranks_the_threads_that_waited() {
        let b = blocked_threads(REPORT);
        let who: Vec<(&str, u32, bool)> = b.iter().map(|t| (t.process.as_str(), t.samples, t.main)).collect();
        // On equal counts a main thread (what a person sees freeze) comes first.
        let want =
            vec![("Safari [2210]", 341, true), ("mds_stores [412]", 341, false), ("WindowServer [153]", 298, true)];
        assert_eq!(who, want);
        assert_eq!(b[1].leaf, "hfs_vnop_read (kernel.release.t6031)");
        assert_eq!(b[1].reason, "blocked by disk I/O");
        assert_eq!(b[1].via, vec!["pread", "SISyncIndex", "_dispatch_workloop_worker_thread"]);
        assert!(b[2].reason.contains("waiting for mds_stores [412]"), "{:?}", b[2]);
        assert!(b[0].thread.contains("0x1f00a") && b[0].thread.contains("com.apple.main-thread"), "{:?}", b[0]);
    }

    #[test]
    fn truncated_or_foreign_text_gives_nothing_and_never_panics() {
        assert!(blocked_threads("").is_empty());
        assert!(blocked_threads(&REPORT[..REPORT.len() / 3]).len() <= 1);
        let mut cut = String::new();
        for line in REPORT.lines() {
            cut.push_str(&line[..line.len() / 2]);
            cut.push('\n');
        }
        let _ = blocked_threads(&cut);
    }
}
