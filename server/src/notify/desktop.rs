//! Linux and other freedesktop systems: `notify-send` talks to the desktop's
//! notification service (org.freedesktop.Notifications on the session bus).

/// The command that shows a notification.
pub(super) fn command(title: &str, body: &str) -> (&'static str, Vec<String>) {
    ("notify-send", vec!["--app-name=pmon".into(), title.into(), body.into()])
}
