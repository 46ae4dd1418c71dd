//! Trusting a server by its certificate's fingerprint, as ssh and Syncthing do, instead
//! of by a public CA: the watching machine pins the SHA-256 of the certificate that
//! anchors the server's chain, and later connections accept that chain and no other.
//!
//! ```text
//! pmon remote add ─► handshake with `peek` (records the anchor, sends nothing) ─► confirm
//!                ─► pinned: handshake with `Pinned` (anchor == pin, leaf signed by it)
//! ```
//!
//! The anchor is the last certificate the server presents: its own CA when it sends one
//! (pmon-server's own certificate does), else its certificate itself. Names are not
//! checked: the pin is the identity, so an address the certificate does not name
//! (another interface, a port forward) works. Validity dates and signatures are.

use std::{
    fmt,
    str::FromStr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, ServerName, UnixTime},
};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};

/// The SHA-256 of a certificate (DER), shown as `SHA256:` and 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of(der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut bytes = [0; 32];
        bytes.copy_from_slice(digest.as_ref());
        Fingerprint(bytes)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SHA256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A fingerprint that is not `SHA256:` and 64 hex digits.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid fingerprint {0:?}: expected SHA256: and 64 hex digits (colons allowed), as pmon-server prints it \
     and `pmon status --json` shows it"
)]
pub struct FingerprintError(String);

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fail = || FingerprintError(s.to_string());
        let trimmed = s.trim();
        let hex = trimmed
            .strip_prefix("SHA256:")
            .or_else(|| trimmed.strip_prefix("sha256:"))
            .unwrap_or(trimmed)
            .replace(':', "");
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(fail());
        }
        let mut bytes = [0; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| fail())?;
        }
        Ok(Fingerprint(bytes))
    }
}

/// The certificate a presented chain is pinned by: the last one.
fn anchor<'a>(end_entity: &'a CertificateDer<'a>, intermediates: &'a [CertificateDer<'a>]) -> &'a CertificateDer<'a> {
    intermediates.last().unwrap_or(end_entity)
}

/// What a handshake found, for the error a person reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The anchor matched the pin (the handshake may still fail later, e.g. on dates).
    Matched,
    /// The server presented a chain anchored elsewhere.
    Mismatch(Fingerprint),
}

