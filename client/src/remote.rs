//! `pmon remote add | list | remove | rename`, and `pmon --remote NAME …`: servers on
//! other machines by name, each pinned by its certificate's fingerprint.
//!
//! ```text
//! add NAME URL ─► peek the fingerprint (nothing sent) ─► confirm or --fingerprint
//!             ─► token (--token-file, or asked) ─► GetStatus with pin + token ─► saved
//! ~/.config/pause-monitor/remotes.toml        [remote.NAME] url, fingerprint, token_file
//! ~/.config/pause-monitor/remotes/NAME.token  mode 0600
//! ```

use std::{
    collections::BTreeMap,
    io::{BufRead, IsTerminal, Write},
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
    time::Duration,
};

use clap::Subcommand;
use pmon_proto::{
    endpoint::{Credentials, Endpoint},
    paths,
    pin::{self, Fingerprint},
    token::Token,
    v1::GetStatusRequest,
};
use serde::{Deserialize, Serialize};

use crate::Failure;

/// How long `remote add` waits for the server's certificate.
const PEEK_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pin a server by its certificate's fingerprint and keep its token, under a name.
    ///
    /// Shows the fingerprint the server presents and asks you to confirm it against
    /// what pmon-server printed (`pmon status --json` there shows it too); with
    /// --fingerprint it checks instead of asking. The token is asked for unless
    /// --token-file names it. Then `pmon --remote NAME status | watch | tui …` works.
    ///
    /// Example: pmon remote add mac https://192.168.1.20:7070 --fingerprint SHA256:3f…
    Add {
        /// A name for the server: letters, digits, `-`, `_` and `.`.
        name: String,
        /// Its address: https://host:port.
        url: String,
        /// The fingerprint pmon-server printed; the one presented must match it.
        #[arg(long, value_name = "SHA256:…")]
        fingerprint: Option<Fingerprint>,
        /// A file (mode 0600) holding the server's token; without it, it is asked for.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Replace a remote of that name (to pin a server's new certificate).
        #[arg(long)]
        replace: bool,
    },
    /// The remotes added, one per line: name, address and fingerprint.
    ///
    /// Example: pmon remote list --json
    List {
        /// Print them as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Forget a remote and its token.
    ///
    /// Example: pmon remote remove mac
    Remove {
        /// The remote's name.
        name: String,
    },
    /// Give a remote another name.
    ///
    /// Example: pmon remote rename mac studio
    Rename {
        /// Its name now.
        from: String,
        /// The new name.
        to: String,
    },
}

/// One remote as saved.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Saved {
    /// `https://host:port`.
    pub url: String,
    /// `SHA256:…`.
    pub fingerprint: String,
    /// Its token, kept with mode 0600.
    pub token_file: PathBuf,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    #[serde(default)]
    remote: BTreeMap<String, Saved>,
}

fn usage(message: String) -> Failure {
    Failure { code: 2, message }
}

fn failure(message: String) -> Failure {
    Failure { code: 1, message }
}

/// The client's configuration directory (where config.toml is).
fn dir() -> Result<PathBuf, Failure> {
    let config = paths::default_config_path().map_err(|e| failure(e.to_string()))?;
    Ok(config.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf))
}

fn load(dir: &Path) -> Result<File, Failure> {
    let path = dir.join("remotes.toml");
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| failure(format!("{} is not valid: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(File::default()),
        Err(e) => Err(failure(format!("cannot read {}: {e}", path.display()))),
    }
}

fn write(path: &Path, contents: &[u8], mode: u32) -> Result<(), Failure> {
    paths::write_whole(path, contents, mode).map_err(|e| failure(format!("cannot write {}: {e}", path.display())))
}

fn save(dir: &Path, file: &File) -> Result<(), Failure> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir.join("remotes"))
        .map_err(|e| failure(format!("cannot create {}: {e}", dir.join("remotes").display())))?;
    // Made earlier by someone else, it may be looser: the tokens are in it.
    std::fs::set_permissions(dir.join("remotes"), std::fs::Permissions::from_mode(0o700))
        .map_err(|e| failure(format!("cannot restrict {}: {e}", dir.join("remotes").display())))?;
    let text = toml::to_string(file).map_err(|e| failure(format!("cannot write the remotes: {e}")))?;
    write(&dir.join("remotes.toml"), text.as_bytes(), 0o644)
}

fn check_name(name: &str) -> Result<(), Failure> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(usage(format!("invalid remote name {name:?}: use up to 64 letters, digits, `-`, `_` and `.`")))
    }
}

