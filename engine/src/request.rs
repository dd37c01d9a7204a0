//! The typed build request and its outcome: plain data, as it would travel to a daemon.

use exporter::Output;
use registry::{Descriptor, Digest, Platform};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Everything one build needs.
#[derive(Clone, Debug, Default)]
pub struct BuildRequest {
    /// The build context directory.
    pub context: PathBuf,
    /// What the user gave as the context when `context` is a directory rbuild made for this
    /// build (a git URL, `-` for stdin): build records and `--explain` use it instead of the
    /// temporary path, so that rebuilds of the same source are compared.
    pub context_source: Option<String>,
    /// The Dockerfile's name for messages (`Dockerfile`, `docker/Dockerfile.dev`).
    pub dockerfile_name: String,
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// `.dockerignore` patterns (already read by the client).
    pub dockerignore: Vec<String>,
    /// `--build-arg`.
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--platform`: the platforms to build (empty: the build platform). Several give an
    /// image index.
    pub platforms: Vec<Platform>,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--no-cache-filter`.
    pub no_cache_filter: Vec<String>,
    /// `--pull`: resolve base image tags again.
    pub pull: bool,
    /// `--explain`: say why the first step that runs missed the cache.
    pub explain: bool,
    /// `--expect-cached`: fail (before running anything) if any step would run.
    pub expect_cached: bool,
    /// Where the result goes.
    pub outputs: Vec<Output>,
    /// How `RUN` steps run: secrets, ssh, network, `--allow`, limits, privileges.
    pub run: crate::RunOptions,
    /// `--build-context NAME=VALUE`, by name as given (names match case-insensitively).
    pub named_contexts: BTreeMap<String, crate::NamedContext>,
    /// `--cache-to`: build caches to write after a successful build.
    pub cache_to: Vec<crate::CacheExport>,
    /// `--cache-from`: build caches whose records the build may use.
    pub cache_from: Vec<crate::CacheImport>,
}

/// What a successful build produced.
#[derive(Clone, Debug)]
pub struct BuildOutcome {
    /// The id of the build's record (`rbuild builds`, `rbuild logs`).
    pub build_id: String,
    /// The image ID (config digest), as docker shows it.
    pub image_id: Digest,
    /// The manifest in the local content store.
    pub manifest: Descriptor,
    /// Names the image was stored or pushed under.
    pub names: Vec<String>,
    /// Digests the pushed names now point to.
    pub pushed: Vec<(String, Digest)>,
    /// Warnings (build checks, unused build args).
    pub warnings: Vec<String>,
    /// Number of steps that ran.
    pub steps_ran: usize,
    /// Number of steps served from the cache.
    pub steps_cached: usize,
}

/// One named image in the local store.
#[derive(Clone, Debug)]
pub struct ImageSummary {
    /// `registry/repo:tag`.
    pub name: String,
    /// Its manifest.
    pub manifest: Descriptor,
    /// The image ID (config digest), when the config is present.
    pub id: Option<Digest>,
    /// When it was stored.
    pub created_unix: i64,
    /// Sum of its blobs' sizes.
    pub size: u64,
}
