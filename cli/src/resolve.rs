//! Step two of the CLI: turn validated flags into an `engine::BuildRequest`, reading the
//! Dockerfile and `.dockerignore`, resolving paths and defaults. No build logic lives here.

use crate::UsageError;
use crate::args::BuildArgs;
use crate::context_spec::{MainContext, NamedValue, SpecError, parse_main, parse_named};
use crate::output_spec::parse_output;
use anyhow::{Context, Result, bail};
use engine::BuildRequest;
use engine::NamedContext;
use engine::context::StdinContext;
use exporter::Output;
use registry::{Compression, Platform, Reference};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The runtime named by `--runtime`/`RBUILD_RUNTIME`/the config file: `native` (or nothing)
/// is rbuild's own sandbox; a bare name (`runc`, `crun`) is looked up in `PATH`; anything
/// with a `/` is the runtime binary itself.
pub fn runtime(name: Option<&str>) -> Result<executor::Runtime> {
    let name = match name.map(str::trim) {
        None | Some("native") => return Ok(executor::Runtime::Native),
        Some("") => return Err(usage("--runtime: empty value (use native, runc, crun or a path)")),
        Some(n) => n,
    };
    let binary = if name.contains('/') {
        let path = PathBuf::from(name);
        if !path.is_file() {
            return Err(usage(format!("--runtime {name}: no such file")));
        }
        path
    } else {
        let path = std::env::var_os("PATH")
            .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
            .ok_or_else(|| {
                usage(format!("--runtime {name}: `{name}` not found in PATH (install it, or give its path)"))
            })?
    };
    Ok(executor::Runtime::Oci { binary })
}

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

/// Builds the request from `build` flags. A context from stdin or git is made into a
/// temporary directory, removed when the returned [`ContextDirs`] is dropped (keep it for
/// the whole build).
pub(crate) fn build_request(args: &BuildArgs) -> Result<(BuildRequest, ContextDirs)> {
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
    let mut temp = ContextDirs::default();
    let stdin_dockerfile = args.file.as_ref().is_some_and(|f| f.as_os_str() == "-");
    let main = parse_main(&args.context).map_err(spec_error)?;
    if stdin_dockerfile && main == MainContext::Stdin {
        return Err(usage(
            "-f - and the context - cannot be used together: both would read stdin (give a directory as context)",
        ));
    }
    let named_contexts = named_contexts(&args.build_contexts)?;
    let mut from_stdin: Option<String> = None;
    let context_source = match &main {
        MainContext::Dir(_) => None,
        MainContext::Stdin => Some("-".to_string()),
        MainContext::Git(_) => args.context.to_str().map(solver::redact_git_remote),
    };
    // `inside`: the context was made by rbuild (stdin tar, git), so a relative `-f` names a
    // file inside it, as with docker; for a directory it is relative to the working directory.
    let (context, inside): (PathBuf, bool) = match main {
        MainContext::Dir(dir) => {
            let meta = std::fs::metadata(&dir).with_context(|| {
                format!("unable to prepare context: path {:?} not found", dir.display().to_string())
            })?;
            if !meta.is_dir() {
                bail!("unable to prepare context: {} is not a directory", dir.display());
            }
            (dir, false)
        }
        MainContext::Stdin => {
            let dir = temp.new_dir()?;
            match engine::context::read_stdin_context(std::io::stdin(), &dir)
                .context("unable to prepare context from stdin")?
            {
                StdinContext::Dockerfile(text) => {
                    if args.file.is_some() {
                        return Err(usage(
                            "-f cannot be used when stdin holds a Dockerfile (the context - is empty)",
                        ));
                    }
                    from_stdin = Some(text);
                }
                StdinContext::Extracted => {}
            }
            (dir, true)
        }
        MainContext::Git(git) => {
            let dir = temp.new_dir()?;
            let context = engine::context::clone_git(&git, &dir).with_context(|| {
                format!(
                    "unable to prepare context from git repository {}",
                    solver::redact_git_remote(&git.remote)
                )
            })?;
            (context, true)
        }
    };
    let (dockerfile_path, dockerfile, dockerfile_name) = if let Some(text) = from_stdin {
        (None, text, "Dockerfile".to_string())
    } else if stdin_dockerfile {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("failed to read the Dockerfile from stdin")?;
        (None, text, "Dockerfile".to_string())
    } else {
        let path = match &args.file {
            Some(f) if inside && f.is_relative() => context.join(inside_path(f)?),
            Some(f) => f.clone(),
            None => context.join("Dockerfile"),
        };
        if inside && path.starts_with(&context) {
            check_within(&context, &path)?;
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("failed to read dockerfile {}", path.display()))?;
        let name =
            args.file.as_ref().map(|f| f.display().to_string()).unwrap_or_else(|| "Dockerfile".to_string());
        (Some(path), text, name)
    };
    // `<Dockerfile>.dockerignore` beside the Dockerfile wins over the context's `.dockerignore`.
    let per_file = dockerfile_path.map(|p| PathBuf::from(format!("{}.dockerignore", p.display())));
    let ignore_file = match per_file {
        Some(p) if p.is_file() => p,
        _ => context.join(".dockerignore"),
    };
    if inside && ignore_file.starts_with(&context) {
        check_within(&context, &ignore_file)?;
    }
    let dockerignore = read_dockerignore(&ignore_file)?;
    if outputs.is_empty() {
        outputs.push(image_output(&tags, false));
    }
    let request = BuildRequest {
        context,
        context_source,
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
        named_contexts,
    };
    Ok((request, temp))
}

