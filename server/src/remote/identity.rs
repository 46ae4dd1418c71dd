//! pmon-server's own TLS identity, for `--listen` without certificate options: a CA
//! of its own and a server certificate it signs, made on first use and kept in the
//! data directory, so the fingerprint a watching machine pinned stays valid across
//! restarts. A CA and a leaf, not one self-signed certificate: TLS stacks refuse a CA
//! used as a server's own certificate, and grpcurl or Prometheus given `ca.pem` verify
//! the leaf the usual way.
//!
//! ```text
//! <data>/tls/ca.pem, ca.key          made once (10 years); its fingerprint is the pin
//! <data>/tls/server.pem, server.key  signed by it for the names asked; made again, by
//!                                    the same CA, when a name is added
//! <data>/remote.token                a random token, when no --token-file is given
//! ```
//!
//! Keys and the token are written with mode 0600, each file whole (written aside and
//! renamed), so a crash never leaves half a key.

use std::{
    fs,
    net::IpAddr,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
};

use pmon_proto::{paths, pin::Fingerprint};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::RemoteError;

/// How long the CA and the certificates it signs are valid.
const VALID_DAYS: i64 = 3650;

/// The certificate chain and key the listener presents, and the pin for it.
#[derive(Debug)]
pub struct Identity {
    /// The server certificate, then the CA's (PEM).
    pub chain_pem: String,
    /// The server certificate's key (PEM).
    pub key_pem: String,
    /// The CA certificate's fingerprint: what a watching machine pins.
    pub fingerprint: Fingerprint,
    /// Whether the CA was made just now (the first start with `--listen`).
    pub created: bool,
}

fn tls_err(what: &str, path: &Path, e: impl std::fmt::Display) -> RemoteError {
    RemoteError::Tls(format!("cannot {what} {}: {e}", path.display()))
}

/// Writes `contents` to `path` whole, with `mode` (see [`paths::write_whole`]).
pub(super) fn write_private(path: &Path, contents: &[u8], mode: u32) -> Result<(), RemoteError> {
    paths::write_whole(path, contents, mode).map_err(|e| tls_err("write", path, e))
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "pmon-server CA");
    name.push(DnType::OrganizationName, "pause-monitor");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params);
    params
}

fn validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    // A day back, for a watching machine whose clock is a little behind.
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(VALID_DAYS);
}

/// The CA of `dir`: loaded, or made when there is none.
fn ca(dir: &Path) -> Result<(Issuer<'static, KeyPair>, String, bool), RemoteError> {
    let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
    if cert_path.exists() && key_path.exists() {
        let pem = fs::read_to_string(&cert_path).map_err(|e| tls_err("read", &cert_path, e))?;
        let key_pem = fs::read_to_string(&key_path).map_err(|e| tls_err("read", &key_path, e))?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| tls_err("use the key", &key_path, e))?;
        // The issuer signs with the key under the CA's name: both as they were made.
        return Ok((Issuer::new(ca_params(), key), pem, false));
    }
    let key = KeyPair::generate().map_err(|e| tls_err("make a key for", &key_path, e))?;
    let cert = ca_params().self_signed(&key).map_err(|e| tls_err("make", &cert_path, e))?;
    write_private(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_private(&cert_path, cert.pem().as_bytes(), 0o644)?;
    Ok((Issuer::new(ca_params(), key), cert.pem(), true))
}

/// The identity kept in `dir` (made or completed as needed), whose server certificate
/// names at least `names` (host names and addresses).
pub fn ensure(dir: &Path, names: &[String]) -> Result<Identity, RemoteError> {
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| tls_err("create", dir, e))?;
    // Made earlier by someone else, it may be looser: the keys are in it.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| tls_err("restrict", dir, e))?;
    let (issuer, ca_pem, created) = ca(dir)?;
    let (cert_path, key_path, names_path) = (dir.join("server.pem"), dir.join("server.key"), dir.join("server.names"));
    let covered: Vec<String> =
        fs::read_to_string(&names_path).unwrap_or_default().lines().map(str::to_string).collect();
    let current = !created
        && cert_path.exists()
        && key_path.exists()
        && names.iter().all(|n| covered.iter().any(|c| c.eq_ignore_ascii_case(n)));
    let (leaf_pem, key_pem) = if current {
        let read = |p: &Path| fs::read_to_string(p).map_err(|e| tls_err("read", p, e));
        (read(&cert_path)?, read(&key_path)?)
    } else {
        // Names already covered stay covered: a pin never breaks by a name going away.
        let mut all: Vec<String> = covered;
        for n in names {
            if !all.iter().any(|c| c.eq_ignore_ascii_case(n)) {
                all.push(n.clone());
            }
        }
        let mut params =
            CertificateParams::new(all.clone()).map_err(|e| tls_err("name the certificate", &cert_path, e))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, all.first().map_or("pmon-server", String::as_str));
        params.distinguished_name = dn;
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        validity(&mut params);
        let key = KeyPair::generate().map_err(|e| tls_err("make a key for", &key_path, e))?;
        let cert = params.signed_by(&key, &issuer).map_err(|e| tls_err("sign", &cert_path, e))?;
        write_private(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
        write_private(&cert_path, cert.pem().as_bytes(), 0o644)?;
        write_private(&names_path, (all.join("\n") + "\n").as_bytes(), 0o644)?;
        (cert.pem(), key.serialize_pem())
    };
    let ca_der = pem_certificates(&ca_pem)
        .into_iter()
        .next()
        .ok_or_else(|| tls_err("read", &dir.join("ca.pem"), "no certificate"))?;
    Ok(Identity {
        chain_pem: format!("{}{}", leaf_pem.trim_end(), format_args!("\n{}", ca_pem)),
        key_pem,
        fingerprint: Fingerprint::of(&ca_der),
        created,
    })
}

