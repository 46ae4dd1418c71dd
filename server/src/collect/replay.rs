//! The `replay` source: a capture made elsewhere — a `top -l` log, a `powermetrics -f
//! plist` stream or pmon's own recording, told apart by how it begins — fed through the
//! same engine, at the recorded pace (times a speed) or as fast as possible.
//!
//! ```text
//! file ──detect──► top parser + converter │ plist splitter + parser │ recording reader ──► RawSample …
//! ```
//!
//! Samples keep their recorded times, and the engine runs its clock on them
//! ([`Collector::recorded_offset`]), so tiers, hysteresis and events come out the same
//! whatever the replay speed.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use chrono::{Local, NaiveDateTime, TimeZone};

use super::{CollectError, Collector, RawSample, powermetrics, recording, top};

/// How fast to replay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// This many times the recorded pace (1 = as recorded).
    Times(f64),
    /// No waiting at all.
    Max,
}

impl std::str::FromStr for Speed {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "max" {
            return Ok(Speed::Max);
        }
        match s.parse::<f64>() {
            Ok(x) if x.is_finite() && x > 0.0 => Ok(Speed::Times(x)),
            _ => Err(format!("replay speed {s:?} is neither a positive number (1 = recorded pace) nor max")),
        }
    }
}

/// The formats a capture can be in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Format {
    /// `top -l` logging output.
    Top,
    /// `powermetrics -f plist` stream.
    Powermetrics,
    /// pmon's own recording.
    Recording,
}

impl Format {
    /// Tells the format from the first bytes of a capture.
    pub fn detect(bytes: &[u8]) -> Option<Format> {
        let start = bytes.trim_ascii_start();
        if recording::looks_like(start) {
            Some(Format::Recording)
        } else if start.starts_with(b"<?xml") || start.starts_with(b"<plist") {
            Some(Format::Powermetrics)
        } else if start.starts_with(b"Processes:") {
            Some(Format::Top)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Top => "top log",
            Format::Powermetrics => "powermetrics stream",
            Format::Recording => "pmon recording",
        }
    }
}

/// A capture read into samples.
#[derive(Debug)]
pub struct Capture {
    /// Its format.
    pub format: Format,
    /// Its samples, in order.
    pub samples: Vec<RawSample>,
    /// Lines (top, recording) or documents (powermetrics) that could not be parsed.
    pub unparsed: u64,
}

impl Capture {
    /// Reads a capture from its bytes.
    pub fn parse(bytes: &[u8]) -> Result<Capture, String> {
        let format = Format::detect(bytes).ok_or(
            "not a capture pmon can replay: expected a `top -l` log (starting with \"Processes:\"), a \
             `powermetrics -f plist` stream (starting with \"<?xml\") or a pmon recording (from --record)",
        )?;
        let (samples, unparsed) = match format {
            Format::Top => top_samples(bytes),
            Format::Powermetrics => powermetrics_samples(bytes),
            Format::Recording => recording::read(&String::from_utf8_lossy(bytes))?,
        };
        Ok(Capture { format, samples, unparsed })
    }
}

/// A `top` log: times come from each sample's header (local time of this machine; set
/// TZ to the capture's zone), rates from the time between headers.
fn top_samples(bytes: &[u8]) -> (Vec<RawSample>, u64) {
    let mut parser = top::TopParser::default();
    let mut parsed = parser.push(bytes);
    parsed.extend(parser.finish());
    let mut unparsed = parser.unparsed_lines();
    let mut converter = top::TopConverter::default();
    let mut prev: Option<NaiveDateTime> = None;
    let mut samples = Vec::with_capacity(parsed.len());
    for sample in &parsed {
        // Without its time a sample cannot be placed in the replay.
        let Some((naive, time)) = sample.time.and_then(|t| Some((t, local(t)?))) else {
            unparsed += 1;
            continue;
        };
        let elapsed = prev.and_then(|p| (naive - p).to_std().ok());
        prev = Some(naive);
        samples.push(converter.convert(sample, time, elapsed));
    }
    (samples, unparsed)
}

fn local(t: NaiveDateTime) -> Option<SystemTime> {
    Local.from_local_datetime(&t).earliest().map(SystemTime::from)
}

/// A powermetrics stream: times and intervals are the documents' own.
fn powermetrics_samples(bytes: &[u8]) -> (Vec<RawSample>, u64) {
    let mut splitter = powermetrics::PlistSplitter::default();
    let mut docs = splitter.push(bytes);
    docs.extend(splitter.finish());
    let mut unparsed = splitter.dropped();
    let mut samples = Vec::with_capacity(docs.len());
    for doc in docs {
        match powermetrics::document(&doc) {
            Ok(s) if s.time.is_some() => {
                samples.push(powermetrics::convert(&s, s.time.unwrap_or(SystemTime::UNIX_EPOCH)))
            }
            _ => unparsed += 1,
        }
    }
    (samples, unparsed)
}

