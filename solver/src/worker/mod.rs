//! The real [`Worker`]: pulls images into the store, runs `Exec` ops in the sandbox and
//! `File` ops on overlay mounts, and keeps results in the store's metadata DB.

mod emulation;
mod exec;
mod file;
mod git;
mod http;
mod image;
mod secrets;
mod ssh;

pub use exec::RunConfig;
pub use git::{GitError, redact as redact_git_remote};
pub use http::HttpError;
pub use image::remember_chain;
pub use secrets::{MAX_SECRET_SIZE, SecretError, SecretSource};
pub use ssh::SshError;

use crate::error::SolveError;
use crate::ir::{LocalSource, Op, Source, Vertex};
use crate::key::{CacheKey, LocalSelection};
use crate::progress::ProgressSink;
use crate::scheduler::{Step, Worker};
use cache::checksum::ChecksumCache;
use cache::{CacheRecord, LayerId, Store};
use executor::Executor;
use registry::Digest;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// The result of a vertex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ref {
    /// A filesystem: the overlay of these layers, base first (empty: scratch).
    Chain(Vec<LayerId>),
    /// A local directory (the build context), with its `.dockerignore` patterns.
    Dir {
        /// The directory.
        path: PathBuf,
        /// Patterns whose matches are treated as absent.
        excludes: Vec<String>,
    },
}

impl Ref {
    /// The layer chain, or an error naming `step` when this is a local directory.
    pub fn chain(&self, step: &str) -> Result<&[LayerId], SolveError> {
        match self {
            Ref::Chain(c) => Ok(c),
            Ref::Dir { path, .. } => Err(SolveError::msg(
                step,
                format!("{} is a local directory, not a filesystem", path.display()),
            )),
        }
    }
}

/// Where a build's local sources are and how to reach registries.
pub struct WorkerConfig {
    /// Local source name (`context`, named contexts) → directory.
    pub contexts: BTreeMap<String, PathBuf>,
    /// Secrets, ssh agents, limits and privileges of every `RUN`.
    pub run: RunConfig,
}

/// The worker that really builds.
pub struct LocalWorker {
    store: Arc<Store>,
    executor: Arc<Executor>,
    client: registry::Client,
    contexts: BTreeMap<String, PathBuf>,
    checksums: Arc<ChecksumCache>,
    remote: RemoteState,
    run: RunConfig,
}

/// What the remote sources of one build were pinned to while the keys were computed, so
/// that running them fetches exactly that (keyed by vertex digest).
#[derive(Default)]
struct RemoteState {
    http: OnceLock<reqwest::Client>,
    http_pins: Mutex<HashMap<Digest, http::Pin>>,
    git_pins: Mutex<HashMap<Digest, git::Pin>>,
}

impl LocalWorker {
    /// A worker over `store`. `checksums` is the context checksum cache (loaded and saved by
    /// the caller so that it survives builds).
    pub fn new(
        store: Arc<Store>,
        executor: Arc<Executor>,
        client: registry::Client,
        checksums: Arc<ChecksumCache>,
        config: WorkerConfig,
    ) -> LocalWorker {
        LocalWorker {
            store,
            executor,
            client,
            contexts: config.contexts,
            checksums,
            remote: RemoteState::default(),
            run: config.run,
        }
    }

    /// Every file `selection` picks from a local source with its digest, or `None` when
    /// there are more than `limit` (for explaining cache misses).
    pub fn listing(
        &self,
        source: &LocalSource,
        selection: &LocalSelection,
        limit: usize,
    ) -> Result<Option<Vec<(String, Digest)>>, SolveError> {
        let (root, selector) = self.selection(source, selection)?;
        cache::checksum::listing(&root, &selector, &self.checksums, limit)
            .map_err(|e| SolveError::step(&source.name, format!("listing {:?}: {e}", selection.path), e))
    }

    fn selection(
        &self,
        source: &LocalSource,
        selection: &LocalSelection,
    ) -> Result<(cache::fileop::SourceRoot, cache::checksum::Selector), SolveError> {
        let root = self.context_dir(&source.name, &source.name)?;
        let root = cache::fileop::SourceRoot::context(root.clone(), source.excludes.clone());
        Ok((root, selector(selection)))
    }

    fn context_dir(&self, step: &str, name: &str) -> Result<&PathBuf, SolveError> {
        self.contexts
            .get(name)
            .ok_or_else(|| SolveError::msg(step, format!("no local context named {name:?}")))
    }
}

