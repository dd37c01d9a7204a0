//! `rbuild debug ir`: the build graph a Dockerfile lowers to.

use crate::args::{BuildArgs, IrFormat};
use anyhow::Result;
use solver::progress::ProgressSink;
use std::process::ExitCode;

/// Prints the graph in `format`.
pub async fn ir(format: IrFormat, build: &BuildArgs, root: std::path::PathBuf) -> Result<ExitCode> {
    let req = crate::resolve::build_request(build)?;
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
