//! Main-thread hangs: an app whose main thread did not go back to waiting for events for
//! at least 90 % of the report (blocked, or busy on a CPU) is what people call "the app
//! hung" and what macOS shows as the spinning beachball.

use pmon_proto::v1::AppHang;

use crate::{
    graph::{self, Graph},
    model::{Format, Leaf},
};

/// Share of the report a main thread must have spent away from its run loop.
const WHOLE: f64 = 0.9;

/// Every app whose main thread hung, the longest first.
pub(crate) fn hangs(graph: &Graph<'_>) -> Vec<AppHang> {
    let report = graph.report;
    let mut out = Vec::new();
    for process in &report.processes {
        let Some(main) = process.main_thread() else { continue };
        let total = process.samples.or(report.steps).unwrap_or(main.samples).max(main.samples);
        let active = main.active_samples();
        if total == 0 || f64::from(active) < WHOLE * f64::from(total) {
            continue;
        }
        let Some(leaf) = main.heaviest_active() else { continue };
        let waiting_for = leaf
            .target
            .as_ref()
            .and_then(|t| graph.resolve(t))
            .map(|node| pmon_proto::format::stack_thread(&graph.stack_thread(&node)))
            .unwrap_or_default();
        out.push(AppHang {
            thread: Some(graph::thread_of(process, main)),
            busy: busy(leaf, report.format),
            samples: active,
            total_samples: total,
            doing: leaf.doing.short(),
            waiting_for,
            via: leaf.via.clone(),
        });
    }
    let share = |h: &AppHang| u64::from(h.samples) * 1000 / u64::from(h.total_samples.max(1));
    out.sort_by(|a, b| share(b).cmp(&share(a)).then_with(|| a.samples.cmp(&b.samples).reverse()));
    out
}

/// On a CPU rather than blocked: spindump says so; `sample` cannot, so a path that ends
/// in a system call trap is taken as blocked and any other as busy.
fn busy(leaf: &Leaf, format: Format) -> bool {
    match format {
        Format::Spindump => leaf.running() || (!leaf.blocked() && !leaf.kernel),
        Format::Sample => !leaf.doing.library.starts_with("libsystem_kernel"),
    }
}
