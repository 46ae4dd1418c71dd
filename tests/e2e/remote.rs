//! The TCP listener: TLS with certificates made for each test (rcgen), the bearer
//! token, mutual TLS, and the refusals that keep it safe by default.

use std::{os::unix::fs::PermissionsExt, path::PathBuf, process::Output, time::Duration};

use pmon_proto::{
    endpoint::{Credentials, Endpoint},
    v1::GetStatusRequest,
};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tempfile::TempDir;

use crate::support::{FAST, Server, pmon, spawn_server_with, wait_exit};

const TOKEN: &str = "dGhlLXJpZ2h0LXRva2VuLWZvci1wbW9uLXRlc3Rz";

/// A CA, a server certificate it signed for localhost and 127.0.0.1, a client
/// certificate it signed, a CA nobody used, and token files, all in a temporary dir.
pub(crate) struct Pki {
    dir: TempDir,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write pem");
        let ca = ca("pmon test CA");
        write("ca.pem", &ca.pem());
        write("other-ca.pem", &self::ca("someone else's CA").pem());
        for (name, names) in [("server", vec!["localhost".to_string(), "127.0.0.1".into()]), ("client", vec![])] {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(names).expect("params");
            params.distinguished_name.push(DnType::CommonName, format!("pmon test {name}"));
            let cert = params.signed_by(&key, &ca).expect("sign");
            write(&format!("{name}.pem"), &cert.pem());
            write(&format!("{name}-key.pem"), &key.serialize_pem());
        }
        let pki = Pki { dir };
        pki.token_file("token", TOKEN, 0o600);
        pki.token_file("wrong-token", "bm90LXRoZS1yaWdodC10b2tlbi1hdC1hbGw=", 0o600);
        pki
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).to_str().expect("utf-8 path").to_string()
    }

    fn token_file(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("write token");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    /// Starts a TLS server on a free loopback port with these extra arguments.
    pub(crate) fn server(&self, extra: &[&str]) -> Server {
        let (cert, key, token) = (self.arg("server.pem"), self.arg("server-key.pem"), self.arg("token"));
        let mut args = vec!["--listen", "127.0.0.1:0", "--tls-cert", &cert, "--tls-key", &key, "--token-file", &token];
        args.extend_from_slice(extra);
        Server::start_with(tempfile::tempdir().expect("tempdir"), FAST, &args)
    }
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
}

