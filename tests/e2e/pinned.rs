//! Watching another machine in two steps: `pmon-server --listen` with no certificate
//! options makes its own CA, certificate and token; `pmon remote add` pins the
//! fingerprint and keeps the token; `pmon --remote NAME …` then just works, and a
//! server whose certificate changed is refused, never trusted silently.

use std::{os::unix::fs::PermissionsExt, path::Path, process::Output, time::Duration};

use serde_json::Value;
use tempfile::TempDir;

use crate::support::{FAST, Server, bin, spawn_server_with, wait_exit};

/// `pmon ARGS` with its own configuration directory (where remotes are kept).
fn pmon_in(config: &Path, args: &[&str]) -> Output {
    std::process::Command::new(bin("pmon"))
        .args(args)
        .env("XDG_CONFIG_HOME", config)
        .env_remove("PMON_DATA_DIR")
        .env_remove("PMON_CONFIG")
        .env_remove("PMON_TOKEN_FILE")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run pmon")
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn succeeds(out: &Output) -> String {
    let (stdout, stderr) = text(out);
    assert!(out.status.success(), "pmon failed: {stderr}");
    stdout
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

/// A server listening with its own certificate on 127.0.0.1 (port 0: any free one).
fn own_certificate_server(listen: &str) -> Server {
    Server::start_with(tempfile::tempdir().expect("tempdir"), FAST, &["--listen", listen])
}

/// What the server tells a watching machine (`pmon status --json`, remoteAccess).
fn access(server: &Server) -> Value {
    let status = server.status();
    status["remoteAccess"].clone()
}

fn fingerprint(server: &Server) -> String {
    access(server)["fingerprint"].as_str().expect("a fingerprint").to_string()
}

fn url(server: &Server) -> String {
    format!("https://{}", access(server)["address"].as_str().expect("an address"))
}

#[test]
fn listen_alone_makes_a_certificate_and_a_token_once_and_keeps_them() {
    let mut server = own_certificate_server("127.0.0.1:0");
    let first = access(&server);
    let fingerprint = first["fingerprint"].as_str().expect("fingerprint").to_string();
    assert!(fingerprint.starts_with("SHA256:") && fingerprint.len() == 71, "{first}");
    assert_eq!(first["ownCertificate"], true, "{first}");
    let command = first["addCommand"].as_str().expect("the command to run elsewhere");
    assert!(command.starts_with("pmon remote add ") && command.ends_with(&format!("--fingerprint {fingerprint}")));
    let log = server.log();
    assert!(log.contains("on the watching machine: pmon remote add") && log.contains(&fingerprint), "{log}");

    let data = server.data_dir();
    assert_eq!(first["tokenFile"].as_str(), data.join("remote.token").to_str());
    for private in ["remote.token", "tls/ca.key", "tls/server.key"] {
        assert_eq!(mode(&data.join(private)), 0o600, "{private}");
    }
    let ca = std::fs::read(data.join("tls/ca.pem")).expect("ca.pem");

    server.restart();
    assert_eq!(access(&server)["fingerprint"].as_str(), Some(fingerprint.as_str()), "the same certificate");
    assert_eq!(std::fs::read(data.join("tls/ca.pem")).expect("ca.pem"), ca);
    assert!(!server.log().contains("on the watching machine"), "printed once, when made:\n{}", server.log());
}

#[test]
fn a_pinned_remote_just_works_and_a_changed_certificate_is_refused_with_both_fingerprints() {
    let config = TempDir::new().expect("config dir");
    let mut first = own_certificate_server("127.0.0.1:0");
    let (url, pinned) = (url(&first), fingerprint(&first));
    let token = first.data_dir().join("remote.token");
    let token = token.to_str().expect("utf-8");

    let out = pmon_in(config.path(), &["remote", "add", "box", &url, "--fingerprint", &pinned, "--token-file", token]);
    assert!(succeeds(&out).contains("pinned box"), "{:?}", text(&out));
    let kept = config.path().join("pause-monitor/remotes/box.token");
    assert_eq!(mode(&kept), 0o600);
    let status: Value =
        serde_json::from_str(&succeeds(&pmon_in(config.path(), &["--remote", "box", "status", "--json"])))
            .expect("JSON");
    assert_eq!(status["source"], "proc", "{status}");
    let watched = succeeds(&pmon_in(config.path(), &["--remote", "box", "watch", "--json", "--count", "2"]));
    assert_eq!(watched.lines().count(), 2, "{watched}");
    let listed: Value =
        serde_json::from_str(&succeeds(&pmon_in(config.path(), &["remote", "list", "--json"]))).expect("JSON");
    assert_eq!(listed["box"]["fingerprint"].as_str(), Some(pinned.as_str()), "{listed}");

    // Another server (another data directory, so another certificate) at the same address.
    let port = url.rsplit_once(':').expect("port").1;
    first.stop();
    let second = own_certificate_server(&format!("127.0.0.1:{port}"));
    let presented = fingerprint(&second);
    assert_ne!(presented, pinned);
    let out = pmon_in(config.path(), &["--remote", "box", "status"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&pinned) && stderr.contains(&presented), "both fingerprints: {stderr}");
    assert!(stderr.contains(&format!("pmon remote add box {url} --fingerprint {presented} --replace")), "{stderr}");

    // Re-pinning with a wrong token saves nothing and leaves the old pin.
    let wrong = config.path().join("wrong.token");
    std::fs::write(&wrong, "not-the-token-of-that-server").expect("write");
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let wrong = wrong.to_str().expect("utf-8");
    let out = pmon_in(
        config.path(),
        &["remote", "add", "box", &url, "--fingerprint", &presented, "--token-file", wrong, "--replace"],
    );
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("refused the token") && stderr.contains("nothing was saved"), "{stderr}");
    let listed: Value =
        serde_json::from_str(&succeeds(&pmon_in(config.path(), &["remote", "list", "--json"]))).expect("JSON");
    assert_eq!(listed["box"]["fingerprint"].as_str(), Some(pinned.as_str()), "{listed}");

    // A fingerprint given that the server does not present: nothing pinned.
    let token2 = second.data_dir().join("remote.token");
    let token2 = token2.to_str().expect("utf-8");
    let out = pmon_in(config.path(), &["remote", "add", "new", &url, "--fingerprint", &pinned, "--token-file", token2]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("nothing was pinned") && stderr.contains(&presented), "{stderr}");

    // The command the refusal named re-pins it.
    let out = pmon_in(
        config.path(),
        &["remote", "add", "box", &url, "--fingerprint", &presented, "--token-file", token2, "--replace"],
    );
    succeeds(&out);
    succeeds(&pmon_in(config.path(), &["--remote", "box", "status"]));

    renamed_and_removed(config.path());
}

/// Renames the pinned `box`, uses it by its new name, and removes it.
fn renamed_and_removed(config: &Path) {
    succeeds(&pmon_in(config, &["remote", "rename", "box", "studio"]));
    let remotes = config.join("pause-monitor/remotes");
    assert!(remotes.join("studio.token").exists() && !remotes.join("box.token").exists(), "the token moves too");
    succeeds(&pmon_in(config, &["--remote", "studio", "status"]));
    let out = pmon_in(config, &["--remote", "box", "status"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no remote named \"box\" (known: studio)"), "{stderr}");
    for (args, said) in [
        (&["--remote", ",", "tui"][..], "names no remote"),
        (&["--remote", "studio,other", "status"][..], "one remote at a time"),
    ] {
        let out = pmon_in(config, args);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(said), "{args:?}: {stderr}");
    }
    succeeds(&pmon_in(config, &["remote", "remove", "studio"]));
    assert!(!config.join("pause-monitor/remotes/studio.token").exists());
}

