//! `rbuild rmi`: remove image names. The content stays in the store until `rbuild prune`
//! finds nothing that references it.

use anyhow::Result;
use clap::Args;
use engine::Removed;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// `--help` examples.
pub const EXAMPLES: &str = "Examples:
  rbuild rmi app:1.0
  rbuild rmi app:1.0 app:latest 127.0.0.1:5000/team/app:1.0
  rbuild rmi sha256:4f1c8d3e       (an image with one name, or a dangling image, by ID)
  rbuild rmi app && rbuild prune   (then free the space)";

/// `rbuild rmi` flags.
#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Images: names, or image IDs (or unique prefixes) of images with at most one name.
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

/// `rbuild rmi`: exit 1 when any image could not be removed (the others still are).
pub fn run(args: &RmiArgs, root: PathBuf) -> Result<ExitCode> {
    let engine = crate::open_engine(root)?;
    let mut failed = false;
    for query in &args.images {
        match engine.remove_image(query) {
            Ok(Removed::Untagged(name)) => writeln!(std::io::stdout().lock(), "Untagged: {name}")?,
            Ok(Removed::Dangling(id)) => writeln!(std::io::stdout().lock(), "Deleted: {id}")?,
            Err(e) => {
                crate::report(&e.into());
                failed = true;
            }
        }
    }
    Ok(if failed { ExitCode::from(crate::EXIT_BUILD_FAILED) } else { ExitCode::SUCCESS })
}
