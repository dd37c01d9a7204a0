//! `rbuild tag`: give a stored image another name.

use anyhow::Result;
use clap::Args;
use registry::Reference;
use std::path::PathBuf;
use std::process::ExitCode;

/// `--help` examples.
pub const EXAMPLES: &str = "Examples:
  rbuild tag app:latest app:1.0
  rbuild tag app 127.0.0.1:5000/team/app:1.0     (then: rbuild push 127.0.0.1:5000/team/app:1.0)
  rbuild tag sha256:4f1c8d3e app:rescued          (name an image by its ID)";

/// `rbuild tag` flags.
#[derive(Args, Debug)]
pub struct TagArgs {
    /// The image: a name, an image ID (or a unique prefix) or `name@sha256:…`.
    #[arg(value_name = "SOURCE")]
    pub source: String,

    /// The new name, `[registry/]repository[:tag]` (`latest` when no tag is given).
    #[arg(value_name = "TARGET")]
    pub target: String,
}

/// Parses an image name given on the command line; a malformed one is a usage error.
pub(crate) fn parse_name(raw: &str, allow_digest: bool) -> Result<Reference> {
    let usage = |m: String| anyhow::Error::new(crate::UsageError(m));
    let name =
        raw.parse::<Reference>().map_err(|e| usage(format!("invalid image name {raw:?}: {}", e.reason)))?;
    if !allow_digest && name.digest.is_some() {
        return Err(usage(format!("invalid image name {raw:?}: a name cannot contain a digest")));
    }
    Ok(name)
}

/// `rbuild tag`: prints nothing on success, as docker.
pub fn run(args: &TagArgs, root: PathBuf) -> Result<ExitCode> {
    let target = parse_name(&args.target, false)?;
    let engine = crate::open_engine(root)?;
    engine.tag_image(&args.source, &target)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_the_store_is_opened() {
        let cases: &[(&str, bool, bool)] = &[
            ("app", false, true),
            ("127.0.0.1:5000/team/app:1.0", false, true),
            ("App:1", false, false),
            ("app:bad tag", false, false),
            (&format!("app@sha256:{}", "a".repeat(64)), false, false),
            (&format!("app@sha256:{}", "a".repeat(64)), true, true),
        ];
        for (raw, digest, ok) in cases {
            let r = parse_name(raw, *digest);
            assert_eq!(r.is_ok(), *ok, "{raw}: {r:?}");
            if let Err(e) = r {
                assert!(e.downcast_ref::<crate::UsageError>().is_some(), "{raw}: not a usage error");
            }
        }
    }
}
