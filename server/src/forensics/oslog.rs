//! Errors and faults from the unified log around a pause: `log show --style ndjson`
//! prints one JSON object per entry (after an optional plain-text preamble line).

use serde::Deserialize;

/// One log entry, with the fields a person needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// `2026-11-20 14:03:14.702118-0800`.
    pub timestamp: String,
    /// `Default`, `Info`, `Debug`, `Error` or `Fault`.
    #[serde(default)]
    pub message_type: String,
    /// The process's executable path.
    #[serde(default)]
    pub process_image_path: String,
    /// Its pid.
    #[serde(default, rename = "processID")]
    pub process_id: u32,
    /// Subsystem, e.g. `com.apple.hangtracer`.
    #[serde(default)]
    pub subsystem: String,
    /// The message.
    #[serde(default)]
    pub event_message: String,
}

impl Entry {
    /// `14:03:14.702 Fault hangreporter[622]: message`.
    pub fn line(&self) -> String {
        // `14:03:14.702`: twelve characters, cut on a character boundary whatever the text.
        let time = self
            .timestamp
            .split(' ')
            .nth(1)
            .map_or(self.timestamp.as_str(), |t| t.char_indices().nth(12).map_or(t, |(at, _)| &t[..at]));
        let process = self.process_image_path.rsplit('/').next().unwrap_or("?");
        format!("{time} {} {process}[{}]: {}", self.message_type, self.process_id, self.event_message)
    }

    /// Whether it speaks of a hang, a watchdog, memory pressure or a stall.
    pub fn is_telling(&self) -> bool {
        let m = self.event_message.to_lowercase();
        ["hang", "unresponsive", "watchdog", "stall", "timed out", "jetsam", "memory pressure", "spin"]
            .iter()
            .any(|w| m.contains(w))
            || self.subsystem == "com.apple.hangtracer"
    }
}

/// Every entry that parses; other lines (the preamble, truncated output) are skipped.
pub fn parse(text: &str) -> Vec<Entry> {
    text.lines().filter(|l| l.starts_with('{')).filter_map(|l| serde_json::from_str(l).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = include_str!("../../../fixtures/macos/log/show_errors_faults.ndjson");

    #[test]
    fn entries_from_the_fixture() {
        let e = parse(LOG);
        assert_eq!(e.len(), 3);
        assert_eq!(
            e[0].line(),
            "14:03:14.702 Fault hangreporter[622]: Hang detected: WindowServer [153] main thread unresponsive for 2.80s"
        );
        assert_eq!(e[1].process_image_path, "/kernel");
        let telling: Vec<bool> = e.iter().map(Entry::is_telling).collect();
        assert_eq!(telling, vec![true, true, false]);
    }

    #[test]
    fn lines_are_cut_on_character_boundaries() {
        let e = Entry {
            timestamp: "2026-11-20 14:03:14.7é2118-0800".into(),
            message_type: "Fault".into(),
            process_image_path: "/Applications/Café.app/Contents/MacOS/Café".into(),
            process_id: 7,
            subsystem: String::new(),
            event_message: "gelé".into(),
        };
        assert_eq!(e.line(), "14:03:14.7é2 Fault Café[7]: gelé");
        let short = Entry { timestamp: "x 1é".into(), ..e };
        assert!(short.line().starts_with("1é Fault"), "{}", short.line());
    }

    #[test]
    fn truncated_output_is_skipped() {
        let cut = &LOG[..LOG.len() - 40];
        assert_eq!(parse(cut).len(), 2);
        assert!(parse("not json\n{\"timestamp\": 5}\n").is_empty());
    }
}
