//! One line of a call tree, in spindump's layout and in `sample`'s, and the leaves of a
//! thread's tree once its lines are read.
//!
//! ```text
//! spindump:  [*]N  symbol + off (library + off) [0xaddr] [(state)] [a-b]
//!            N    ??? [0x11e6fd800]                      (JIT code: no library)
//! sample:    + ! : | N symbol  (in library) + off  [0xaddr]
//! ```
//!
//! Every slice is taken at an ASCII boundary found in the same string, so arbitrary
//! text never panics.

use crate::{
    model::{Frame, Leaf},
    note,
};

/// A frame as read, before the tree is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// Column of its sample count: depth in the tree.
    pub indent: usize,
    pub samples: u32,
    /// spindump's `*`: a kernel frame.
    pub kernel: bool,
    pub frame: Frame,
    pub state: Option<String>,
}

/// Where the sample count starts, skipping the leading spaces and, in `sample`'s
/// layout, the tree markers.
fn count_at(line: &str, markers: &str) -> Option<usize> {
    line.find(|c: char| !(c == ' ' || c == '\t' || markers.contains(c)))
}

/// `1001` and the rest after its spaces; the count must be followed by whitespace.
fn count(text: &str) -> Option<(u32, &str)> {
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    if digits == 0 || !text[digits..].starts_with([' ', '\t']) {
        return None;
    }
    let samples = text[..digits].parse().ok()?;
    let rest = text[digits..].trim_start();
    (!rest.is_empty()).then_some((samples, rest))
}

/// A spindump frame line.
pub(crate) fn spindump(line: &str) -> Option<Line> {
    let at = count_at(line, "")?;
    let text = &line[at..];
    let (kernel, text) = match text.strip_prefix('*') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (samples, rest) = count(text)?;
    let rest = without_range(rest.trim_end());
    let (head, tail) = match rest.rfind(" [0x").map(|a| a + 1).or_else(|| rest.starts_with("[0x").then_some(0)) {
        Some(open) => {
            let close = rest[open..].find(']').map_or(rest.len(), |c| open + c + 1);
            (rest[..open].trim_end(), rest[close..].trim())
        }
        None => (rest, ""),
    };
    let state = tail.strip_prefix('(').and_then(|t| t.strip_suffix(')')).map(str::to_string);
    Some(Line { indent: at, samples, kernel, frame: spindump_frame(head), state })
}

/// `symbol + off (library + off)` → symbol and library (`Smoothie.swift:61 in Fruta`
/// names the library after `in`).
fn spindump_frame(head: &str) -> Frame {
    let Some(open) = head.ends_with(')').then(|| matching_open(head)).flatten() else {
        return Frame { symbol: without_offset(head).to_string(), library: String::new() };
    };
    let inner = &head[open + 1..head.len() - 1];
    let library = inner.split(" + ").next().unwrap_or("");
    let library = library.rsplit(" in ").next().unwrap_or(library).trim();
    Frame { symbol: without_offset(head[..open].trim()).to_string(), library: library.to_string() }
}

/// The `(` that matches the final `)` of `text`.
fn matching_open(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (at, c) in text.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(at);
                }
            }
            _ => {}
        }
    }
    None
}

/// `start + 462` → `start`.
fn without_offset(text: &str) -> &str {
    match text.rsplit_once(" + ") {
        Some((symbol, off)) if off.trim().chars().all(|c| c.is_ascii_hexdigit() || c == 'x') => symbol.trim(),
        _ => text.trim(),
    }
}

/// Drops the sample range newer reports put after each frame: `… [0x…] 1-12`.
fn without_range(text: &str) -> &str {
    let Some((before, last)) = text.rsplit_once(' ') else { return text };
    let range = !last.is_empty()
        && last.chars().all(|c| c.is_ascii_digit() || c == '-')
        && last.starts_with(|c: char| c.is_ascii_digit());
    if range && (before.ends_with(']') || before.ends_with(')')) { before } else { text }
}

/// A `sample` frame line.
pub(crate) fn sample(line: &str) -> Option<Line> {
    let at = count_at(line, "+!:|")?;
    let (samples, rest) = count(&line[at..])?;
    let (symbol, after) = match rest.find("  (in ") {
        Some(open) => (&rest[..open], &rest[open + 6..]),
        None => (rest.split("  [").next().unwrap_or(rest), ""),
    };
    let library = after.split(')').next().unwrap_or("").trim();
    let frame = Frame { symbol: without_offset(symbol).to_string(), library: library.to_string() };
    Some(Line { indent: at, samples, kernel: false, frame, state: None })
}

