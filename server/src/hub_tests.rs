use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::*;

fn sample(sequence: u64) -> Arc<Sample> {
    Arc::new(Sample { sequence, ..Default::default() })
}

/// A hub holding samples 1..=n, one per second (ring of 30 s), queue of `queue`.
fn hub_with(n: u64, queue: usize) -> (Arc<Hub>, Instant) {
    let hub = Arc::new(Hub::new(Duration::from_secs(30), queue, 77));
    let t0 = Instant::now();
    for s in 1..=n {
        hub.publish(t0 + Duration::from_secs(s), sample(s));
    }
    (hub, t0)
}

fn decoded(item: &EncodedResponse) -> WatchSamplesResponse {
    WatchSamplesResponse::decode(item.0.clone()).expect("a WatchSamplesResponse")
}

/// What a stream yields, as (sequence, Some(missed count) or None for a sample).
async fn take(stream: impl Stream<Item = EncodedResponse>, n: usize) -> Vec<(u64, Option<u64>)> {
    stream
        .take(n)
        .map(|item| decoded(&item))
        .inspect(|r| assert_eq!(r.server_instance, 77, "every item names the server run"))
        .map(|r| match r.item {
            Some(Item::Missed(m)) => (r.sequence, Some(m.count)),
            _ => (r.sequence, None),
        })
        .collect()
        .await
}

fn samples(range: std::ops::RangeInclusive<u64>) -> Vec<(u64, Option<u64>)> {
    range.map(|s| (s, None)).collect()
}

#[tokio::test]
async fn new_watcher_gets_the_ring_then_live_without_gap_or_duplicate() {
    let (hub, t0) = hub_with(40, 16);
    let stream = hub.subscribe(None).expect("open").into_stream(Arc::clone(&hub));
    for s in 41..=43 {
        hub.publish(t0 + Duration::from_secs(s), sample(s));
    }
    // The ring kept 10..=40 (30 s window), then live 41..=43.
    assert_eq!(take(stream, 34).await, samples(10..=43));
}

#[tokio::test]
async fn resume_after_n_yields_n_plus_one_onward() {
    let (hub, t0) = hub_with(20, 16);
    let stream = hub.subscribe(Some(17)).expect("open").into_stream(Arc::clone(&hub));
    hub.publish(t0 + Duration::from_secs(21), sample(21));
    assert_eq!(take(stream, 4).await, samples(18..=21));
}

#[tokio::test]
async fn resume_after_what_the_ring_lost_reports_the_gap_first() {
    let (hub, _) = hub_with(40, 16);
    let stream = hub.subscribe(Some(5)).expect("open").into_stream(Arc::clone(&hub));
    let got = take(stream, 3).await;
    // 6..=9 fell out of the ring: one Missed item standing for them, then 10, 11.
    assert_eq!(got, vec![(9, Some(4)), (10, None), (11, None)]);
    assert_eq!(hub.missed_total(), 0, "not a slow watcher");
}

#[tokio::test]
async fn resume_after_a_future_sequence_starts_from_the_ring() {
    let (hub, _) = hub_with(3, 16);
    let stream = hub.subscribe(Some(5000)).expect("open").into_stream(Arc::clone(&hub));
    assert_eq!(take(stream, 3).await, samples(1..=3));
}

#[tokio::test]
async fn a_slow_watcher_never_blocks_the_publisher_and_is_told_what_it_missed() {
    let (hub, t0) = hub_with(0, 4);
    let stream = hub.subscribe(None).expect("open").into_stream(Arc::clone(&hub));
    let started = Instant::now();
    for s in 1..=1000 {
        hub.publish(t0 + Duration::from_millis(s), sample(s));
    }
    assert!(started.elapsed() < Duration::from_secs(5), "publishing must not wait for the watcher");
    hub.close();
    // It keeps the newest 4 of its queue; everything before is one Missed item.
    let got = take(stream, 10).await;
    assert_eq!(got, vec![(996, Some(996)), (997, None), (998, None), (999, None), (1000, None)]);
    assert_eq!(hub.missed_total(), 996);
}

#[tokio::test]
async fn close_ends_streams_and_refuses_new_watchers() {
    let (hub, _) = hub_with(2, 16);
    let sub = hub.subscribe(None).expect("open");
    assert_eq!(hub.watchers(), 1);
    hub.close();
    assert_eq!(take(sub.into_stream(Arc::clone(&hub)), 10).await, samples(1..=2));
    assert!(hub.subscribe(None).is_none());
    assert_eq!(hub.watchers(), 0);
}

/// A sample with strings and nested messages, as real ones have.
fn rich(sequence: u64) -> Arc<Sample> {
    let rogue = |pid: u32| pmon_proto::v1::Rogue {
        pid,
        command: format!("worker-{pid}"),
        score: f64::from(pid) / 10.0,
        ..Default::default()
    };
    Arc::new(Sample {
        sequence,
        max_score: 41.5,
        process_count: 312,
        rogues: vec![rogue(7), rogue(900)],
        ..Default::default()
    })
}

#[tokio::test]
async fn items_are_the_ordinary_encoding_and_a_sample_is_encoded_once_for_all_watchers() {
    let hub = Arc::new(Hub::new(Duration::from_secs(30), 16, 77));
    let t0 = Instant::now();
    for s in [1, 2, 5] {
        hub.publish(t0 + Duration::from_secs(s), rich(s));
    }
    let first: Vec<EncodedResponse> =
        hub.subscribe(Some(1)).expect("open").into_stream(Arc::clone(&hub)).take(3).collect().await;
    let second: Vec<EncodedResponse> =
        hub.subscribe(None).expect("open").into_stream(Arc::clone(&hub)).take(4).collect().await;

    let ordinary = |sequence: u64, item: Item| {
        WatchSamplesResponse { sequence, server_instance: 77, item: Some(item) }.encode_to_vec()
    };
    let sample = |s: u64| ordinary(s, Item::Sample((*rich(s)).clone()));
    let missed = ordinary(4, Item::Missed(Missed { first_sequence: 3, count: 2 }));
    let bytes = |items: &[EncodedResponse]| items.iter().map(|i| i.0.to_vec()).collect::<Vec<_>>();
    assert_eq!(bytes(&first), vec![sample(2), missed.clone(), sample(5)]);
    assert_eq!(bytes(&second), vec![sample(1), sample(2), missed, sample(5)]);
    // The same bytes, not equal copies: sample 2 and 5 were encoded once.
    assert_eq!(first[0].0.as_ptr(), second[1].0.as_ptr());
    assert_eq!(first[2].0.as_ptr(), second[3].0.as_ptr());
    // Missed items differ per watcher and are each the watcher's own.
    assert_ne!(first[1].0.as_ptr(), second[2].0.as_ptr());
}
