//! The connection: one task keeps the sample stream open, polls status and the newest
//! events, and reconnects with backoff when the server goes away; another answers the
//! screens' requests. Both report to the UI loop as [`Msg`]s over a channel, so the
//! UI never waits on the network.
//!
//! ```text
//! server ──WatchSamples──► stream task ──Msg──┐
//!        ◄─GetStatus, ListEvents (polled)─┘    ├──► UI loop (state.apply, redraw)
//!        ◄─ListEvents, GetEvent, UpdateEvent── request task ◄── Request ── UI loop
//! ```

use std::time::Duration;

use pmon_proto::{
    config::Config,
    endpoint::{Client, Endpoint},
    v1::{GetConfigRequest, GetEventRequest, GetStatusRequest, ListEventsRequest, WatchSamplesRequest},
};
use tokio::sync::mpsc;

use crate::{state::Msg, ui::Request};

/// First retry delay after the server is lost; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often status and the newest events are refreshed.
const POLL: Duration = Duration::from_secs(2);
/// The longest a polling call may take; the stream, not the poll, says whether the
/// server is there.
const POLL_TIMEOUT: Duration = Duration::from_secs(5);
/// How many recent events the dashboard asks for.
const RECENT: u32 = 8;

/// The delay before attempt `attempt` (1-based) after a loss.
pub fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(1 << attempt.saturating_sub(1).min(16)).min(MAX_BACKOFF)
}

/// Starts both tasks; returns where to send requests. They end when the UI drops its
/// receiver of messages.
pub fn spawn(endpoint: Endpoint, msgs: mpsc::Sender<Msg>) -> mpsc::UnboundedSender<Request> {
    let (requests, inbox) = mpsc::unbounded_channel();
    tokio::spawn(stream_task(endpoint.clone(), msgs.clone()));
    tokio::spawn(request_task(endpoint, msgs, inbox));
    requests
}

/// Why the stream stopped: the UI went away (stop) or the server did (retry).
enum Stop {
    Ui,
    Lost(String),
}

async fn stream_task(endpoint: Endpoint, msgs: mpsc::Sender<Msg>) {
    // Where to resume: the last sequence seen and the server run it came from.
    let mut resume: Option<(u64, u64)> = None;
    let mut attempt = 0u32;
    loop {
        let reason = match watch(&endpoint, &msgs, &mut resume, &mut attempt).await {
            Stop::Ui => return,
            Stop::Lost(reason) => reason,
        };
        attempt += 1;
        let delay = backoff(attempt);
        let lost = Msg::Lost { attempt, reason, retry_in_secs: delay.as_secs_f64() };
        if msgs.send(lost).await.is_err() {
            return;
        }
        tokio::time::sleep(delay).await;
    }
}

/// One connection's life: connect, stream and poll until something fails.
async fn watch(
    endpoint: &Endpoint,
    msgs: &mpsc::Sender<Msg>,
    resume: &mut Option<(u64, u64)>,
    attempt: &mut u32,
) -> Stop {
    let mut client = match endpoint.connect().await {
        Ok(c) => c,
        Err(e) => return Stop::Lost(e.reason),
    };
    let request = WatchSamplesRequest { after_sequence: resume.map(|r| r.0), server_instance: resume.map(|r| r.1) };
    let mut stream = match client.watch_samples(request).await {
        Ok(s) => s.into_inner(),
        Err(e) => return Stop::Lost(e.message().to_string()),
    };
    *attempt = 0;
    if msgs.send(Msg::Connected).await.is_err() {
        return Stop::Ui;
    }
    // The thresholds may change with a reload; fetching them per connection is enough
    // for the chart's guide lines.
    if let Ok(config) = client.get_config(GetConfigRequest {}).await
        && let Ok(c) = Config::parse(&config.into_inner().config_toml, "the server's configuration")
    {
        let msg = Msg::Thresholds { elevated: c.tiers.elevated_threshold, critical: c.tiers.critical_threshold };
        if msgs.send(msg).await.is_err() {
            return Stop::Ui;
        }
    }
    let mut poll = tokio::time::interval(POLL);
    loop {
        tokio::select! {
            item = stream.message() => match item {
                Ok(Some(item)) => {
                    *resume = Some((item.sequence, item.server_instance));
                    if msgs.send(Msg::Stream(Box::new(item))).await.is_err() {
                        return Stop::Ui;
                    }
                }
                Ok(None) => return Stop::Lost("the server ended the stream (it is shutting down)".into()),
                Err(e) => return Stop::Lost(e.message().to_string()),
            },
            _ = poll.tick() => {
                if let Err(stop) = poll_once(&mut client, msgs).await {
                    return stop;
                }
            }
        }
    }
}