/// The endpoint of a named remote, with its pin and token.
pub fn endpoint(name: &str) -> Result<Endpoint, Failure> {
    let file = load(&dir()?)?;
    let Some(saved) = file.remote.get(name) else {
        let known: Vec<&str> = file.remote.keys().map(String::as_str).collect();
        let known = if known.is_empty() { "none yet".to_string() } else { known.join(", ") };
        return Err(usage(format!(
            "no remote named {name:?} (known: {known}); add it with: pmon remote add {name} https://HOST:PORT"
        )));
    };
    resolve(name, saved)
}

/// The named remotes of `--remote a,b`, in that order.
pub fn several(names: &str) -> Result<Vec<(String, Endpoint)>, Failure> {
    let named: Vec<(String, Endpoint)> = names
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| Ok((n.to_string(), endpoint(n)?)))
        .collect::<Result<_, Failure>>()?;
    if named.is_empty() {
        return Err(usage(format!("--remote {names:?} names no remote; e.g. --remote mac,studio")));
    }
    Ok(named)
}

/// Every remote added, by name.
pub fn all() -> Result<Vec<(String, Endpoint)>, Failure> {
    let file = load(&dir()?)?;
    if file.remote.is_empty() {
        return Err(usage(
            "--all-remotes: no remotes yet; add one with: pmon remote add NAME https://HOST:PORT".into(),
        ));
    }
    file.remote.iter().map(|(name, saved)| Ok((name.clone(), resolve(name, saved)?))).collect()
}

fn resolve(name: &str, saved: &Saved) -> Result<Endpoint, Failure> {
    let broken = |what: String| failure(format!("remote {name:?} is damaged ({what}); add it again with --replace"));
    let url: Endpoint = saved.url.parse().map_err(|e: pmon_proto::endpoint::EndpointError| broken(e.to_string()))?;
    let pin: Fingerprint = saved.fingerprint.parse().map_err(|e: pin::FingerprintError| broken(e.to_string()))?;
    let credentials =
        Credentials { token_file: Some(saved.token_file.clone()), pin: Some(pin), ..Credentials::default() };
    url.with_credentials(credentials).map_err(usage)
}

pub async fn run(command: Command) -> Result<(), Failure> {
    let dir = dir()?;
    match command {
        Command::Add { name, url, fingerprint, token_file, replace } => {
            add(&dir, &name, url, fingerprint, token_file, replace).await
        }
        Command::List { json } => {
            let file = load(&dir)?;
            if json {
                println!("{}", serde_json::to_string(&file.remote).map_err(|e| failure(e.to_string()))?);
            } else if file.remote.is_empty() {
                println!("no remotes; add one with: pmon remote add NAME https://HOST:PORT");
            }
            for (name, saved) in (!json).then_some(&file.remote).into_iter().flatten() {
                println!("{name}\t{}\t{}", saved.url, saved.fingerprint);
            }
            Ok(())
        }
        Command::Remove { name } => {
            let mut file = load(&dir)?;
            let saved = file.remote.remove(&name).ok_or_else(|| usage(format!("no remote named {name:?}")))?;
            save(&dir, &file)?;
            if saved.token_file.starts_with(dir.join("remotes")) {
                // Gone already is as good as removed.
                let _ = std::fs::remove_file(&saved.token_file);
            }
            println!("removed {name} ({})", saved.url);
            Ok(())
        }
        Command::Rename { from, to } => {
            check_name(&to)?;
            let mut file = load(&dir)?;
            if file.remote.contains_key(&to) {
                return Err(usage(format!("a remote named {to:?} exists already; remove it first")));
            }
            let mut saved = file.remote.remove(&from).ok_or_else(|| usage(format!("no remote named {from:?}")))?;
            // The token goes with the name, so a later `add FROM` cannot write over it.
            let moved = dir.join("remotes").join(format!("{to}.token"));
            if saved.token_file.starts_with(dir.join("remotes")) {
                std::fs::rename(&saved.token_file, &moved)
                    .map_err(|e| failure(format!("cannot move {}: {e}", saved.token_file.display())))?;
                saved.token_file = moved;
            }
            file.remote.insert(to.clone(), saved);
            save(&dir, &file)?;
            println!("renamed {from} to {to}");
            Ok(())
        }
    }
}

