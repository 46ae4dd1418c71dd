//! Platforms without forensic steps in this build: a pause event still carries its
//! culprits and the frozen ring's samples.

use super::{Pause, Step};

/// The step whose stack report says who waited on whom: no stack report: the announcement goes out at once.
pub(super) const WAITS_STEP: Option<&str> = None;

/// No platform steps.
pub(super) fn steps(_pause: &Pause) -> Vec<Step> {
    Vec::new()
}
