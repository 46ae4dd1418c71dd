//! What a stack report holds once read: processes, their threads, and per thread the
//! leaves of its call tree (where its samples ended), each with its state.

use crate::note::Target;

/// One report, whatever tool wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Which tool's layout it was read as.
    pub format: Format,
    /// Samples the report covers (`Steps:` of spindump); `None` where it does not say.
    pub steps: Option<u32>,
    /// Every process with at least one thread, in report order.
    pub processes: Vec<Process>,
    /// Pids the report says exited while it was taken (`[412] has exited`).
    pub exited: Vec<u32>,
}

/// The layouts read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// `spindump` (live, or a tailspin trace decoded with `spindump -i`), any report version.
    #[default]
    Spindump,
    /// `sample` (Activity Monitor's "Sample Process").
    Sample,
}

/// A process of the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Process {
    /// Command name as the report gives it.
    pub name: String,
    /// Its pid, when the report gives one.
    pub pid: Option<u32>,
    /// Samples the process was seen in (`Num samples:`); `None` where not given.
    pub samples: Option<u32>,
    /// Its threads, in report order.
    pub threads: Vec<Thread>,
}

impl Process {
    /// The thread a person sees freeze, if it is known.
    pub fn main_thread(&self) -> Option<&Thread> {
        self.threads.iter().find(|t| t.main)
    }
}

/// A thread, or a group of threads spindump reports together (`Thread <multiple>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Thread {
    /// `0x3e2`, `<multiple>` or the `sample` id (`Thread_12789423` is stored as `12789423`).
    pub id: String,
    /// Its dispatch queue's label or its thread name, if any.
    pub label: Option<String>,
    /// Whether it is the process's main thread.
    pub main: bool,
    /// Whether it stands for several threads.
    pub multiple: bool,
    /// Samples it was seen in.
    pub samples: u32,
    /// The symbol its call tree starts in: `start` for a process's main thread,
    /// `start_wqthread` or `thread_start` for the others; empty without a tree.
    pub starts_in: String,
    /// Where its samples ended, heaviest first.
    pub leaves: Vec<Leaf>,
}

impl Thread {
    /// `0x3e2 "com.apple.main-thread"` or `0x3e2`.
    pub fn label(&self) -> String {
        match &self.label {
            Some(l) => format!("{} \"{l}\"", self.id),
            None => self.id.clone(),
        }
    }

    /// Samples it spent not idle: blocked on something, running, or busy in a call.
    pub fn active_samples(&self) -> u32 {
        total(self.leaves.iter().filter(|l| !l.idle).map(|l| l.samples))
    }

    /// Its heaviest leaf that is not idle.
    pub fn heaviest_active(&self) -> Option<&Leaf> {
        self.leaves.iter().find(|l| !l.idle)
    }
}

/// The end of one path of a call tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leaf {
    /// Samples that ended here.
    pub samples: u32,
    /// The frame that says what the thread was doing: the innermost one outside the core
    /// kernel (a driver's wait names the driver; `thread_block_reason` names nothing).
    pub doing: Frame,
    /// spindump's state of the leaf: `blocked by …`, `running`, … (never for `sample`).
    pub state: Option<String>,
    /// Whom it waited on, read from a `blocked by …` state.
    pub target: Option<Target>,
    /// Whether the leaf is the kernel's (spindump's `*`).
    pub kernel: bool,
    /// Whether this is a thread waiting for work (a run loop or a worker parked in the
    /// kernel): what every healthy thread does, never a hang.
    pub idle: bool,
    /// The nearest user-space frames above it, innermost first (at most three).
    pub via: Vec<String>,
}

impl Leaf {
    /// Whether spindump says it was blocked.
    pub fn blocked(&self) -> bool {
        self.state.as_deref().is_some_and(|s| s.starts_with("blocked"))
    }

    /// Whether spindump says it was on a CPU.
    pub fn running(&self) -> bool {
        self.state.as_deref().is_some_and(|s| s.starts_with("running"))
    }
}

/// Sample counts added up, saturating: a report may print any count up to `u32::MAX`.
pub(crate) fn total(counts: impl Iterator<Item = u32>) -> u32 {
    counts.fold(0, u32::saturating_add)
}

/// A call frame: its symbol and the library it is in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    /// Symbol, `???` when unknown.
    pub symbol: String,
    /// Library, empty for JIT code.
    pub library: String,
}

impl Frame {
    /// `waitForStamp (AMDRadeonX5000)`: C++ names lose their class and arguments; other
    /// symbols stay whole (an Objective-C `-[NSApplication run]` says more than `run`).
    pub fn short(&self) -> String {
        let symbol = short_symbol(&self.symbol);
        if self.library.is_empty() { symbol.to_string() } else { format!("{symbol} ({})", self.library) }
    }

    /// Whether its library is the core kernel (or its pthread support) rather than a
    /// driver: such frames say "waiting", never on what.
    pub fn core_kernel(&self) -> bool {
        self.library == "kernel" || self.library.starts_with("kernel.") || self.library == "pthread"
    }
}

/// `A::B::waitForStamp(unsigned long long)` → `waitForStamp`.
fn short_symbol(symbol: &str) -> &str {
    if !symbol.contains("::") || symbol.contains('[') {
        return symbol;
    }
    let mut name = symbol;
    if name.ends_with(')') {
        // Cut the argument list: from the `(` that closes the final one.
        let mut depth = 0usize;
        for (at, c) in name.char_indices().rev() {
            match c {
                ')' => depth += 1,
                '(' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        name = &name[..at];
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    let name = name.rsplit("::").next().unwrap_or(name);
    if name.is_empty() { symbol } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_drop_class_and_arguments_of_cpp_only() {
        let f = |s: &str, l: &str| Frame { symbol: s.into(), library: l.into() }.short();
        assert_eq!(
            f(
                "AMDRadeonX5000_AMDAccelEventMachine::waitForStamp(unsigned long long, unsigned int, unsigned int*)",
                "AMDRadeonX5000"
            ),
            "waitForStamp (AMDRadeonX5000)"
        );
        assert_eq!(f("-[NSApplication run]", "AppKit"), "-[NSApplication run] (AppKit)");
        assert_eq!(f("std::__1::recursive_mutex::lock()", "libc++.1.dylib"), "lock (libc++.1.dylib)");
        assert_eq!(f("???", ""), "???");
        assert_eq!(f("::", "x"), ":: (x)");
    }
}