/// `pmon --connect https://localhost:PORT ARGS`, with no inherited token setting.
fn remote_pmon(server: &Server, scheme: &str, args: &[&str]) -> Output {
    let port = server.tcp_address().rsplit_once(':').expect("host:port").1.to_string();
    let url = format!("{scheme}://localhost:{port}");
    let mut full = vec!["--connect", url.as_str()];
    full.extend_from_slice(args);
    pmon(&full)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn succeeds(out: &Output) -> String {
    assert!(out.status.success(), "pmon failed: {}", stderr(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tls_and_the_right_token_serve_status_watch_and_events() {
    let pki = Pki::new();
    let server = pki.server(&[]);
    let (token, ca) = (pki.arg("token"), pki.arg("ca.pem"));
    let auth = ["--token-file", token.as_str(), "--ca-file", ca.as_str()];

    let status: serde_json::Value =
        serde_json::from_str(&succeeds(&remote_pmon(&server, "https", &[&auth[..], &["status", "--json"]].concat())))
            .expect("status JSON");
    assert_eq!(status["source"], "proc", "{status}");

    let watched = succeeds(&remote_pmon(&server, "https", &[&auth[..], &["watch", "--json", "--count", "3"]].concat()));
    let samples: Vec<serde_json::Value> =
        watched.lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(samples.len(), 3, "{watched}");
    assert!(samples.iter().all(|s| !s["sample"].is_null() || !s["missed"].is_null()), "{watched}");

    succeeds(&remote_pmon(&server, "https", &[&auth[..], &["events", "--json"]].concat()));
    // The token file may come from the environment, as the help says.
    let out = std::process::Command::new(crate::support::bin("pmon"))
        .args(["--connect", &format!("https://localhost:{}", port(&server)), "--ca-file", &ca, "status"])
        .env("PMON_TOKEN_FILE", &token)
        .env_remove("PMON_DATA_DIR")
        .output()
        .expect("run pmon");
    assert!(succeeds(&out).starts_with("pmon-server "), "{}", succeeds(&out));
    assert!(!server.log().contains(TOKEN), "the token is never logged");
}

fn ca_only(pki: &Pki) -> Credentials {
    Credentials { ca_file: Some(pki.path("ca.pem")), ..Credentials::default() }
}

pub(crate) fn port(server: &Server) -> String {
    server.tcp_address().rsplit_once(':').expect("host:port").1.to_string()
}

#[test]
fn no_token_or_a_wrong_one_is_unauthenticated() {
    let pki = Pki::new();
    let server = pki.server(&[]);
    let ca = pki.arg("ca.pem");

    let none = remote_pmon(&server, "https", &["--ca-file", &ca, "status"]);
    assert_eq!(none.status.code(), Some(3), "{}", stderr(&none));
    assert!(stderr(&none).contains("refused the token") && stderr(&none).contains("requires a bearer token"));

    let wrong_file = pki.arg("wrong-token");
    let wrong =
        remote_pmon(&server, "https", &["--ca-file", &ca, "--token-file", &wrong_file, "watch", "--count", "1"]);
    assert_eq!(wrong.status.code(), Some(3), "{}", stderr(&wrong));
    assert!(stderr(&wrong).contains("wrong bearer token"), "{}", stderr(&wrong));

    // The generated client sees the gRPC code itself, for every RPC.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let url = format!("https://localhost:{}", port(&server));
        let endpoint: Endpoint = url.parse().expect("valid");
        let mut anonymous = endpoint.with_credentials(ca_only(&pki)).expect("creds").connect().await.expect("TLS");
        let status = anonymous.get_status(GetStatusRequest {}).await.expect_err("refused");
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        let endpoint: Endpoint = url.parse().expect("valid");
        let mut right = endpoint
            .with_credentials(Credentials { token_file: Some(pki.path("token")), ..ca_only(&pki) })
            .expect("creds")
            .connect()
            .await
            .expect("TLS");
        right.get_status(GetStatusRequest {}).await.expect("accepted");
    });
    let log = server.log();
    assert!(log.contains("refused a request without a bearer token"), "{log}");
    assert!(log.contains("refused a request with a wrong bearer token"), "{log}");
    assert!(!log.contains(TOKEN) && !log.contains("bm90LXRoZS1yaWdodC"), "tokens are never logged:\n{log}");
}

#[test]
fn a_plaintext_client_or_an_untrusted_certificate_fails_cleanly_and_the_server_keeps_serving() {
    let pki = Pki::new();
    let server = pki.server(&[]);
    let (token, ca, other) = (pki.arg("token"), pki.arg("ca.pem"), pki.arg("other-ca.pem"));

    let plain = remote_pmon(&server, "http", &["--token-file", &token, "status"]);
    assert!(!plain.status.success());
    assert!(!stderr(&plain).contains("panicked"), "{}", stderr(&plain));
    assert_eq!(plain.status.code(), Some(3), "{}", stderr(&plain));
    assert!(stderr(&plain).contains("connect with https://"), "{}", stderr(&plain));

    let untrusted = remote_pmon(&server, "https", &["--token-file", &token, "--ca-file", &other, "status"]);
    assert_eq!(untrusted.status.code(), Some(3), "{}", stderr(&untrusted));
    assert!(stderr(&untrusted).contains("(TLS failed)"), "{}", stderr(&untrusted));

    let unreadable_ca =
        remote_pmon(&server, "https", &["--token-file", &token, "--ca-file", "/nonexistent.pem", "status"]);
    assert!(stderr(&unreadable_ca).contains("(TLS failed): cannot read the CA file"), "{}", stderr(&unreadable_ca));

    succeeds(&remote_pmon(&server, "https", &["--token-file", &token, "--ca-file", &ca, "status"]));
    server.wait_samples(2);
}

#[test]
fn mutual_tls_wants_a_client_certificate_from_the_client_ca() {
    let pki = Pki::new();
    let ca = pki.arg("ca.pem");
    let server = pki.server(&["--client-ca", &ca]);
    let url = format!("https://localhost:{}", port(&server));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let read = |name: &str| std::fs::read(pki.path(name)).expect("pem");
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(read("ca.pem")));
        let call = |tls: tonic::transport::ClientTlsConfig| {
            let url = url.clone();
            let token = format!("Bearer {TOKEN}");
            async move {
                let channel = tonic::transport::Endpoint::from_shared(url)?.tls_config(tls)?.connect().await?;
                let mut client = pmon_proto::v1::pause_monitor_client::PauseMonitorClient::with_interceptor(
                    channel,
                    move |mut r: tonic::Request<()>| {
                        r.metadata_mut().insert("authorization", token.parse().expect("ascii"));
                        Ok(r)
                    },
                );
                let answer = client.get_status(GetStatusRequest {}).await;
                Ok::<_, Box<dyn std::error::Error>>(answer.map(|_| ()))
            }
        };
        let identity = tonic::transport::Identity::from_pem(read("client.pem"), read("client-key.pem"));
        let with_cert = call(tls.clone().identity(identity)).await.expect("connects");
        assert!(with_cert.is_ok(), "{with_cert:?}");
        let without = call(tls).await;
        assert!(!matches!(without, Ok(Ok(()))), "a client without a certificate is turned away");
    });
    // pmon presents one with --client-cert and --client-key, and is turned away without.
    let token = pki.arg("token");
    let auth = ["--token-file", token.as_str(), "--ca-file", ca.as_str()];
    let out = remote_pmon(&server, "https", &[&auth[..], &["status"]].concat());
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("needs --client-cert and --client-key"), "{}", stderr(&out));
    let (cert, key) = (pki.arg("client.pem"), pki.arg("client-key.pem"));
    let with_cert = [&auth[..], &["--client-cert", &cert, "--client-key", &key, "status"]].concat();
    assert!(succeeds(&remote_pmon(&server, "https", &with_cert)).starts_with("pmon-server "));
    server.wait_samples(2);
}

