//! `rbuild debug ir` (the build graph a Dockerfile lowers to) and `rbuild debug why` (why
//! the next build would miss the cache).

use crate::args::{BuildArgs, IrFormat};
use anyhow::Result;
use solver::progress::ProgressSink;
use std::process::ExitCode;

/// Prints the graph in `format`.
pub async fn ir(format: IrFormat, build: &BuildArgs, root: std::path::PathBuf) -> Result<ExitCode> {
    let (req, _context_dirs) = crate::resolve::build_request(build)?;
    let engine = crate::open_engine(root)?;
    let lowered = engine.lower(&req, &ProgressSink::discard()).await?;
    let text = match format {
        IrFormat::Text => solver::ir::to_text(&lowered.graph),
        IrFormat::Dot => solver::ir::to_dot(&lowered.graph),
        IrFormat::Json => serde_json::to_string_pretty(&lowered.graph)? + "\n",
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// Prints why the next build would not be fully cached.
pub async fn why(build: &BuildArgs, root: std::path::PathBuf) -> Result<ExitCode> {
    let (req, _context_dirs) = crate::resolve::build_request(build)?;
    let engine = crate::open_engine(root)?;
    match engine.why(&req).await? {
        None => println!("every step would be served from the cache"),
        Some(miss) => match &miss.location {
            Some(loc) => println!("{}:{}: {miss}", loc.file, loc.start_line),
            None => println!("{miss}"),
        },
    }
    Ok(ExitCode::SUCCESS)
}