/// The DER certificates of a PEM text, in order.
pub fn pem_certificates(pem: &str) -> Vec<Vec<u8>> {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    CertificateDer::pem_slice_iter(pem.as_bytes()).filter_map(Result::ok).map(|c| c.to_vec()).collect()
}

/// The names the server certificate should carry: this host's name, `localhost`, the
/// loopback and interface addresses, the address listened on, and those asked for.
pub fn names(listen_ip: IpAddr, extra: &[String]) -> Vec<String> {
    let mut names = Vec::new();
    let mut add = |n: String| {
        if !n.is_empty() && !names.iter().any(|m: &String| m.eq_ignore_ascii_case(&n)) {
            names.push(n);
        }
    };
    if let Some(host) = hostname() {
        add(host.clone());
        if !host.contains('.') {
            add(format!("{host}.local"));
        }
    }
    add("localhost".into());
    if !listen_ip.is_unspecified() {
        add(listen_ip.to_string());
    }
    for ip in interface_addresses() {
        add(ip.to_string());
    }
    extra.iter().cloned().for_each(add);
    names
}

/// This machine's host name.
pub fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that much.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8(buf[..end].to_vec()).ok().filter(|h| !h.is_empty())
}

/// The IPv4 and IPv6 addresses of this machine's interfaces, loopback first.
pub fn interface_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates the list it stores in `list`; freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return out;
    }
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: `cursor` points into the list getifaddrs returned, not yet freed.
        let entry = unsafe { &*cursor };
        if !entry.ifa_addr.is_null() {
            // SAFETY: ifa_addr is non-null and its family says which sockaddr it is.
            let family = i32::from(unsafe { (*entry.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*entry.ifa_addr.cast::<libc::sockaddr_in>() };
                out.push(IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes()));
            } else if family == libc::AF_INET6 {
                // SAFETY: an AF_INET6 address is a sockaddr_in6.
                let sin6 = unsafe { &*entry.ifa_addr.cast::<libc::sockaddr_in6>() };
                let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                // Link-local addresses need a zone to be reached: no use in a certificate.
                if ip.segments()[0] & 0xffc0 != 0xfe80 {
                    out.push(IpAddr::V6(ip));
                }
            }
        }
        cursor = entry.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    out.sort_by_key(|ip| !ip.is_loopback());
    out.dedup();
    out
}

/// The token file of a listener given no `--token-file`: `<data>/remote.token`, made
/// with a random token on first use.
pub fn token_file(data_dir: &Path) -> Result<PathBuf, RemoteError> {
    let path = data_dir.join("remote.token");
    if !path.exists() {
        let mut bytes = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| tls_err("make a random token for", &path, "no randomness from the system"))?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        write_private(&path, format!("{token}\n").as_bytes(), 0o600)?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_is_made_once_and_reused_and_grows_names_under_the_same_ca() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tls = dir.path().join("tls");
        let first = ensure(&tls, &["box.example".into(), "10.0.0.5".into()]).expect("made");
        assert!(first.created);
        let mode = |name: &str| {
            use std::os::unix::fs::PermissionsExt;
            fs::metadata(tls.join(name)).expect(name).permissions().mode() & 0o777
        };
        assert_eq!((mode("ca.key"), mode("server.key")), (0o600, 0o600));
        let again = ensure(&tls, &["box.example".into()]).expect("reused");
        assert!(!again.created);
        assert_eq!((again.fingerprint, &again.chain_pem), (first.fingerprint, &first.chain_pem));
        let grown = ensure(&tls, &["other.example".into()]).expect("a name added");
        assert_eq!(grown.fingerprint, first.fingerprint, "the same CA: the pin holds");
        assert_ne!(grown.chain_pem, first.chain_pem, "a new certificate");
        let names = fs::read_to_string(tls.join("server.names")).expect("names");
        assert_eq!(names, "box.example\n10.0.0.5\nother.example\n");
        assert_eq!(pem_certificates(&grown.chain_pem).len(), 2, "leaf and CA");
    }

    #[test]
    fn a_token_is_made_once_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = token_file(dir.path()).expect("made");
        let token = pmon_proto::token::Token::read(&path).expect("a valid token file");
        assert_eq!(token_file(dir.path()).expect("kept"), path);
        assert!(pmon_proto::token::Token::read(&path).expect("same") == token);
    }

    #[test]
    fn names_hold_localhost_loopback_and_the_extra_ones() {
        let names = names("0.0.0.0".parse().expect("ip"), &["mac.example".into()]);
        assert!(names.iter().any(|n| n == "localhost"), "{names:?}");
        assert!(names.iter().any(|n| n == "127.0.0.1"), "{names:?}");
        assert!(names.iter().any(|n| n == "mac.example"), "{names:?}");
        assert!(!names.iter().any(|n| n == "0.0.0.0"), "{names:?}");
    }
}
