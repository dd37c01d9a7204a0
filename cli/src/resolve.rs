//! Step two of the CLI: turn validated flags into an `engine::BuildRequest`, reading the
//! Dockerfile and `.dockerignore`, resolving paths and defaults. No build logic lives here.

use crate::UsageError;
use crate::args::BuildArgs;
use crate::output_spec::parse_output;
use anyhow::{Context, Result, bail};
use engine::BuildRequest;
use exporter::Output;
use registry::{Compression, Platform, Reference};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A usage error (exit code 2): a flag value rbuild cannot accept.
fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

/// The store root: `--root`/`RBUILD_ROOT`, else `/var/lib/rbuild` for root and
/// `$XDG_DATA_HOME/rbuild` (or `~/.local/share/rbuild`) for other users.
pub fn store_root(flag: Option<PathBuf>) -> PathBuf {
    if let Some(p) = flag {
        return p;
    }
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/rbuild");
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    data.join("rbuild")
}

fn key_values(flag: &str, items: &[String], from_env: bool) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_string(), v.to_string());
            }
            None if from_env && !item.is_empty() => {
                // `--build-arg NAME` takes the value from the environment, like docker.
                if let Ok(v) = std::env::var(item) {
                    out.insert(item.clone(), v);
                }
            }
            _ => return Err(usage(format!("invalid {flag} {item:?}: expected KEY=VALUE"))),
        }
    }
    Ok(out)
}

/// Builds the request from `build` flags.
pub fn build_request(args: &BuildArgs) -> Result<BuildRequest> {
    let tags: Vec<Reference> = args
        .tags
        .iter()
        .map(|t| t.parse::<Reference>().map_err(|e| usage(format!("invalid tag {t:?}: {}", e.reason))))
        .collect::<Result<_>>()?;
    // `--platform linux/amd64,linux/arm64` builds both and makes an image index.
    let mut platforms: Vec<Platform> = Vec::new();
    if let Some(list) = args.platform.as_ref().or(crate::settings().platform.as_ref()) {
        for p in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let p = p.parse::<Platform>().map_err(|e| usage(e.to_string()))?;
            if !platforms.contains(&p) {
                platforms.push(p);
            }
        }
    }
    let mut outputs: Vec<Output> = args
        .outputs
        .iter()
        .map(|o| parse_output(o, &tags).map_err(|e| usage(e.to_string())))
        .collect::<Result<_>>()?;
    if args.push {
        if tags.is_empty() {
            return Err(usage("--push needs a name: give -t registry/repository:tag"));
        }
        match outputs.iter_mut().find(|o| matches!(o, Output::Image { .. })) {
            Some(Output::Image { push, .. }) => *push = true,
            _ => outputs.push(image_output(&tags, true)),
        }
    }
    let mut build_args = key_values("--build-arg", &args.build_args, true)?;
    // Like buildx: SOURCE_DATE_EPOCH in the environment is a build arg unless one is given.
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH")
        && !epoch.is_empty()
    {
        build_args.entry("SOURCE_DATE_EPOCH".to_string()).or_insert(epoch);
    }
    let labels = key_values("--label", &args.labels, false)?;
    let context = &args.context;
    if context.as_os_str() == "-" {
        return Err(usage("a context from stdin (-) is not supported yet: give a directory"));
    }
    let meta = std::fs::metadata(context).with_context(|| {
        format!("unable to prepare context: path {:?} not found", context.display().to_string())
    })?;
    if !meta.is_dir() {
        bail!("unable to prepare context: {} is not a directory", context.display());
    }
    let dockerfile_path = match &args.file {
        Some(f) if f.as_os_str() == "-" => {
            return Err(usage("a Dockerfile from stdin (-f -) is not supported yet"));
        }
        Some(f) => f.clone(),
        None => context.join("Dockerfile"),
    };
    let dockerfile = std::fs::read_to_string(&dockerfile_path)
        .with_context(|| format!("failed to read dockerfile {}", dockerfile_path.display()))?;
    let dockerfile_name =
        args.file.as_ref().map(|f| f.display().to_string()).unwrap_or_else(|| "Dockerfile".to_string());
    // `<Dockerfile>.dockerignore` beside the Dockerfile wins over the context's `.dockerignore`.
    let per_file = PathBuf::from(format!("{}.dockerignore", dockerfile_path.display()));
    let ignore_file = if per_file.is_file() { per_file } else { context.join(".dockerignore") };
    let dockerignore = match std::fs::read_to_string(&ignore_file) {
        Ok(text) => frontend::dockerignore::parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", ignore_file.display())),
    };
    if outputs.is_empty() {
        outputs.push(image_output(&tags, false));
    }
    Ok(BuildRequest {
        context: context.clone(),
        dockerfile_name,
        dockerfile,
        dockerignore,
        build_args,
        target: args.target.clone(),
        platforms,
        labels,
        no_cache: args.no_cache,
        no_cache_filter: args.no_cache_filter.clone(),
        pull: args.pull,
        explain: args.explain,
        expect_cached: args.expect_cached,
        outputs,
        run: crate::resolve_run::run_options(&args.run, &|name| std::env::var(name).ok())?,
        cache_to: args
            .cache_to
            .iter()
            .map(|s| crate::cache_spec::parse_cache_to(s).map_err(|e| usage(e.to_string())))
            .collect::<Result<_>>()?,
        cache_from: args
            .cache_from
            .iter()
            .map(|s| crate::cache_spec::parse_cache_from(s).map_err(|e| usage(e.to_string())))
            .collect::<Result<_>>()?,
    })
}

fn image_output(tags: &[Reference], push: bool) -> Output {
    Output::Image {
        names: tags.to_vec(),
        push,
        compression: Compression::Gzip,
        level: None,
        force_compression: false,
        oci_media_types: true,
    }
}
