//! Lines for people: one per sample.

use pmon_proto::{
    format::{clock, rogue, tier},
    v1::{Sample, TierAction},
};

/// One line per sample.
pub fn sample(s: &Sample) -> String {
    let mut line = format!(
        "{} #{} {:<8} score {:5.1}  {} procs",
        clock(s.time.as_ref()),
        s.sequence,
        tier(s.tier),
        s.max_score,
        s.process_count
    );
    if let Some(top) = s.rogues.first() {
        line.push_str("  top ");
        line.push_str(&rogue(top));
    }
    for a in &s.tier_actions {
        if let Ok(action) = TierAction::try_from(*a) {
            line.push_str("  [");
            line.push_str(action.as_str_name().trim_start_matches("TIER_ACTION_"));
            line.push(']');
        }
    }
    line
}