/// Calls only a thread waiting for work makes: a run loop waiting for its next message,
/// a plain receive, a MIG server's loop waiting for its next request, `dispatch_main`
/// parking the main thread for good, dispatch's manager, a workqueue thread parked in
/// the kernel, an event loop in kqueue (`kevent_id` is left out: dispatch uses it to wait
/// for another thread's workloop, a real wait).
const IDLE: [&str; 10] = [
    "__CFRunLoopServiceMachPort",
    "mach_msg_receive",
    "mach_msg_server",
    "mach_msg_server_once",
    "_dispatch_sig_thread",
    "_dispatch_mgr_invoke",
    "__workq_kernreturn",
    "kevent",
    "kevent64",
    "kevent_qos",
];
/// The traps a message receive enters: a server loop's or a run loop's wait for its next
/// message ends in one, with the kernel's `ipc_mqueue_receive_continue` below it.
const MESSAGE_TRAPS: [&str; 3] = ["mach_msg_trap", "mach_msg2_trap", "mach_msg_overwrite_trap"];
/// The kernel's side of a message receive, below the trap (`ipc_mqueue_receive`,
/// `ipc_mqueue_receive_continue`, `mach_msg_receive_continue`, `mach_msg_receive_results`).
const RECEIVES: [&str; 2] = ["ipc_mqueue_receive", "mach_msg_receive"];
/// A request waiting for its reply: a receive under one of these waits for a server, not
/// for work (spindump usually names that server; `sample` never does).
const REPLY_WAITS: [&str; 3] = [
    "xpc_connection_send_message_with_reply_sync",
    "dispatch_mach_send_with_result_and_wait_for_reply",
    "_dispatch_mach_send_and_wait_for_reply",
];
/// Where threads begin, and a thread pool's own wait for its next task (libdispatch's
/// pthread pool sleeps on a semaphore between tasks): a path with no other user frame is
/// a worker parked, waiting for work.
const THREAD_MACHINERY: [&str; 12] = [
    "start_wqthread",
    "_pthread_wqthread",
    "thread_start",
    "_pthread_start",
    "_pthread_body",
    "_dispatch_worker_thread",
    "dispatch_semaphore_wait",
    "_dispatch_semaphore_wait_slow",
    "_dispatch_sema4_wait",
    "_dispatch_sema4_timedwait",
    "semaphore_wait_trap",
    "semaphore_timedwait_trap",
];

/// The leaves of one thread's tree, heaviest first. A line is a leaf when the next one
/// is not deeper.
pub(crate) fn leaves(lines: &[Line]) -> Vec<Leaf> {
    let mut out = Vec::new();
    let mut stack: Vec<usize> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        while stack.last().is_some_and(|&top| lines[top].indent >= line.indent) {
            stack.pop();
        }
        stack.push(i);
        if lines.get(i + 1).is_some_and(|next| next.indent > line.indent) {
            continue;
        }
        out.push(leaf(lines, &stack));
    }
    out.sort_by_key(|l: &Leaf| std::cmp::Reverse(l.samples));
    out
}

