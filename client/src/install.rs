//! `pmon install` / `pmon uninstall`: keep `pmon-server` running for good.
//!
//! ```text
//! generators (pure, tested everywhere)        steps (thin, chosen at run time)
//!   launchd::plist  ──► ~/Library/LaunchAgents/<label>.plist ──► launchctl bootstrap
//!   systemd::unit   ──► ~/.config/systemd/user/pmon-server.service ──► systemctl --user
//!   sudoers::rules  ──► /etc/sudoers.d/pmon (visudo -c first, mode 0440, root only)
//! ```
//!
//! Every step looks before it acts: a file is written only when its contents differ, a
//! service is (re)started only when it is not already running what is on disk. So both
//! commands are idempotent, and each prints one line per thing it actually did.

mod launchd;
mod sudoers;
mod systemd;

use std::{
    io::Write as _,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::Context;
use pmon_proto::paths;
use serde::Serialize;

use crate::Failure;

/// Exit code when the unit is written but systemd's user manager cannot be reached.
pub const NO_SERVICE_MANAGER: u8 = 4;

/// `pmon install` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit codes: 0 installed (or already installed), 1 error, 2 usage error,\n  4 the systemd unit is written but systemd's user manager is not reachable\n    (the message says how to start pmon-server by hand).\n\nExamples:\n  pmon install --dry-run\n  pmon install\n  sudo pmon install --forensics     # macOS: the sudoers rules, as root"
)]
pub struct InstallArgs {
    /// The pmon-server binary to run [default: pmon-server next to this pmon].
    #[arg(long, value_name = "PATH")]
    server: Option<PathBuf>,
    /// macOS: write /etc/sudoers.d/pmon, letting the user who ran sudo run tailspin,
    /// spindump and powermetrics exactly as pmon-server's forensics does (needs root;
    /// the launchd agent is installed by a plain `pmon install`, without sudo).
    #[arg(long)]
    forensics: bool,
    /// Print what would be written and run, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the actions as JSON.
    #[arg(long)]
    json: bool,
}

/// `pmon uninstall` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  pmon uninstall --dry-run\n  pmon uninstall\n  sudo pmon uninstall --forensics   # macOS: the sudoers rules, as root"
)]
pub struct UninstallArgs {
    /// macOS: remove /etc/sudoers.d/pmon (needs root) instead of the launchd agent.
    #[arg(long)]
    forensics: bool,
    /// Print what would be removed and run, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the actions as JSON.
    #[arg(long)]
    json: bool,
}

/// One thing done (or, in a dry run, to be done).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "action")]
pub enum Action {
    /// A file was written; `contents` is kept for dry runs, which print it.
    Wrote {
        path: PathBuf,
        #[serde(skip)]
        contents: String,
    },
    /// A file already had the wanted contents.
    Unchanged { path: PathBuf },
    /// A file was removed.
    Removed { path: PathBuf },
    /// A directory was created.
    Created { path: PathBuf },
    /// A command was run.
    Ran { command: String },
    /// Something the user must know: a step that could not be taken, and what to do.
    Notice { message: String },
}

impl Action {
    /// Whether this action changed anything.
    fn changes(&self) -> bool {
        !matches!(self, Action::Unchanged { .. })
    }

    fn line(&self, dry_run: bool) -> String {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let show = |p: &Path| match home.as_deref().and_then(|h| p.strip_prefix(h).ok()) {
            Some(rest) => format!("~/{}", rest.display()),
            None => p.display().to_string(),
        };
        match (self, dry_run) {
            (Action::Wrote { path, contents }, true) => format!("would write {}:\n{contents}", show(path)),
            (Action::Wrote { path, .. }, false) => format!("wrote {}", show(path)),
            (Action::Unchanged { path }, _) => format!("unchanged {}", show(path)),
            (Action::Removed { path }, true) => format!("would remove {}", show(path)),
            (Action::Removed { path }, false) => format!("removed {}", show(path)),
            (Action::Created { path }, true) => format!("would create {}", show(path)),
            (Action::Created { path }, false) => format!("created {}", show(path)),
            (Action::Ran { command }, true) => format!("would run {command}"),
            (Action::Ran { command }, false) => format!("ran {command}"),
            (Action::Notice { message }, _) => message.clone(),
        }
    }
}

