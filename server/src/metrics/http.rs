//! The metrics endpoint's own small HTTP/1.1 responder: `GET /metrics`, one request
//! per connection, bounded in size, time and number of connections, so a scraper (or
//! anything else that connects) can never hold the server up.
//!
//! It has no authentication: it listens where `--metrics HOST:PORT` says, which should
//! be a loopback address unless the network in between is trusted.

use std::{
    future::Future,
    net::{SocketAddr, ToSocketAddrs},
    sync::Arc,
    time::Duration,
};

use prometheus_client::registry::Registry;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Semaphore,
};

/// The largest request head read; a scrape needs a few hundred bytes.
const MAX_REQUEST: usize = 8 * 1024;
/// How long a client gets to send its request and read the answer.
const CLIENT_TIME: Duration = Duration::from_secs(5);
/// Connections handled at once; more wait in the kernel's backlog.
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
        let registry = Arc::new(registry);
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
            let registry = Arc::clone(&registry);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(CLIENT_TIME, answer(stream, &registry)).await;
                drop(slot);
            });
        }
    }
}

/// Reads one request head and writes the answer.
async fn answer(mut stream: TcpStream, registry: &Registry) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() >= MAX_REQUEST {
            return respond(&mut stream, "431 Request Header Fields Too Large", "text/plain", b"request too large\n")
                .await;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    match route(&head) {
        Route::Metrics { head_only } => {
            let openmetrics = super::encode(registry);
            let (content_type, body) = if wants_openmetrics(&head) {
                (OPENMETRICS, openmetrics)
            } else {
                (PROMETHEUS_TEXT, super::to_prometheus_text(&openmetrics))
            };
            let body = if head_only { &[][..] } else { body.as_bytes() };
            respond(&mut stream, "200 OK", content_type, body).await
        }
        Route::NotFound => respond(&mut stream, "404 Not Found", "text/plain", b"pmon metrics are at /metrics\n").await,
        Route::BadMethod => respond(&mut stream, "405 Method Not Allowed", "text/plain", b"only GET\n").await,
        Route::Bad => respond(&mut stream, "400 Bad Request", "text/plain", b"not an HTTP request\n").await,
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics { head_only: bool },
    NotFound,
    BadMethod,
    Bad,
}

/// Whether the request's Accept header names the OpenMetrics format (Prometheus does).
fn wants_openmetrics(head: &[u8]) -> bool {
    String::from_utf8_lossy(head).lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("accept:") && line.contains("application/openmetrics-text")
    })
}

/// Routes a request head by its first line.
fn route(head: &[u8]) -> Route {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Route::Bad;
    };
    if !version.starts_with(b"HTTP/1.") {
        return Route::Bad;
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    match (method, path) {
        (b"GET", b"/metrics") => Route::Metrics { head_only: false },
        (b"HEAD", b"/metrics") => Route::Metrics { head_only: true },
        (b"GET" | b"HEAD", _) => Route::NotFound,
        _ => Route::BadMethod,
    }
}

async fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_the_request_line() {
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), Route::Metrics { head_only: false });
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics { head_only: false });
        assert_eq!(route(b"HEAD /metrics HTTP/1.1\r\n\r\n"), Route::Metrics { head_only: true });
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Route::BadMethod);
        assert_eq!(route(b"\x16\x03\x01 hello\r\n\r\n"), Route::Bad);
        assert_eq!(route(b"GET /metrics\r\n\r\n"), Route::Bad);
    }

    #[tokio::test]
    async fn answers_a_scrape_and_refuses_an_oversized_request() {
        let listener = bind("127.0.0.1:0").expect("bind");
        let address = listener.address;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(listener.serve(Registry::default(), async move { _ = stopped.await }));
        let ask = |request: Vec<u8>| async move {
            let mut stream = TcpStream::connect(address).await.expect("connect");
            stream.write_all(&request).await.expect("write");
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.expect("read");
            answer
        };
        let accept = "Accept: application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4";
        let ok = ask(format!("GET /metrics HTTP/1.1\r\nHost: localhost\r\n{accept}\r\n\r\n").into_bytes()).await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains(OPENMETRICS) && ok.ends_with("# EOF\n"), "{ok}");
        let plain = ask(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec()).await;
        assert!(plain.contains(PROMETHEUS_TEXT) && !plain.contains("# EOF"), "{plain}");
        // Exactly the limit, so the server has read all of it when it answers.
        let mut oversized = [b"GET /metrics HTTP/1.1\r\nX: ".as_slice(), &[b'a'; MAX_REQUEST]].concat();
        oversized.truncate(MAX_REQUEST);
        let big = ask(oversized).await;
        assert!(big.starts_with("HTTP/1.1 431"), "{big}");
        let _ = stop.send(());
        server.await.expect("stops on shutdown");
    }

    #[test]
    fn a_bad_address_is_named() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let _guard = runtime.enter();
        let err = bind("nonsense").expect_err("no port").to_string();
        assert!(err.contains("cannot serve metrics on nonsense") && err.contains("HOST:PORT"), "{err}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(crate::collect::no_panic_tests::cases()))]

        #[test]
        fn request_heads_never_panic_and_are_routed(head in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let route = route(&head);
            let _ = wants_openmetrics(&head);
            if matches!(route, Route::Metrics { .. }) {
                proptest::prop_assert!(head.starts_with(b"GET /metrics") || head.starts_with(b"HEAD /metrics"));
            }
        }
    }
}
