//! `pmon tui`: the live dashboard.
//!
//! ```text
//!  conn (tasks) ──Msg──► state::Data ──┐
//!  term (keys)  ──Key──► input::intent ├──► view::draw (one draw per change)
//!                         ui::View ◄───┘
//!                           └──Request──► conn
//! ```
//!
//! With several machines (`pmon tui --remote a,b`), [`run_fleet`] shows an overview of
//! them first ([`fleet`]), and each machine's dashboard is the loop above.
//!
//! Data state (what the server said), view state (screen, selection, sort, filter),
//! input (keys → intents) and the connection are kept apart: the state and the views
//! are pure, so render tests draw fixed state on ratatui's `TestBackend`.

mod conn;
mod fleet;
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
    input::Intent,
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
    let mut guard = term::Guard::enter()?;
    let mut keys = term::events();
    // A signal ends the loop like `q` does, so the guard gives the terminal back.
    let stop = stop_signal().map_err(Error::Signals)?;
    tokio::pin!(stop);
    let target = endpoint.to_string();
    dashboard(&mut guard, endpoint, &target, &mut keys, &mut stop, false).await.map(|_| ())
}

/// Runs the overview of many machines, `(name, endpoint)`, until the user quits; Enter
/// opens the selected machine's dashboard, Esc there comes back.
pub async fn run_fleet(machines: Vec<(String, Endpoint)>) -> Result<(), Error> {
    let mut guard = term::Guard::enter()?;
    let mut keys = term::events();
    let stop = stop_signal().map_err(Error::Signals)?;
    tokio::pin!(stop);
    let (tx, mut updates) = mpsc::channel(64);
    for (index, (_, endpoint)) in machines.iter().enumerate() {
        tokio::spawn(fleet::poll(index, endpoint.clone(), tx.clone()));
    }
    let names: Vec<String> = machines.iter().map(|(n, _)| n.clone()).collect();
    let mut rows = vec![fleet::Row::default(); machines.len()];
    let mut selected = 0usize;
    let mut tick = tokio::time::interval(SLOW_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        guard.terminal.draw(|frame| fleet::draw(frame, &names, &rows, selected))?;
        tokio::select! {
            Some((index, row)) = updates.recv() => rows[index] = row,
            Some(event) = keys.recv() => {
                let Event::Key(key) = event else { continue };
                match input::intent(key, false) {
                    Some(Intent::Quit) => break,
                    Some(Intent::Up) => selected = selected.saturating_sub(1),
                    Some(Intent::Down) => selected = (selected + 1).min(machines.len().saturating_sub(1)),
                    Some(Intent::Open) => {
                        let (name, endpoint) = &machines[selected];
                        let target = format!("{name} ({endpoint})");
                        let exit = dashboard(&mut guard, endpoint.clone(), &target, &mut keys, &mut stop, true).await?;
                        if exit == Exit::Quit {
                            break;
                        }
                    }
                    _ => {}
                }
            }
            _ = tick.tick() => {}
            () = &mut stop => break,
        }
    }
    Ok(())
}

/// How a dashboard ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// `q`, or a signal: leave pmon.
    Quit,
    /// Esc on the dashboard of a machine opened from the overview: back to it.
    Back,
}

/// One machine's dashboard, on the terminal of `guard`, until it ends. With `in_fleet`,
/// Esc on the dashboard screen goes back to the overview; alone, it does nothing there.
async fn dashboard(
    guard: &mut term::Guard,
    endpoint: Endpoint,
    target: &str,
    keys: &mut mpsc::Receiver<Event>,
    stop: &mut (impl Future<Output = ()> + Unpin),
    in_fleet: bool,
) -> Result<Exit, Error> {
    // The connection's tasks end when this loop's receiver is dropped.
    let (tx, mut msgs) = mpsc::channel(256);
    let requests = conn::spawn(endpoint, tx);
    let mut data = Data { link: Some(Link::Connecting), ..Data::default() };
    let mut view = View::default();
    let mut tick = tokio::time::interval(SLOW_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        guard.terminal.draw(|frame| view.scroll_max = view::draw(frame, &data, &view, target))?;
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
                    let at_top = view.screen == Screen::Dashboard && !view.help && view.typing.is_none();
                    if in_fleet && at_top && intent == Intent::Back {
                        return Ok(Exit::Back);
                    }
                    match view.handle(intent, &data) {
                        Outcome::Quit => return Ok(Exit::Quit),
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
            () = &mut *stop => return Ok(Exit::Quit),
        }
    }
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
