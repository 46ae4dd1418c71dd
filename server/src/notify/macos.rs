//! macOS: terminal-notifier when installed (it can be clicked and grouped), else
//! osascript's `display notification`, which every Mac has.

/// The command that shows a notification.
pub(super) fn command(title: &str, body: &str) -> (&'static str, Vec<String>) {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("terminal-notifier").is_file()));
    if on_path {
        return (
            "terminal-notifier",
            vec!["-title".into(), title.into(), "-message".into(), body.into(), "-group".into(), "pmon".into()],
        );
    }
    // AppleScript string literals escape backslashes and double quotes.
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    ("osascript", vec!["-e".into(), format!("display notification {} with title {}", quote(body), quote(title))])
}
