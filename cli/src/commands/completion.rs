//! `rbuild completion`: a shell completion script for rbuild's commands and flags.

use crate::args::Cli;
use anyhow::Result;
use clap::{Args, CommandFactory};
use clap_complete::Shell;
use std::io::Write;
use std::process::ExitCode;

/// `--help` examples.
pub const EXAMPLES: &str = "Examples:
  rbuild completion bash > /etc/bash_completion.d/rbuild
  source <(rbuild completion bash)
  rbuild completion zsh > \"${fpath[1]}/_rbuild\"
  rbuild completion fish > ~/.config/fish/completions/rbuild.fish";

/// `rbuild completion` flags.
#[derive(Args, Debug)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

/// `rbuild completion`: the script on standard output.
pub fn run(args: &CompletionArgs) -> Result<ExitCode> {
    let mut command = Cli::command();
    // Generated into memory first: clap_complete panics on a write error, and `| head`
    // closing the pipe is an ordinary event that main reports quietly.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "rbuild", &mut script);
    std::io::stdout().lock().write_all(&script)?;
    Ok(ExitCode::SUCCESS)
}
