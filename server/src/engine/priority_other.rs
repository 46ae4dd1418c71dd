//! Elsewhere the sampler keeps its ordinary priority.

/// How the sampler runs, and that hogs can starve it.
pub fn protect_sampler() -> (String, bool) {
    ("ordinary priority: this platform offers the sampler no protection from hogs".into(), false)
}
