//! `rbuild push`: send a stored image to the registry its name points at.

use super::pull::TransferReport;
use anyhow::Result;
use clap::Args;
use registry::Reference;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// `--help` examples.
pub const EXAMPLES: &str = "Examples:
  rbuild tag app 127.0.0.1:5000/team/app:1.0 && rbuild push 127.0.0.1:5000/team/app:1.0
  rbuild push --all-tags registry.example.com/team/app
  rbuild login registry.example.com && rbuild push registry.example.com/team/app:1.0";

/// `rbuild push` flags.
#[derive(Args, Debug)]
pub struct PushArgs {
    /// The image's name in the store: `[registry/]repository[:tag]`.
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Push every stored tag of the repository.
    #[arg(short, long)]
    pub all_tags: bool,

    /// Print only the pushed name.
    #[arg(short, long)]
    pub quiet: bool,
}

/// True when the raw name carries a tag or digest (`app:1`, `app@sha256:…`).
fn has_tag(raw: &str) -> bool {
    raw.contains('@') || raw.rsplit('/').next().is_some_and(|last| last.contains(':'))
}

/// `rbuild push`.
pub async fn run(args: &PushArgs, root: PathBuf) -> Result<ExitCode> {
    let name = super::tag::parse_name(&args.name, false)?;
    if args.all_tags && has_tag(&args.name) {
        return Err(crate::UsageError(format!(
            "--all-tags takes a repository without a tag, not {}",
            args.name
        ))
        .into());
    }
    let engine = crate::open_engine(root)?;
    let names: Vec<Reference> = if args.all_tags {
        let tags: Vec<Reference> = engine
            .images()?
            .into_iter()
            .filter_map(|i| i.name.parse::<Reference>().ok())
            .filter(|r| r.registry == name.registry && r.repository == name.repository && r.digest.is_none())
            .collect();
        if tags.is_empty() {
            return Err(engine::EngineError::from(engine::ImageError::NotFound {
                query: format!("{}:*", Reference { tag: None, ..name }.familiar()),
            })
            .into());
        }
        tags
    } else {
        vec![name]
    };
    if !args.quiet {
        let repo = Reference { tag: None, digest: None, ..names[0].clone() };
        println!("The push refers to repository [{}]", repo.familiar());
    }
    for name in &names {
        let report = TransferReport::new(args.quiet, false);
        let outcome = engine.push_image(name, &|p| report.event(p)).await;
        report.finish();
        let outcome = outcome?;
        let mut out = std::io::stdout().lock();
        if args.quiet {
            writeln!(out, "{}", name.familiar())?;
        } else {
            let tag = name.tag.as_deref().unwrap_or("latest");
            writeln!(out, "{tag}: digest: {} size: {}", outcome.digest, outcome.manifest.size)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_seen_after_the_last_slash() {
        let cases = [
            ("app", false),
            ("127.0.0.1:5000/team/app", false),
            ("127.0.0.1:5000/team/app:1", true),
            ("app:latest", true),
            ("app@sha256:00", true),
        ];
        for (raw, want) in cases {
            assert_eq!(has_tag(raw), want, "{raw}");
        }
    }
}