/// The actions of one run, and whether they are only a plan.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    dry_run: bool,
    actions: Vec<Action>,
    /// Why the run could not finish, after the actions above were taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The exit code this run ends with.
    exit_code: u8,
}

impl Report {
    fn new(dry_run: bool) -> Self {
        Report { dry_run, actions: Vec::new(), error: None, exit_code: 0 }
    }

    fn push(&mut self, action: Action) {
        self.actions.push(action);
    }

    /// Runs `program args` (or, in a dry run, records that it would), failing on a non-zero exit.
    fn run(&mut self, program: &str, args: &[&str]) -> Result<(), Failure> {
        let command = std::iter::once(program).chain(args.iter().copied()).collect::<Vec<_>>().join(" ");
        if !self.dry_run {
            let out = Command::new(program).args(args).output().with_context(|| format!("cannot run {program}"))?;
            if !out.status.success() {
                let said = String::from_utf8_lossy(&out.stderr);
                return Err(Failure {
                    code: 1,
                    message: format!("`{command}` failed ({}): {}", out.status, said.trim()),
                });
            }
        }
        self.push(Action::Ran { command });
        Ok(())
    }

    /// Writes `contents` to `path` (mode `mode`) unless it already holds exactly that.
    /// Returns whether the file changed (or would).
    fn write(&mut self, path: &Path, contents: &str, mode: u32) -> Result<bool, Failure> {
        if std::fs::read(path).is_ok_and(|old| old == contents.as_bytes()) {
            self.push(Action::Unchanged { path: path.to_path_buf() });
            return Ok(false);
        }
        if !self.dry_run {
            write_atomically(path, contents, mode)?;
        }
        self.push(Action::Wrote { path: path.to_path_buf(), contents: contents.to_string() });
        Ok(true)
    }

    /// Creates `dir` (mode 0700) if it is missing.
    fn create_dir(&mut self, dir: &Path) -> Result<(), Failure> {
        if dir.is_dir() {
            return Ok(());
        }
        if !self.dry_run {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        self.push(Action::Created { path: dir.to_path_buf() });
        Ok(())
    }

    /// Removes `path` if it exists.
    fn remove(&mut self, path: &Path) -> Result<(), Failure> {
        if !path.exists() {
            return Ok(());
        }
        if !self.dry_run {
            std::fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))?;
        }
        self.push(Action::Removed { path: path.to_path_buf() });
        Ok(())
    }

    /// Ends the run unfinished: what was done stands, and `message` says what was not.
    fn fail(&mut self, code: u8, message: String) {
        self.error = Some(message);
        self.exit_code = code;
    }

    fn print(&self, json: bool, nothing: &str) -> Result<(), Failure> {
        if json {
            println!("{}", serde_json::to_string(self).context("cannot render as JSON")?);
        } else if !self.actions.iter().any(Action::changes) {
            if self.error.is_none() {
                println!("{nothing}");
            }
        } else {
            for action in self.actions.iter().filter(|a| a.changes()) {
                println!("{}", action.line(self.dry_run));
            }
        }
        Ok(())
    }

    fn finish(self, json: bool, nothing: &str) -> Result<(), Failure> {
        self.print(json, nothing)?;
        match self.error {
            None => Ok(()),
            Some(message) => Err(Failure { code: self.exit_code, message }),
        }
    }
}

/// Writes through a temporary file beside `path`, so a reader never sees half a file.
fn write_atomically(path: &Path, contents: &str, mode: u32) -> Result<(), Failure> {
    let dir = path.parent().context("a file to write has no parent directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = path.file_name().context("a file to write has no name")?.to_string_lossy();
    // A leading dot: sudo's includedir skips names with a dot, so a half-made rule is never read.
    let tmp = dir.join(format!(".{name}.pmon-new"));
    let written =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp).and_then(|mut f| {
            f.write_all(contents.as_bytes())?;
            f.set_permissions(std::fs::Permissions::from_mode(mode))
        });
    written.and_then(|()| std::fs::rename(&tmp, path)).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// What the service runs, and where things go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerPlan {
    /// Absolute path of the `pmon-server` binary.
    pub server: PathBuf,
    /// The data directory the server uses (its logs go there too).
    pub data_dir: PathBuf,
    /// Whether the data directory was chosen explicitly, and so must be passed on.
    pub explicit_data_dir: bool,
}

