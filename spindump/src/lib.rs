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
    /// Chains of waits, most waited on first.
    pub chains: Vec<WaitChain>,
    /// Apps whose main thread hung for the whole report.
    pub hangs: Vec<AppHang>,
}

impl Analysis {
    /// Who to blame first: the root of the longest chain of waits, else the app whose
    /// main thread hung; `None` when nothing waited and no app hung.
    pub fn culprit(&self) -> Option<&StackThread> {
        match self.chains.first() {
            Some(c) => c.root.as_ref(),
            None => self.hangs.first().and_then(|h| h.thread.as_ref()),
        }
    }

    /// Why that one, in one line.
    pub fn why(&self) -> Option<String> {
        match (self.chains.first(), self.hangs.first()) {
            (Some(c), _) => Some(c.why.clone()),
            (None, Some(h)) => Some(format!("its main thread hung: {}", pmon_proto::format::app_hang(h))),
            (None, None) => None,
        }
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
mod tests;
