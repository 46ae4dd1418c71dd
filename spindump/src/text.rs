//! A chain in one sentence, stored with it so every client says the same.

use pmon_proto::{
    format::stack_thread as thread,
    v1::{StackThread, WaitChain},
};

/// "23 threads of 3 processes waited on WindowServer [153] main thread 0x3e2 (12/12
/// samples in waitForStamp (AMDRadeonX5000))".
pub fn why(c: &WaitChain) -> String {
    let threads = crate::model::total(c.waiters.iter().map(|g| g.threads));
    let more = if c.waiters.iter().any(|g| g.more_threads) { "at least " } else { "" };
    let plural = if threads == 1 { "" } else { "s" };
    let of = match c.waiters.as_slice() {
        [one] => thread(&StackThread { process: one.process.clone(), pid: one.pid, ..StackThread::default() }),
        many => format!("{} processes", many.len()),
    };
    let root = c.root.as_ref().map(thread).unwrap_or_default();
    let verb = if c.deadlock { "waited in a circle (a deadlock) through" } else { "waited on" };
    let what = if c.doing.is_empty() {
        c.state.clone()
    } else {
        let how = match c.state.as_str() {
            s if s.starts_with("running") => "running in ".to_string(),
            s if s.starts_with("blocked by") => format!("{s}, in "),
            _ => "in ".to_string(),
        };
        format!("{}/{} samples {how}{}", c.root_samples, c.total_samples, c.doing)
    };
    format!("{more}{threads} thread{plural} of {of} {verb} {root} ({what})")
}
