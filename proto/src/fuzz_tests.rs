//! Property tests that feed every contract parser arbitrary input: configuration text,
//! time expressions, endpoints, and the encoded requests a server decodes (protobuf from
//! gRPC clients, proto3 JSON as grpcurl users write it). None may panic; each either
//! accepts or says what is wrong.
//!
//! `PMON_FUZZ_CASES` sets the cases per property (CI runs the default); see README.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use prost::Message;

use crate::{
    config::{Config, DEFAULT_FILE},
    endpoint::Endpoint,
    v1,
    when::{parse_duration, parse_time},
};

/// Cases per property: `PMON_FUZZ_CASES`, or a few hundred.
pub(crate) fn cases() -> u32 {
    std::env::var("PMON_FUZZ_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(300)
}

/// Decodes `bytes` as a `T` both ways a server may meet it. The results are dropped:
/// only a panic fails.
fn decode<T: Message + Default + serde::de::DeserializeOwned>(bytes: &[u8]) {
    let _ = T::decode(bytes);
    let _ = serde_json::from_slice::<T>(bytes);
}

/// The defaults file with some bytes replaced: text that is almost a valid config.
fn damaged_defaults(edits: &[(usize, char)]) -> String {
    let mut chars: Vec<char> = DEFAULT_FILE.chars().collect();
    for &(at, c) in edits {
        let at = at % chars.len();
        chars[at] = c;
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn config_parsing_never_panics_on_text(text in ".{0,400}") {
        let _ = Config::parse(&text, "fuzz");
    }

    #[test]
    fn config_parsing_never_panics_on_damaged_defaults(edits in proptest::collection::vec((any::<usize>(), any::<char>()), 1..12)) {
        let _ = Config::parse(&damaged_defaults(&edits), "fuzz");
    }

    #[test]
    fn config_parsing_never_panics_on_extreme_values(
        section in "(sampling|tiers|scoring\\.weights|scoring\\.divisors|history|pause|retention|alerts|events)",
        key in "[a-z_]{1,30}",
        value in prop_oneof![
            any::<f64>().prop_map(|v| format!("{v:?}")),
            any::<i64>().prop_map(|v| v.to_string()),
            Just("nan".to_string()), Just("inf".to_string()), Just("-inf".to_string()),
            "\"[^\"\\\\]{0,20}\"",
        ],
    ) {
        let _ = Config::parse(&format!("[{section}]\n{key} = {value}\n"), "fuzz");
    }

    #[test]
    fn time_expressions_never_panic(input in ".{0,60}", now in 0i64..4_102_444_800) {
        let now = Utc.timestamp_opt(now, 0).single().expect("in range");
        let _ = parse_time(&input, now);
        let _ = parse_duration(&input);
    }

    #[test]
    fn time_expressions_never_panic_on_near_misses(
        n in any::<i64>(),
        unit in "(s|sec|min|minutes|h|hours|d|days|w|weeks|ms)?",
        tail in "( ago)?",
        clock in "([0-9]{1,3}:[0-9]{1,3}(:[0-9]{1,3})?)?",
    ) {
        let now = Utc.timestamp_opt(1_800_000_000, 0).single().expect("in range");
        let _ = parse_time(&format!("{n} {unit}{tail}"), now);
        let _ = parse_time(&format!("yesterday {clock}"), now);
        let _ = parse_duration(&format!("{n}{unit}"));
    }

    #[test]
    fn endpoints_never_panic(input in ".{0,80}", scheme in "(unix|http|https|tcp)?(://)?") {
        let _ = format!("{scheme}{input}").parse::<Endpoint>();
    }

    #[test]
    fn request_decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        decode::<v1::WatchSamplesRequest>(&bytes);
        decode::<v1::GetStatusRequest>(&bytes);
        decode::<v1::GetConfigRequest>(&bytes);
        decode::<v1::ListEventsRequest>(&bytes);
        decode::<v1::GetEventRequest>(&bytes);
        decode::<v1::UpdateEventRequest>(&bytes);
        decode::<v1::QueryHistoryRequest>(&bytes);
        decode::<v1::PruneRequest>(&bytes);
    }

    #[test]
    fn request_json_decoding_never_panics_on_near_misses(
        key in "(status|notes|id|since|until|limit|kind|afterSequence|at|hours|dryRun|[a-z]{1,12})",
        value in prop_oneof![
            any::<i64>().prop_map(|v| v.to_string()),
            any::<f64>().prop_map(|v| format!("{v:?}")),
            "\"[^\"\\\\]{0,24}\"",
            Just("null".to_string()), Just("[]".to_string()), Just("{}".to_string()),
        ],
    ) {
        let json = format!("{{\"{key}\": {value}}}");
        decode::<v1::WatchSamplesRequest>(json.as_bytes());
        decode::<v1::ListEventsRequest>(json.as_bytes());
        decode::<v1::GetEventRequest>(json.as_bytes());
        decode::<v1::UpdateEventRequest>(json.as_bytes());
        decode::<v1::QueryHistoryRequest>(json.as_bytes());
        decode::<v1::PruneRequest>(json.as_bytes());
    }
}
