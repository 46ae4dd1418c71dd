//! `[limits]`: every bound on what a client asks is configurable and every refusal is a
//! gRPC status that names the key.

use std::time::Duration;

use pmon_proto::v1::{ListEventsRequest, QueryHistoryRequest, UpdateEventRequest, WatchSamplesRequest};

use crate::support::{FAST, Server};

const LIMITS: &str = "[limits]\nmax_watchers = 2\nmax_events_page = 10\nmax_history_rows = 20\nmax_notes_bytes = 8\nmax_request_bytes = 1024\n";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

#[test]
fn one_watcher_too_many_is_resource_exhausted_until_one_leaves() {
    let server = Server::start(&format!("{FAST}{LIMITS}"));
    runtime().block_on(async {
        let watch = || WatchSamplesRequest { after_sequence: None, server_instance: None };
        let mut client = server.client().await;
        let first = client.watch_samples(watch()).await.expect("first watcher").into_inner();
        let mut second = client.watch_samples(watch()).await.expect("second watcher").into_inner();
        let refused = client.watch_samples(watch()).await.expect_err("a third is over the limit");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused:?}");
        assert!(refused.message().contains("limits.max_watchers"), "{}", refused.message());
        // The watchers already there are served on.
        tokio::time::timeout(Duration::from_secs(10), second.message()).await.expect("in time").expect("ok");
        drop(first);
        // The server notices the closed stream on its next send.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            match client.watch_samples(watch()).await {
                Ok(_) => break,
                Err(e) if e.code() == tonic::Code::ResourceExhausted && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("a watcher's place was not freed: {e:?}"),
            }
        }
    });
}

#[test]
fn pages_notes_and_message_sizes_are_bounded_by_configuration() {
    let server = Server::start(&format!("{FAST}{LIMITS}"));
    runtime().block_on(async {
        let mut client = server.client().await;
        let page = ListEventsRequest { limit: 11, ..Default::default() };
        let err = client.list_events(page).await.expect_err("page too large");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("accepted: 1 to 10 (limits.max_events_page)"), "{}", err.message());
        client.list_events(ListEventsRequest { limit: 10, ..Default::default() }).await.expect("at the limit");

        let rows = QueryHistoryRequest { limit: 21, ..Default::default() };
        let err = client.query_history(rows).await.expect_err("too many rows");
        assert!(err.message().contains("limits.max_history_rows"), "{}", err.message());

        let notes = UpdateEventRequest { id: 1, notes: Some("nine byte".into()), ..Default::default() };
        let err = client.update_event(notes).await.expect_err("notes too long");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("at most 8 (limits.max_notes_bytes)"), "{}", err.message());

        let huge = UpdateEventRequest { id: 1, notes: Some("x".repeat(2000)), ..Default::default() };
        let err = client.update_event(huge).await.expect_err("message too large");
        assert_eq!(err.code(), tonic::Code::OutOfRange, "{err:?}");
        assert!(err.message().contains("the limit is: 1024 bytes"), "{}", err.message());
    });
    // Refusals change nothing: the server keeps sampling.
    let before = crate::support::json_u64(&server.status()["sampleCount"]);
    server.wait_samples(before + 2);
}
