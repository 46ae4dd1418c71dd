//! Where a client finds the server, and how it proves who it is: `unix:///path/daemon.sock`
//! (the default: the local data directory's socket, guarded by file permissions),
//! `https://host:port` (TLS, plus a bearer token) or `http://host:port` (plaintext, for
//! a loopback listener started with `--insecure`).
//!
//! ```text
//! "https://mac.local:7070" ─► Endpoint::Tcp ─► with_credentials(token, CA, client certificate)
//!     ─► connect: address (TCP) ─► TLS handshake ─► Client (adds `authorization: Bearer …`)
//! ```
//!
//! A failed connection names the step that failed (address, TLS or token), since each
//! has a different fix.

use std::{
    fmt, fs, io,
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use tonic::{
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Certificate, Channel, ClientTlsConfig, Identity},
};

use crate::{
    pin::{self, Fingerprint, PinError},
    token::Token,
    v1::pause_monitor_client::PauseMonitorClient,
};

/// How long a client waits for the connection itself before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A connected client of the `PauseMonitor` service.
pub type Client = PauseMonitorClient<InterceptedService<Channel, Bearer>>;

/// A server address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix domain socket.
    Unix(PathBuf),
    /// A TCP listener, with or without TLS.
    Tcp(Remote),
}

/// A TCP server address and the credentials to present there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// `https://host:port` or `http://host:port`.
    pub uri: String,
    /// Whether the connection uses TLS (`https://`).
    pub tls: bool,
    /// What to present.
    pub credentials: Credentials,
}

/// Files a client presents to a TCP server. Read at each connection, so a rotated
/// token or certificate is picked up by a reconnecting dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The bearer token's file.
    pub token_file: Option<PathBuf>,
    /// The CA certificate (PEM) that signed the server's certificate; without it the
    /// usual public roots are trusted.
    pub ca_file: Option<PathBuf>,
    /// A client certificate (PEM) and its key, for a server that asks for one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Trust exactly the server whose chain is anchored by this certificate, instead of
    /// a CA (see [`crate::pin`]); set by a named remote (`pmon remote add`).
    pub pin: Option<Fingerprint>,
}

/// An address that is not one of the accepted forms.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid server address {given:?}: {reason}; accepted: unix:///path/to/daemon.sock, https://host:port \
     or http://host:port"
)]
pub struct EndpointError {
    given: String,
    reason: &'static str,
}

/// The step of connecting that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reaching the address: nothing listening, unknown host, permissions, timeout.
    Address,
    /// The TLS handshake: an untrusted or mismatched certificate, or no TLS there.
    Tls,
    /// The token: its file, or the server refusing it.
    Token,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Address => "address",
            Stage::Tls => "TLS",
            Stage::Token => "token",
        })
    }
}

/// The server could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach pmon-server at {endpoint} ({stage} failed): {reason}")]
pub struct ConnectError {
    /// The address tried.
    pub endpoint: Endpoint,
    /// Which step failed.
    pub stage: Stage,
    /// What went wrong, in words.
    pub reason: String,
    /// Whether nothing is listening there (no socket, connection refused), as opposed
    /// to a permission or protocol problem.
    pub not_running: bool,
    /// A pinned server presented a chain anchored by this other certificate.
    pub presented: Option<Fingerprint>,
}

/// Adds the bearer token, when there is one, to every request.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

impl fmt::Debug for Bearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Bearer(<hidden>)" } else { "Bearer(none)" })
    }
}

impl Endpoint {
    /// The socket of a local data directory.
    pub fn local(data_dir: &Path) -> Self {
        Endpoint::Unix(crate::paths::socket_path(data_dir))
    }

    /// This address with the credentials to present. The local socket needs none (its
    /// file permissions guard it), so a token file set for remote use is ignored there;
    /// certificates make sense only for `https://`.
    pub fn with_credentials(self, credentials: Credentials) -> Result<Self, String> {
        let tls_only = if credentials.ca_file.is_some() {
            Some("--ca-file")
        } else if credentials.pin.is_some() {
            Some("a pinned fingerprint")
        } else {
            credentials.client_cert.as_ref().map(|_| "--client-cert")
        };
        match self {
            Endpoint::Tcp(remote) if remote.tls || tls_only.is_none() => {
                Ok(Endpoint::Tcp(Remote { credentials, ..remote }))
            }
            Endpoint::Unix(_) if tls_only.is_none() => Ok(self),
            other => Err(format!("{} applies to https:// addresses only, not {other}", tls_only.unwrap_or_default())),
        }
    }