impl ServerPlan {
    /// The server's command line.
    pub fn arguments(&self) -> Vec<String> {
        let mut args = vec![self.server.display().to_string()];
        if self.explicit_data_dir {
            args.extend(["--data-dir".to_string(), self.data_dir.display().to_string()]);
        }
        args
    }
}

fn absolute(path: PathBuf) -> Result<PathBuf, Failure> {
    if path.is_absolute() {
        return Ok(path);
    }
    Ok(std::env::current_dir().context("cannot read the current directory")?.join(path))
}

fn server_plan(server: Option<PathBuf>, data_dir: Option<PathBuf>) -> Result<ServerPlan, Failure> {
    let server = match server {
        Some(path) => absolute(path)?,
        None => {
            let me = std::env::current_exe().context("cannot locate the running pmon")?;
            me.parent().context("the running pmon has no directory")?.join("pmon-server")
        }
    };
    if !server.is_file() {
        return Err(Failure {
            code: 1,
            message: format!("no pmon-server at {}; pass --server PATH", server.display()),
        });
    }
    let explicit_data_dir = data_dir.is_some();
    let data_dir = match data_dir {
        Some(d) => absolute(d)?,
        None => paths::default_data_dir().map_err(|e| Failure { code: 1, message: e.to_string() })?,
    };
    Ok(ServerPlan { server, data_dir, explicit_data_dir })
}

fn home() -> Result<PathBuf, Failure> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute())
        .ok_or_else(|| Failure { code: 1, message: "cannot locate the home directory: $HOME is not set".into() })
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The service belongs to the user who runs it: under sudo it would land in root's home
/// and root's session instead.
fn refuse_sudo(command: &str) -> Result<(), Failure> {
    if is_root() && std::env::var_os("SUDO_USER").is_some() {
        return Err(Failure {
            code: 1,
            message: format!(
                "run `pmon {command}` as yourself, without sudo: the service is your user's \
                 (only `--forensics` needs sudo)"
            ),
        });
    }
    Ok(())
}

fn unsupported() -> Failure {
    Failure { code: 1, message: "pmon install knows launchd (macOS) and systemd (Linux) only".into() }
}

pub fn install(args: InstallArgs, data_dir: Option<PathBuf>) -> Result<(), Failure> {
    let mut report = Report::new(args.dry_run);
    if args.forensics {
        sudoers::install(&mut report, data_dir)?;
        return report.finish(args.json, "already installed, nothing to do");
    }
    refuse_sudo("install")?;
    let plan = server_plan(args.server, data_dir)?;
    if cfg!(target_os = "macos") {
        launchd::install(&mut report, &plan, &home()?)?;
    } else if cfg!(target_os = "linux") {
        systemd::install(&mut report, &plan, &systemd::unit_dir()?)?;
    } else {
        return Err(unsupported());
    }
    report.finish(args.json, "already installed, nothing to do")
}

pub fn uninstall(args: UninstallArgs) -> Result<(), Failure> {
    let mut report = Report::new(args.dry_run);
    if args.forensics {
        sudoers::uninstall(&mut report)?;
    } else if cfg!(target_os = "macos") {
        refuse_sudo("uninstall")?;
        launchd::uninstall(&mut report, &home()?)?;
        if Path::new(sudoers::SUDOERS_FILE).exists() {
            report.push(Action::Notice {
                message: format!("{} stays: `sudo pmon uninstall --forensics` removes it", sudoers::SUDOERS_FILE),
            });
        }
    } else if cfg!(target_os = "linux") {
        refuse_sudo("uninstall")?;
        systemd::uninstall(&mut report, &systemd::unit_dir()?)?;
    } else {
        return Err(unsupported());
    }
    report.finish(args.json, "not installed, nothing to do")
}
