//! `rbuild debug parse`: the parsed Dockerfile in the format of BuildKit's parser test
//! `result` files.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Prints the dump of `file` (default `CONTEXT/Dockerfile`).
pub fn run(file: Option<PathBuf>, context: &Path) -> Result<ExitCode> {
    let path = file.clone().unwrap_or_else(|| context.join("Dockerfile"));
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("failed to read dockerfile {}", path.display()))?;
    let name = file.map_or_else(|| "Dockerfile".to_string(), |f| f.display().to_string());
    match frontend::syntax::parse_raw(&text, &name) {
        Ok(raw) => {
            // BuildKit's parser tests compare `Dump()` plus one newline with their `result` files.
            println!("{}", raw.dump());
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprint!("{}", e.render(&text));
            Ok(ExitCode::from(crate::EXIT_BUILD_FAILED))
        }
    }
}
