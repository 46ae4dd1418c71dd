//! Platforms without forensic steps in this build: a pause event still carries its
//! culprits and the frozen ring's samples.

use super::{Pause, Step};

/// No platform steps.
pub(super) fn steps(_pause: &Pause) -> Vec<Step> {
    Vec::new()
}