async fn poll_once(client: &mut Client, msgs: &mpsc::Sender<Msg>) -> Result<(), Stop> {
    let status = polled("status", POLL_TIMEOUT, client.get_status(GetStatusRequest {})).await;
    let recent = ListEventsRequest { limit: RECENT, ..Default::default() };
    let page = polled("the newest events", POLL_TIMEOUT, client.list_events(recent)).await;
    for msg in [status.map(|s| Msg::Status(Box::new(s))), page.map(|p| Msg::Recent(p.events))] {
        let msg = match msg {
            Ok(msg) => msg,
            Err(Poll::Lost(reason)) => return Err(Stop::Lost(reason)),
            Err(Poll::Failed(reason)) => Msg::Failed(reason),
        };
        msgs.send(msg).await.map_err(|_| Stop::Ui)?;
    }
    Ok(())
}

/// A polling call that did not answer: the link is gone, or only this call failed.
#[derive(Debug, PartialEq)]
enum Poll {
    Lost(String),
    Failed(String),
}

/// One polling call, bounded by `limit`.
async fn polled<T>(
    what: &str,
    limit: Duration,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, Poll> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(answer)) => Ok(answer.into_inner()),
        Ok(Err(status)) => Err(poll_failure(what, &status)),
        Err(_) => Err(Poll::Failed(format!("asking for {what}: no answer in {:.1} s", limit.as_secs_f64()))),
    }
}

/// Only an unreachable server or a broken transport means the link is lost; any other
/// refusal is one call's failure, shown while the stream goes on.
fn poll_failure(what: &str, status: &tonic::Status) -> Poll {
    let transport = status.code() == tonic::Code::Unknown && std::error::Error::source(status).is_some();
    if status.code() == tonic::Code::Unavailable || transport {
        Poll::Lost(status.message().to_string())
    } else {
        Poll::Failed(format!("asking for {what}: server answered {:?}: {}", status.code(), status.message()))
    }
}

async fn request_task(endpoint: Endpoint, msgs: mpsc::Sender<Msg>, mut inbox: mpsc::UnboundedReceiver<Request>) {
    let mut client: Option<Client> = None;
    while let Some(request) = inbox.recv().await {
        let c = match client.take() {
            Some(c) => c,
            None => match endpoint.connect().await {
                Ok(c) => c,
                Err(e) => {
                    let update = if let Request::Update(r) = &request { Some(r.id) } else { None };
                    if msgs.send(failed(update, e.to_string())).await.is_err() {
                        return;
                    }
                    continue;
                }
            },
        };
        let (msg, keep) = answer(c.clone(), request).await;
        // A failed call may mean a dead channel: connect afresh next time.
        if keep {
            client = Some(c);
        }
        if msgs.send(msg).await.is_err() {
            return;
        }
    }
}

/// The answer to one request, and whether the client still looks usable.
async fn answer(mut client: Client, request: Request) -> (Msg, bool) {
    let update = if let Request::Update(r) = &request { Some(r.id) } else { None };
    let result = match request {
        Request::List(r) => client.list_events(r.clone()).await.map(|p| Msg::Events(r, p.into_inner().events)),
        Request::Get(id) => {
            client.get_event(GetEventRequest { id }).await.map(|d| Msg::Detail(Box::new(d.into_inner())))
        }
        Request::Update(r) => {
            let r_id = r.id;
            client.update_event(r).await.map(|u| {
                u.into_inner()
                    .event
                    .map_or_else(|| failed(Some(r_id), "empty answer".into()), |e| Msg::Updated(Box::new(e)))
            })
        }
    };
    match result {
        Ok(msg) => (msg, true),
        Err(status) => {
            let keep = !matches!(status.code(), tonic::Code::Unavailable | tonic::Code::Unknown);
            (failed(update, format!("server answered {:?}: {}", status.code(), status.message())), keep)
        }
    }
}

/// A failure as a message: an update's names its event, so a draft waiting on it returns.
fn failed(update: Option<u64>, reason: String) -> Msg {
    match update {
        Some(id) => Msg::NotUpdated { id, reason },
        None => Msg::Failed(reason),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_ceiling() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(3), Duration::from_secs(1));
        assert_eq!(backoff(6), MAX_BACKOFF);
        assert_eq!(backoff(1000), MAX_BACKOFF);
    }

    #[test]
    fn only_an_unreachable_server_loses_the_link() {
        let lost = poll_failure("status", &tonic::Status::unavailable("connection refused"));
        assert_eq!(lost, Poll::Lost("connection refused".into()));
        for status in [tonic::Status::internal("database locked"), tonic::Status::deadline_exceeded("slow")] {
            let Poll::Failed(reason) = poll_failure("status", &status) else { panic!("{status:?} lost the link") };
            assert!(reason.starts_with("asking for status: server answered"), "{reason}");
        }
    }

    #[tokio::test]
    async fn a_poll_that_does_not_answer_times_out_as_a_failure() {
        let never = std::future::pending::<Result<tonic::Response<()>, tonic::Status>>();
        let limit = Duration::from_millis(100);
        let Err(Poll::Failed(reason)) = polled("status", limit, never).await else { panic!("no timeout") };
        assert!(reason.contains("no answer in 0.1 s"), "{reason}");
    }
}
