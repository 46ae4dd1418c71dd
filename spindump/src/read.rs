//! Reading a report: spindump's layout (every report version seen: the heavy format with
//! `DispatchQueue "…"(1)` and sample ranges, the older wide-padded one with bare queue
//! numbers and `Thread <multiple>` groups, reports with no queue labels at all and a
//! `Spindump binary format` tail) and `sample`'s call graph.
//!
//! ```text
//! Process:          WindowServer [153]                    a process
//! Num samples:      12 (1-12)
//!   Thread 0x3e2    DispatchQueue "com.apple.main-thread"(1)    12 samples (1-12)    …
//!   12  start + 1903 (dyld + 25631) [0x7ff80b9a241f] 1-12  its call tree
//!
//! Call graph:                                             sample's layout
//!     2453 Thread_12789423   DispatchQueue_1: com.apple.main-thread  (serial)
//!     + 2453 start  (in dyld) + 6076  [0x19df79d54]
//! ```

use crate::{
    frame::{self, Line},
    model::{Format, Process, Report, Thread},
};

/// The text is not a stack report this crate reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a spindump or sample report: {0} (expected the text of spindump, of a tailspin trace decoded with \
     `spindump -i`, or of Activity Monitor's Sample Process)"
)]
pub struct NotAReport(pub &'static str);

/// Reads `text` in whichever layout it has.
pub fn read(text: &str) -> Result<Report, NotAReport> {
    let report =
        if text.contains("\nCall graph:") || text.starts_with("Call graph:") { sample(text) } else { spindump(text) };
    if report.processes.is_empty() {
        return Err(NotAReport(if text.contains("Process:") {
            "no process in it has a thread with a call tree"
        } else {
            "it has no `Process:` line"
        }));
    }
    Ok(report)
}

/// The thread being read and its lines.
struct Open {
    thread: Thread,
    queue: Option<u32>,
    lines: Vec<Line>,
}

/// A process being read, with whether any of its threads carried a queue label.
struct Building {
    process: Process,
    queues: Vec<Option<u32>>,
}

impl Building {
    fn new(name: String, pid: Option<u32>) -> Self {
        Self { process: Process { name, pid, ..Process::default() }, queues: Vec::new() }
    }

    fn close(&mut self, open: Option<Open>) {
        if let Some(mut o) = open {
            o.thread.leaves = frame::leaves(&o.lines);
            o.thread.starts_in = o.lines.first().map(|l| l.frame.symbol.clone()).unwrap_or_default();
            self.queues.push(o.queue);
            self.process.threads.push(o.thread);
        }
    }

    /// Marks the main thread: the main queue by label or number (queue 1), or, when no
    /// thread carries it (reports without queue labels, or only on workers), the first
    /// thread that began in `start` (the one that started the process; workers begin in
    /// `start_wqthread` or `thread_start`). The kernel (pid 0) has none.
    fn finish(mut self) -> Option<Process> {
        if self.process.threads.is_empty() {
            return None;
        }
        let by_label = |t: &Thread, q: &Option<u32>| t.label.as_deref() == Some(MAIN_QUEUE) || *q == Some(1);
        let mut marked = false;
        for (t, q) in self.process.threads.iter_mut().zip(&self.queues) {
            t.main = !t.multiple && by_label(t, q);
            marked |= t.main;
        }
        if !marked
            && self.process.pid != Some(0)
            && let Some(first) = self.process.threads.iter_mut().find(|t| !t.multiple && t.starts_in == "start")
        {
            first.main = true;
        }
        Some(self.process)
    }
}

const MAIN_QUEUE: &str = "com.apple.main-thread";

/// `WindowServer [153]`, `Google Chrome Helper (Renderer) [812]`, `??? [4321]`.
fn name_pid(text: &str) -> (String, Option<u32>) {
    let text = text.trim();
    if let Some(open) = text.rfind(" [")
        && let Some(close) = text[open..].find(']')
        && let Ok(pid) = text[open + 2..open + close].parse()
    {
        return (text[..open].trim().to_string(), Some(pid));
    }
    (text.to_string(), None)
}

/// `[412] has exited` → 412.
fn exited(trimmed: &str) -> Option<u32> {
    let pid = trimmed.strip_suffix("has exited")?.trim().strip_prefix('[')?.strip_suffix(']')?;
    pid.parse().ok()
}

/// `N (1-N)` → N.
fn leading_number(text: &str) -> Option<u32> {
    text.split_whitespace().next()?.parse().ok()
}

fn spindump(text: &str) -> Report {
    let mut report = Report { format: Format::Spindump, ..Report::default() };
    let mut process: Option<Building> = None;
    let mut open: Option<Open> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed == "Spindump binary format" {
            break;
        }
        if let Some(pid) = exited(trimmed) {
            report.exited.push(pid);
        }
        if let Some(rest) = line.strip_prefix("Process:") {
            if let Some(mut p) = process.take() {
                p.close(open.take());
                report.processes.extend(p.finish());
            }
            let (name, pid) = name_pid(rest);
            process = Some(Building::new(name, pid));
            continue;
        }
        let Some(p) = process.as_mut() else {
            if let Some(steps) = trimmed.strip_prefix("Steps:") {
                report.steps = leading_number(steps);
            }
            continue;
        };
        if let Some(header) = trimmed.strip_prefix("Thread ").and_then(thread_header) {
            p.close(open.take());
            open = Some(header);
        } else if trimmed.starts_with("Binary Images:") || trimmed.ends_with("has exited") {
            p.close(open.take());
        } else if let Some(o) = open.as_mut() {
            o.lines.extend(frame::spindump(line));
        } else if let Some(samples) = trimmed.strip_prefix("Num samples:") {
            p.process.samples = leading_number(samples);
        }
    }
    if let Some(mut p) = process {
        p.close(open);
        report.processes.extend(p.finish());
    }
    report
}

