//! Lines for people: one per sample.

use pmon_proto::{
    format::{clock, machine, rogue, stress_of, tier},
    v1::{Sample, TierAction},
};

/// One line per sample: the stress the tier follows, the machine's figure and its
/// reason, and the top rogue.
pub fn sample(s: &Sample) -> String {
    let mut line = format!(
        "{} #{} {:<8} stress {:5.1}  {} procs",
        clock(s.time.as_ref()),
        s.sequence,
        tier(s.tier),
        stress_of(s),
        s.process_count
    );
    if let Some(m) = &s.machine {
        line.push_str("  ");
        line.push_str(&machine(m));
    }
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
