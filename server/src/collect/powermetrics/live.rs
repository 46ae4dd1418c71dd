//! The live `powermetrics` collector: a supervised child whose plist stream is split
//! and parsed as it arrives.

use std::time::{Duration, Instant, SystemTime};

use super::{PlistSplitter, convert, document};
use crate::collect::{
    CollectError, Collector, RawSample, SourceHealth,
    child::{Child, Output},
};

/// The samplers pmon asks for.
pub const SAMPLERS: &str = "tasks,thermal,cpu_power,gpu_power,disk";

/// The live collector.
pub struct PowermetricsCollector {
    child: Child,
    splitter: PlistSplitter,
    /// The longest `collect` waits for a document before reporting the gap.
    wait: Duration,
    health: SourceHealth,
    bad_documents: u64,
}

impl PowermetricsCollector {
    /// Starts `program` with `prefix` before powermetrics's own arguments (`powermetrics`
    /// on PATH with none, or `sudo` with `-n /usr/bin/powermetrics`) sampling every
    /// `interval` (at least 100 ms).
    pub fn start(program: &str, prefix: &[&str], interval: Duration) -> Result<Self, CollectError> {
        let ms = interval.as_millis().max(100);
        let args = prefix
            .iter()
            .copied()
            .chain(["-f", "plist", "-i", &ms.to_string(), "--samplers", SAMPLERS, "--show-process-io"])
            .map(str::to_string)
            .collect();
        let child = Child::spawn(program.to_string(), args).map_err(|e| CollectError::Source {
            source_name: "powermetrics",
            message: format!("cannot start {program}: {e}"),
        })?;
        let wait =
            Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX / 4).saturating_mul(2)) + Duration::from_secs(1);
        Ok(Self { child, splitter: PlistSplitter::default(), wait, health: SourceHealth::default(), bad_documents: 0 })
    }
}

impl Collector for PowermetricsCollector {
    fn name(&self) -> &'static str {
        "powermetrics"
    }

    fn collect(&mut self) -> Result<RawSample, CollectError> {
        let deadline = Instant::now() + self.wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(output) = (!left.is_zero()).then(|| self.child.next(left)).flatten() else {
                return Err(CollectError::Source {
                    source_name: "powermetrics",
                    message: format!("no sample from powermetrics for {:?}", self.wait),
                });
            };
            match output {
                Output::Bytes(bytes) => {
                    let mut latest = None;
                    for doc in self.splitter.push(&bytes) {
                        match document(&doc) {
                            Ok(sample) => latest = Some(convert(&sample, SystemTime::now())),
                            Err(e) => {
                                self.bad_documents += 1;
                                // Logged once in a hundred: a broken stream would repeat it.
                                if self.bad_documents % 100 == 1 {
                                    tracing::warn!(
                                        bad_documents = self.bad_documents,
                                        "powermetrics document skipped: {e}"
                                    );
                                }
                            }
                        }
                    }
                    if let Some(sample) = latest {
                        return Ok(sample);
                    }
                }
                // A new run starts a new stream: a partial document of the old one is void.
                Output::Started => self.splitter = PlistSplitter::default(),
                Output::Exited(message) => {
                    self.health.restarts += 1;
                    self.health.last_problem = Some((SystemTime::now(), message.clone()));
                    return Err(CollectError::Source { source_name: "powermetrics", message });
                }
            }
        }
    }

    fn health(&self) -> SourceHealth {
        self.health.clone()
    }
}
