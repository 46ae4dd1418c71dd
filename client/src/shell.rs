//! `pmon completions` and `pmon man`: shell completion scripts and man pages generated
//! from the CLI definition itself, so they never drift from it.

use std::{io, path::PathBuf};

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use crate::{Cli, Failure};

/// `pmon completions` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  pmon completions bash > ~/.local/share/bash-completion/completions/pmon\n  pmon completions zsh > \"${fpath[1]}/_pmon\"\n  pmon completions fish > ~/.config/fish/completions/pmon.fish"
)]
pub struct CompletionsArgs {
    /// The shell.
    shell: Shell,
}

/// `pmon man` options.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  pmon man | man -l -\n  pmon man --out ~/.local/share/man/man1")]
pub struct ManArgs {
    /// Write pmon.1 and one page per subcommand (pmon-events.1, …) into this directory
    /// instead of printing pmon.1.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub fn completions(args: &CompletionsArgs) {
    clap_complete::generate(args.shell, &mut Cli::command(), "pmon", &mut io::stdout());
}

pub fn man(args: &ManArgs) -> Result<(), Failure> {
    let cmd = Cli::command();
    let Some(dir) = &args.out else {
        clap_mangen::Man::new(cmd).render(&mut io::stdout()).context("cannot write the man page")?;
        return Ok(());
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    write_pages(&cmd, "pmon", dir, &mut written)?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(())
}

/// The page of `cmd` (named `name`), then those of its subcommands, recursively.
fn write_pages(
    cmd: &clap::Command,
    name: &str,
    dir: &std::path::Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), Failure> {
    let path = dir.join(format!("{name}.1"));
    let mut file = std::fs::File::create(&path).with_context(|| format!("cannot write {}", path.display()))?;
    clap_mangen::Man::new(cmd.clone().name(name.to_string()))
        .render(&mut file)
        .with_context(|| format!("cannot write {}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}
