//! The build pipeline: parse → lower (resolving base images as the frontend asks) → solve →
//! export.

use crate::{BuildOutcome, BuildRequest, Engine, EngineError, explain, run_options};
use cache::checksum::ChecksumCache;
use frontend::lower::{self, LowerError, LowerOptions, Lowered};
use registry::Platform;
use solver::ir::{Graph, VertexId};
use solver::progress::{Event, ProgressSink};
use solver::{LocalWorker, Ref, SolveOptions, Solver, WorkerConfig};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Name of the build context among local sources.
const CONTEXT: &str = "context";

/// How many rounds of "lower, resolve what it asked for" a build may take (each round
/// resolves every image known to be needed, so two or three is normal).
const MAX_RESOLVE_ROUNDS: usize = 8;

impl Engine {
    /// Parses and lowers the request's Dockerfile, resolving base images on the way.
    ///
    /// Cancellation: dropping the future stops between registry calls; nothing is left half
    /// written (resolved manifests are stored atomically).
    pub async fn lower(&self, req: &BuildRequest, progress: &ProgressSink) -> Result<Lowered, EngineError> {
        self.lower_for(req, req.platforms.first(), false, progress).await
    }

    /// [`Engine::lower`] for one of the requested platforms (`None`: the build platform);
    /// `multi` prefixes step names with the platform.
    pub async fn lower_for(
        &self,
        req: &BuildRequest,
        platform: Option<&Platform>,
        multi: bool,
        progress: &ProgressSink,
    ) -> Result<Lowered, EngineError> {
        let dockerfile_err =
            |error: frontend::DockerfileError| EngineError::dockerfile(error, &req.dockerfile);
        if req.dockerfile.trim().is_empty() {
            return Err(EngineError::Invalid(format!(
                "{}: the Dockerfile cannot be empty",
                req.dockerfile_name
            )));
        }
        let parsed = frontend::parse(&req.dockerfile, &req.dockerfile_name).map_err(dockerfile_err)?;
        let mut opts = LowerOptions {
            source: req.dockerfile.clone(),
            build_args: req.build_args.clone(),
            target: req.target.clone(),
            target_platform: platform.cloned(),
            build_platform: Platform::host(),
            labels: req.labels.clone(),
            context_name: CONTEXT.to_string(),
            dockerignore: req.dockerignore.clone(),
            platform_prefix: multi,
            no_cache: req.no_cache,
            no_cache_filter: req.no_cache_filter.clone(),
            images: BTreeMap::new(),
            allow_http_sources: true,
            default_network: req.run.network,
            named_contexts: named_contexts(req),
        };
        for _ in 0..MAX_RESOLVE_ROUNDS {
            match lower::lower(&parsed, &opts) {
                Ok(lowered) => return Ok(lowered),
                Err(LowerError::Dockerfile(e)) => return Err(dockerfile_err(e)),
                Err(LowerError::NeedImages(requests)) => {
                    let resolving = requests.iter().map(|r| self.resolve_base(r, req.pull, progress));
                    let resolved = futures::future::join_all(resolving).await;
                    for (r, base) in requests.into_iter().zip(resolved) {
                        opts.images.insert(r, base?);
                    }
                }
            }
        }
        Err(EngineError::Invalid("base images kept changing while resolving them".into()))
    }

    /// The worker for `req`, with the context checksum cache loaded (and where to save it).
    fn worker(
        &self,
        req: &BuildRequest,
        run: solver::RunConfig,
    ) -> (Arc<LocalWorker>, Arc<ChecksumCache>, std::path::PathBuf) {
        let checksum_path = self.store.root().join("context-checksums");
        let checksums = Arc::new(ChecksumCache::load(&checksum_path).unwrap_or_default());
        let mut contexts = BTreeMap::new();
        contexts
            .insert(CONTEXT.to_string(), req.context.canonicalize().unwrap_or_else(|_| req.context.clone()));
        for (name, context) in &req.named_contexts {
            if let crate::NamedContext::Dir { path, .. } = context {
                let path = path.canonicalize().unwrap_or_else(|_| path.clone());
                contexts.insert(local_source_name(name), path);
            }
        }
        let worker = Arc::new(LocalWorker::new(
            self.store.clone(),
            self.executor.clone(),
            self.client.clone(),
            checksums.clone(),
            WorkerConfig { contexts, run },
        ));
        (worker, checksums, checksum_path)
    }