#[test]
fn without_a_terminal_or_a_fingerprint_nothing_is_pinned() {
    let config = TempDir::new().expect("config dir");
    let server = own_certificate_server("127.0.0.1:0");
    let out = pmon_in(config.path(), &["remote", "add", "box", &url(&server)]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stdout.contains(&fingerprint(&server)), "the fingerprint is shown: {stdout}");
    assert!(stderr.contains("give --fingerprint"), "{stderr}");
    assert_eq!(succeeds(&pmon_in(config.path(), &["remote", "list", "--json"])).trim(), "{}");
}

#[test]
fn a_plain_self_signed_certificate_is_refused_at_start_saying_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    // What `openssl req -x509` makes: a CA certificate, used as the server's own.
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("self-signed");
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).expect("cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("key");
    let args: Vec<String> = ["--listen", "127.0.0.1:0", "--tls-cert", cert_path.to_str().expect("utf-8")]
        .into_iter()
        .chain(["--tls-key", key_path.to_str().expect("utf-8")])
        .map(String::from)
        .collect();
    let mut child = spawn_server_with(dir.path(), FAST, &args);
    let status = wait_exit(&mut child, Duration::from_secs(15)).expect("the server must refuse and exit");
    assert!(!status.success());
    let log = std::fs::read_to_string(dir.path().join("server.log")).expect("log");
    assert!(log.contains("self-signed CA certificate") && log.contains("Leave out --tls-cert and --tls-key"), "{log}");
}

