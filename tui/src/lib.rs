//! `pmon tui`: the live dashboard.
//!
//! ```text
//!  conn (tasks) ──Msg──► state::Data ──┐
//!  term (keys)  ──Key──► input::intent ├──► view::draw (one draw per change)
//!                         ui::View ◄───┘
//!                           └──Request──► conn
//! ```
//!
//! Data state (what the server said), view state (screen, selection, sort, filter),
//! input (keys → intents) and the connection are kept apart: the state and the views
//! are pure, so render tests draw fixed state on ratatui's `TestBackend`.

mod conn;
mod input;
mod order;
mod state;
mod term;
mod ui;
mod view;

use std::time::Duration;

use crossterm::event::Event;
use pmon_proto::endpoint::Endpoint;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};

use crate::{
    state::{Data, Link},
    ui::{Outcome, Request, Screen, View},
};

/// A redraw at least this often, so nothing shown goes stale while nothing arrives.
const SLOW_TICK: Duration = Duration::from_secs(5);

/// Why the dashboard could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The terminal could not be set up or drawn on.
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
    /// The signals that end the dashboard could not be watched.
    #[error("watching SIGTERM, SIGHUP and SIGINT: {0}")]
    Signals(std::io::Error),
}

/// Resolves at the first SIGTERM, SIGHUP or SIGINT. The handlers are in place when this
/// returns, so from then on those signals no longer kill the process outright.
fn stop_signal() -> std::io::Result<impl Future<Output = ()>> {
    let (mut term, mut hangup, mut interrupt) =
        (signal(SignalKind::terminate())?, signal(SignalKind::hangup())?, signal(SignalKind::interrupt())?);
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = hangup.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

/// Runs the dashboard against `endpoint` until the user quits. Server loss is not an
/// error: the dashboard says so and reconnects.
pub async fn run(endpoint: Endpoint) -> Result<(), Error> {
    let target = endpoint.to_string();
    let mut guard = term::Guard::enter()?;
    let (tx, mut msgs) = mpsc::channel(256);
    let requests = conn::spawn(endpoint, tx);
    let mut keys = term::events();
    let mut data = Data { link: Some(Link::Connecting), ..Data::default() };
    let mut view = View::default();
    // A signal ends the loop like `q` does, so the guard gives the terminal back.
    let stop = stop_signal().map_err(Error::Signals)?;
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(SLOW_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        guard.terminal.draw(|frame| view.scroll_max = view::draw(frame, &data, &view, &target))?;
        tokio::select! {
            Some(msg) = msgs.recv() => {
                let newest = data.recent.first().map(|e| e.id);
                view.answered(&msg);
                data.apply(msg);
                // Whatever else is already queued goes into the same frame.
                while let Ok(msg) = msgs.try_recv() {
                    view.answered(&msg);
                    data.apply(msg);
                }
                // A new event while the events screen is open: list it there too.
                if view.screen == Screen::Events && data.recent.first().map(|e| e.id) != newest {
                    let _ = requests.send(Request::List(view.filter.request()));
                }
            }
            Some(event) = keys.recv() => match event {
                Event::Key(key) => {
                    let Some(intent) = input::intent(key, view.typing.is_some()) else { continue };
                    match view.handle(intent, &data) {
                        Outcome::Quit => break,
                        Outcome::Ask(request) => {
                            // The request task lives as long as this loop.
                            let _ = requests.send(request);
                        }
                        Outcome::Stay => {}
                    }
                }
                // ratatui resizes its buffers on the next draw.
                Event::Resize(..) => {}
                _ => continue,
            },
            _ = tick.tick() => {}
            () = &mut stop => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[tokio::test]
    async fn each_ending_signal_stops_the_dashboard() {
        for name in ["HUP", "TERM", "INT"] {
            let stop = super::stop_signal().expect("signal handlers");
            let sent = std::process::Command::new("kill")
                .args([&format!("-{name}"), &std::process::id().to_string()])
                .status()
                .expect("run kill");
            assert!(sent.success(), "kill -{name}");
            tokio::time::timeout(Duration::from_secs(10), stop).await.unwrap_or_else(|_| panic!("SIG{name} ignored"));
        }
    }
}
