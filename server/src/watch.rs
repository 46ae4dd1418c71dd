//! The `pmon.v1.PauseMonitor` routes, with `WatchSamples` served from items the hub
//! encoded once for all watchers.
//!
//! ```text
//! /pmon.v1.PauseMonitor/WatchSamples ─► Grpc(WatchCodec): request decoded by prost
//!       ─► Service::watch (limits, subscribe) ─► hub stream of encoded items ─► written as they are
//! /pmon.v1.PauseMonitor/<any other method> ─► the generated PauseMonitorServer
//! ```
//!
//! The generated server would take `WatchSamplesResponse` values and encode each one
//! per watcher: with many watchers, one thread cloned and encoded the same sample again
//! and again. Clients see the same bytes either way; the wire format is prost's.

use std::{convert::Infallible, future::Ready, pin::Pin};

use futures_util::{Stream, StreamExt};
use pmon_proto::v1::{WatchSamplesRequest, WatchSamplesResponse, pause_monitor_server::PauseMonitorServer};
use prost::bytes::BufMut;
use tonic::{
    Status,
    body::Body,
    codec::{Codec, EncodeBuf, Encoder},
    codegen::{BoxFuture, Context, Poll, Service as TowerService, http},
    server::{Grpc, NamedService},
};
use tonic_prost::{ProstCodec, ProstDecoder};

use crate::{hub::EncodedResponse, service::Service};

/// The method this module serves itself.
const WATCH_SAMPLES: &str = "/pmon.v1.PauseMonitor/WatchSamples";

/// Every `pmon.v1.PauseMonitor` method: `WatchSamples` here, the others by the
/// generated server.
#[derive(Debug, Clone)]
pub struct Routes {
    generated: PauseMonitorServer<Service>,
    service: Service,
    max_request_bytes: usize,
}

impl Routes {
    /// The service's routes, refusing requests larger than `max_request_bytes`.
    pub fn new(service: Service, max_request_bytes: usize) -> Self {
        let generated = PauseMonitorServer::new(service.clone()).max_decoding_message_size(max_request_bytes);
        Self { generated, service, max_request_bytes }
    }
}

impl NamedService for Routes {
    const NAME: &'static str = <PauseMonitorServer<Service> as NamedService>::NAME;
}

impl TowerService<http::Request<Body>> for Routes {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        TowerService::<http::Request<Body>>::poll_ready(&mut self.generated, cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() != WATCH_SAMPLES {
            return self.generated.call(request);
        }
        let watch = Watch(self.service.clone());
        let mut grpc = watch_grpc(self.max_request_bytes);
        Box::pin(async move { Ok(grpc.server_streaming(watch, request).await) })
    }
}

/// The `WatchSamples` handler, refusing requests larger than `max_request_bytes` as the
/// generated server does for the other methods. No compression: none is configured.
fn watch_grpc(max_request_bytes: usize) -> Grpc<WatchCodec> {
    Grpc::new(WatchCodec).apply_max_message_size_config(Some(max_request_bytes), None)
}

type ItemStream = Pin<Box<dyn Stream<Item = Result<EncodedResponse, Status>> + Send>>;

/// One `WatchSamples` call.
struct Watch(Service);

impl TowerService<tonic::Request<WatchSamplesRequest>> for Watch {
    type Response = tonic::Response<ItemStream>;
    type Error = Status;
    type Future = Ready<Result<Self::Response, Status>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: tonic::Request<WatchSamplesRequest>) -> Self::Future {
        let stream = self.0.watch(request.into_inner());
        std::future::ready(stream.map(|items| tonic::Response::new(Box::pin(items.map(Ok)) as ItemStream)))
    }
}

/// Decodes the request with prost; writes each response as the bytes it already is.
#[derive(Debug, Clone, Copy)]
struct WatchCodec;

impl Codec for WatchCodec {
    type Encode = EncodedResponse;
    type Decode = WatchSamplesRequest;
    type Encoder = Written;
    type Decoder = ProstDecoder<WatchSamplesRequest>;

    fn encoder(&mut self) -> Self::Encoder {
        Written
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<WatchSamplesResponse, WatchSamplesRequest>::default().decoder()
    }
}

/// Copies an encoded response into the message frame.
#[derive(Debug, Clone, Copy)]
struct Written;

impl Encoder for Written {
    type Item = EncodedResponse;
    type Error = Status;

    fn encode(&mut self, item: EncodedResponse, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item.0);
        Ok(())
    }
}

#[cfg(test)]
#[path = "watch_tests.rs"]
mod tests;
