use std::{sync::Arc, time::Duration};

use pmon_proto::v1::{Rogue, Sample, Tier};
use prometheus_client::{collector::Collector, encoding::DescriptorEncoder, registry::Registry};

use super::*;
use crate::{cost::CostFigures, engine::EngineStatus, hub::Hub};

/// One snapshot in the OpenMetrics text format, `# EOF` included.
fn render(snapshot: &Snapshot) -> String {
    encode(&registry_of(snapshot))
}

/// The same in the Prometheus text format.
fn render_prometheus(snapshot: &Snapshot) -> String {
    encode_prometheus_text(&registry_of(snapshot))
}

fn registry_of(snapshot: &Snapshot) -> Registry {
    #[derive(Debug)]
    struct Fixed(Snapshot);
    impl Collector for Fixed {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            self.0.encode(&mut encoder)
        }
    }
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Fixed(snapshot.clone())));
    registry
}

fn status() -> EngineStatus {
    EngineStatus {
        sample_count: 0,
        failed_samples: 0,
        latest: None,
        tier: Tier::Sentinel,
        interval: Duration::from_secs(1),
        pauses: 0,
        pause_stalls: PauseStalls::default(),
        cost: CostFigures {
            cpu_percent: None,
            cpu_total: Duration::ZERO,
            last_sample_cpu: None,
            mean_sample_cpu: None,
        },
        source: crate::collect::SourceHealth::default(),
        escalations: 0,
        finished: None,
        sampler_priority: String::new(),
        sampler_protected: false,
        last_pause: None,
        suspensions: 0,
        sampler_panics: 0,
        last_sampler_panic: None,
        forensic_panics: 0,
    }
}

/// A sample whose top rogue scores `score` while the machine figure is 60.
fn sample(sequence: u64, pid: u32, command: &str, score: f64) -> Arc<Sample> {
    Arc::new(Sample {
        sequence,
        max_score: score,
        stress: score.max(60.0),
        machine: Some(pmon_proto::v1::MachineStress { score: 60.0, ..Default::default() }),
        rogues: vec![Rogue { pid, command: command.into(), score, ..Default::default() }],
        ..Default::default()
    })
}