/// Starts `pmon-server ARGS` on a fresh directory and returns what it logged when it
/// refused to start.
fn refused_start(args: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let args: Vec<String> = args.iter().map(|a| (*a).to_string()).collect();
    let mut child = spawn_server_with(dir.path(), FAST, &args);
    let status = wait_exit(&mut child, Duration::from_secs(15)).expect("the server must refuse and exit");
    assert!(!status.success());
    std::fs::read_to_string(dir.path().join("server.log")).expect("log")
}

#[test]
fn a_plaintext_listener_off_loopback_refuses_to_start() {
    let pki = Pki::new();
    let token = pki.arg("token");
    let log = refused_start(&["--listen", "0.0.0.0:0", "--token-file", &token, "--insecure"]);
    assert!(log.contains("refusing plaintext TCP on 0.0.0.0:0") && log.contains("not a loopback address"), "{log}");
    let log = refused_start(&[
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        &pki.arg("server.pem"),
        "--tls-key",
        &pki.arg("server.pem"),
        "--token-file",
        &token,
    ]);
    assert!(log.contains("cannot use --tls-cert"), "a certificate is not a key: {log}");
    let log = refused_start(&["--token-file", &token]);
    assert!(log.contains("--token-file applies only to a TCP listener"), "{log}");

    // On loopback, with --insecure, plaintext works (and still wants the token).
    let server = Server::start_with(
        tempfile::tempdir().expect("tempdir"),
        FAST,
        &["--listen", "127.0.0.1:0", "--insecure", "--token-file", &token],
    );
    succeeds(&remote_pmon(&server, "http", &["--token-file", &token, "status"]));
    let anonymous = remote_pmon(&server, "http", &["status"]);
    assert_eq!(anonymous.status.code(), Some(3), "{}", stderr(&anonymous));
}

#[test]
fn a_token_file_others_can_read_is_refused_by_server_and_client() {
    let pki = Pki::new();
    let loose = pki.token_file("loose-token", TOKEN, 0o644);
    let loose = loose.to_str().expect("utf-8 path");
    let log = refused_start(&[
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        &pki.arg("server.pem"),
        "--tls-key",
        &pki.arg("server-key.pem"),
        "--token-file",
        loose,
    ]);
    assert!(log.contains("has mode 0644") && log.contains("chmod 600"), "{log}");
    assert!(!log.contains(TOKEN), "{log}");

    let server = pki.server(&[]);
    let out = remote_pmon(&server, "https", &["--token-file", loose, "--ca-file", &pki.arg("ca.pem"), "status"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("(token failed)") && stderr(&out).contains("mode 0644"), "{}", stderr(&out));
}

#[test]
fn the_dashboard_works_over_tls_with_a_token() {
    crate::tui::tmux_binary();
    let pki = Pki::new();
    let server = pki.server(&[]);
    let work = tempfile::tempdir().expect("tempdir");
    let url = format!("https://localhost:{}", port(&server));
    let command = format!(
        "PMON_TOKEN_FILE={} {} --connect {url} --ca-file {} tui; echo pmon exited $?; sleep 600",
        pki.arg("token"),
        crate::support::bin("pmon").display(),
        pki.arg("ca.pem"),
    );
    let tmux = crate::tui::Tmux::start(work.path(), &command, (100, 30));
    let screen = tmux.wait("live samples over TLS", Duration::from_secs(20), |s| {
        s.contains("● live") && s.contains("procs") && s.contains("Hz")
    });
    assert!(screen.contains(&url), "{screen}");
    tmux.keys(&["e"]);
    tmux.wait_for("no events match", Duration::from_secs(10));
    tmux.keys(&["q"]);
    tmux.wait_for("pmon exited 0", Duration::from_secs(10));
}
