//! `rbuild save`: stored images to a tar archive, docker-archive (`docker load`-able) or OCI
//! layout.

use anyhow::Result;
use clap::{Args, ValueEnum};
use engine::ArchiveFormat;
use exporter::Destination;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// `--help` examples.
pub const EXAMPLES: &str = "Examples:
  rbuild save -o app.tar app:latest
  rbuild save app:latest base:1.2 | gzip > images.tar.gz
  rbuild save --format oci -o app-oci.tar app:latest
  docker load -i app.tar      (or: rbuild load -i app.tar on another machine)";

/// `rbuild save` flags.
#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Images: names, image IDs (or unique prefixes) or `name@sha256:…`. Names are recorded
    /// in the archive; images given by ID are saved without one.
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,

    /// Write to this file instead of standard output (`-`: standard output).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Archive format.
    #[arg(long, value_enum, default_value = "docker")]
    pub format: SaveFormat,
}

/// `--format` values.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveFormat {
    /// docker-archive: `manifest.json` with the names, plus an OCI layout.
    Docker,
    /// OCI image layout.
    Oci,
}

/// `rbuild save`.
pub async fn run(args: &SaveArgs, root: PathBuf) -> Result<ExitCode> {
    let dest = match &args.output {
        Some(p) if p.as_os_str() != "-" => Destination::File(p.clone()),
        _ if std::io::stdout().is_terminal() => {
            return Err(crate::UsageError(
                "refusing to write an image archive to a terminal: use -o FILE or redirect standard output"
                    .to_string(),
            )
            .into());
        }
        _ => Destination::Stdout,
    };
    let format = match args.format {
        SaveFormat::Docker => ArchiveFormat::Docker,
        SaveFormat::Oci => ArchiveFormat::Oci,
    };
    let engine = crate::open_engine(root)?;
    engine.save_images(&args.images, format, &dest).await?;
    Ok(ExitCode::SUCCESS)
}
