//! The optional TCP listener (SPEC §6), for watching a machine from another one.
//!
//! ```text
//! --listen HOST:PORT ─► check flags ─► resolve ─► token file (0600) ─► TLS files ─► bind
//!   each connection: TLS handshake (rustls; client certificate with --client-ca)
//!     ─► every request: bearer token, compared in constant time ─► the same services
//! ```
//!
//! Off by default. TLS and a token are required; plaintext is accepted only on a
//! loopback address and only with `--insecure`, and the token is required even then.
//! Without certificate options the server uses its own CA and certificate, and without
//! `--token-file` a random token of its own ([`identity`]): `--listen` alone is enough,
//! and what a watching machine needs (the fingerprint to pin, the command to run) is
//! printed at start and shown by `pmon status`.
//! The local Unix socket needs no token: its file permissions guard it.

pub mod identity;

use std::{
    fmt, fs,
    future::Future,
    net::{SocketAddr, ToSocketAddrs},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use pmon_proto::{
    pin::Fingerprint,
    token::{self, Token},
};
use tonic::{
    service::{InterceptorLayer, Routes},
    transport::{
        Certificate, Identity, Server, ServerTlsConfig,
        server::{TcpConnectInfo, TcpIncoming},
    },
};

/// How long a client gets to finish the TLS handshake: one that connects and stays
/// silent must not hold a connection for ever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an idle remote connection is probed, so a client that vanished (a laptop
/// closed mid-watch) frees its watcher slot instead of holding it until TCP gives up.
const KEEPALIVE: Duration = Duration::from_secs(30);

/// The TCP listener's settings, as given on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// `--listen HOST:PORT`.
    pub listen: String,
    /// `--tls-cert FILE` (PEM, the chain the server presents).
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key FILE` (PEM).
    pub tls_key: Option<PathBuf>,
    /// `--client-ca FILE` (PEM): clients must present a certificate it signed.
    pub client_ca: Option<PathBuf>,
    /// `--token-file FILE` (mode 0600).
    pub token_file: Option<PathBuf>,
    /// `--insecure`: plaintext, loopback only.
    pub insecure: bool,
    /// `--tls-name NAME` (repeatable): more names or addresses for the server's own
    /// certificate.
    pub tls_names: Vec<String>,
}

/// What a watching machine needs to know about the listener, for the start-up lines
/// and `pmon status`.
#[derive(Debug, Clone)]
pub struct Access {
    /// Where it listens.
    pub address: SocketAddr,
    /// The fingerprint to pin: of the last certificate of the chain presented.
    pub fingerprint: Option<Fingerprint>,
    /// The token file clients need the contents of.
    pub token_file: PathBuf,
    /// Whether the certificate is pmon-server's own (not `--tls-cert`).
    pub own_certificate: bool,
    /// Whether the own certificate or token was made at this start.
    pub created: bool,
}

impl Access {
    /// The command to run on the watching machine.
    pub fn add_command(&self) -> Option<String> {
        let fingerprint = self.fingerprint?;
        let host = if self.address.ip().is_unspecified() {
            identity::interface_addresses()
                .into_iter()
                .find(|ip| !ip.is_loopback() && ip.is_ipv4())
                .map_or_else(|| "HOST".to_string(), |ip| ip.to_string())
        } else {
            self.address.ip().to_string()
        };
        let host = if host.contains(':') { format!("[{host}]") } else { host };
        let name =
            identity::hostname().map_or_else(|| "box".into(), |h| h.split('.').next().unwrap_or("box").to_string());
        Some(format!("pmon remote add {name} https://{host}:{} --fingerprint {fingerprint}", self.address.port()))
    }

    /// The lines printed at start.
    pub fn describe(&self) -> String {
        let mut text = format!("listening on {} with TLS", self.address);
        if let Some(f) = self.fingerprint {
            let whose = if self.own_certificate { "its own certificate" } else { "the certificate given" };
            text += &format!(" ({whose}, fingerprint {f})");
        }
        text += &format!("\n  token: {} (paste its contents when asked)", self.token_file.display());
        if let Some(command) = self.add_command() {
            text += &format!("\n  on the watching machine: {command}");
        }
        text
    }
}

/// Why the TCP listener cannot start.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The flags do not make a safe listener.
    #[error("{0}")]
    Flags(String),
    /// The token file was refused.
    #[error(transparent)]
    Token(#[from] token::TokenError),
    /// A TLS file could not be read or used.
    #[error("{0}")]
    Tls(String),
    /// The address could not be resolved or bound.
    #[error("cannot listen on {address}: {reason}")]
    Address {
        /// The address given.
        address: String,
        /// Why.
        reason: String,
    },
}

/// A bound listener with its TLS configuration and token, ready to serve.
pub struct Listener {
    listener: tokio::net::TcpListener,
    server: Server,
    token: Arc<Token>,
    /// Where it listens.
    pub address: SocketAddr,
    /// Whether it speaks TLS.
    pub tls: bool,
    /// What a watching machine needs (TLS listeners only).
    pub access: Option<Access>,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener").field("address", &self.address).field("tls", &self.tls).finish_non_exhaustive()
    }
}

/// Checks that the flags make a safe listener; `loopback` says whether the address
/// resolves to loopback addresses only.
pub fn check_flags(s: &Settings, loopback: bool) -> Result<(), RemoteError> {
    let flags = |text: String| Err(RemoteError::Flags(text));
    match (&s.tls_cert, &s.tls_key, s.insecure) {
        (Some(_), Some(_), false) | (None, None, false) => {}
        (Some(_), None, _) | (None, Some(_), _) => return flags("--tls-cert and --tls-key go together".into()),
        (Some(_), Some(_), true) => {
            return flags("--insecure means no TLS; give either --tls-cert and --tls-key, or --insecure".into());
        }
        (None, None, true) if !loopback => {
            return flags(format!(
                "refusing plaintext TCP on {}: it is not a loopback address, so anyone on the network could read \
                 the token and the data; leave out --insecure (pmon-server then uses TLS with its own \
                 certificate), or listen on 127.0.0.1 or [::1]",
                s.listen
            ));
        }
        (None, None, true) if s.token_file.is_none() => {
            return flags(format!(
                "--insecure needs --token-file FILE: a file of mode 0600 holding the bearer token clients must \
                 send; make one with {}",
                token::HOW_TO_MAKE
            ));
        }
        (None, None, true) => {}
    }
    if !s.tls_names.is_empty() && (s.tls_cert.is_some() || s.insecure) {
        return flags(
            "--tls-name names pmon-server's own certificate; it does not apply with --tls-cert or --insecure".into(),
        );
    }
    if s.client_ca.is_some() && s.insecure {
        return flags("--client-ca needs TLS, not --insecure".into());
    }
    Ok(())
}

/// The flags that only make sense with `--listen`, if any was given without it.
pub fn stray_flag(s: &Settings) -> Option<&'static str> {
    [
        ("--tls-cert", s.tls_cert.is_some()),
        ("--tls-key", s.tls_key.is_some()),
        ("--client-ca", s.client_ca.is_some()),
        ("--token-file", s.token_file.is_some()),
        ("--insecure", s.insecure),
        ("--tls-name", !s.tls_names.is_empty()),
    ]
    .into_iter()
    .find_map(|(flag, given)| given.then_some(flag))
}

fn read_pem(flag: &str, path: &Path) -> Result<Vec<u8>, RemoteError> {
    fs::read(path).map_err(|e| RemoteError::Tls(format!("cannot read {flag} {}: {e}", path.display())))
}

/// Checks the flags, reads (or makes, in `data_dir`) the token and TLS files, and binds
/// the address. Must run inside a tokio runtime.
pub fn prepare(s: &Settings, data_dir: &Path) -> Result<Listener, RemoteError> {
    let address_err = |reason: String| RemoteError::Address { address: s.listen.clone(), reason };
    let addresses: Vec<SocketAddr> = s
        .listen
        .to_socket_addrs()
        .map_err(|e| address_err(format!("{e} (expected HOST:PORT, e.g. 0.0.0.0:7070 or [::1]:7070)")))?
        .collect();
    let Some(&first) = addresses.first() else {
        return Err(address_err("the name resolves to no address".into()));
    };
    check_flags(s, addresses.iter().all(|a| a.ip().is_loopback()))?;
    let made_token = s.token_file.is_none() && !data_dir.join("remote.token").exists();
    let token_file = match &s.token_file {
        Some(path) => path.clone(),
        None => identity::token_file(data_dir)?,
    };
    let token = Token::read(&token_file)?;
    let mut server =
        Server::builder().http2_keepalive_interval(Some(KEEPALIVE)).http2_keepalive_timeout(Some(KEEPALIVE / 2));
    let presented = match (&s.tls_cert, &s.tls_key, s.insecure) {
        (Some(cert), Some(key), _) => Some(given_identity(cert, key)?),
        (None, None, false) => {
            let own = identity::ensure(&data_dir.join("tls"), &identity::names(first.ip(), &s.tls_names))?;
            Some((own.chain_pem.into_bytes(), own.key_pem.into_bytes(), Some(own.fingerprint), own.created))
        }
        _ => None,
    };
    let access = match presented {
        Some((chain, key, fingerprint, created)) => {
            let identity = Identity::from_pem(chain, key);
            let mut config = ServerTlsConfig::new().identity(identity).timeout(HANDSHAKE_TIMEOUT);
            if let Some(ca) = &s.client_ca {
                config = config.client_ca_root(Certificate::from_pem(read_pem("--client-ca", ca)?));
            }
            let which = match (&s.tls_cert, &s.tls_key) {
                (Some(cert), Some(key)) => format!("--tls-cert {} with --tls-key {}", cert.display(), key.display()),
                _ => format!("the certificate in {}", data_dir.join("tls").display()),
            };
            server = server.tls_config(config).map_err(|e| {
                RemoteError::Tls(format!(
                    "cannot use {which}: {e} (both must be PEM, the key matching the certificate)"
                ))
            })?;
            Some((fingerprint, created))
        }
        None => None,
    };
    let std_listener = std::net::TcpListener::bind(first).map_err(|e| address_err(e.to_string()))?;
    std_listener.set_nonblocking(true).map_err(|e| address_err(e.to_string()))?;
    let listener = tokio::net::TcpListener::from_std(std_listener).map_err(|e| address_err(e.to_string()))?;
    let address = listener.local_addr().map_err(|e| address_err(e.to_string()))?;
    let access = access.map(|(fingerprint, created)| Access {
        address,
        fingerprint,
        token_file,
        own_certificate: s.tls_cert.is_none(),
        created: created || made_token,
    });
    Ok(Listener { listener, server, token: Arc::new(token), address, tls: access.is_some(), access })
}

/// The certificate chain and key given with `--tls-cert`/`--tls-key`, and the
/// fingerprint to pin them by. A lone self-signed CA certificate is refused here, with
/// what to do, rather than by every client's handshake with an obscure error.
#[allow(clippy::type_complexity)]
fn given_identity(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>, Option<Fingerprint>, bool), RemoteError> {
    let (chain, key_pem) = (read_pem("--tls-cert", cert)?, read_pem("--tls-key", key)?);
    let ders = identity::pem_certificates(&String::from_utf8_lossy(&chain));
    let Some(last) = ders.last() else {
        return Err(RemoteError::Tls(format!("--tls-cert {} holds no PEM certificate", cert.display())));
    };
    if ders.len() == 1 && is_ca_used_as_end_entity(last) {
        return Err(RemoteError::Tls(format!(
            "--tls-cert {} is a self-signed CA certificate (as `openssl req -x509` makes), and TLS clients refuse \
             a CA as a server's own certificate (CaUsedAsEndEntity). Leave out --tls-cert and --tls-key: \
             pmon-server then makes its own CA and certificate and prints the fingerprint to pin; or sign a \
             server certificate with your own CA (README, \"Your own CA\")",
            cert.display()
        )));
    }
    Ok((chain, key_pem, Some(Fingerprint::of(last)), false))
}

/// Whether a certificate is a CA's: as a server's own it fails every client.
fn is_ca_used_as_end_entity(der: &[u8]) -> bool {
    let der = rustls_pki_types::CertificateDer::from(der.to_vec());
    let (Ok(ee), Ok(anchor)) = (webpki::EndEntityCert::try_from(&der), webpki::anchor_from_trusted_cert(&der)) else {
        return false;
    };
    let algs = rustls::crypto::ring::default_provider().signature_verification_algorithms.all;
    let now = rustls_pki_types::UnixTime::now();
    let verdict =
        ee.verify_for_usage(algs, &[anchor], &[], now, webpki::KeyUsage::server_auth(), None, None).map(|_| ());
    matches!(verdict, Err(webpki::Error::CaUsedAsEndEntity))
}

impl Listener {
    /// What `pmon status` shows about this listener.
    pub fn remote_access(&self) -> pmon_proto::v1::RemoteAccess {
        let access = self.access.as_ref();
        pmon_proto::v1::RemoteAccess {
            address: self.address.to_string(),
            fingerprint: access.and_then(|a| a.fingerprint).map(|f| f.to_string()).unwrap_or_default(),
            token_file: access.map(|a| a.token_file.display().to_string()).unwrap_or_default(),
            own_certificate: access.is_some_and(|a| a.own_certificate),
            add_command: access.and_then(Access::add_command).unwrap_or_default(),
        }
    }

    /// Serves `routes` on this listener, every request checked for the token, until
    /// `shutdown` completes. A failed handshake or a refused request ends only that
    /// connection or request.
    pub async fn serve(
        self,
        routes: Routes,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), tonic::transport::Error> {
        let token = self.token;
        let check = move |request: tonic::Request<()>| authorize(&token, request);
        let incoming = TcpIncoming::from(self.listener).with_nodelay(Some(true)).with_keepalive(Some(KEEPALIVE));
        self.server
            .layer(InterceptorLayer::new(check))
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
    }
}

/// Lets a request through only with the right bearer token; never logs the token.
fn authorize(token: &Token, request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    let peer = request
        .extensions()
        .get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            request
                .extensions()
                .get::<tonic::transport::server::TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|i| i.get_ref().remote_addr())
        })
        .map_or_else(|| "unknown".to_string(), |a| a.to_string());
    match request.metadata().get("authorization") {
        Some(value) if token.accepts(value.as_bytes()) => Ok(request),
        Some(_) => {
            tracing::warn!(%peer, "refused a request with a wrong bearer token");
            Err(tonic::Status::unauthenticated(
                "wrong bearer token: use the token file this server was started with (pmon --token-file FILE)",
            ))
        }
        None => {
            tracing::warn!(%peer, "refused a request without a bearer token");
            Err(tonic::Status::unauthenticated(
                "this listener requires a bearer token: pmon --token-file FILE (the file given to pmon-server \
                 --token-file)",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(listen: &str) -> Settings {
        Settings {
            listen: listen.into(),
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            client_ca: None,
            token_file: Some("t".into()),
            insecure: false,
            tls_names: Vec::new(),
        }
    }

    fn refusal(s: &Settings, loopback: bool) -> String {
        check_flags(s, loopback).expect_err("refused").to_string()
    }

    #[test]
    fn tls_with_a_token_is_accepted_anywhere() {
        assert!(check_flags(&settings("0.0.0.0:7070"), false).is_ok());
        let mtls = Settings { client_ca: Some("ca.pem".into()), ..settings("0.0.0.0:7070") };
        assert!(check_flags(&mtls, false).is_ok());
    }

    #[test]
    fn without_certificate_options_the_server_uses_its_own() {
        let own = Settings { tls_cert: None, tls_key: None, token_file: None, ..settings("0.0.0.0:7070") };
        assert!(check_flags(&own, false).is_ok(), "--listen alone");
        let named = Settings { tls_names: vec!["mac.example".into()], ..own.clone() };
        assert!(check_flags(&named, false).is_ok());
        let given = Settings { tls_names: vec!["x".into()], ..settings("0.0.0.0:7070") };
        assert!(refusal(&given, false).contains("--tls-name names pmon-server's own certificate"));
    }

    #[test]
    fn plaintext_only_on_loopback_and_only_with_insecure_and_a_token() {
        let plain = Settings { tls_cert: None, tls_key: None, insecure: true, ..settings("0.0.0.0:7070") };
        let err = refusal(&plain, false);
        assert!(err.contains("refusing plaintext TCP on 0.0.0.0:7070") && err.contains("not a loopback"), "{err}");
        assert!(check_flags(&plain, true).is_ok());
        let no_token = Settings { token_file: None, ..plain };
        assert!(refusal(&no_token, true).contains("--insecure needs --token-file FILE"));
    }

    #[test]
    fn flags_must_agree() {
        let half = Settings { tls_key: None, ..settings("127.0.0.1:1") };
        assert!(refusal(&half, true).contains("go together"));
        let both = Settings { insecure: true, ..settings("127.0.0.1:1") };
        assert!(refusal(&both, true).contains("--insecure means no TLS"));
        let ca_plain = Settings { tls_cert: None, tls_key: None, insecure: true, client_ca: Some("ca".into()), ..both };
        assert!(refusal(&ca_plain, true).contains("--client-ca needs TLS"));
    }

    #[test]
    fn flags_without_listen_are_named() {
        assert_eq!(stray_flag(&Settings::default()), None);
        let s = Settings { token_file: Some("t".into()), ..Settings::default() };
        assert_eq!(stray_flag(&s), Some("--token-file"));
    }

    #[test]
    fn the_interceptor_wants_the_exact_token() {
        let token = Token::parse("0123456789abcdef0123").expect("valid");
        let with = |value: Option<&str>| {
            let mut request = tonic::Request::new(());
            if let Some(v) = value {
                request.metadata_mut().insert("authorization", v.parse().expect("ascii"));
            }
            authorize(&token, request).map(|_| ()).map_err(|s| (s.code(), s.message().to_string()))
        };
        assert!(with(Some("Bearer 0123456789abcdef0123")).is_ok());
        let (code, message) = with(None).expect_err("no token");
        assert_eq!(code, tonic::Code::Unauthenticated);
        assert!(message.contains("requires a bearer token"), "{message}");
        let (code, message) = with(Some("Bearer 0123456789abcdef0124")).expect_err("wrong token");
        assert_eq!(code, tonic::Code::Unauthenticated);
        assert!(message.contains("wrong bearer token") && !message.contains("0123456789"), "{message}");
    }
}
