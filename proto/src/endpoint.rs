//! Where a client finds the server: `unix:///path/daemon.sock` (the default: the local
//! data directory's socket) or `http://host:port`.

use std::{
    fmt, io,
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use tonic::transport::Channel;

use crate::v1::pause_monitor_client::PauseMonitorClient;

/// How long a client waits for the connection itself before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A server address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix domain socket.
    Unix(PathBuf),
    /// Plain HTTP/2 over TCP, `http://host:port`.
    Http(String),
}

/// An address that is not one of the accepted forms.
#[derive(Debug, thiserror::Error)]
#[error("invalid server address {given:?}: {reason}; accepted: unix:///path/to/daemon.sock or http://host:port")]
pub struct EndpointError {
    given: String,
    reason: &'static str,
}

/// The server could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach pmon-server at {endpoint}: {reason}")]
pub struct ConnectError {
    /// The address tried.
    pub endpoint: Endpoint,
    /// What went wrong, in words.
    pub reason: String,
    /// Whether nothing is listening there (no socket, connection refused), as opposed
    /// to a permission or protocol problem.
    pub not_running: bool,
}

impl Endpoint {
    /// The socket of a local data directory.
    pub fn local(data_dir: &Path) -> Self {
        Endpoint::Unix(crate::paths::socket_path(data_dir))
    }

    /// Connects and returns a client for the `PauseMonitor` service.
    pub async fn connect(&self) -> Result<PauseMonitorClient<Channel>, ConnectError> {
        let fail = |reason: String, not_running: bool| ConnectError { endpoint: self.clone(), reason, not_running };
        let uri = match self {
            Endpoint::Unix(path) => {
                let absolute = std::path::absolute(path).map_err(|e| fail(format!("bad socket path: {e}"), false))?;
                format!("unix://{}", absolute.display())
            }
            Endpoint::Http(uri) => uri.clone(),
        };
        let endpoint = tonic::transport::Endpoint::from_shared(uri)
            .map_err(|e| fail(e.to_string(), false))?
            .connect_timeout(CONNECT_TIMEOUT);
        match tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect()).await {
            Err(_) => Err(fail(format!("no answer within {CONNECT_TIMEOUT:?}"), false)),
            Ok(Err(e)) => {
                let (reason, not_running) = describe_transport_error(&e);
                Err(fail(reason, not_running))
            }
            Ok(Ok(channel)) => Ok(PauseMonitorClient::new(channel)),
        }
    }
}

/// Finds the I/O error behind a transport error, which names what a person can fix.
fn describe_transport_error(e: &tonic::transport::Error) -> (String, bool) {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return match io.kind() {
                io::ErrorKind::NotFound => ("no socket there (the server is not running)".into(), true),
                io::ErrorKind::ConnectionRefused => ("connection refused (the server is not running)".into(), true),
                io::ErrorKind::PermissionDenied => {
                    ("permission denied (the socket belongs to another user)".into(), false)
                }
                _ => (io.to_string(), false),
            };
        }
        source = err.source();
    }
    (e.to_string(), false)
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = |reason| EndpointError { given: s.to_string(), reason };
        if let Some(rest) = s.strip_prefix("unix:") {
            // Both unix:///abs/path and unix:relative/path, as tonic and grpc-go accept.
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(fail("the socket path is empty"));
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if let Some(authority) = s.strip_prefix("http://") {
            let authority = authority.trim_end_matches('/');
            let Some((host, port)) = authority.rsplit_once(':') else {
                return Err(fail("the port is missing"));
            };
            if host.is_empty() || authority.contains('/') {
                return Err(fail("expected host:port after http://"));
            }
            if port.parse::<u16>().is_err() {
                return Err(fail("the port is not a number from 0 to 65535"));
            }
            return Ok(Endpoint::Http(format!("http://{authority}")));
        }
        if s.starts_with("https://") {
            return Err(fail("TLS connections are not supported by this build"));
        }
        Err(fail("unknown scheme"))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            Endpoint::Http(uri) => f.write_str(uri),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_accepted_forms() {
        let cases = [
            ("unix:///run/pmon/daemon.sock", Endpoint::Unix("/run/pmon/daemon.sock".into())),
            ("unix:rel/daemon.sock", Endpoint::Unix("rel/daemon.sock".into())),
            ("http://mac.local:7070", Endpoint::Http("http://mac.local:7070".into())),
            ("http://[::1]:7070/", Endpoint::Http("http://[::1]:7070".into())),
        ];
        for (given, want) in cases {
            assert_eq!(given.parse::<Endpoint>().ok(), Some(want), "{given}");
        }
    }

    #[test]
    fn rejects_others_naming_the_accepted_forms() {
        for given in ["unix:", "http://host", "http://:80", "http://h:99999", "ftp://x", "/tmp/x.sock", "https://h:1"] {
            let err = given.parse::<Endpoint>().expect_err(given).to_string();
            assert!(err.contains("accepted: unix:///"), "{err}");
            assert!(err.contains(given), "{err}");
        }
    }

    #[test]
    fn displays_as_it_parses() {
        let e: Endpoint = "unix:///a/b.sock".parse().expect("valid");
        assert_eq!(e.to_string(), "unix:///a/b.sock");
    }
}