fn leaf(lines: &[Line], path: &[usize]) -> Leaf {
    let end = &lines[path[path.len() - 1]];
    let core = |l: &Line| l.kernel && (l.frame.library.is_empty() || l.frame.core_kernel());
    let doing_at = path.iter().rposition(|&i| !core(&lines[i])).unwrap_or(path.len() - 1);
    let state = end.state.clone();
    let target = state.as_deref().and_then(note::target);
    let waits = state.as_deref().is_some_and(|s| s.starts_with("blocked") || s.starts_with("running"));
    let symbol = |i: &usize| lines[*i].frame.symbol.as_str();
    // Only thread machinery above core-kernel frames: a worker parked, waiting for work
    // (a driver's frame in the path is a wait on the hardware, not parking).
    let parked = path.iter().all(|i| THREAD_MACHINERY.contains(&symbol(i)) || core(&lines[*i]));
    // A message trap with only the core kernel below it, no send among them and no
    // request above it waiting for a reply: a receive on the thread's own ports, the
    // wait of a daemon or a run loop for its next message. spindump names whom a
    // synchronous request waits for, and such a leaf is not counted idle (`waits`).
    // The kernel's receive must be there: a trap that went elsewhere (an IOKit call,
    // `is_io_connect_method`) or a report without kernel frames says nothing of one.
    let receive = MESSAGE_TRAPS.contains(&symbol(&path[doing_at]))
        && path[doing_at..].iter().any(|i| RECEIVES.iter().any(|r| symbol(i).starts_with(r)))
        && !path[doing_at..].iter().any(|i| symbol(i).contains("_send"))
        && !path.iter().any(|i| REPLY_WAITS.contains(&symbol(i)));
    let idle = !waits && (parked || receive || path.iter().any(|i| IDLE.contains(&symbol(i))));
    let via = path[..doing_at]
        .iter()
        .rev()
        .map(|&i| &lines[i])
        .filter(|l| !l.kernel)
        .take(3)
        .map(|l| l.frame.symbol.clone())
        .collect();
    Leaf {
        samples: end.samples,
        doing: lines[path[doing_at]].frame.clone(),
        state,
        target,
        kernel: end.kernel,
        idle,
        via,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(symbol: &str, library: &str) -> Frame {
        Frame { symbol: symbol.into(), library: library.into() }
    }

    #[test]
    fn spindump_lines_of_every_age() {
        let l = spindump("           *298  ipc_mqueue_receive_continue + 0 (kernel.release.t6031 + 1403984) [0xfffffe0008a2cc50] (blocked by disk I/O)").expect("frame");
        assert_eq!((l.samples, l.kernel, l.state.as_deref()), (298, true, Some("blocked by disk I/O")));
        assert_eq!(l.frame, frame("ipc_mqueue_receive_continue", "kernel.release.t6031"));
        let l = spindump("     *11  psynch_mtxcontinue + 0 (pthread + 9627) [0xffffff800365a59b] (blocked by turnstile waiting for this thread) 1-11").expect("ranged");
        assert_eq!(l.state.as_deref(), Some("blocked by turnstile waiting for this thread"));
        let l = spindump("  12  start + 1903 (dyld + 25631) [0x7ff80b9a241f] 1-12").expect("range, no state");
        assert_eq!((l.frame, l.state), (frame("start", "dyld"), None));
        let l =
            spindump("      993   __CFRunLoopRun + 1361 (CoreFoundation + 555201) [0x7fff8114c8c1]").expect("padded");
        assert_eq!((l.indent, l.samples), (6, 993));
        let l = spindump("    1    ??? [0x11e6fd800]").expect("jit");
        assert_eq!(l.frame, frame("???", ""));
        let l = spindump("  11  static Smoothie.performGETRequest(to:) + 179 (Smoothie.swift:73,31 in Fruta + 375475) [0x10532fab3] 1-11").expect("source");
        assert_eq!(l.frame, frame("static Smoothie.performGETRequest(to:)", "Fruta"));
        let l = spindump("   43   CGXUpdateDisplay + 2104 (SkyLight + 1206264) [0x1a2a41af8] (running, p-core)")
            .expect("running");
        assert_eq!(l.state.as_deref(), Some("running, p-core"));
        for not_a_frame in ["  Binary Images:", "12M used", "", "   *", "  341", "Thread 0x3e2"] {
            assert!(spindump(not_a_frame).is_none(), "{not_a_frame:?}");
        }
    }

    #[test]
    fn sample_lines_with_tree_markers() {
        let l =
            sample("    +                   ! 1800 __psynch_mutexwait  (in libsystem_kernel.dylib) + 8  [0x19e2e4c48]")
                .expect("frame");
        assert_eq!((l.indent, l.samples), (26, 1800));
        assert_eq!(l.frame, frame("__psynch_mutexwait", "libsystem_kernel.dylib"));
        let l = sample(
            "        +   7847 ???  (in MultiTargetHangingTest)  load address 0x106637000 + 0x3e80  [0x10663ae80]",
        )
        .expect("???");
        assert_eq!(l.frame, frame("???", "MultiTargetHangingTest"));
        let l = sample("          7847 start_wqthread  (in libsystem_pthread.dylib) + 15  [0x7ff813b6bf57]")
            .expect("no markers");
        assert_eq!((l.indent, l.frame.symbol.as_str()), (10, "start_wqthread"));
    }

    #[test]
    fn leaves_name_the_driver_not_the_scheduler_and_know_idle_threads() {
        let lines: Vec<Line> = [
            "  12  start + 1 (dyld + 1) [0x1]",
            "    12  mach_msg2_trap + 8 (libsystem_kernel.dylib + 2) [0x2]",
            "     *12  waitForStamp + 210 (AMDRadeonX5000 + 3) [0xffffff7f8a1b2c34]",
            "       *12  thread_block_reason + 1 (kernel + 4) [0xffffff80003e7980]",
            "  5  __CFRunLoopServiceMachPort + 1 (CoreFoundation + 5) [0x5]",
            "    5  mach_msg2_trap + 8 (libsystem_kernel.dylib + 2) [0x2]",
        ]
        .iter()
        .filter_map(|l| spindump(l))
        .collect();
        let leaves = leaves(&lines);
        assert_eq!(leaves.len(), 2);
        assert_eq!((leaves[0].samples, leaves[0].doing.short()), (12, "waitForStamp (AMDRadeonX5000)".into()));
        assert_eq!(leaves[0].via, vec!["mach_msg2_trap", "start"]);
        assert!(!leaves[0].idle && leaves[1].idle);
    }

    /// Whether the one leaf of `frames` (spindump lines, two columns deeper each) is idle.
    fn idle(frames: &[&str]) -> bool {
        let lines: Vec<Line> = frames
            .iter()
            .enumerate()
            .filter_map(|(depth, f)| spindump(&format!("{}{f}", "  ".repeat(depth + 1))))
            .collect();
        let leaves = leaves(&lines);
        assert_eq!(leaves.len(), 1, "{frames:?}");
        leaves[0].idle
    }

    #[test]
    fn waiting_for_work_is_idle_and_waiting_on_someone_is_not() {
        let receive = "*9  ipc_mqueue_receive_continue + 0 (kernel.release.t6031 + 1) [0xfffffe0008a2cc50]";
        let trap = "9  mach_msg2_trap + 8 (libsystem_kernel.dylib + 2) [0x2]";
        let start = "9  start + 1 (dyld + 1) [0x1]";
        // A daemon's main thread in its server loop, waiting for its next message.
        assert!(idle(&[
            start,
            "9  ??? (securityd + 9) [0x3]",
            "9  mach_msg_overwrite + 1 (libsystem_kernel.dylib + 3) [0x4]",
            trap,
            receive
        ]));
        // Without the kernel's frames (`sample`, or a truncated backtrace) a bare trap says
        // nothing of a receive: it may be any synchronous request (WindowServer's, an
        // XPC pipe). A MIG server's loop says it waits for requests.
        assert!(!idle(&["9  <truncated backtrace>", trap]));
        assert!(!idle(&[start, "9  SLSGetWindowBounds + 1 (SkyLight + 1) [0x13]", trap]));
        assert!(idle(&[start, "9  mach_msg_server + 1 (libsystem_kernel.dylib + 1) [0x14]", trap]));
        // An IOKit call enters the same trap and blocks in the driver's path, not a receive.
        assert!(!idle(&[start, trap, "*9  is_io_connect_method + 1 (kernel + 1) [0xffffff8000000004]"]));
        // The same trap when spindump names the server it waits for, or under a request
        // waiting for its reply, or a send blocked on a full queue.
        let named = format!("{receive} (blocked by turnstile waiting for launchd [1] thread 0x5)");
        assert!(!idle(&[start, trap, &named]));
        let sync = "9  xpc_connection_send_message_with_reply_sync + 1 (libxpc.dylib + 1) [0x5]";
        assert!(!idle(&[start, sync, trap, receive]));
        assert!(!idle(&[start, trap, "*9  ipc_mqueue_send_locked + 1 (kernel + 1) [0xffffff8000000002]"]));
        // dispatch_main parks the main thread for good; an event loop waits in kqueue.
        assert!(idle(&[
            "9  _dispatch_sig_thread + 53 (libdispatch.dylib + 1) [0x6]",
            "9  __sigsuspend_nocancel + 10 (libsystem_kernel.dylib + 1) [0x7]"
        ]));
        assert!(idle(&[start, "9  uv_run + 1 (node + 1) [0x8]", "9  kevent + 8 (libsystem_kernel.dylib + 1) [0x9]"]));
        // A pool's worker between tasks is parked; a main thread on a semaphore is hung,
        // and so is a pool's worker waiting on one inside a task.
        let sema = [
            "9  _dispatch_sema4_timedwait + 1 (libdispatch.dylib + 1) [0xa]",
            "9  semaphore_timedwait_trap + 10 (libsystem_kernel.dylib + 1) [0xb]",
            "*9  semaphore_wait_continue + 0 (kernel + 1) [0xffffff8000000003]",
        ];
        let pool = [
            "9  thread_start + 8 (libsystem_pthread.dylib + 1) [0xc]",
            "9  _pthread_start + 1 (libsystem_pthread.dylib + 1) [0xd]",
            "9  _dispatch_worker_thread + 1 (libdispatch.dylib + 1) [0xe]",
        ];
        assert!(idle(&[&pool[..], &sema[..]].concat()));
        assert!(!idle(&[&[start][..], &sema[..]].concat()));
        let task = ["9  _dispatch_client_callout + 8 (libdispatch.dylib + 1) [0xf]", "9  ??? (App + 1) [0x10]"];
        assert!(!idle(&[&pool[..], &task[..], &sema[..]].concat()));
        // A run loop handling a source is busy, not waiting.
        assert!(!idle(&[
            start,
            "9  __CFRunLoopRun + 1 (CoreFoundation + 1) [0x11]",
            "9  __CFRunLoopDoSources0 + 1 (CoreFoundation + 1) [0x12] (running)"
        ]));
    }
}
