//! Lowering: a parsed Dockerfile plus build-time inputs (build args, target, platform,
//! resolved base images) → a build graph ([`solver::ir::Graph`]) and the image config of
//! the target stage. This is BuildKit's `dockerfile2llb`.
//!
//! Base images are resolved by the caller (the frontend does no I/O): [`lower`] returns
//! [`LowerError::NeedImages`] listing the images it needs; the caller resolves them and calls
//! again with them in [`LowerOptions::images`].

mod args;
mod checks;
mod copy;
mod dispatch;
mod git_ref;
mod named_context;
mod run;
mod run_mount;
mod stage;

use crate::error::{DockerfileError, LineIndex, Span};
use crate::instructions::Dockerfile;
use crate::lint::Warning;
use registry::{ImageConfig, Platform, Reference};
use solver::ir::{Graph, VertexId};
use std::collections::BTreeMap;

pub use args::PROXY_ARGS;
pub use checks::lint_config;
pub use git_ref::{GitRef, parse as parse_git_ref};

/// A base image as the caller resolved it.
#[derive(Clone, Debug, PartialEq)]
pub struct BaseImage {
    /// The reference pinned to the platform's manifest digest.
    pub pinned: Reference,
    /// Its config.
    pub config: ImageConfig,
}

/// A named build context (`--build-context NAME=VALUE`) as the lowering sees it. It
/// replaces a stage of the same name, stands for `FROM NAME`, and is what
/// `COPY --from=NAME` and `RUN --mount=from=NAME` read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamedContext {
    /// A client directory: the local source called `source` (its files are checksummed like
    /// the main context's), filtered by `excludes` (its own `.dockerignore`).
    Local {
        /// Name of the local source (the worker maps it to the directory).
        source: String,
        /// `.dockerignore` patterns of that directory.
        excludes: Vec<String>,
    },
    /// A registry image (`docker-image://REF`): the stage's base image becomes this image.
    Image(Reference),
    /// A git repository (fetched by the solver's git source, pinned to a commit per build).
    Git {
        /// What git fetches from.
        remote: String,
        /// Branch, tag or commit (`None`: the default branch).
        reference: Option<String>,
        /// Subdirectory to take.
        subdir: Option<String>,
    },
}

/// The key a named context is found under: names match case-insensitively (like stage
/// names), and an image-like name matches without `docker.io/library/` and `:latest`, as
/// BuildKit compares familiar image names (`FROM alpine:latest` uses `--build-context alpine=…`).
pub fn named_context_key(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    let short = lower
        .strip_prefix("docker.io/library/")
        .or_else(|| lower.strip_prefix("index.docker.io/library/"))
        .or_else(|| lower.strip_prefix("docker.io/"))
        .unwrap_or(&lower);
    short.strip_suffix(":latest").unwrap_or(short).to_string()
}

/// An image the lowering needs resolved.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRequest {
    /// The reference as normalised from the Dockerfile.
    pub reference: Reference,
    /// The platform to resolve it for.
    pub platform: Platform,
}

/// Everything besides the Dockerfile that decides the graph.
#[derive(Clone, Debug)]
pub struct LowerOptions {
    /// The Dockerfile's text (for error carets).
    pub source: String,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--platform` (None: the build platform, and base images keep their own platform).
    pub target_platform: Option<Platform>,
    /// The platform rbuild runs on.
    pub build_platform: Platform,
    /// `--label` values, added to the target image.
    pub labels: BTreeMap<String, String>,
    /// Name of the main local source (the build context).
    pub context_name: String,
    /// `.dockerignore` patterns of the context.
    pub dockerignore: Vec<String>,
    /// Several platforms are built at once: step names start with the platform, as in
    /// BuildKit (`[linux/arm64 build 2/4] RUN make`).
    pub platform_prefix: bool,
    /// `--no-cache` for every stage.
    pub no_cache: bool,
    /// `--no-cache-filter`: stages whose steps must not be served from the cache.
    pub no_cache_filter: Vec<String>,
    /// Base images resolved so far.
    pub images: BTreeMap<ImageRequest, BaseImage>,
    /// Whether the solver can fetch `ADD https://...` sources (rejected at the line otherwise).
    pub allow_http_sources: bool,
    /// Network of `RUN` steps without `--network` (or with `--network=default`): the build's
    /// `--network` flag.
    pub default_network: solver::ir::Network,
    /// `--build-context` values, by [`named_context_key`].
    pub named_contexts: BTreeMap<String, NamedContext>,
}

