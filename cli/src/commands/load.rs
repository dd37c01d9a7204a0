//! `rbuild load`: images from a docker-archive or OCI layout tar into the local store.

use anyhow::{Context, Result};
use clap::Args;
use registry::Platform;
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// `--help` examples.
pub const EXAMPLES: &str = "Examples:
  rbuild load -i app.tar
  docker save app:latest | rbuild load
  rbuild load -i images.tar.gz            (gzip, zstd, bzip2 and xz are read too)
  rbuild load -i app-oci.tar --platform linux/arm64";

/// `rbuild load` flags.
#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from this file instead of standard input (`-`: standard input).
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<PathBuf>,

    /// The platform to load from a multi-platform image (default: the configured platform,
    /// else this machine's).
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,

    /// Print nothing.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `rbuild load`.
pub async fn run(args: &LoadArgs, root: PathBuf) -> Result<ExitCode> {
    let platform = match args.platform.as_ref().or(crate::settings().platform.as_ref()) {
        Some(p) => p.parse::<Platform>().map_err(|e| anyhow::Error::new(crate::UsageError(e.to_string())))?,
        None => Platform::host(),
    };
    let input: Box<dyn Read + Send> = match &args.input {
        Some(p) if p.as_os_str() != "-" => {
            Box::new(std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?)
        }
        _ if std::io::stdin().is_terminal() => {
            return Err(crate::UsageError(
                "nothing to load: standard input is a terminal; use -i FILE or pipe an archive in"
                    .to_string(),
            )
            .into());
        }
        _ => Box::new(std::io::stdin()),
    };
    let engine = crate::open_engine(root)?;
    let loaded = engine.load_images(input, &platform).await?;
    if !args.quiet {
        let mut out = std::io::stdout().lock();
        for image in loaded {
            if image.names.is_empty() {
                writeln!(out, "Loaded image ID: {}", image.id)?;
            }
            for name in image.names {
                writeln!(out, "Loaded image: {name}")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
