//! `WatchSamples` through the generated client: ring then live, resume, slow watchers.

use std::time::{Duration, Instant, SystemTime};

use pmon_proto::{
    endpoint::{Client, client_over},
    v1::{GetStatusRequest, WatchSamplesRequest, WatchSamplesResponse, watch_samples_response::Item},
};
use tonic::Streaming;

use crate::support::Server;

/// The next item, failing the test after 10 s.
async fn next(stream: &mut Streaming<WatchSamplesResponse>) -> WatchSamplesResponse {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an item within 10 s")
        .expect("stream ok")
        .expect("stream open")
}

async fn watch(client: &mut Client, after: Option<u64>) -> Streaming<WatchSamplesResponse> {
    client
        .watch_samples(WatchSamplesRequest { after_sequence: after, server_instance: None })
        .await
        .expect("watch")
        .into_inner()
}

const TENTH: &str = "[sampling]\ninterval_seconds = 0.1\nelevated_interval_seconds = 0.1\n";

#[tokio::test]
async fn a_watcher_joining_mid_stream_gets_the_ring_first_then_live_without_gap() {
    let server = Server::start(TENTH);
    let mut client = server.client().await;
    let mut first = watch(&mut client, None).await;
    let mut latest = 0;
    while latest < 6 {
        latest = next(&mut first).await.sequence;
    }
    // The ring (30 s) still holds everything since start: the newcomer gets 1, 2, …
    // through what the first watcher saw, then live ones, each exactly once.
    let mut second = watch(&mut client, None).await;
    for want in 1..=latest + 5 {
        let item = next(&mut second).await;
        assert_eq!(item.sequence, want);
        assert!(matches!(item.item, Some(Item::Sample(ref s)) if s.sequence == want));
    }
}

#[tokio::test]
async fn resuming_after_n_yields_n_plus_one_onward() {
    let server = Server::start(TENTH);
    let mut client = server.client().await;
    let mut first = watch(&mut client, None).await;
    while next(&mut first).await.sequence < 5 {}
    let mut resumed = watch(&mut client, Some(3)).await;
    for want in 4..=9 {
        assert_eq!(next(&mut resumed).await.sequence, want);
    }
}

#[tokio::test]
async fn a_stalled_watcher_delays_nobody_and_is_told_how_many_it_missed() {
    let server = Server::start(
        "[sampling]\ninterval_seconds = 0.05\nelevated_interval_seconds = 0.05\n[watchers]\nqueue_samples = 4\n",
    );
    // The stalled client advertises small HTTP/2 windows, so the server cannot park
    // megabytes for it and its queue overflows quickly, as a slow link would.
    let socket = format!("unix://{}", server.socket().display());
    let channel = tonic::transport::Endpoint::from_shared(socket)
        .expect("endpoint")
        .initial_stream_window_size(4096)
        .initial_connection_window_size(4096)
        .connect()
        .await
        .expect("connect");
    let mut stalled = watch(&mut client_over(channel), None).await;
    let mut last_stalled = next(&mut stalled).await.sequence;

    let mut reader_client = server.client().await;
    let mut reader = watch(&mut reader_client, None).await;
    let mut last = next(&mut reader).await.sequence;
    let start = Instant::now();
    let (mut pace_ms, mut delay_ms) = (Vec::new(), Vec::new());
    while start.elapsed() < Duration::from_secs(3) {
        let item = next(&mut reader).await;
        assert_eq!(item.sequence, last + 1, "the reader must get every sample");
        let Some(Item::Sample(sample)) = item.item else { panic!("a sample") };
        last = item.sequence;
        // How far apart the sampler took them, and how late each reached the reader.
        pace_ms.extend(sample.elapsed_ms);
        let taken = sample.time.as_ref().and_then(pmon_proto::time::system_time).expect("time");
        delay_ms.push(SystemTime::now().duration_since(taken).map_or(0.0, |d| d.as_secs_f64() * 1000.0));
    }
    pace_ms.sort_by(f64::total_cmp);
    delay_ms.sort_by(f64::total_cmp);
    let median_pace = pace_ms[pace_ms.len() / 2];
    let p90_delay = delay_ms[delay_ms.len() * 9 / 10];
    // The stalled watcher slows neither the sampler (50 ms pace) nor delivery.
    assert!(median_pace < 100.0, "sampler slowed: median {median_pace} ms between samples");
    assert!(p90_delay < 100.0, "delivery slowed: p90 {p90_delay} ms from sample to reader");

    // The stalled watcher reads again: somewhere ahead is the gap, reported once.
    let mut missed = None;
    for _ in 0..500 {
        let item = next(&mut stalled).await;
        match item.item {
            Some(Item::Missed(m)) => {
                assert_eq!(m.first_sequence, last_stalled + 1);
                assert_eq!(item.sequence, m.first_sequence + m.count - 1);
                missed = Some(m.count);
                last_stalled = item.sequence;
            }
            Some(Item::Sample(s)) => {
                assert_eq!(s.sequence, last_stalled + 1, "no silent gaps");
                last_stalled = s.sequence;
                if missed.is_some() {
                    break;
                }
            }
            None => panic!("empty item"),
        }
    }
    let missed = missed.expect("a Missed item after stalling");
    assert!(missed >= 10, "missed only {missed}");
    let status = reader_client.get_status(GetStatusRequest {}).await.expect("status").into_inner();
    assert!(status.cost.is_some_and(|c| c.watcher_missed_samples >= missed));
}

#[tokio::test]
async fn sequence_numbers_from_another_server_run_are_not_resumed() {
    let server = Server::start(TENTH);
    let mut client = server.client().await;
    let mut first = watch(&mut client, None).await;
    let item = next(&mut first).await;
    while next(&mut first).await.sequence < 6 {}
    assert_ne!(item.server_instance, 0);
    // Same run: resumes after 4. Another run's 4: starts from the ring, at 1.
    let resume = |instance| WatchSamplesRequest { after_sequence: Some(4), server_instance: Some(instance) };
    let mut same = client.watch_samples(resume(item.server_instance)).await.expect("watch").into_inner();
    assert_eq!(next(&mut same).await.sequence, 5);
    let mut other = client.watch_samples(resume(item.server_instance + 1)).await.expect("watch").into_inner();
    assert_eq!(next(&mut other).await.sequence, 1);
}

#[tokio::test]
async fn reflection_v1_lists_the_service() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let server = Server::start(TENTH);
    let socket = format!("unix://{}", server.socket().display());
    let channel = tonic::transport::Endpoint::from_shared(socket).expect("endpoint").connect().await.expect("connect");
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = responses.message().await.expect("ok").expect("a response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected {response:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.iter().any(|n| n == "pmon.v1.PauseMonitor"), "{names:?}");
}