/// What a copy of `selection` reads, for checksums.
fn selector(selection: &LocalSelection) -> cache::checksum::Selector {
    let mut copy = cache::fileop::CopyAction::new(0, selection.path.clone(), "/");
    copy.follow_symlinks = selection.follow_symlinks;
    copy.include_patterns = selection.include_patterns.clone();
    copy.exclude_patterns = selection.exclude_patterns.clone();
    copy.allow_wildcard = selection.allow_wildcard;
    copy.parents = selection.parents;
    copy.selector()
}

fn store_err(step: &str, e: cache::StoreError) -> SolveError {
    SolveError::step(step, e.to_string(), e)
}

impl Worker for LocalWorker {
    type Output = Ref;

    fn checksum_local(&self, source: &LocalSource, selection: &LocalSelection) -> Result<Digest, SolveError> {
        let (root, selector) = self.selection(source, selection)?;
        cache::checksum::checksum(&root, &selector, &self.checksums)
            .map_err(|e| SolveError::step(&source.name, format!("checksum of {:?}: {e}", selection.path), e))
    }

    fn checksum_output(
        &self,
        output: &Ref,
        selection: &LocalSelection,
    ) -> Result<Option<Digest>, SolveError> {
        let Ref::Chain(chain) = output else { return Ok(None) };
        let view = self.store.mount_readonly(chain).map_err(|e| store_err("checksum", e))?;
        let root = cache::fileop::SourceRoot::new(view.path().to_path_buf());
        // A fresh cache: the view is a new mount each time, so remembered entries never match.
        let checksum = cache::checksum::checksum(&root, &selector(selection), &ChecksumCache::new())
            .map_err(|e| SolveError::msg("checksum", format!("checksum of {:?}: {e}", selection.path)))?;
        Ok(Some(checksum))
    }

    fn load(&self, key: &CacheKey, _vertex: &Vertex) -> Result<Option<Ref>, SolveError> {
        let meta = self.store.meta();
        match meta.get_cache(&key.key).map_err(|e| store_err("cache lookup", e))? {
            Some(record) => {
                meta.touch_cache(&key.key).map_err(|e| store_err("cache lookup", e))?;
                Ok(Some(Ref::Chain(record.chain)))
            }
            None => Ok(None),
        }
    }

    fn save(&self, key: &CacheKey, vertex: &Vertex, output: &Ref) -> Result<(), SolveError> {
        let Ref::Chain(chain) = output else { return Ok(()) };
        let record = CacheRecord::new(chain.clone(), vertex.meta.name.clone());
        self.store.meta().put_cache(&key.key, &record).map_err(|e| store_err(&vertex.meta.name, e))
    }

    async fn pin_source(&self, vertex: &Vertex, progress: &ProgressSink) -> Result<Option<Op>, SolveError> {
        match &vertex.op {
            Op::Source(Source::Http(h)) => http::pin(self, vertex, h, progress).await,
            Op::Source(Source::Git(g)) => git::pin(self, vertex, g, progress).await,
            _ => Ok(None),
        }
    }

    fn cacheable(&self, vertex: &Vertex) -> bool {
        !matches!(vertex.op, Op::Source(Source::Local(_)))
    }

    async fn execute(&self, step: Step, vertex: Vertex, inputs: Vec<Ref>) -> Result<Ref, SolveError> {
        match &vertex.op {
            Op::Source(Source::Local(local)) => {
                let path = self.context_dir(&step.name, &local.name)?.clone();
                Ok(Ref::Dir { path, excludes: local.excludes.clone() })
            }
            Op::Source(Source::Image(image)) => image::pull(self, &step, image).await,
            Op::Source(Source::Http(h)) => http::fetch(self, &step, &vertex, h).await,
            Op::Source(Source::Git(g)) => git::fetch(self, &step, &vertex, g).await,
            Op::Exec(e) => exec::run(self, &step, e, &inputs).await,
            Op::File(f) => file::apply(self, &step, f, &inputs).await,
            Op::Merge => {
                let mut chain: Vec<LayerId> = Vec::new();
                for input in &inputs {
                    for layer in input.chain(&step.name)? {
                        if !chain.contains(layer) {
                            chain.push(layer.clone());
                        }
                    }
                }
                Ok(Ref::Chain(chain))
            }
            Op::Diff => {
                let lower = inputs[0].chain(&step.name)?;
                let upper = inputs[1].chain(&step.name)?;
                match upper.strip_prefix(lower) {
                    Some(rest) => Ok(Ref::Chain(rest.to_vec())),
                    None => {
                        Err(SolveError::msg(&step.name, "diff of unrelated filesystems is not supported yet"))
                    }
                }
            }
        }
    }
}