#[test]
fn the_overview_shows_every_machine_opens_each_and_one_unreachable_blocks_none() {
    crate::tui::tmux_binary();
    let config = TempDir::new().expect("config dir");
    let (mac, studio) = (own_certificate_server("127.0.0.1:0"), own_certificate_server("127.0.0.1:0"));
    for (name, server) in [("mac", &mac), ("studio", &studio)] {
        let token = server.data_dir().join("remote.token");
        let (url, pin) = (url(server), fingerprint(server));
        let add = ["remote", "add", name, &url, "--fingerprint", &pin, "--token-file", token.to_str().expect("utf-8")];
        succeeds(&pmon_in(config.path(), &add));
    }
    // A third machine that went away after it was added: it must not hold up the others.
    let mut gone = own_certificate_server("127.0.0.1:0");
    let token = gone.data_dir().join("remote.token");
    let (url3, pin3) = (url(&gone), fingerprint(&gone));
    succeeds(&pmon_in(
        config.path(),
        &["remote", "add", "gone", &url3, "--fingerprint", &pin3, "--token-file", token.to_str().expect("utf-8")],
    ));
    gone.stop();

    let work = TempDir::new().expect("work dir");
    let command = format!(
        "XDG_CONFIG_HOME={} {} tui --all-remotes 2>{}; echo pmon exited $?; sleep 600",
        config.path().display(),
        bin("pmon").display(),
        work.path().join("tui.err").display()
    );
    let tmux = crate::tui::Tmux::start(work.path(), &command, (140, 20));
    let screen = tmux.wait("two machines live and one unreachable", Duration::from_secs(30), |s| {
        s.contains("3 machines, 2 live") && s.contains("unreachable")
    });
    for part in ["machine", "last pause", "gone", "mac", "studio", "SENTINEL"] {
        assert!(screen.contains(part), "missing {part:?}:\n{screen}");
    }
    // Sorted by name: gone, mac, studio. Down to mac, open it, and come back.
    tmux.keys(&["Down", "Enter"]);
    let dashboard = tmux.wait("mac's dashboard", Duration::from_secs(20), |s| {
        s.contains("● live") && s.contains("procs") && s.contains(&format!("mac ({})", url(&mac)))
    });
    assert!(!dashboard.contains("3 machines"), "{dashboard}");
    tmux.keys(&["Escape"]);
    tmux.wait_for("3 machines, 2 live", Duration::from_secs(10));
    tmux.keys(&["q"]);
    tmux.wait_for("pmon exited 0", Duration::from_secs(10));
    let err = std::fs::read_to_string(work.path().join("tui.err")).unwrap_or_default();
    assert!(err.is_empty(), "pmon tui wrote to stderr: {err}");
    drop(studio);
}
