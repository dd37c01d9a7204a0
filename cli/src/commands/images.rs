//! `rbuild images`: the named images in the local store.

use crate::progress::human_bytes;
use anyhow::Result;
use engine::Engine;
use std::io::Write;
use std::process::ExitCode;

/// Prints one line per named image.
pub fn run(engine: &Engine) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<50} {:<14} {:>10}", "NAME", "IMAGE ID", "SIZE")?;
    for image in engine.images()? {
        let id = image.id.as_ref().map_or("-".to_string(), |d| d.short().to_string());
        writeln!(out, "{:<50} {:<14} {:>10}", image.name, id, human_bytes(image.size))?;
    }
    Ok(ExitCode::SUCCESS)
}