    /// Why the next build of `req` would not be fully cached (`rbuild debug why`): the
    /// explanation of the first step that would run, or `None` when everything is cached.
    /// Runs nothing.
    pub async fn why(&self, req: &BuildRequest) -> Result<Option<solver::explain::Explanation>, EngineError> {
        let quiet = ProgressSink::discard();
        let lowered = self.lower_all(req, &quiet).await?;
        let (graph, targets) = merge(&lowered);
        let targets: Vec<VertexId> = targets.into_iter().flatten().collect();
        if targets.is_empty() {
            return Ok(None);
        }
        let (worker, checksums, checksum_path) = self.worker(req, solver::RunConfig::default());
        let options = SolveOptions { max_parallel_exec: 1, ignore_cache: req.no_cache };
        let solver = Solver::new(worker.clone(), quiet, options);
        let keys = solver.keys(&Arc::new(graph.clone()), &targets).await?;
        let plan = solver.plan(&graph, &targets, &keys)?;
        let previous = explain::previous(&self.store, &explain::target_id(req));
        let record = explain::record(&graph, &keys, previous.as_ref(), &worker);
        let _ = checksums.save(&checksum_path);
        Ok(explain::first_miss(&graph, &plan, &record, previous.as_ref(), req.no_cache))
    }

    /// Lowers the Dockerfile once per requested platform (once for the build platform when
    /// none was requested).
    async fn lower_all(
        &self,
        req: &BuildRequest,
        progress: &ProgressSink,
    ) -> Result<Vec<Lowered>, EngineError> {
        if req.platforms.is_empty() {
            return Ok(vec![self.lower_for(req, None, false, progress).await?]);
        }
        let multi = req.platforms.len() > 1;
        let mut out = Vec::with_capacity(req.platforms.len());
        for p in &req.platforms {
            out.push(self.lower_for(req, Some(p), multi, progress).await?);
        }
        Ok(out)
    }