    /// Connects and returns a client for the `PauseMonitor` service.
    pub async fn connect(&self) -> Result<Client, ConnectError> {
        let fail = |stage, reason: String, not_running: bool| ConnectError {
            endpoint: self.clone(),
            stage,
            reason,
            not_running,
            presented: None,
        };
        let (uri, tls, bearer) = match self {
            Endpoint::Unix(path) => {
                let absolute = std::path::absolute(path)
                    .map_err(|e| fail(Stage::Address, format!("bad socket path: {e}"), false))?;
                (format!("unix://{}", absolute.display()), None, Bearer(None))
            }
            Endpoint::Tcp(remote) if remote.credentials.pin.is_some() && !remote.tls => {
                // Never fall back to plaintext, where the token would go out in the clear.
                return Err(fail(Stage::Tls, "a pinned server is reached over https:// only".into(), false));
            }
            Endpoint::Tcp(remote) => {
                let c = &remote.credentials;
                let bearer = match &c.token_file {
                    Some(path) => {
                        let token = Token::read(path).map_err(|e| fail(Stage::Token, e.to_string(), false))?;
                        let mut value = MetadataValue::try_from(token.header_value())
                            .map_err(|_| fail(Stage::Token, "the token cannot be sent as a header".into(), false))?;
                        // Keeps it out of any debug output of the HTTP/2 layer.
                        value.set_sensitive(true);
                        Bearer(Some(value))
                    }
                    None => Bearer(None),
                };
                // Reads a PEM file; a failure is the TLS step's.
                let read = |what: &str, path: &Path| {
                    fs::read(path).map_err(|e| format!("cannot read the {what} {}: {e}", path.display()))
                };
                let tls_err = |reason: String| fail(Stage::Tls, reason, false);
                let tls = match (&remote.tls, &c.ca_file) {
                    (false, _) => None,
                    (true, None) => Some(ClientTlsConfig::new().with_webpki_roots()),
                    (true, Some(ca)) => Some(
                        ClientTlsConfig::new()
                            .ca_certificate(Certificate::from_pem(read("CA file", ca).map_err(tls_err)?)),
                    ),
                };
                let tls = match (tls, &c.client_cert) {
                    (Some(tls), Some((cert, key))) => Some(tls.identity(Identity::from_pem(
                        read("client certificate", cert).map_err(tls_err)?,
                        read("client key", key).map_err(tls_err)?,
                    ))),
                    (tls, _) => tls,
                };
                (remote.uri.clone(), tls, bearer)
            }
        };
        if let (Endpoint::Tcp(Remote { credentials: Credentials { pin: Some(pin), .. }, .. }), Some(_)) = (self, &tls) {
            let channel = connect_pinned(&uri, *pin)
                .await
                .map_err(|(stage, reason, presented)| ConnectError { presented, ..fail(stage, reason, false) })?;
            return Ok(PauseMonitorClient::with_interceptor(channel, bearer));
        }
        let mut endpoint = tonic::transport::Endpoint::from_shared(uri)
            .map_err(|e| fail(Stage::Address, e.to_string(), false))?
            .connect_timeout(CONNECT_TIMEOUT);
        let uses_tls = tls.is_some();
        if let Some(tls) = tls {
            endpoint = endpoint.tls_config(tls).map_err(|e| fail(Stage::Tls, describe(&e), false))?;
        }
        match tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect()).await {
            Err(_) => Err(fail(Stage::Address, format!("no answer within {CONNECT_TIMEOUT:?}"), false)),
            Ok(Err(e)) => {
                let (stage, reason, not_running) = describe_transport_error(&e, uses_tls);
                Err(fail(stage, reason, not_running))
            }
            Ok(Ok(channel)) => Ok(PauseMonitorClient::with_interceptor(channel, bearer)),
        }
    }
}

