//! What a caught panic said, for the logs and the status of the parts that survive
//! one (the sampler, forensic steps).

/// The panic's message, when it was given as a string.
pub fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}