/// What a finished replay reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The capture.
    pub path: PathBuf,
    /// Its format.
    pub format: &'static str,
    /// Samples fed to the engine.
    pub samples: u64,
    /// Lines or documents that could not be parsed.
    pub unparsed: u64,
    /// "lines" or "documents".
    pub unit: &'static str,
}

/// The replay collector.
pub struct Replay {
    path: PathBuf,
    capture: Capture,
    next: usize,
    speed: Speed,
    /// When the first sample was handed out, and its recorded time.
    start: Option<(Instant, SystemTime)>,
    offset: Option<Duration>,
}

impl Replay {
    /// Reads the capture at `path`.
    pub fn open(path: &Path, speed: Speed) -> Result<Replay, CollectError> {
        let fail = |message: String| CollectError::Replay { path: path.display().to_string(), message };
        let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        let capture = Capture::parse(&bytes).map_err(fail)?;
        Ok(Replay { path: path.to_path_buf(), capture, next: 0, speed, start: None, offset: None })
    }

    /// What was replayed so far.
    pub fn summary(&self) -> Summary {
        let unit = if self.capture.format == Format::Powermetrics { "documents" } else { "lines" };
        Summary {
            path: self.path.clone(),
            format: self.capture.format.name(),
            samples: self.next as u64,
            unparsed: self.capture.unparsed,
            unit,
        }
    }
}

impl Collector for Replay {
    fn name(&self) -> &'static str {
        "replay"
    }

    fn collect(&mut self) -> Result<RawSample, CollectError> {
        let Some(sample) = self.capture.samples.get(self.next).cloned() else {
            return Err(CollectError::Finished);
        };
        self.next += 1;
        let (started, first) = *self.start.get_or_insert((Instant::now(), sample.time));
        // A capture whose clock went backwards replays that sample at once.
        let offset = sample.time.duration_since(first).unwrap_or(Duration::ZERO);
        self.offset = Some(offset);
        if let Speed::Times(x) = self.speed {
            let due = started + offset.div_f64(x);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        Ok(sample)
    }

    fn recorded_offset(&self) -> Option<Duration> {
        self.offset
    }

    fn self_paced(&self) -> bool {
        true
    }

    fn replay_summary(&self) -> Option<Summary> {
        Some(self.summary())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/macos").join(path)
    }

    #[test]
    fn each_format_is_detected_and_replayed_in_order() {
        let mut top = Replay::open(&fixture("top/stream_pmon_stats.log"), Speed::Max).expect("top log");
        let times: Vec<SystemTime> = std::iter::from_fn(|| top.collect().ok()).map(|s| s.time).collect();
        assert_eq!(times.len(), 4);
        assert!(times.windows(2).all(|w| w[1].duration_since(w[0]).ok() == Some(Duration::from_secs(1))), "{times:?}");
        assert_eq!(top.recorded_offset(), Some(Duration::from_secs(3)));
        assert!(matches!(top.collect(), Err(CollectError::Finished)), "finite");
        let s = top.summary();
        assert_eq!((s.format, s.samples, s.unparsed, s.unit), ("top log", 4, 0, "lines"));

        let mut pm = Replay::open(&fixture("powermetrics/vm_nul_between_no_newline.plist"), Speed::Max).expect("plist");
        assert_eq!(pm.collect().expect("first").processes.len(), 2);
        assert_eq!(pm.summary().format, "powermetrics stream");
    }

    #[test]
    fn the_second_top_sample_is_rated_over_the_recorded_second() {
        let mut top = Replay::open(&fixture("top/stream_pmon_stats.log"), Speed::Max).expect("top log");
        top.collect().expect("first");
        let second = top.collect().expect("second");
        assert_eq!(second.elapsed, Some(Duration::from_secs(1)));
        let mds = second.processes.iter().find(|p| p.pid == 666).expect("mds_stores");
        assert_eq!(mds.factors.pageins_per_sec, Some(1500.0));
    }

    #[test]
    fn recorded_pace_waits_between_samples() {
        let mut top = Replay::open(&fixture("top/stream_pmon_stats.log"), Speed::Times(10.0)).expect("top log");
        let t0 = Instant::now();
        top.collect().expect("first");
        top.collect().expect("second");
        assert!(t0.elapsed() >= Duration::from_millis(100), "one recorded second at 10× is 100 ms");
    }

    #[test]
    fn bad_captures_and_speeds_are_refused_with_what_is_accepted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, "hello\n").expect("write");
        let err = Replay::open(&path, Speed::Max).err().expect("refused").to_string();
        assert!(err.contains("notes.txt") && err.contains("Processes:") && err.contains("--record"), "{err}");
        let missing = Replay::open(&dir.path().join("none"), Speed::Max).err().expect("refused").to_string();
        assert!(missing.contains("none"), "{missing}");
        assert_eq!("max".parse::<Speed>(), Ok(Speed::Max));
        assert_eq!("2.5".parse::<Speed>(), Ok(Speed::Times(2.5)));
        assert!("0".parse::<Speed>().is_err() && "fast".parse::<Speed>().is_err());
    }
}