/// An HTTP/2 channel over a TLS connection that trusts only the pinned certificate.
/// tonic is given `http://` and a connector that does the TLS itself, since its own TLS
/// trusts CAs and checks names, which a pin replaces.
async fn connect_pinned(uri: &str, pin: Fingerprint) -> Result<Channel, (Stage, String, Option<Fingerprint>)> {
    let authority = uri.strip_prefix("https://").unwrap_or(uri).to_string();
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{authority}"))
        .map_err(|e| (Stage::Address, e.to_string(), None))?
        .connect_timeout(CONNECT_TIMEOUT);
    let connector = tower::service_fn(move |_: tonic::transport::Uri| {
        let authority = authority.clone();
        async move { pin::connect(&authority, pin, CONNECT_TIMEOUT).await.map(hyper_util::rt::TokioIo::new) }
    });
    endpoint.connect_with_connector(connector).await.map_err(|e| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(err) = source {
            if let Some(pin) = err.downcast_ref::<PinError>() {
                let stage = if matches!(pin, PinError::Address(_)) { Stage::Address } else { Stage::Tls };
                let presented = match pin {
                    PinError::Mismatch { presented, .. } => Some(*presented),
                    _ => None,
                };
                return (stage, pin.to_string(), presented);
            }
            source = err.source();
        }
        (Stage::Address, describe(&e), None)
    })
}

/// A client over a channel made elsewhere (with transport settings of its own), for
/// the local socket or a listener without a token.
pub fn client_over(channel: Channel) -> Client {
    PauseMonitorClient::with_interceptor(channel, Bearer(None))
}

/// An error with its chain of causes, which is where the useful words are.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(err) = source {
        let more = err.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = err.source();
    }
    text
}

/// Names the step that failed and what a person can fix, from the I/O error behind a
/// transport error: refusals and lookups are the address; with TLS, anything else
/// that breaks the connection (a certificate not trusted, a server not speaking TLS)
/// happened in the handshake.
fn describe_transport_error(e: &tonic::transport::Error, tls: bool) -> (Stage, String, bool) {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return match io.kind() {
                io::ErrorKind::NotFound => (Stage::Address, "no socket there (the server is not running)".into(), true),
                io::ErrorKind::ConnectionRefused => {
                    (Stage::Address, "connection refused (the server is not running)".into(), true)
                }
                io::ErrorKind::PermissionDenied => {
                    (Stage::Address, "permission denied (the socket belongs to another user)".into(), false)
                }
                io::ErrorKind::TimedOut
                | io::ErrorKind::HostUnreachable
                | io::ErrorKind::NetworkUnreachable
                | io::ErrorKind::AddrNotAvailable => (Stage::Address, io.to_string(), false),
                _ if io.to_string().contains("lookup") => (Stage::Address, io.to_string(), false),
                _ if tls => (Stage::Tls, tls_hint(&describe(io)), false),
                _ => (Stage::Address, io.to_string(), false),
            };
        }
        source = err.source();
    }
    if tls { (Stage::Tls, tls_hint(&describe(e)), false) } else { (Stage::Address, describe(e), false) }
}