/// Accepts exactly the chain anchored by `pin`, and records what it saw.
#[derive(Debug)]
struct Pinned {
    pin: Option<Fingerprint>,
    provider: Arc<CryptoProvider>,
    seen: Arc<Mutex<Option<Fingerprint>>>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let root = anchor(end_entity, intermediates);
        let presented = Fingerprint::of(root);
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(presented);
        // Peeking (no pin yet): record and refuse, so nothing is ever sent.
        if self.pin != Some(presented) {
            return Err(rustls::Error::General(format!("certificate fingerprint {presented} is not the pinned one")));
        }
        let ee = webpki::EndEntityCert::try_from(end_entity).map_err(|e| pki_error(&e))?;
        let anchor = webpki::anchor_from_trusted_cert(root).map_err(|e| pki_error(&e))?;
        // The pinned certificate is the trust anchor; what lies between it and the leaf
        // must chain up to it. Dates are checked first, whatever the chain.
        let between = intermediates.split_last().map_or(&[][..], |(_, rest)| rest);
        let algorithms = self.provider.signature_verification_algorithms.all;
        let usage = webpki::KeyUsage::server_auth();
        match ee.verify_for_usage(algorithms, &[anchor], between, now, usage, None, None) {
            Ok(_) => Ok(ServerCertVerified::assertion()),
            // The server's own certificate pinned, self-signed: it is its own issuer.
            Err(webpki::Error::UnknownIssuer | webpki::Error::CaUsedAsEndEntity) if intermediates.is_empty() => {
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(pki_error(&e)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

fn pki_error(e: &webpki::Error) -> rustls::Error {
    let why = match e {
        webpki::Error::CertExpired { .. } => "the server's certificate has expired".to_string(),
        webpki::Error::CertNotValidYet { .. } => "the server's certificate is not valid yet (check both clocks)".into(),
        other => format!("the server's certificate chain is not valid: {other:?}"),
    };
    rustls::Error::General(why)
}

/// How a pinned connection failed.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// Nothing answered, or not in time.
    #[error("{0}")]
    Address(String),
    /// The server presented a chain anchored by another certificate.
    #[error("the server's certificate is not the pinned one: pinned {pinned}, presented {presented}")]
    Mismatch {
        /// What was pinned.
        pinned: Fingerprint,
        /// What the server presented.
        presented: Fingerprint,
    },
    /// The handshake failed otherwise (dates, signatures, no TLS there).
    #[error("TLS handshake failed: {0}")]
    Tls(String),
}

/// Connects to `host:port` and completes a TLS handshake that accepts only the chain
/// anchored by `pin`, offering HTTP/2. Within `timeout`, connection and handshake.
pub async fn connect(authority: &str, pin: Fingerprint, timeout: Duration) -> Result<TlsStream<TcpStream>, PinError> {
    let (result, seen) = handshake(authority, Some(pin), timeout).await;
    result.map_err(|e| match (e, seen) {
        (PinError::Tls(_), Some(presented)) if presented != pin => PinError::Mismatch { pinned: pin, presented },
        (e, _) => e,
    })
}

/// The fingerprint of the certificate anchoring the server's chain, from a handshake
/// that is broken off once it is known: nothing is sent to a server not yet trusted.
pub async fn peek(authority: &str, timeout: Duration) -> Result<Fingerprint, PinError> {
    match handshake(authority, None, timeout).await {
        (_, Some(seen)) => Ok(seen),
        (Err(e), None) => Err(e),
        (Ok(_), None) => Err(PinError::Tls("the server presented no certificate".into())),
    }
}

async fn handshake(
    authority: &str,
    pin: Option<Fingerprint>,
    timeout: Duration,
) -> (Result<TlsStream<TcpStream>, PinError>, Option<Fingerprint>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let seen = Arc::new(Mutex::new(None));
    let verifier = Pinned { pin, provider: Arc::clone(&provider), seen: Arc::clone(&seen) };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| b.dangerous().with_custom_certificate_verifier(Arc::new(verifier)).with_no_client_auth());
    let mut config = match config {
        Ok(c) => c,
        Err(e) => return (Err(PinError::Tls(e.to_string())), None),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
    // The name goes in the handshake (SNI) only; the pin, not the name, is checked.
    let name = match ServerName::try_from(host.to_string()).or_else(|_| ServerName::try_from("pmon".to_string())) {
        Ok(name) => name,
        Err(e) => return (Err(PinError::Tls(e.to_string())), None),
    };
    let attempt = async {
        let tcp = TcpStream::connect(authority).await.map_err(|e| PinError::Address(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(|e| PinError::Tls(e.to_string()))
    };
    let result = match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(PinError::Address(format!("no answer within {timeout:?}"))),
    };
    let seen = *seen.lock().unwrap_or_else(PoisonError::into_inner);
    (result, seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_print_and_parse_alike() {
        let f = Fingerprint::of(b"a certificate");
        let text = f.to_string();
        assert!(text.starts_with("SHA256:") && text.len() == 7 + 64, "{text}");
        assert_eq!(text.parse::<Fingerprint>().expect("own form"), f);
        let colons: String = text.as_bytes()[7..]
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).to_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(format!("SHA256:{colons}").parse::<Fingerprint>().expect("colons, upper case"), f);
    }

    /// A CA and a leaf it signed, valid from `from` to `to` (days from now).
    fn chain(from: i64, to: i64) -> (CertificateDer<'static>, CertificateDer<'static>) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().expect("key");
        let ca_cert = ca.self_signed(&ca_key).expect("CA");
        let issuer = Issuer::new(ca, ca_key);
        let mut leaf = CertificateParams::new(vec!["box".to_string()]).expect("params");
        let now = time::OffsetDateTime::now_utc();
        (leaf.not_before, leaf.not_after) = (now + time::Duration::days(from), now + time::Duration::days(to));
        let leaf = leaf.signed_by(&KeyPair::generate().expect("key"), &issuer).expect("leaf");
        (leaf.der().clone(), ca_cert.der().clone())
    }

    fn verify(pin: Option<Fingerprint>, leaf: &CertificateDer<'_>, ca: &CertificateDer<'_>) -> Result<(), String> {
        let verifier = Pinned {
            pin,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            seen: Arc::new(Mutex::new(None)),
        };
        let name = ServerName::try_from("elsewhere").expect("name");
        verifier
            .verify_server_cert(leaf, std::slice::from_ref(ca), &name, &[], UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_pinned_chain_is_accepted_whatever_its_names_and_no_other() {
        let (leaf, ca) = chain(-1, 30);
        assert_eq!(verify(Some(Fingerprint::of(&ca)), &leaf, &ca), Ok(()), "names are not checked");
        let (_, other_ca) = chain(-1, 30);
        let err = verify(Some(Fingerprint::of(&other_ca)), &leaf, &ca).expect_err("another pin");
        assert!(err.contains("is not the pinned one"), "{err}");
        let (stranger, _) = chain(-1, 30);
        let err = verify(Some(Fingerprint::of(&ca)), &stranger, &ca).expect_err("a leaf the pinned CA did not sign");
        assert!(err.contains("not valid"), "{err}");
    }

    #[test]
    fn an_expired_or_future_certificate_is_refused_saying_so() {
        let (leaf, ca) = chain(-30, -1);
        let err = verify(Some(Fingerprint::of(&ca)), &leaf, &ca).expect_err("expired");
        assert!(err.contains("has expired"), "{err}");
        let (leaf, ca) = chain(2, 30);
        let err = verify(Some(Fingerprint::of(&ca)), &leaf, &ca).expect_err("not yet valid");
        assert!(err.contains("not valid yet"), "{err}");
    }

    #[test]
    fn bad_fingerprints_name_the_accepted_form() {
        for bad in ["", "SHA256:", "SHA256:abc", "MD5:00", &format!("SHA256:{}", "g".repeat(64))] {
            let err = bad.parse::<Fingerprint>().expect_err(bad).to_string();
            assert!(err.contains("expected SHA256: and 64 hex digits"), "{err}");
        }
    }
}