async fn add(
    dir: &Path,
    name: &str,
    url: String,
    given: Option<Fingerprint>,
    token_file: Option<PathBuf>,
    replace: bool,
) -> Result<(), Failure> {
    check_name(name)?;
    let url: Endpoint = url.parse().map_err(|e: pmon_proto::endpoint::EndpointError| usage(e.to_string()))?;
    let mut file = load(dir)?;
    if file.remote.contains_key(name) && !replace {
        return Err(usage(format!("a remote named {name:?} exists already; add --replace to pin it again")));
    }
    let Endpoint::Tcp(remote) = &url else {
        return Err(usage(format!("{url} is not a TCP address: a remote is https://HOST:PORT")));
    };
    if !remote.tls {
        return Err(usage(format!("{url} is plaintext: a remote is https://HOST:PORT (its certificate is pinned)")));
    }
    let authority = remote.uri.trim_start_matches("https://").to_string();
    let presented = pin::peek(&authority, PEEK_TIMEOUT)
        .await
        .map_err(|e| Failure { code: 3, message: format!("cannot reach {url}: {e}") })?;
    match given {
        Some(f) if f != presented => {
            return Err(Failure {
                code: 3,
                message: format!(
                    "{url} presents the certificate {presented}, not {f} as given: nothing was pinned. Check the \
                     fingerprint on that machine (pmon-server prints it; pmon status --json shows remote_access)"
                ),
            });
        }
        Some(_) => println!("fingerprint {presented} matches"),
        None => confirm(&url, presented)?,
    }
    let token = match token_file {
        Some(path) => Token::read(&path).map_err(|e| usage(e.to_string()))?,
        None => ask_token()?,
    };
    let saved = Saved {
        url: url.to_string(),
        fingerprint: presented.to_string(),
        token_file: dir.join("remotes").join(format!("{name}.token")),
    };
    // Tried under a name of its own, so a failed re-pin leaves the old remote working.
    save(dir, &file)?;
    let trial = Saved { token_file: dir.join("remotes").join(format!("{name}.token.trial")), ..saved.clone() };
    write(&trial.token_file, format!("{}\n", token.as_str()).as_bytes(), 0o600)?;
    let status = async {
        let mut client = resolve(name, &trial)?.connect().await?;
        Ok::<_, Failure>(client.get_status(GetStatusRequest {}).await?.into_inner())
    };
    match status.await {
        Ok(s) => {
            std::fs::rename(&trial.token_file, &saved.token_file)
                .map_err(|e| failure(format!("cannot keep the token in {}: {e}", saved.token_file.display())))?;
            file.remote.insert(name.to_string(), saved);
            save(dir, &file)?;
            println!(
                "pinned {name}: {url} (pmon-server {}, {} samples). Try: pmon --remote {name} status",
                s.version, s.sample_count
            );
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&trial.token_file);
            Err(Failure { message: format!("{}; nothing was saved", e.message), ..e })
        }
    }
}

/// Asks whether the fingerprint is the one the server printed.
fn confirm(url: &Endpoint, presented: Fingerprint) -> Result<(), Failure> {
    println!("{url} presents the certificate {presented}");
    if !std::io::stdin().is_terminal() {
        return Err(usage(format!(
            "not confirmed: stdin is not a terminal; give --fingerprint {presented} after checking it against what \
             pmon-server printed"
        )));
    }
    print!("Is this the fingerprint pmon-server printed (pmon status --json there shows it)? [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).map_err(|e| failure(format!("cannot read the answer: {e}")))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(Failure { code: 1, message: "not confirmed: nothing was pinned".into() })
    }
}

/// Reads the token from stdin, without echo on a terminal.
fn ask_token() -> Result<Token, Failure> {
    let terminal = std::io::stdin().is_terminal();
    if terminal {
        print!("Token (the contents of the server's token file, e.g. <data dir>/remote.token): ");
        let _ = std::io::stdout().flush();
    }
    let echo = terminal.then(no_echo).flatten();
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if let Some(saved) = echo {
        // SAFETY: restores the terminal settings read from fd 0 before.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &saved) };
        println!();
    }
    read.map_err(|e| failure(format!("cannot read the token: {e}")))?;
    Token::parse(&line).ok_or_else(|| {
        usage(format!(
            "that is not a token: at least {} visible characters, no spaces",
            pmon_proto::token::MIN_TOKEN_LEN
        ))
    })
}

/// Turns terminal echo off; returns the settings to restore.
fn no_echo() -> Option<libc::termios> {
    // SAFETY: termios is plain data; tcgetattr fills it for fd 0 or fails.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd 0 and a valid pointer.
    if unsafe { libc::tcgetattr(0, &mut saved) } != 0 {
        return None;
    }
    let mut quiet = saved;
    quiet.c_lflag &= !libc::ECHO;
    // SAFETY: fd 0 and settings derived from its own.
    (unsafe { libc::tcsetattr(0, libc::TCSANOW, &quiet) } == 0).then_some(saved)
}