fn tls_hint(detail: &str) -> String {
    let hint = if detail.contains("CaUsedAsEndEntity") {
        "; the server presents a CA certificate as its own (a plain self-signed certificate, e.g. from \
         `openssl req -x509`), which TLS refuses: pin it instead (pmon remote add NAME URL), or start \
         pmon-server without --tls-cert/--tls-key so that it makes its own CA and certificate"
    } else if detail.contains("UnknownIssuer") || detail.contains("certificate") {
        "; is --ca-file the CA that signed the server's certificate, and does the certificate name this host?"
    } else {
        "; is the server listening with TLS there (--tls-cert), or is it a plaintext --insecure listener (http://)?"
    };
    format!("handshake failed: {detail}{hint}")
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
        let (scheme, authority, tls) = if let Some(a) = s.strip_prefix("https://") {
            ("https", a, true)
        } else if let Some(a) = s.strip_prefix("http://") {
            ("http", a, false)
        } else {
            return Err(fail("unknown scheme"));
        };
        let authority = authority.trim_end_matches('/');
        let Some((host, port)) = authority.rsplit_once(':') else {
            return Err(fail("the port is missing"));
        };
        if host.is_empty() || authority.contains('/') {
            return Err(fail("expected host:port after the scheme"));
        }
        if port.parse::<u16>().is_err() {
            return Err(fail("the port is not a number from 0 to 65535"));
        }
        Ok(Endpoint::Tcp(Remote { uri: format!("{scheme}://{authority}"), tls, credentials: Credentials::default() }))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            Endpoint::Tcp(remote) => f.write_str(&remote.uri),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(uri: &str, tls: bool) -> Endpoint {
        Endpoint::Tcp(Remote { uri: uri.into(), tls, credentials: Credentials::default() })
    }

    #[test]
    fn parses_accepted_forms() {
        let cases = [
            ("unix:///run/pmon/daemon.sock", Endpoint::Unix("/run/pmon/daemon.sock".into())),
            ("unix:rel/daemon.sock", Endpoint::Unix("rel/daemon.sock".into())),
            ("http://mac.local:7070", tcp("http://mac.local:7070", false)),
            ("http://[::1]:7070/", tcp("http://[::1]:7070", false)),
            ("https://mac.local:7070", tcp("https://mac.local:7070", true)),
        ];
        for (given, want) in cases {
            assert_eq!(given.parse::<Endpoint>().ok(), Some(want), "{given}");
        }
    }

    #[test]
    fn rejects_others_naming_the_accepted_forms() {
        for given in [
            "unix:",
            "http://host",
            "http://:80",
            "http://h:99999",
            "ftp://x",
            "/tmp/x.sock",
            "https://h",
            "https://h:x",
        ] {
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

    #[test]
    fn credentials_go_with_tcp_and_certificates_only_with_https() {
        let token = Credentials { token_file: Some("/t".into()), ..Credentials::default() };
        let all = Credentials {
            ca_file: Some("/ca.pem".into()),
            client_cert: Some(("/c.pem".into(), "/k.pem".into())),
            ..token.clone()
        };
        let https: Endpoint = "https://h:1".parse().expect("valid");
        let Endpoint::Tcp(r) = https.with_credentials(all.clone()).expect("accepted") else { panic!("tcp") };
        assert_eq!(r.credentials, all);
        let unix: Endpoint = "unix:///s".parse().expect("valid");
        assert_eq!(unix.clone().with_credentials(token.clone()).expect("ignored"), unix);
        let plain: Endpoint = "http://h:1".parse().expect("valid");
        assert!(plain.with_credentials(token).is_ok(), "a token over loopback plaintext");
        let cert_only = Credentials { client_cert: all.client_cert.clone(), ..Credentials::default() };
        for (given, credentials, flag) in [
            ("http://h:1", all.clone(), "--ca-file"),
            ("unix:///s", all.clone(), "--ca-file"),
            ("http://h:1", cert_only, "--client-cert"),
        ] {
            let err = given.parse::<Endpoint>().expect("valid").with_credentials(credentials).expect_err(given);
            assert!(err.starts_with(&format!("{flag} applies to https:// addresses only, not {given}")), "{err}");
        }
    }

    #[tokio::test]
    async fn a_refused_address_and_an_unreadable_token_name_their_step() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let refused: Endpoint = format!("https://127.0.0.1:{port}").parse().expect("valid");
        let err = refused.connect().await.expect_err("nothing listens");
        assert_eq!((err.stage, err.not_running), (Stage::Address, true), "{err}");
        assert!(err.to_string().contains("(address failed)"), "{err}");

        let credentials = Credentials { token_file: Some("/nonexistent/token".into()), ..Credentials::default() };
        let with_token = refused.with_credentials(credentials).expect("valid");
        let err = with_token.connect().await.expect_err("no token file");
        assert_eq!(err.stage, Stage::Token, "{err}");
        assert!(err.to_string().contains("cannot read token file /nonexistent/token"), "{err}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(crate::fuzz_tests::cases()))]

        #[test]
        fn endpoint_parsing_never_panics_and_accepted_addresses_display_as_they_parse(text in "\\PC{0,40}") {
            if let Ok(endpoint) = text.parse::<Endpoint>() {
                let again = endpoint.to_string().parse::<Endpoint>().expect("its own display parses");
                proptest::prop_assert_eq!(again, endpoint);
            }
        }

        #[test]
        fn host_and_port_forms_round_trip(host in "[a-z][a-z0-9.-]{0,20}", port: u16, tls: bool) {
            let scheme = if tls { "https" } else { "http" };
            let endpoint: Endpoint = format!("{scheme}://{host}:{port}").parse().expect("valid");
            proptest::prop_assert_eq!(endpoint, tcp(&format!("{scheme}://{host}:{port}"), tls));
        }
    }
}