#[test]
fn before_the_first_sample_unknown_figures_are_left_out() {
    let text = render(&Snapshot::read(&status(), (0, 0), 0, None));
    assert!(!text.contains("pmon_max_score"), "{text}");
    assert!(!text.contains("pmon_stress") && !text.contains("pmon_machine_stress"), "{text}");
    assert!(!text.contains("pmon_top_rogue_score"), "{text}");
    assert!(!text.contains("pmon_self_cpu_percent"), "{text}");
    assert!(!text.contains("pmon_self_resident"), "{text}");
    assert!(text.contains("pmon_tier 1\n"), "{text}");
    assert!(text.contains("pmon_pauses_total 0\n"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn every_listed_metric_is_written_with_its_type() {
    let mut s = status();
    s.latest = Some(sample(42, 7, "backupd \"nightly\"\n", 81.5));
    s.tier = Tier::Critical;
    s.sample_count = 42;
    s.failed_samples = 1;
    s.pause_stalls.observe(Duration::from_millis(2_500));
    s.cost = CostFigures {
        cpu_percent: Some(0.4),
        cpu_total: Duration::from_millis(1_500),
        last_sample_cpu: Some(Duration::from_micros(900)),
        mean_sample_cpu: Some(Duration::from_micros(800)),
    };
    s.suspensions = 2;
    s.sampler_panics = 3;
    s.forensic_panics = 1;
    s.last_pause = Some(crate::engine::LastPause {
        event_id: 12,
        culprit: Some("hog".into()),
        cause: pmon_proto::v1::StallCause::Machine,
    });
    let text = render(&Snapshot::read(&s, (3, 17), 5, Some(5 << 20)));
    for line in [
        "# TYPE pmon_max_score gauge",
        "pmon_max_score 81.5",
        "# TYPE pmon_stress gauge",
        "pmon_stress 81.5",
        "# TYPE pmon_machine_stress gauge",
        "pmon_machine_stress 60.0",
        "pmon_tier 3",
        "# TYPE pmon_samples counter",
        "pmon_samples_total 42",
        "pmon_failed_samples_total 1",
        "pmon_watcher_missed_samples_total 17",
        "pmon_lost_writes_total 5",
        "pmon_watchers 3",
        "pmon_pauses_total 1",
        "pmon_server_suspensions_total 2",
        "pmon_sampler_panics_total 3",
        "pmon_forensic_panics_total 1",
        "pmon_last_pause_event{culprit=\"hog\",cause=\"machine\"} 12",
        "# TYPE pmon_pause_duration_seconds histogram",
        "pmon_pause_duration_seconds_bucket{le=\"2.0\"} 0",
        "pmon_pause_duration_seconds_bucket{le=\"4.0\"} 1",
        "pmon_pause_duration_seconds_bucket{le=\"+Inf\"} 1",
        "pmon_pause_duration_seconds_count 1",
        "pmon_self_cpu_percent 0.4",
        "pmon_self_cpu_seconds_total 1.5",
        "pmon_self_sample_cpu_seconds 0.0008",
        "pmon_self_resident_bytes 5242880",
        // The encoder escapes quotes and newlines in the label value.
        "pmon_top_rogue_score{command=\"backupd \\\"nightly\\\"\\n\"} 81.5",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
    }
}

/// Series (sample lines) in an exposition, by metric name prefix.
fn series(text: &str, prefix: &str) -> usize {
    text.lines().filter(|l| !l.starts_with('#') && l.starts_with(prefix)).count()
}

#[test]
fn the_top_rogue_stays_one_series_through_a_churn_of_10000_pids() {
    let (tx, rx) = tokio::sync::watch::channel(status());
    let hub = Arc::new(Hub::new(Duration::from_secs(30), 8, 1));
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _writer, _) = crate::store::Store::open(dir.path()).expect("store");
    let registry = registry(rx, hub, store);
    let first = encode(&registry);
    let mut most_lines = 0;
    for i in 0..10_000u32 {
        let command = format!("worker-{i}-{}", "x".repeat((i % 200) as usize));
        tx.send_modify(|s| {
            s.sample_count = u64::from(i) + 1;
            s.latest = Some(sample(u64::from(i) + 1, 100_000 + i, &command, f64::from(i % 100)));
        });
        let text = encode(&registry);
        assert_eq!(series(&text, "pmon_top_rogue_score"), 1, "iteration {i}:\n{text}");
        let label = text.lines().find(|l| l.starts_with("pmon_top_rogue_score{")).expect("the series");
        assert!(label.contains(&format!("worker-{i}-")), "the current top rogue, not an old one: {label}");
        assert!(label.len() < 120, "the command label is bounded: {label}");
        most_lines = most_lines.max(text.lines().count());
    }
    // The whole exposition never grows beyond the start plus the max score, the stress,
    // the machine figure (three lines each) and the one rogue series.
    assert!(most_lines <= first.lines().count() + 12, "{most_lines} lines vs {} at start", first.lines().count());
}

#[test]
fn the_prometheus_text_form_names_counters_by_their_samples() {
    let mut s = status();
    s.latest = Some(sample(1, 7, "hog", 12.0));
    s.sample_count = 1;
    let snapshot = Snapshot::read(&s, (0, 0), 0, Some(1));
    let (openmetrics, text) = (render(&snapshot), render_prometheus(&snapshot));
    for line in [
        "# HELP pmon_samples_total Samples taken since the server started",
        "# TYPE pmon_samples_total counter",
        "pmon_samples_total 1",
        "# TYPE pmon_self_cpu_seconds_total counter",
        "# TYPE pmon_self_resident_bytes gauge",
        "# TYPE pmon_pause_duration_seconds histogram",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
    }
    assert!(!text.contains("# UNIT") && !text.contains("# EOF"), "{text}");
    assert_eq!(
        text.lines().filter(|l| !l.starts_with('#')).count(),
        openmetrics.lines().filter(|l| !l.starts_with('#')).count(),
        "the same samples"
    );
}

proptest::proptest! {
    #[test]
    fn any_command_makes_one_valid_bounded_series(command in "\\PC{0,300}", score in 0.0f64..100.0) {
        let mut s = status();
        s.latest = Some(sample(1, 1, &command, score));
        let snapshot = Snapshot::read(&s, (0, 0), 0, None);
        let text = render(&snapshot);
        let series: Vec<&str> = text.lines().filter(|l| l.starts_with("pmon_top_rogue_score{")).collect();
        proptest::prop_assert_eq!(series.len(), 1, "{}", text);
        // One line per series: quotes, backslashes and newlines in the name are escaped.
        proptest::prop_assert!(text.ends_with("# EOF\n"));
        let prometheus = render_prometheus(&snapshot);
        proptest::prop_assert_eq!(
            prometheus.lines().filter(|l| l.starts_with("pmon_top_rogue_score{")).count(),
            1
        );
    }
}