#[cfg(test)]
impl LowerOptions {
    /// Options for lowering `source` in unit tests: the host platform, no build args, labels,
    /// images or named contexts, host networking, no HTTP sources.
    pub(crate) fn for_test(source: &str) -> LowerOptions {
        LowerOptions {
            source: source.into(),
            build_args: BTreeMap::new(),
            target: None,
            target_platform: None,
            build_platform: Platform::host(),
            labels: BTreeMap::new(),
            context_name: "context".into(),
            dockerignore: Vec::new(),
            platform_prefix: false,
            no_cache: false,
            no_cache_filter: Vec::new(),
            images: BTreeMap::new(),
            allow_http_sources: false,
            default_network: solver::ir::Network::Host,
            named_contexts: BTreeMap::new(),
        }
    }
}

/// The result of lowering.
#[derive(Clone, Debug)]
pub struct Lowered {
    /// The build graph.
    pub graph: Graph,
    /// The vertex whose filesystem is the target's (None: an empty filesystem).
    pub target: Option<VertexId>,
    /// The target image config; `rootfs` and `created` are left for the exporter. History
    /// entries of this build have `created` unset.
    pub image: ImageConfig,
    /// How many history entries came from the base image (the rest are this build's).
    pub base_history: usize,
    /// The registry image the target is built on (pinned), if any: pushes mount its layers.
    pub base_image: Option<Reference>,
    /// Build checks and other warnings.
    pub warnings: Vec<Warning>,
    /// With `# check=error=true` and any warning: the error that fails the build.
    pub lint_error: Option<String>,
    /// Build args given but never consumed by an ARG.
    pub unused_build_args: Vec<String>,
    /// `SOURCE_DATE_EPOCH` when set (build arg): clamps timestamps.
    pub source_date_epoch: Option<i64>,
}

/// Why lowering stopped.
#[derive(Debug, thiserror::Error)]
pub enum LowerError {
    /// The Dockerfile is wrong for these inputs; names the file, line and column.
    #[error(transparent)]
    Dockerfile(#[from] DockerfileError),
    /// These base images must be resolved first (then call [`lower`] again).
    #[error("base images to resolve: {0:?}")]
    NeedImages(Vec<ImageRequest>),
}

/// Errors are built against the Dockerfile's text so they carry line, column and caret.
pub(crate) struct Errors<'a> {
    file: &'a str,
    source: &'a str,
    index: LineIndex,
}

impl<'a> Errors<'a> {
    fn new(file: &'a str, source: &'a str) -> Errors<'a> {
        Errors { file, source, index: LineIndex::new(source) }
    }

    /// An error at `span`.
    pub(crate) fn at(&self, span: Span, message: impl Into<String>) -> DockerfileError {
        let end = span.end.min(self.source.len());
        let start = span.start.min(end);
        DockerfileError::at(self.file, self.source, &self.index, start, end, message.into())
    }

    /// An error with no better place than the end of the file.
    pub(crate) fn general(&self, message: impl Into<String>) -> DockerfileError {
        DockerfileError::at(self.file, self.source, &self.index, 0, 0, message.into())
    }
}

/// Lowers `dockerfile` for `opts`. See the module docs for the image-resolution protocol.
pub fn lower(dockerfile: &Dockerfile, opts: &LowerOptions) -> Result<Lowered, LowerError> {
    stage::Lowering::new(dockerfile, opts).run()
}
