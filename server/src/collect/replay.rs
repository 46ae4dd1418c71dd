//! The `replay` source: a capture made elsewhere — a `top -l` log, a `powermetrics -f
//! plist` stream or pmon's own recording, told apart by how it begins — fed through the
//! same engine, at the recorded pace (times a speed) or as fast as possible.
//!
//! ```text
//! file ──detect──► top parser + converter │ plist splitter + parser │ recording reader ──► RawSample …
//! ```
//!
//! The capture is read a chunk at a time as samples are needed: a day of `top` logs is
//! never in memory whole.
//!
//! Samples keep their recorded times, and the engine runs its clock on them
//! ([`Collector::recorded_offset`]), so tiers, hysteresis and events come out the same
//! whatever the replay speed.

use std::{
    collections::VecDeque,
    io::Read,
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

/// Turns a capture's bytes into samples as they are read, so a long capture is never
/// held in memory whole.
enum Decoder {
    Top { parser: Box<top::TopParser>, converter: top::TopConverter, prev: Option<NaiveDateTime>, untimed: u64 },
    Powermetrics { splitter: powermetrics::PlistSplitter, bad: u64 },
    Recording { pending: Vec<u8>, header_seen: bool, bad: u64 },
}

impl Decoder {
    fn new(format: Format) -> Decoder {
        match format {
            Format::Top => {
                Decoder::Top { parser: Box::default(), converter: top::TopConverter::default(), prev: None, untimed: 0 }
            }
            Format::Powermetrics => Decoder::Powermetrics { splitter: powermetrics::PlistSplitter::default(), bad: 0 },
            Format::Recording => Decoder::Recording { pending: Vec::new(), header_seen: false, bad: 0 },
        }
    }

    /// Feeds bytes (`None`: the end of the capture); completed samples go to `out`.
    fn push(&mut self, bytes: Option<&[u8]>, out: &mut VecDeque<RawSample>) -> Result<(), String> {
        match self {
            Decoder::Top { parser, converter, prev, untimed } => {
                let parsed = match bytes {
                    Some(b) => parser.push(b),
                    None => parser.finish().into_iter().collect(),
                };
                for sample in &parsed {
                    // A top log's times are local to where it was captured (set TZ to
                    // that zone); a sample without its time cannot be placed.
                    let Some((naive, time)) = sample.time.and_then(|t| Some((t, local(t)?))) else {
                        *untimed += 1;
                        continue;
                    };
                    let elapsed = prev.and_then(|p| (naive - p).to_std().ok());
                    *prev = Some(naive);
                    out.push_back(converter.convert(sample, time, elapsed));
                }
            }
            Decoder::Powermetrics { splitter, bad } => {
                let docs = match bytes {
                    Some(b) => splitter.push(b),
                    None => splitter.finish().into_iter().collect(),
                };
                for doc in docs {
                    match powermetrics::document(&doc) {
                        Ok(s) => match s.time {
                            Some(time) => out.push_back(powermetrics::convert(&s, time)),
                            None => *bad += 1,
                        },
                        Err(_) => *bad += 1,
                    }
                }
            }
            Decoder::Recording { pending, header_seen, bad } => {
                match bytes {
                    Some(b) => pending.extend_from_slice(b),
                    None => pending.push(b'\n'),
                }
                let mut start = 0;
                while let Some(end) = pending[start..].iter().position(|c| *c == b'\n') {
                    let line = String::from_utf8_lossy(&pending[start..start + end]).into_owned();
                    start += end + 1;
                    if line.trim().is_empty() {
                        continue;
                    }
                    if !*header_seen {
                        recording::header(&line)?;
                        *header_seen = true;
                    } else if let Some(sample) = recording::line(&line) {
                        out.push_back(sample);
                    } else {
                        *bad += 1;
                    }
                }
                pending.drain(..start);
            }
        }
        Ok(())
    }

    /// Lines (top, recording) or documents (powermetrics) that could not be parsed.
    fn unparsed(&self) -> u64 {
        match self {
            Decoder::Top { parser, untimed, .. } => parser.unparsed_lines() + untimed,
            Decoder::Powermetrics { splitter, bad } => splitter.dropped() + bad,
            Decoder::Recording { bad, .. } => *bad,
        }
    }
}

fn local(t: NaiveDateTime) -> Option<SystemTime> {
    Local.from_local_datetime(&t).earliest().map(SystemTime::from)
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

/// Bytes read from the capture at a time.
const CHUNK: usize = 256 * 1024;

/// The replay collector.
pub struct Replay {
    path: PathBuf,
    format: Format,
    file: Option<std::fs::File>,
    decoder: Decoder,
    ready: VecDeque<RawSample>,
    replayed: u64,
    speed: Speed,
    /// When the first sample was handed out, and its recorded time.
    start: Option<(Instant, SystemTime)>,
    offset: Option<Duration>,
}

impl Replay {
    /// Opens the capture at `path` and tells its format from its first bytes.
    pub fn open(path: &Path, speed: Speed) -> Result<Replay, CollectError> {
        let fail = |message: String| CollectError::Replay { path: path.display().to_string(), message };
        let mut file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
        let mut head = Vec::new();
        // Enough to see past leading blank space to the first characters.
        (&mut file).take(4096).read_to_end(&mut head).map_err(|e| fail(e.to_string()))?;
        let format = Format::detect(&head).ok_or_else(|| {
            fail(
                "not a capture pmon can replay: expected a `top -l` log (starting with \"Processes:\"), a \
                  `powermetrics -f plist` stream (starting with \"<?xml\") or a pmon recording (from --record)"
                    .into(),
            )
        })?;
        let mut replay = Replay {
            path: path.to_path_buf(),
            format,
            file: Some(file),
            decoder: Decoder::new(format),
            ready: VecDeque::new(),
            replayed: 0,
            speed,
            start: None,
            offset: None,
        };
        replay.decoder.push(Some(&head), &mut replay.ready).map_err(fail)?;
        Ok(replay)
    }

    /// The next sample, reading on as needed; `None` at the end of the capture.
    fn next_sample(&mut self) -> Result<Option<RawSample>, CollectError> {
        let fail = |message: String| CollectError::Replay { path: self.path.display().to_string(), message };
        while self.ready.is_empty() {
            let Some(file) = &mut self.file else { break };
            let mut buf = Vec::with_capacity(CHUNK);
            let n = file.take(CHUNK as u64).read_to_end(&mut buf).map_err(|e| fail(e.to_string()))?;
            if n == 0 {
                self.file = None;
                self.decoder.push(None, &mut self.ready).map_err(fail)?;
            } else {
                self.decoder.push(Some(&buf), &mut self.ready).map_err(fail)?;
            }
        }
        Ok(self.ready.pop_front())
    }

    /// What was replayed so far.
    pub fn summary(&self) -> Summary {
        let unit = if self.format == Format::Powermetrics { "documents" } else { "lines" };
        Summary {
            path: self.path.clone(),
            format: self.format.name(),
            samples: self.replayed,
            unparsed: self.decoder.unparsed(),
            unit,
        }
    }
}

impl Collector for Replay {
    fn name(&self) -> &'static str {
        "replay"
    }

    fn collect(&mut self) -> Result<RawSample, CollectError> {
        let Some(sample) = self.next_sample()? else {
            return Err(CollectError::Finished);
        };
        self.replayed += 1;
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