    /// Runs one build.
    ///
    /// Cancellation: firing `cancel` kills running steps; the call returns
    /// `SolveError::Cancelled` once they have stopped. The store stays consistent and no
    /// name is given to a partial image.
    pub async fn build(
        &self,
        req: BuildRequest,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> Result<BuildOutcome, EngineError> {
        let logs = self.build_logs();
        let recording = logs.start(progress);
        let context =
            req.context_source.as_ref().map(std::path::PathBuf::from).unwrap_or_else(|| req.context.clone());
        let (dockerfile, target) = (req.dockerfile_name.clone(), req.target.clone());
        let result = self.build_recorded(req, recording.sink.clone(), cancel).await;
        let build_id = recording.id().to_string();
        let (image_id, error, ran, cached) = match &result {
            Ok(o) => (Some(o.image_id.to_string()), None, o.steps_ran, o.steps_cached),
            Err(e) => (None, Some(e.to_string()), 0, 0),
        };
        let finish = crate::build_log::Finish {
            context: &context,
            dockerfile: &dockerfile,
            target: target.as_deref(),
            image_id,
            error,
            steps_ran: ran,
            steps_cached: cached,
        };
        recording.finish(finish).await;
        // Old logs are only a convenience: failing to remove them is not a build failure.
        let _ = logs.retain(crate::build_log::KEEP_BUILDS);
        result.map(|mut o| {
            o.build_id = build_id;
            o
        })
    }

    /// The build, its events going to the build log recording.
    async fn build_recorded(
        &self,
        req: BuildRequest,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> Result<BuildOutcome, EngineError> {
        if !req.context.is_dir() {
            return Err(EngineError::Invalid(format!(
                "build context {} is not a directory",
                req.context.display()
            )));
        }
        self.enforce_cap(&progress)?;
        let all = self.lower_all(&req, &progress).await?;
        let first = &all[0];
        let mut warnings: Vec<String> = first
            .warnings
            .iter()
            .map(|w| format!("{}: {} (line {})", w.rule, w.message, w.span.start_line))
            .collect();
        if !first.unused_build_args.is_empty() {
            warnings.push(format!("one or more build-args {:?} were not consumed", first.unused_build_args));
        }
        for w in &warnings {
            progress.send(Event::Warning { message: w.clone() });
        }
        if let Some(e) = &first.lint_error {
            return Err(EngineError::Invalid(e.clone()));
        }
        let (graph, targets) = merge(&all);
        let solve_targets: Vec<VertexId> = targets.iter().flatten().copied().collect();
        run_options::check_entitlements(&graph, &solve_targets, &req.run.allow)?;
        let run_opts = req.run.clone();
        let resources = tokio::task::spawn_blocking(move || run_options::prepare(&run_opts))
            .await
            .map_err(|e| EngineError::Invalid(format!("preparing ssh agents: {e}")))?
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        let (worker, checksums, checksum_path) = self.worker(&req, resources.config.clone());
        let solver = Solver::new(
            worker.clone(),
            progress.clone(),
            SolveOptions { max_parallel_exec: self.config.max_parallel_exec, ignore_cache: req.no_cache },
        );
        let graph = Arc::new(graph);
        let imported = if req.no_cache || req.cache_from.is_empty() {
            Default::default()
        } else {
            cancellable(&cancel, self.read_cache_imports(&req.cache_from, &progress)).await?
        };
        let mut all_keys = std::collections::BTreeMap::new();
        let mut chains: Vec<Vec<cache::LayerId>> = vec![Vec::new(); all.len()];
        let (mut ran, mut cached) = (0, 0);
        if !solve_targets.is_empty() {
            let keys = solver.keys(&graph, &solve_targets).await?;
            let importing = self.import_cache_hits(&graph, &solve_targets, &keys, &imported, &progress);
            cancellable(&cancel, importing).await??;
            let plan = solver.plan(&graph, &solve_targets, &keys)?;
            let target_id = explain::target_id(&req);
            let previous = explain::previous(&self.store, &target_id);
            let record = explain::record(&graph, &keys, previous.as_ref(), &worker);
            if req.explain || req.expect_cached {
                let miss = explain::first_miss(&graph, &plan, &record, previous.as_ref(), req.no_cache);
                if let Some(miss) = miss {
                    if req.expect_cached {
                        return Err(EngineError::NotCached(Box::new(miss)));
                    }
                    progress.send(Event::Note { message: format!("cache miss: {miss}") });
                }
            }
            let solution = solver.execute(graph.clone(), &solve_targets, keys, plan, cancel.clone()).await?;
            explain::save(&self.store, &target_id, &record)?;
            let mut outputs = solution.outputs.iter();
            for (chain, target) in chains.iter_mut().zip(&targets) {
                if target.is_some() {
                    match outputs.next() {
                        Some(Ref::Chain(c)) => *chain = c.clone(),
                        _ => {
                            return Err(EngineError::Invalid(
                                "the target is the build context itself".into(),
                            ));
                        }
                    }
                }
            }
            (ran, cached) = (solution.ran.len(), solution.cached.len());
            all_keys = solution.keys;
        }
        // The checksum cache only speeds things up: failing to save it is not a build failure.
        let _ = checksums.save(&checksum_path);
        let images: Vec<(&Lowered, &[cache::LayerId])> =
            all.iter().zip(chains.iter()).map(|(l, c)| (l, c.as_slice())).collect();
        let inline = if req.cache_to.iter().any(|c| c.location == crate::CacheLocation::Inline) {
            Some(self.cache_candidates(&graph, &all_keys)?)
        } else {
            None
        };
        let mut outcome = self.export(&req, &images, inline.as_deref(), &progress).await?;
        if !req.cache_to.is_empty() {
            cancellable(&cancel, self.export_caches(&req, &graph, &all_keys, &chains, &progress)).await??;
        }
        outcome.warnings = warnings;
        outcome.steps_ran = ran;
        outcome.steps_cached = cached;
        self.enforce_cap(&progress)?;
        Ok(outcome)
    }

    /// Prunes least recently used cache down to the configured cap, if any.
    fn enforce_cap(&self, progress: &ProgressSink) -> Result<(), EngineError> {
        let Some(cap) = self.config.keep_storage else { return Ok(()) };
        let report = self.store.enforce_cap(cap)?;
        if report.reclaimed_bytes > 0 {
            progress.send(Event::Note {
                message: format!(
                    "store cap {cap} bytes: pruned {} cache records ({} bytes)",
                    report.removed.len(),
                    report.reclaimed_bytes
                ),
            });
        }
        Ok(())
    }
}

/// The local source name of a directory named context (distinct from the main context's).
fn local_source_name(name: &str) -> String {
    format!("named-context:{}", lower::named_context_key(name))
}

/// The request's named contexts as the lowering sees them.
fn named_contexts(req: &BuildRequest) -> BTreeMap<String, lower::NamedContext> {
    req.named_contexts
        .iter()
        .map(|(name, context)| {
            let lowered = match context {
                crate::NamedContext::Dir { dockerignore, .. } => lower::NamedContext::Local {
                    source: local_source_name(name),
                    excludes: dockerignore.clone(),
                },
                crate::NamedContext::Image(reference) => lower::NamedContext::Image(reference.clone()),
                crate::NamedContext::Git(git) => lower::NamedContext::Git {
                    remote: git.remote.clone(),
                    reference: git.reference.clone(),
                    subdir: git.subdir.clone(),
                },
            };
            (lower::named_context_key(name), lowered)
        })
        .collect()
}

/// Runs `work` until it finishes or `cancel` fires (then the work is dropped: see the
/// cancellation notes of the cache import and export).
async fn cancellable<T>(cancel: &CancellationToken, work: impl Future<Output = T>) -> Result<T, EngineError> {
    tokio::select! {
        out = work => Ok(out),
        _ = cancel.cancelled() => Err(solver::SolveError::Cancelled.into()),
    }
}

/// One graph for all platforms (what they share runs once) and each platform's target in it.
fn merge(all: &[Lowered]) -> (Graph, Vec<Option<VertexId>>) {
    if let [one] = all {
        return (one.graph.clone(), vec![one.target]);
    }
    let mut graph = Graph::new();
    let targets = all
        .iter()
        .map(|l| {
            let ids = graph.import(&l.graph);
            l.target.map(|t| ids[t.index()])
        })
        .collect();
    (graph, targets)
}
