use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use pmon_proto::v1::{Missed, Rogue, Sample, watch_samples_response::Item};
use prost::{
    Message,
    bytes::{Buf, Bytes},
};
use tonic::{
    Code,
    codec::{DecodeBuf, Streaming},
    codegen::http::StatusCode,
};

use super::*;
use crate::hub::Hub;

/// Serves `WatchSamples` straight from a hub, as `Service::watch` does after its checks.
struct FromHub(Arc<Hub>);

impl TowerService<tonic::Request<WatchSamplesRequest>> for FromHub {
    type Response = tonic::Response<ItemStream>;
    type Error = Status;
    type Future = Ready<Result<Self::Response, Status>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: tonic::Request<WatchSamplesRequest>) -> Self::Future {
        let after = request.into_inner().after_sequence;
        let items = self.0.subscribe(after).expect("open").into_stream(Arc::clone(&self.0));
        std::future::ready(Ok(tonic::Response::new(Box::pin(items.map(Ok)) as ItemStream)))
    }
}

/// What a client reads off the wire: each message's bytes, undecoded.
struct Raw;

impl tonic::codec::Decoder for Raw {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// A gRPC request carrying `message` in one uncompressed frame. Every byte of the
/// frames used here is below 0x80, so a `String` body carries them unchanged.
fn request(message: &WatchSamplesRequest) -> http::Request<Body> {
    let encoded = message.encode_to_vec();
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(encoded.len()).expect("small").to_be_bytes());
    frame.extend_from_slice(&encoded);
    let body = String::from_utf8(frame).expect("ascii frame");
    http::Request::builder()
        .method("POST")
        .uri(WATCH_SAMPLES)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Body::new(body))
        .expect("request")
}

fn sample(sequence: u64) -> Sample {
    let rogue = Rogue { pid: 4242, command: format!("compiler-{sequence}"), score: 63.25, ..Default::default() };
    Sample { sequence, max_score: 63.25, process_count: 280, rogues: vec![rogue], ..Default::default() }
}

#[tokio::test]
async fn a_watcher_receives_exactly_the_ordinary_encoding() {
    let hub = Arc::new(Hub::new(Duration::from_secs(30), 16, 77));
    let t0 = Instant::now();
    for s in 1..=40 {
        hub.publish(t0 + Duration::from_secs(s), Arc::new(sample(s)));
    }
    // Resuming after 5 when the ring starts at 10: a Missed item, then the ring.
    let mut grpc = watch_grpc(1024);
    let asked = WatchSamplesRequest { after_sequence: Some(5), server_instance: Some(77) };
    let response = grpc.server_streaming(FromHub(Arc::clone(&hub)), request(&asked)).await;
    assert_eq!(response.status(), StatusCode::OK);
    hub.close();
    let mut stream = Streaming::new_response(Raw, response.into_body(), StatusCode::OK, None, None);
    let mut got = Vec::new();
    while let Some(message) = stream.message().await.expect("a message") {
        got.push(message.to_vec());
    }

    let ordinary = |sequence, item| WatchSamplesResponse { sequence, server_instance: 77, item: Some(item) };
    let mut expected = vec![ordinary(9, Item::Missed(Missed { first_sequence: 6, count: 4 }))];
    expected.extend((10..=40).map(|s| ordinary(s, Item::Sample(sample(s)))));
    let expected: Vec<Vec<u8>> = expected.iter().map(Message::encode_to_vec).collect();
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected);
}

#[tokio::test]
async fn an_oversized_request_is_refused_before_any_watcher_is_admitted() {
    let hub = Arc::new(Hub::new(Duration::from_secs(30), 16, 77));
    let mut grpc = watch_grpc(2);
    let asked = WatchSamplesRequest { after_sequence: Some(5), server_instance: Some(77) };
    let response = grpc.server_streaming(FromHub(Arc::clone(&hub)), request(&asked)).await;
    let status = Status::from_header_map(response.headers()).expect("a grpc-status");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("the limit is: 2 bytes"), "{}", status.message());
    assert_eq!(hub.watchers(), 0);
}