/// Directories rbuild made for a build's context (stdin tar, git checkout); removed on drop.
#[derive(Default)]
pub(crate) struct ContextDirs(Vec<tempfile::TempDir>);

impl ContextDirs {
    /// A new empty directory that lives as long as `self`.
    fn new_dir(&mut self) -> Result<PathBuf> {
        let dir = tempfile::Builder::new()
            .prefix("rbuild-context-")
            .tempdir()
            .context("creating a temporary directory for the context")?;
        let path = dir.path().to_path_buf();
        self.0.push(dir);
        Ok(path)
    }
}

fn spec_error(e: SpecError) -> anyhow::Error {
    usage(e.to_string())
}

/// `-f PATH` inside a context rbuild made: relative, without `..`.
fn inside_path(f: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in f.components() {
        match c {
            std::path::Component::Normal(p) => out.push(p),
            std::path::Component::CurDir => {}
            _ => return Err(usage(format!("-f {}: must stay inside the context", f.display()))),
        }
    }
    Ok(out)
}

/// A file of a context rbuild made (from a tar or a repository, so not trusted) must not be
/// a symbolic link out of it: the Dockerfile and `.dockerignore` are read on the host.
fn check_within(root: &Path, path: &Path) -> Result<()> {
    let Ok(real) = path.canonicalize() else { return Ok(()) };
    let root = root.canonicalize().with_context(|| format!("reading {}", root.display()))?;
    if !real.starts_with(&root) {
        bail!(
            "{}: a symbolic link out of the context is not followed",
            path.strip_prefix(&root).unwrap_or(path).display()
        );
    }
    Ok(())
}

fn read_dockerignore(path: &Path) -> Result<Vec<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(frontend::dockerignore::parse(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// `--build-context NAME=VALUE` flags, checked: directories must exist.
fn named_contexts(flags: &[String]) -> Result<BTreeMap<String, NamedContext>> {
    let mut out: BTreeMap<String, NamedContext> = BTreeMap::new();
    let mut keys = std::collections::BTreeSet::new();
    for flag in flags {
        let (name, value) = parse_named(flag).map_err(spec_error)?;
        if !keys.insert(frontend::lower::named_context_key(&name)) {
            return Err(usage(format!("--build-context {name:?} is given more than once")));
        }
        let context = match value {
            NamedValue::Dir(path) => {
                let meta = std::fs::metadata(&path).with_context(|| {
                    format!("--build-context {name}: path {:?} not found", path.display().to_string())
                })?;
                if !meta.is_dir() {
                    bail!("--build-context {name}: {} is not a directory", path.display());
                }
                let dockerignore = read_dockerignore(&path.join(".dockerignore"))?;
                NamedContext::Dir { path, dockerignore }
            }
            NamedValue::Image(reference) => NamedContext::Image(reference),
            NamedValue::Git(git) => NamedContext::Git(git),
        };
        out.insert(name, context);
    }
    Ok(out)
}

fn image_output(tags: &[Reference], push: bool) -> Output {
    Output::Image {
        names: tags.to_vec(),
        push,
        compression: Compression::Gzip,
        level: None,
        force_compression: false,
        oci_media_types: true,
        squash: false,
    }
}
