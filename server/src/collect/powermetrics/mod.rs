//! The macOS `powermetrics` source (root): one long-lived
//! `powermetrics -f plist -i <ms> --samplers tasks,thermal,cpu_power,gpu_power,disk --show-process-io`
//! child whose NUL-separated plist documents are parsed as they stream.
//!
//! ```text
//! child ──bytes──► PlistSplitter ──document──► parse::document ──PmSample──► convert ──► RawSample
//! ```
//!
//! powermetrics computes per-task rates itself (over `elapsed_ns`), so nothing is kept
//! between samples. It gives CPU and page-ins per task; memory, compression, context
//! switches, system calls, threads and states are not among its figures: unavailable.

mod live;
pub mod parse;

use std::time::{Duration, SystemTime};

use pmon_proto::v1::{ProcessFactors, ProcessState, SystemFigures, ThermalPressure};

use super::{ProcessRecord, RawSample, Usage};
pub use live::PowermetricsCollector;
pub use parse::{PlistSplitter, PmSample, PmTask, document};

/// Converts one parsed document. A document that is not a delta (`is_delta` false)
/// covers no interval of its own: its per-second figures are unavailable.
pub fn convert(sample: &PmSample, time: SystemTime) -> RawSample {
    let delta = sample.is_delta != Some(false);
    let elapsed = sample.elapsed_ns.filter(|_| delta).map(Duration::from_nanos);
    let processes = sample
        .tasks
        .iter()
        .map(|t| ProcessRecord {
            pid: t.pid,
            command: t.name.clone(),
            state: ProcessState::Unspecified,
            factors: ProcessFactors {
                // Milliseconds of CPU per second: 1000 is one core, 100 %.
                cpu_percent: t.cpu_ms_per_s.filter(|_| delta).map(|ms| ms / 10.0),
                pageins_per_sec: t.pageins_per_s.filter(|_| delta),
                disk_read_bytes_per_sec: t.disk_read_bytes_per_s.filter(|_| delta),
                disk_write_bytes_per_sec: t.disk_write_bytes_per_s.filter(|_| delta),
                ..ProcessFactors::default()
            },
            // What a task consumed over the sample's own interval, as powermetrics
            // measured it; it reports no waits.
            usage: elapsed.zip(t.cpu_ms_per_s.filter(|_| delta)).and_then(|(span, ms)| Usage::of_cpu(span, ms / 10.0)),
            ..ProcessRecord::default()
        })
        .collect();
    let system = SystemFigures {
        // A level, not a rate: it holds whether or not the document is a delta.
        thermal_pressure: thermal_pressure(sample.thermal_pressure.as_deref()) as i32,
        gpu_busy_percent: sample.gpu_busy_ratio.filter(|_| delta).map(|r| r * 100.0),
        disk_read_bytes_per_sec: sample.disk_read_bytes_per_s.filter(|_| delta),
        disk_write_bytes_per_sec: sample.disk_write_bytes_per_s.filter(|_| delta),
        ..SystemFigures::default()
    };
    RawSample { time, elapsed, processes, system }
}

/// powermetrics's name for a thermal pressure level; a name it may add later is
/// unspecified rather than guessed.
fn thermal_pressure(name: Option<&str>) -> ThermalPressure {
    match name {
        Some("Nominal") => ThermalPressure::Nominal,
        Some("Moderate") => ThermalPressure::Moderate,
        Some("Heavy") => ThermalPressure::Heavy,
        Some("Trapping") => ThermalPressure::Trapping,
        Some("Sleeping") => ThermalPressure::Sleeping,
        _ => ThermalPressure::Unspecified,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_become_records_with_cpu_as_percent_of_a_core() {
        let task = PmTask {
            pid: 7,
            name: "mds".into(),
            cpu_ms_per_s: Some(998.7),
            pageins_per_s: Some(12.0),
            ..PmTask::default()
        };
        let sample = PmSample {
            is_delta: Some(true),
            elapsed_ns: Some(1_000_000_000),
            tasks: vec![task],
            ..PmSample::default()
        };
        let raw = convert(&sample, SystemTime::UNIX_EPOCH);
        assert_eq!(raw.elapsed, Some(Duration::from_secs(1)));
        let f = &raw.processes[0].factors;
        assert!((f.cpu_percent.expect("cpu") - 99.87).abs() < 1e-9);
        assert_eq!(f.pageins_per_sec, Some(12.0));
        assert_eq!((f.mem_bytes, f.csw_per_sec, f.threads), (None, None, None), "not measured: unavailable");
        assert_eq!(raw.processes[0].state, ProcessState::Unspecified);
    }

    #[test]
    fn thermal_pressure_gpu_and_disks_become_system_figures_and_task_disk_io_evidence() {
        let task = PmTask {
            pid: 7,
            disk_read_bytes_per_s: Some(4096.0),
            disk_write_bytes_per_s: Some(512.0),
            ..PmTask::default()
        };
        let sample = PmSample {
            is_delta: Some(true),
            elapsed_ns: Some(1_000_000_000),
            tasks: vec![task],
            thermal_pressure: Some("Heavy".into()),
            gpu_busy_ratio: Some(0.25),
            disk_read_bytes_per_s: Some(1e6),
            disk_write_bytes_per_s: Some(2e6),
            ..PmSample::default()
        };
        let raw = convert(&sample, SystemTime::UNIX_EPOCH);
        let s = &raw.system;
        assert_eq!((s.thermal_pressure(), s.gpu_busy_percent), (ThermalPressure::Heavy, Some(25.0)));
        assert_eq!((s.disk_read_bytes_per_sec, s.disk_write_bytes_per_sec), (Some(1e6), Some(2e6)));
        let f = &raw.processes[0].factors;
        assert_eq!((f.disk_read_bytes_per_sec, f.disk_write_bytes_per_sec), (Some(4096.0), Some(512.0)));
        let not_delta = convert(&PmSample { is_delta: Some(false), ..sample.clone() }, SystemTime::UNIX_EPOCH);
        assert_eq!(not_delta.system.thermal_pressure(), ThermalPressure::Heavy, "a level holds");
        assert_eq!(not_delta.system.gpu_busy_percent, None);
        let newer = PmSample { thermal_pressure: Some("Scorching".into()), ..sample };
        assert_eq!(convert(&newer, SystemTime::UNIX_EPOCH).system.thermal_pressure(), ThermalPressure::Unspecified);
    }

    #[test]
    fn a_document_that_is_not_a_delta_has_no_rates() {
        let task = PmTask { pid: 7, cpu_ms_per_s: Some(31.2), ..PmTask::default() };
        let sample = PmSample { is_delta: Some(false), elapsed_ns: Some(5), tasks: vec![task], ..PmSample::default() };
        let raw = convert(&sample, SystemTime::UNIX_EPOCH);
        assert_eq!((raw.elapsed, raw.processes[0].factors.cpu_percent), (None, None));
    }
}
