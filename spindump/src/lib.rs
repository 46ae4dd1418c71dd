//! Reads macOS stack reports into who waited on whom.
//!
//! ```text
//! text ──► read (spindump | sample layout) ──► Report ──► Graph ──► chains (roots, waiters)
//!                                                           └────► main-thread hangs
//! ```
//!
//! The strongest evidence of a Mac freeze is its stack report: `tailspin` keeps the
//! last seconds in the kernel and `spindump` decodes them; its `(blocked by …)` notes
//! say which thread waits on which, across processes. The thread they all end up
//! waiting on is the answer, and it usually carries no note at all: it is running, or
//! in a driver's wait. Used by pmon-server's forensics and by `pmon explain`, on any
//! platform: nothing here calls the OS.

mod frame;
mod graph;
mod hang;
pub mod model;
pub mod note;
mod read;
mod text;

pub use pmon_proto::v1::{AppHang, StackThread, WaitChain, WaitGroup};
pub use read::{NotAReport, read};

/// What a report says about a hang.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analysis {
    /// Which layout it was read as.
    pub format: model::Format,
    /// Processes and threads read.
    pub processes: usize,
    /// Threads read (a `<multiple>` group counts once).
    pub threads: usize,
    /// Chains of waits; those holding up an app's main thread first, then the most
    /// threads. The first one's root is the culprit.
    pub chains: Vec<WaitChain>,
    /// Apps whose main thread was blocked or busy for at least 90 % of the report (a main
    /// thread waiting for work, in its run loop or its message receive, is not).
    pub hangs: Vec<AppHang>,
}

impl Analysis {
    /// Who to blame: the root of the first chain, the one holding up an app's main
    /// thread or else the most threads. A report with no chain names nobody: a main
    /// thread that hung on its own (busy, or blocked without a note naming whom it
    /// waited on) stays in `hangs`, but is no one else's reason to wait.
    pub fn culprit(&self) -> Option<&StackThread> {
        self.chains.first().and_then(|c| c.root.as_ref())
    }

    /// Why that one, in one line.
    pub fn why(&self) -> Option<String> {
        self.chains.first().map(|c| c.why.clone())
    }

    /// Why no culprit is named: the report holds no chain of waits (every chain has a
    /// root). `None` when [`Analysis::culprit`] names one.
    pub fn none_named(&self) -> Option<&'static str> {
        if !self.chains.is_empty() {
            return None;
        }
        Some(match self.format {
            model::Format::Spindump => "no process in this report is blocked by another",
            model::Format::Sample => "a sample report does not say which thread waits on which",
        })
    }
}

/// Reads a report and follows its waits.
pub fn analyse(report: &model::Report) -> Analysis {
    let graph = graph::Graph::new(report);
    Analysis {
        format: report.format,
        processes: report.processes.len(),
        threads: report.processes.iter().map(|p| p.threads.len()).sum(),
        chains: graph.chains(),
        hangs: hang::hangs(&graph),
    }
}

/// [`read`] then [`analyse`].
pub fn explain(text: &str) -> Result<Analysis, NotAReport> {
    read(text).map(|r| analyse(&r))
}

#[cfg(test)]
mod hang_tests;
#[cfg(test)]
mod tests;
