//! The metrics endpoint: `GET /metrics` served by hyper (HTTP/1.1) with an axum router,
//! bounded in request size, time and number of connections, so a scraper (or anything
//! else that connects) can never hold the server up.
//!
//! ```text
//! accept ─► slot (at most 16 at once) ─► hyper http1, 8 KiB head, 5 s ─► axum: /metrics
//! ```
//!
//! It has no authentication: it listens where `--metrics HOST:PORT` says, which should
//! be a loopback address unless the network in between is trusted.

use std::{
    future::Future,
    net::{SocketAddr, ToSocketAddrs},
    sync::Arc,
    time::Duration,
};

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use prometheus_client::registry::Registry;
use tokio::{net::TcpListener, sync::Semaphore};

/// The largest request head read (hyper's smallest buffer); a scrape needs a few
/// hundred bytes. Larger heads get 431.
const MAX_REQUEST: usize = 8 * 1024;
/// How long a client gets to send its request and read the answer.
const CLIENT_TIME: Duration = Duration::from_secs(5);
/// Connections handled at once; more are closed unanswered.
const MAX_CONNECTIONS: usize = 16;
/// The OpenMetrics text format's content type, for clients that ask for it.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The Prometheus text format's content type, for everyone else.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Why the metrics endpoint cannot start.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics on {address}: {reason} (expected HOST:PORT, e.g. 127.0.0.1:9187)")]
pub struct MetricsError {
    address: String,
    reason: String,
}

/// A bound metrics listener.
#[derive(Debug)]
pub struct MetricsListener {
    listener: TcpListener,
    /// Where it listens.
    pub address: SocketAddr,
}

/// Binds `HOST:PORT`. Must run inside a tokio runtime.
pub fn bind(address: &str) -> Result<MetricsListener, MetricsError> {
    let fail = |reason: String| MetricsError { address: address.to_string(), reason };
    let first = address
        .to_socket_addrs()
        .map_err(|e| fail(e.to_string()))?
        .next()
        .ok_or_else(|| fail("the name resolves to no address".into()))?;
    let std_listener = std::net::TcpListener::bind(first).map_err(|e| fail(e.to_string()))?;
    std_listener.set_nonblocking(true).map_err(|e| fail(e.to_string()))?;
    let listener = TcpListener::from_std(std_listener).map_err(|e| fail(e.to_string()))?;
    let address = listener.local_addr().map_err(|e| fail(e.to_string()))?;
    Ok(MetricsListener { listener, address })
}

impl MetricsListener {
    /// Answers scrapes until `shutdown` completes.
    pub async fn serve(self, registry: Registry, shutdown: impl Future<Output = ()>) {
        let app = router(Arc::new(registry));
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                () = &mut shutdown => return,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of descriptors, say: wait a little rather than spin.
                        tracing::debug!("metrics endpoint: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                // Too many at once: this one is closed unanswered.
                continue;
            };
            let service = TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let connection = hyper::server::conn::http1::Builder::new()
                    .max_buf_size(MAX_REQUEST)
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), service);
                let _ = tokio::time::timeout(CLIENT_TIME, connection).await;
                drop(slot);
            });
        }
    }
}

/// `/metrics` (GET, and HEAD, which axum answers from GET without the body); anything
/// else is told where the metrics are.
fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async { (StatusCode::NOT_FOUND, "pmon metrics are at /metrics\n") })
        .with_state(registry)
}

async fn scrape(State(registry): State<Arc<Registry>>, headers: HeaderMap) -> Response {
    let (content_type, body) = if wants_openmetrics(&headers) {
        (OPENMETRICS, super::encode(&registry))
    } else {
        (PROMETHEUS_TEXT, super::encode_prometheus_text(&registry))
    };
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// Whether the request's Accept header names the OpenMetrics format (Prometheus does).
fn wants_openmetrics(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.to_ascii_lowercase().contains("application/openmetrics-text")))
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
    };

    use super::*;

    #[tokio::test]
    async fn answers_scrapes_heads_and_strangers_and_refuses_an_oversized_request() {
        let listener = bind("127.0.0.1:0").expect("bind");
        let address = listener.address;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(listener.serve(Registry::default(), async move { _ = stopped.await }));
        let ask = |request: Vec<u8>| async move {
            let mut stream = TcpStream::connect(address).await.expect("connect");
            stream.write_all(&request).await.expect("write");
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await.expect("read");
            String::from_utf8_lossy(&answer).into_owned()
        };
        let accept = "Accept: application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4";
        let ok = ask(format!("GET /metrics HTTP/1.1\r\nHost: localhost\r\n{accept}\r\n\r\n").into_bytes()).await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains(OPENMETRICS) && ok.ends_with("# EOF\n"), "{ok}");
        let plain = ask(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n".to_vec()).await;
        assert!(plain.contains(PROMETHEUS_TEXT) && !plain.contains("# EOF"), "{plain}");
        let head = ask(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"), "{head}");
        let elsewhere = ask(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()).await;
        assert!(
            elsewhere.starts_with("HTTP/1.1 404") && elsewhere.ends_with("pmon metrics are at /metrics\n"),
            "{elsewhere}"
        );
        let post = ask(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_vec()).await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        let tls = ask(b"\x16\x03\x01 hello\r\n\r\n".to_vec()).await;
        assert!(tls.starts_with("HTTP/1.1 400") || tls.is_empty(), "{tls}");
        let oversized = [b"GET /metrics HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 2 * MAX_REQUEST]].concat();
        let big = ask(oversized).await;
        assert!(big.starts_with("HTTP/1.1 431"), "{big}");
        let _ = stop.send(());
        server.await.expect("stops on shutdown");
    }

    // Paused time runs ahead whenever every task waits, so the 5 s pass at once.
    #[tokio::test(start_paused = true)]
    async fn a_client_that_never_finishes_its_request_is_let_go() {
        let listener = bind("127.0.0.1:0").expect("bind");
        let address = listener.address;
        let server = tokio::spawn(listener.serve(Registry::default(), std::future::pending()));
        let started = tokio::time::Instant::now();
        let mut slow = TcpStream::connect(address).await.expect("connect");
        slow.write_all(b"GET /metr").await.expect("write");
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(10 * CLIENT_TIME, slow.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "the connection is closed once its time is up");
        assert!(started.elapsed() >= CLIENT_TIME, "not before: {:?}", started.elapsed());
        server.abort();
    }

    #[test]
    fn a_bad_address_is_named() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let _guard = runtime.enter();
        let err = bind("nonsense").expect_err("no port").to_string();
        assert!(err.contains("cannot serve metrics on nonsense") && err.contains("HOST:PORT"), "{err}");
    }
}