/// After `Thread `: `0x3e2    DispatchQueue "com.apple.main-thread"(1)    12 samples (1-12)
/// priority …`, `0x2f5   DispatchQueue 1   1001 samples …`, `<multiple>   …`,
/// `0x4c6d    Thread name "AudioEngine"    40 samples …`. Parts are read by what they
/// start with, not by column, since the padding differs between report versions.
fn thread_header(rest: &str) -> Option<Open> {
    let (id, mut s) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let multiple = id == "<multiple>";
    if !(multiple || id.starts_with("0x")) {
        return None;
    }
    let mut thread = Thread { id: id.to_string(), multiple, ..Thread::default() };
    let mut queue = None;
    loop {
        s = s.trim_start();
        if s.is_empty() {
            break;
        }
        if let Some(q) = s.strip_prefix("DispatchQueue ") {
            if let Some(quoted) = q.strip_prefix('"')
                && let Some(end) = quoted.find("\"(")
            {
                thread.label = Some(quoted[..end].to_string());
                let number = &quoted[end + 2..];
                queue = number.split(')').next().and_then(|n| n.parse().ok());
                s = number.split_once(')').map_or("", |(_, r)| r);
            } else {
                let (token, r) = q.split_once(char::is_whitespace).unwrap_or((q, ""));
                queue = token.parse().ok();
                s = r;
            }
        } else if let Some(named) = s.strip_prefix("Thread name \"") {
            // The name ends at the quote that is followed by the next part's padding.
            let end = named.match_indices('"').map(|(at, _)| at).find(|&at| {
                let after = &named[at + 1..];
                after.is_empty() || after.starts_with("  ")
            });
            let end = end.unwrap_or(named.len());
            thread.label.get_or_insert_with(|| named[..end].to_string());
            s = named.get(end + 1..).unwrap_or("");
        } else if let Some((n, r)) = s.split_once(' ')
            && r.starts_with("sample")
            && let Ok(samples) = n.parse()
        {
            thread.samples = samples;
            s = r;
        } else {
            // Priority, cpu time, I/O: skip to the next part.
            s = s.find("  ").map_or("", |at| &s[at..]);
        }
    }
    Some(Open { thread, queue, lines: Vec::new() })
}

fn sample(text: &str) -> Report {
    let mut report = Report { format: Format::Sample, ..Report::default() };
    let mut process: Option<Building> = None;
    let mut open: Option<Open> = None;
    let mut in_graph = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(rest) = line.strip_prefix("Process:") {
            let (name, pid) = name_pid(rest);
            if let Some(previous) = process.replace(Building::new(name, pid)) {
                finish_sample(&mut report, previous, open.take());
            }
        } else if let Some(rest) = trimmed.strip_prefix("Analysis of sampling ")
            && process.is_none()
        {
            // `Mail (pid 812) every 1 millisecond`, when there is no `Process:` line.
            let (name, rest) = rest.split_once(" (pid ").unwrap_or((rest, ""));
            process = Some(Building::new(name.to_string(), leading_number(&rest.replace(')', " "))));
        } else if trimmed == "Call graph:" {
            in_graph = true;
        } else if ["Total number in stack", "Sort by top of stack", "Binary Images:"]
            .iter()
            .any(|s| trimmed.starts_with(s))
        {
            in_graph = false;
        } else if in_graph && let Some(p) = process.as_mut() {
            if let Some(header) = sample_thread(trimmed) {
                p.close(open.replace(header));
            } else if let Some(o) = open.as_mut() {
                o.lines.extend(frame::sample(line));
            }
        }
    }
    if let Some(p) = process {
        finish_sample(&mut report, p, open);
    }
    report
}

