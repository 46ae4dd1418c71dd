//! On macOS the sampler asks for the user-interactive quality of service, the highest a
//! process gets without a real-time entitlement: the scheduler serves it ahead of
//! ordinary work, though a real-time thread can still starve it.

/// Raises the calling thread; returns how it runs now and whether hogs cannot starve it.
pub fn protect_sampler() -> (String, bool) {
    // SAFETY: sets the calling thread's own QoS class; no memory is passed.
    let rc = unsafe { libc::pthread_set_qos_class_self_np(libc::qos_class_t::QOS_CLASS_USER_INTERACTIVE, 0) };
    if rc == 0 {
        ("QoS user-interactive: ahead of ordinary work, not of real-time threads".into(), false)
    } else {
        (format!("ordinary priority: QoS user-interactive refused ({})", std::io::Error::from_raw_os_error(rc)), false)
    }
}
