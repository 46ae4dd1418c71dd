//! The terminal: raw mode and the alternate screen while the dashboard runs, restored
//! on every way out — a normal return, an error (`?`), and a panic (the hook restores
//! before the message is printed, so it lands on the normal screen, readable, and then
//! ends the process).

use std::{
    io::{self, Stdout},
    sync::Once,
};

use crossterm::{
    cursor::{Hide, Show},
    event::{self, Event},
    execute,
    terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode},
};
use ratatui::{Terminal, backend::CrosstermBackend};
use tokio::sync::mpsc;

/// The exit status after a panic, as Rust's own for a panicking main thread.
const PANIC_EXIT: i32 = 101;

/// The terminal in dashboard mode; dropping it gives the terminal back as it was.
pub struct Guard {
    /// The ratatui terminal drawing on stdout.
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Guard {
    /// Switches the terminal to raw mode on the alternate screen.
    pub fn enter() -> io::Result<Guard> {
        install_panic_hook();
        enable_raw_mode()?;
        // From here on a failure must undo what was done before it returns.
        let mut stdout = io::stdout();
        let terminal = execute!(stdout, EnterAlternateScreen, Hide)
            .and_then(|()| Terminal::new(CrosstermBackend::new(stdout)))
            .inspect_err(|_| restore())?;
        Ok(Guard { terminal })
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves raw mode and the alternate screen. Safe to call more than once.
fn restore() {
    let _ = disable_raw_mode();
    let _ = execute!(io::stdout(), LeaveAlternateScreen, Show);
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
            // A panic in a spawned task would otherwise leave the UI loop drawing on the
            // restored terminal.
            std::process::exit(PANIC_EXIT);
        }));
    });
}

/// Reads terminal events (keys, resizes) on a thread of its own, because crossterm's
/// reader blocks; they arrive on the returned channel. The thread ends when the
/// receiver is dropped and the next event comes, or when reading fails.
pub fn events() -> mpsc::Receiver<Event> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        while let Ok(ev) = event::read() {
            if tx.blocking_send(ev).is_err() {
                break;
            }
        }
    });
    rx
}