fn finish_sample(report: &mut Report, mut p: Building, open: Option<Open>) {
    p.close(open);
    // Every thread is sampled each time: the process was seen as often as its
    // longest-lived thread.
    p.process.samples = p.process.threads.iter().map(|t| t.samples).max();
    report.processes.extend(p.finish());
}

/// `2453 Thread_12789423   DispatchQueue_1: com.apple.main-thread  (serial)`,
/// `2453 Thread_12789440: com.apple.NSEventThread`, `2453 Thread_12789441`.
fn sample_thread(trimmed: &str) -> Option<Open> {
    let (count, rest) = trimmed.split_once(' ')?;
    let samples = count.parse().ok()?;
    let rest = rest.trim_start().strip_prefix("Thread_")?;
    let id_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    let (id, rest) = rest.split_at(id_end);
    let mut thread = Thread { id: id.to_string(), samples, ..Thread::default() };
    let mut queue = None;
    let rest = rest.trim_start();
    if let Some(q) = rest.strip_prefix("DispatchQueue_") {
        let (number, label) = q.split_once(':').unwrap_or((q, ""));
        queue = number.trim().parse().ok();
        let label = label.split("  (").next().unwrap_or("").trim();
        thread.label = (!label.is_empty()).then(|| label.to_string());
    } else if let Some(name) = rest.strip_prefix(':') {
        let name = name.trim();
        thread.label = (!name.is_empty()).then(|| name.to_string());
    }
    Some(Open { thread, queue, lines: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_headers_of_every_layout() {
        let h = |s: &str| thread_header(s).map(|o| (o.thread.id, o.thread.label, o.queue, o.thread.samples));
        assert_eq!(
            h("0x3e2    DispatchQueue \"com.apple.main-thread\"(1)    12 samples (1-12)    priority 79 (base 79)"),
            Some(("0x3e2".into(), Some("com.apple.main-thread".into()), Some(1), 12))
        );
        assert_eq!(
            h(
                "0x2f5              DispatchQueue 1           1001 samples (1-1001)     priority 31-46 (base 31)  cpu time 0.022"
            ),
            Some(("0x2f5".into(), None, Some(1), 1001))
        );
        assert_eq!(
            h("0x4c6d    Thread name \"AudioEngine \"quoted\"\"    40 samples (1-40)    priority 47 (base 47)"),
            Some(("0x4c6d".into(), Some("AudioEngine \"quoted\"".into()), None, 40))
        );
        assert_eq!(h("0x4c6a    40 samples (1-40)    priority 47 (base 47)"), Some(("0x4c6a".into(), None, None, 40)));
        let multiple =
            thread_header("<multiple>        DispatchQueue 13          3003 samples (1-1001)").expect("group");
        assert!(multiple.thread.multiple && multiple.thread.samples == 3003);
        assert!(thread_header("name \"x\"").is_none());
    }

    #[test]
    fn sample_thread_lines() {
        let t = sample_thread("2453 Thread_12789423   DispatchQueue_1: com.apple.main-thread  (serial)").expect("main");
        assert_eq!((t.thread.id.as_str(), t.thread.label.as_deref(), t.queue), ("12789423", Some(MAIN_QUEUE), Some(1)));
        let t = sample_thread("2453 Thread_12789440: com.apple.NSEventThread").expect("named");
        assert_eq!(t.thread.label.as_deref(), Some("com.apple.NSEventThread"));
        assert!(sample_thread("+ 2453 start  (in dyld) + 6076  [0x19df79d54]").is_none());
    }

    #[test]
    fn names_with_brackets_and_spaces() {
        assert_eq!(
            name_pid("  Google Chrome Helper (Renderer) [812]"),
            ("Google Chrome Helper (Renderer)".into(), Some(812))
        );
        assert_eq!(name_pid(" kernel_task [0]"), ("kernel_task".into(), Some(0)));
        assert_eq!(name_pid(" oddball"), ("oddball".into(), None));
    }

    #[test]
    fn text_that_is_no_report_says_why() {
        assert_eq!(read("hello\n"), Err(NotAReport("it has no `Process:` line")));
        assert_eq!(
            read("Process: x [1]\nPath: /x\n"),
            Err(NotAReport("no process in it has a thread with a call tree"))
        );
    }
}
