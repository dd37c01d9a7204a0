//! `rbuild inspect`: images' configuration and metadata, as `docker image inspect` shows them.

use crate::progress::human_bytes;
use anyhow::Result;
use clap::Args;
use engine::ImageInspect;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// `--help` examples.
pub const EXAMPLES: &str = "Examples:
  rbuild inspect app:latest
  rbuild inspect 127.0.0.1:5000/team/app:1.0 busybox
  rbuild inspect sha256:4f1c8d3e         (an image ID or a unique prefix of it)
  rbuild inspect --format pretty app
  rbuild inspect app | jq '.[0].Config.Env'";

/// `rbuild inspect` flags.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Images: names, image IDs (or unique prefixes) or `name@sha256:…` manifest digests.
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,

    /// Output: `json` (docker's JSON array) or `pretty` (a readable summary). Go templates are
    /// not supported: pipe the JSON through `jq` instead.
    #[arg(short = 'f', long, value_name = "FORMAT", default_value = "json", value_parser = parse_format)]
    pub format: InspectFormat,
}

/// `--format` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InspectFormat {
    /// A JSON array, one object per image.
    Json,
    /// Readable text.
    Pretty,
}

fn parse_format(s: &str) -> Result<InspectFormat, String> {
    match s {
        "json" => Ok(InspectFormat::Json),
        "pretty" => Ok(InspectFormat::Pretty),
        t if t.contains("{{") => {
            Err("Go templates are not supported: use json (and jq to pick fields) or pretty".to_string())
        }
        _ => Err("expected json or pretty".to_string()),
    }
}

/// `rbuild inspect`: exit 1 when any image is missing (the others are still shown).
pub fn run(args: &InspectArgs, root: PathBuf) -> Result<ExitCode> {
    let engine = crate::open_engine(root)?;
    let mut found = Vec::new();
    let mut failed = false;
    for query in &args.images {
        match engine.inspect_image(query) {
            Ok(i) => found.push(i),
            Err(e) => {
                crate::report(&e.into());
                failed = true;
            }
        }
    }
    let mut out = std::io::stdout().lock();
    match args.format {
        InspectFormat::Json => {
            // Four-space indentation, as docker prints it.
            let mut ser = serde_json::Serializer::with_formatter(
                &mut out,
                serde_json::ser::PrettyFormatter::with_indent(b"    "),
            );
            found.serialize(&mut ser)?;
            writeln!(out)?;
        }
        InspectFormat::Pretty => {
            for (i, image) in found.iter().enumerate() {
                if i > 0 {
                    writeln!(out)?;
                }
                pretty(&mut out, image)?;
            }
        }
    }
    Ok(if failed { ExitCode::from(crate::EXIT_BUILD_FAILED) } else { ExitCode::SUCCESS })
}

fn pretty(out: &mut dyn Write, i: &ImageInspect) -> std::io::Result<()> {
    let row = |out: &mut dyn Write, key: &str, value: &str| writeln!(out, "{:<14}{value}", format!("{key}:"));
    row(out, "ID", &i.id)?;
    for name in &i.repo_tags {
        row(out, "Name", name)?;
    }
    for d in &i.repo_digests {
        row(out, "Digest", d)?;
    }
    row(out, "Created", i.created.as_deref().unwrap_or("-"))?;
    let platform = match &i.variant {
        Some(v) => format!("{}/{}/{v}", i.os, i.architecture),
        None => format!("{}/{}", i.os, i.architecture),
    };
    row(out, "Platform", &platform)?;
    row(out, "Size", &human_bytes(i.size))?;
    let c = &i.config;
    let list = |v: &Option<Vec<String>>| v.as_ref().map(|v| format!("{v:?}"));
    let fields: [(&str, Option<String>); 6] = [
        ("User", c.user.clone()),
        ("WorkingDir", c.working_dir.clone()),
        ("Entrypoint", list(&c.entrypoint)),
        ("Cmd", list(&c.cmd)),
        ("StopSignal", c.stop_signal.clone()),
        ("Shell", list(&c.shell)),
    ];
    for (key, value) in fields {
        if let Some(v) = value {
            row(out, key, &v)?;
        }
    }
    for e in c.env.iter().flatten() {
        row(out, "Env", e)?;
    }
    for p in c.exposed_ports.iter().flat_map(|m| m.keys()) {
        row(out, "ExposedPort", p)?;
    }
    for v in c.volumes.iter().flat_map(|m| m.keys()) {
        row(out, "Volume", v)?;
    }
    for (k, v) in c.labels.iter().flatten() {
        row(out, "Label", &format!("{k}={v}"))?;
    }
    row(out, "Layers", &i.root_fs.layers.len().to_string())?;
    for l in &i.root_fs.layers {
        writeln!(out, "  {l}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_accept_json_and_pretty_only() {
        assert_eq!(parse_format("json"), Ok(InspectFormat::Json));
        assert_eq!(parse_format("pretty"), Ok(InspectFormat::Pretty));
        assert!(parse_format("{{json .Config}}").unwrap_err().contains("Go templates"));
        assert!(parse_format("yaml").is_err());
    }
}
