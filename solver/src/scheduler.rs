//! The scheduler: computes every key up front, serves what it can from the cache, and runs
//! the rest with every vertex whose inputs are ready running at once. A step about to run
//! whose inputs re-ran is looked up once more by its content key (see [`key`]) before it
//! runs, and its result is recorded under both keys.

use crate::error::SolveError;
use crate::ir::{Graph, Op, Source, Vertex, VertexId};
use crate::key::{self, CacheKey, KeyComponent, LocalSelection};
use crate::progress::{Event, ProgressSink, StepStats};
use registry::Digest;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// One selection of one consumer from one local input: (consumer, input index, selection index).
type Selection = (VertexId, usize, usize);

/// The innermost message of an error chain (what actually went wrong).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Everything the scheduler needs from the outside world: the cache, and a way to run each
/// kind of op. The real implementation is [`crate::LocalWorker`]; tests use small fakes.
pub trait Worker: Send + Sync + 'static {
    /// The result of a vertex (for the real worker: a layer chain or a local directory).
    type Output: Clone + Send + Sync + 'static;

    /// Checksum of what `selection` picks from the local source (blocking; runs on a
    /// blocking thread).
    fn checksum_local(
        &self,
        source: &crate::ir::LocalSource,
        selection: &LocalSelection,
    ) -> Result<Digest, SolveError>;

    /// Checksum of what `selection` picks from `output`, the result of another step (for
    /// keys that follow content, as `COPY --from` does; blocking). `None` when the worker
    /// cannot tell, and the step's key then stays the input's key.
    fn checksum_output(
        &self,
        output: &Self::Output,
        selection: &LocalSelection,
    ) -> Result<Option<Digest>, SolveError> {
        let _ = (output, selection);
        Ok(None)
    }

    /// The stored result for `key`, if any (blocking, cheap).
    fn load(&self, key: &CacheKey, vertex: &Vertex) -> Result<Option<Self::Output>, SolveError>;

    /// Records `output` as the result for `key` (blocking, cheap).
    fn save(&self, key: &CacheKey, vertex: &Vertex, output: &Self::Output) -> Result<(), SolveError>;

    /// Whether results of `vertex` are cached at all (local sources are re-read every build).
    fn cacheable(&self, vertex: &Vertex) -> bool;

    /// Runs one vertex on its inputs' results. On cancellation the future returns
    /// `SolveError::Cancelled` after releasing everything it holds.
    fn execute(
        &self,
        step: Step,
        vertex: Vertex,
        inputs: Vec<Self::Output>,
    ) -> impl Future<Output = Result<Self::Output, SolveError>> + Send;

    /// For a source whose content lives elsewhere and may change (an `ADD https://…` without
    /// a checksum, a git branch), the op pinned to what that content is now (the download's
    /// digest, the commit), whose digest becomes the vertex's key; `None` keeps the op as it
    /// is. BuildKit computes the keys of such sources the same way, by asking the remote.
    ///
    /// Cancellation: dropping the future stops the request; what was already stored stays
    /// valid.
    fn pin_source(
        &self,
        vertex: &Vertex,
        progress: &ProgressSink,
    ) -> impl Future<Output = Result<Option<Op>, SolveError>> + Send {
        let _ = (vertex, progress);
        async { Ok(None) }
    }
}

/// What a running vertex gets besides its inputs.
#[derive(Clone, Debug)]
pub struct Step {
    /// Progress id (the vertex digest).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Where to report logs and transfers.
    pub progress: ProgressSink,
    /// Fired when the solve is cancelled.
    pub cancel: CancellationToken,
    /// Resource use to report with `Done`; the worker fills it in.
    pub stats: Arc<std::sync::Mutex<StepStats>>,
}

/// Options of one solve.
#[derive(Clone, Debug)]
pub struct SolveOptions {
    /// Upper bound on concurrently running `Exec` vertices.
    pub max_parallel_exec: usize,
    /// Ignore the cache for every vertex (`--no-cache`).
    pub ignore_cache: bool,
}

impl Default for SolveOptions {
    fn default() -> Self {
        SolveOptions {
            max_parallel_exec: std::thread::available_parallelism().map_or(2, |n| n.get()),
            ignore_cache: false,
        }
    }
}

/// The result of a solve.
#[derive(Clone, Debug)]
pub struct Solution<O> {
    /// One output per requested target, in order.
    pub outputs: Vec<O>,
    /// The key of every vertex the targets depend on.
    pub keys: BTreeMap<VertexId, CacheKey>,
    /// Vertices that ran.
    pub ran: Vec<VertexId>,
    /// Vertices served from the cache.
    pub cached: Vec<VertexId>,
}

/// What a solve will do: the cached results found and the vertices that must run.
#[derive(Clone, Debug)]
pub struct Plan<O> {
    /// Results served from the cache.
    pub outputs: HashMap<VertexId, O>,
    /// Vertices served from the cache.
    pub cached: Vec<VertexId>,
    /// Vertices that must run, in topological order (local sources included).
    pub to_run: Vec<VertexId>,
}

/// Runs graphs with a [`Worker`].
pub struct Solver<W: Worker> {
    worker: Arc<W>,
    progress: ProgressSink,
    options: SolveOptions,
}

impl<W: Worker> Solver<W> {
    /// A solver over `worker`, reporting to `progress`.
    pub fn new(worker: Arc<W>, progress: ProgressSink, options: SolveOptions) -> Solver<W> {
        Solver { worker, progress, options }
    }

    /// Computes the cache key of every vertex `targets` depend on, without running anything
    /// but the local-source checksums.
    ///
    /// Cancellation: dropping the future stops waiting; checksums already running on
    /// blocking threads finish in the background and change nothing.
    pub async fn keys(
        &self,
        graph: &Arc<Graph>,
        targets: &[VertexId],
    ) -> Result<BTreeMap<VertexId, CacheKey>, SolveError> {
        let order = graph.reachable(targets);
        // Every (consumer, input, selection) that reads a local source, checksummed in parallel.
        let mut jobs: JoinSet<Result<(Selection, Digest), SolveError>> = JoinSet::new();
        let mut selections: HashMap<(VertexId, usize), Vec<LocalSelection>> = HashMap::new();
        let mut local_starts: HashMap<VertexId, Instant> = HashMap::new();
        for &v in &order {
            for (i, &input) in graph.vertex(v).inputs.iter().enumerate() {
                let Op::Source(Source::Local(local)) = &graph.vertex(input).op else { continue };
                local_starts.entry(input).or_insert_with(|| {
                    let iv = graph.vertex(input);
                    self.progress.started(iv.digest.as_str(), &iv.meta.name);
                    Instant::now()
                });
                let sels = key::selections(graph, v, i);
                for (n, sel) in sels.iter().enumerate() {
                    let worker = self.worker.clone();
                    let (local, sel) = (local.clone(), sel.clone());
                    let meta = graph.vertex(v).meta.clone();
                    jobs.spawn_blocking(move || match worker.checksum_local(&local, &sel) {
                        Ok(d) => Ok(((v, i, n), d)),
                        // The step that selects the files is the one to blame, not the context.
                        Err(e) => Err(SolveError::Step {
                            step: meta.name.clone(),
                            message: format!("failed to compute cache key: {}", root_cause(&e)),
                            source: Some(Box::new(e)),
                            location: meta.location.clone(),
                        }),
                    });
                }
                selections.insert((v, i), sels);
            }
        }
        let mut checksums: HashMap<Selection, Digest> = HashMap::new();
        while let Some(joined) = jobs.join_next().await {
            let (slot, digest) =
                joined.map_err(|e| SolveError::Internal(format!("checksum task: {e}")))??;
            checksums.insert(slot, digest);
        }
        for (v, start) in local_starts {
            self.progress.done(graph.vertex(v).digest.as_str(), start, StepStats::default());
        }
        let pinned = self.pin_remote_sources(graph, &order).await?;
        let mut keys: BTreeMap<VertexId, CacheKey> = BTreeMap::new();
        for &v in &order {
            let vertex = graph.vertex(v);
            let mut components = Vec::new();
            for (i, &input) in vertex.inputs.iter().enumerate() {
                if let Op::Source(Source::Local(local)) = &graph.vertex(input).op {
                    for (n, selection) in
                        selections.remove(&(v, i)).unwrap_or_default().into_iter().enumerate()
                    {
                        components.push(KeyComponent::Content {
                            index: i,
                            source: local.name.clone(),
                            selection,
                            checksum: checksums[&(v, i, n)].clone(),
                        });
                    }
                } else {
                    components.push(KeyComponent::Input { index: i, key: keys[&input].key.clone() });
                }
            }
            keys.insert(v, CacheKey::new(pinned.get(&v).unwrap_or(&vertex.op), components));
        }
        Ok(keys)
    }

    /// The pinned ops of the remote sources among `order` (see [`Worker::pin_source`]),
    /// resolved concurrently.
    async fn pin_remote_sources(
        &self,
        graph: &Graph,
        order: &[VertexId],
    ) -> Result<HashMap<VertexId, Op>, SolveError> {
        let remote: Vec<VertexId> = order
            .iter()
            .copied()
            .filter(|v| matches!(graph.vertex(*v).op, Op::Source(Source::Http(_) | Source::Git(_))))
            .collect();
        let pins = remote.iter().map(|v| {
            let vertex = graph.vertex(*v);
            async move { self.worker.pin_source(vertex, &self.progress).await.map_err(|e| e.at(&vertex.meta)) }
        });
        let mut out = HashMap::new();
        for (v, pin) in remote.iter().zip(futures::future::join_all(pins).await) {
            if let Some(op) = pin? {
                out.insert(*v, op);
            }
        }
        Ok(out)
    }

    /// Solves `targets`: every vertex whose key is in the cache is served from it, the others
    /// run as soon as their inputs are ready.
    ///
    /// Cancellation: firing `cancel` (or the first failure) cancels every running vertex; the
    /// call returns after all of them have released their resources, with the first error.
    /// Results already recorded stay in the cache, which is always consistent.
    pub async fn solve(
        &self,
        graph: Arc<Graph>,
        targets: &[VertexId],
        cancel: CancellationToken,
    ) -> Result<Solution<W::Output>, SolveError> {
        let keys = self.keys(&graph, targets).await?;
        let plan = self.plan(&graph, targets, &keys)?;
        self.execute(graph, targets, keys, plan, cancel).await
    }

    /// Decides, from the keys, which vertices the cache serves and which must run, without
    /// running anything. Reports every served vertex as CACHED (so a fully cached build shows
    /// every step).
    pub fn plan(
        &self,
        graph: &Graph,
        targets: &[VertexId],
        keys: &BTreeMap<VertexId, CacheKey>,
    ) -> Result<Plan<W::Output>, SolveError> {
        let order = graph.reachable(targets);
        let mut outputs: HashMap<VertexId, W::Output> = HashMap::new();
        let mut cached = Vec::new();
        // A bypassed vertex (`--no-cache-filter`) runs again, and so does everything built on
        // it: keys do not follow the content of another step's result, so a dependent served
        // from the cache would silently keep the old result of the step that was re-run.
        let mut bypassed = vec![false; graph.len()];
        for &v in &order {
            let vertex = graph.vertex(v);
            let ignore = self.options.ignore_cache
                || vertex.meta.ignore_cache
                || vertex.inputs.iter().any(|i| bypassed[i.index()]);
            bypassed[v.index()] = ignore;
            if ignore || !self.worker.cacheable(vertex) {
                continue;
            }
            if let Some(out) = self.worker.load(&keys[&v], vertex)? {
                outputs.insert(v, out);
                cached.push(v);
                self.progress
                    .send(Event::Cached { step: vertex.digest.to_string(), name: vertex.meta.name.clone() });
            }
        }
        // What must run: walk down from the targets, stopping at cached vertices.
        let mut needed = vec![false; graph.len()];
        let mut stack: Vec<VertexId> = targets.to_vec();
        while let Some(v) = stack.pop() {
            if outputs.contains_key(&v) || std::mem::replace(&mut needed[v.index()], true) {
                continue;
            }
            stack.extend(graph.vertex(v).inputs.iter().copied());
        }
        let to_run: Vec<VertexId> = order.iter().copied().filter(|v| needed[v.index()]).collect();
        Ok(Plan { outputs, cached, to_run })
    }

    /// Runs what `plan` says must run and returns the targets' results.
    ///
    /// Cancellation: as for [`Solver::solve`].
    pub async fn execute(
        &self,
        graph: Arc<Graph>,
        targets: &[VertexId],
        keys: BTreeMap<VertexId, CacheKey>,
        plan: Plan<W::Output>,
        cancel: CancellationToken,
    ) -> Result<Solution<W::Output>, SolveError> {
        let Plan { mut outputs, mut cached, to_run } = plan;
        let (ran, served_late) = self.run(&graph, &keys, to_run, &mut outputs, cancel).await?;
        cached.extend(served_late);
        let outputs = targets.iter().map(|t| outputs[t].clone()).collect();
        Ok(Solution { outputs, keys, ran, cached })
    }

    async fn run(
        &self,
        graph: &Arc<Graph>,
        keys: &BTreeMap<VertexId, CacheKey>,
        to_run: Vec<VertexId>,
        outputs: &mut HashMap<VertexId, W::Output>,
        cancel: CancellationToken,
    ) -> Result<(Vec<VertexId>, Vec<VertexId>), SolveError> {
        let exec_slots = Arc::new(Semaphore::new(self.options.max_parallel_exec.max(1)));
        let cancel = cancel.child_token();
        // Steps that must not be served from the cache (as in `plan`): they and what depends
        // on them run.
        let mut bypassed = vec![false; graph.len()];
        for v in graph.reachable(&to_run) {
            let vertex = graph.vertex(v);
            bypassed[v.index()] = self.options.ignore_cache
                || vertex.meta.ignore_cache
                || vertex.inputs.iter().any(|i| bypassed[i.index()]);
        }
        // The key each finished step's dependents use: its content key when it has one.
        let mut effective: HashMap<VertexId, Digest> = HashMap::new();
        let mut pending: Vec<VertexId> = to_run;
        let mut running: JoinSet<StepResult<W::Output>> = JoinSet::new();
        let mut ran = Vec::new();
        let mut served_late = Vec::new();
        let mut first_error: Option<SolveError> = None;

        loop {
            if first_error.is_none() && !cancel.is_cancelled() {
                let (ready, rest): (Vec<_>, Vec<_>) = pending
                    .into_iter()
                    .partition(|v| graph.vertex(*v).inputs.iter().all(|i| outputs.contains_key(i)));
                pending = rest;
                for v in ready {
                    let vertex = graph.vertex(v).clone();
                    let inputs: Vec<W::Output> = vertex.inputs.iter().map(|i| outputs[i].clone()).collect();
                    let input_keys: Vec<Digest> = vertex
                        .inputs
                        .iter()
                        .map(|i| effective.get(i).unwrap_or(&keys[i].key).clone())
                        .collect();
                    let look_again = !bypassed[v.index()] && self.worker.cacheable(&vertex);
                    let graph = graph.clone();
                    let key = keys[&v].clone();
                    let worker = self.worker.clone();
                    let progress = self.progress.clone();
                    let step = Step {
                        id: vertex.digest.to_string(),
                        name: vertex.meta.name.clone(),
                        progress: progress.clone(),
                        cancel: cancel.clone(),
                        stats: Arc::default(),
                    };
                    let slots = exec_slots.clone();
                    running.spawn(async move {
                        let _permit = match vertex.op {
                            Op::Exec(_) => Some(slots.acquire_owned().await.expect("semaphore never closed")),
                            _ => None,
                        };
                        if step.cancel.is_cancelled() {
                            return (v, Err(SolveError::Cancelled));
                        }
                        // Inputs that re-ran may have produced what they produced before: the
                        // key that follows their content may still be in the cache.
                        let content_key = if look_again {
                            let (w, k, ins) = (worker.clone(), key.clone(), inputs.clone());
                            tokio::task::spawn_blocking(move || {
                                content_key(&*w, &graph, v, &k, &ins, &input_keys)
                            })
                            .await
                            .unwrap_or(None)
                        } else {
                            None
                        };
                        if let Some(ck) = &content_key {
                            let (w, ck2, vx) = (worker.clone(), ck.clone(), vertex.clone());
                            let found = tokio::task::spawn_blocking(move || w.load(&ck2, &vx)).await;
                            if let Ok(Ok(Some(out))) = found {
                                // Also under the ordinary key, so the next identical build
                                // needs no checksum to find it.
                                let (w, k, vx, o) =
                                    (worker.clone(), key.clone(), vertex.clone(), out.clone());
                                let saved = tokio::task::spawn_blocking(move || w.save(&k, &vx, &o)).await;
                                if let Ok(Err(e)) = saved {
                                    return (v, Err(e));
                                }
                                progress
                                    .send(Event::Cached { step: step.id.clone(), name: step.name.clone() });
                                let effective = Some(ck.key.clone());
                                return (v, Ok(Finished { output: out, effective, from_cache: true }));
                            }
                        }
                        let is_local = matches!(vertex.op, Op::Source(Source::Local(_)));
                        let start = Instant::now();
                        if !is_local {
                            progress.started(&step.id, &step.name);
                        }
                        let stats = step.stats.clone();
                        let result = worker
                            .execute(step.clone(), vertex.clone(), inputs)
                            .await
                            .map_err(|e| e.at(&vertex.meta));
                        let result = match result {
                            Ok(out) if worker.cacheable(&vertex) => {
                                let w = worker.clone();
                                let (k, ck, vx, o) = (key, content_key.clone(), vertex.clone(), out.clone());
                                let save = move || {
                                    w.save(&k, &vx, &o)?;
                                    ck.map_or(Ok(()), |ck| w.save(&ck, &vx, &o))
                                };
                                match tokio::task::spawn_blocking(save).await {
                                    Ok(Ok(())) => Ok(out),
                                    Ok(Err(e)) => Err(e),
                                    Err(e) => Err(SolveError::Internal(format!("saving cache record: {e}"))),
                                }
                            }
                            other => other,
                        };
                        match &result {
                            Ok(_) if !is_local => {
                                progress.done(&step.id, start, *stats.lock().expect("stats lock"))
                            }
                            Ok(_) => {}
                            Err(SolveError::Cancelled) => {
                                progress.send(Event::Cancelled { step: step.id.clone() })
                            }
                            Err(e) => progress.failed(&step.id, e.to_string()),
                        }
                        let effective = content_key.map(|ck| ck.key);
                        (v, result.map(|output| Finished { output, effective, from_cache: false }))
                    });
                }
            }
            if running.is_empty() {
                break;
            }
            let Some(joined) = running.join_next().await else { break };
            match joined {
                Ok((v, Ok(done))) => {
                    outputs.insert(v, done.output);
                    if let Some(k) = done.effective {
                        effective.insert(v, k);
                    }
                    if done.from_cache { served_late.push(v) } else { ran.push(v) }
                }
                Ok((_, Err(e))) => {
                    // Keep the first real error; cancellations caused by it are noise.
                    let replace = match &first_error {
                        None => true,
                        Some(SolveError::Cancelled) => !matches!(e, SolveError::Cancelled),
                        Some(_) => false,
                    };
                    if replace {
                        first_error = Some(e);
                    }
                    cancel.cancel();
                }
                Err(join_error) => {
                    first_error
                        .get_or_insert(SolveError::Internal(format!("step task failed: {join_error}")));
                    cancel.cancel();
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        if cancel.is_cancelled() || !pending.is_empty() {
            return Err(SolveError::Cancelled);
        }
        Ok((ran, served_late))
    }
}

/// What a step task reports to the run loop.
type StepResult<O> = (VertexId, Result<Finished<O>, SolveError>);

/// A step's result as the run loop records it.
struct Finished<O> {
    output: O,
    /// The content key its dependents use instead of its ordinary key.
    effective: Option<Digest>,
    /// Served from the cache by its content key rather than run.
    from_cache: bool,
}

/// The key of `v` that follows content: its inputs' own content keys, and for inputs it
/// only copies from, the checksum of the copied paths in their results. `None` when that is
/// its ordinary key (nothing to look up again). A checksum that cannot be taken (a missing
/// path: the copy will say so) keeps the input's key.
fn content_key<W: Worker>(
    worker: &W,
    graph: &Graph,
    v: VertexId,
    ordinary: &CacheKey,
    inputs: &[W::Output],
    input_keys: &[Digest],
) -> Option<CacheKey> {
    let vertex = graph.vertex(v);
    let by_content = key::content_selected_inputs(graph, v);
    let mut changed = false;
    let mut components = Vec::new();
    for (i, &input) in vertex.inputs.iter().enumerate() {
        let same_index = |c: &&KeyComponent| match c {
            KeyComponent::Content { index, .. } | KeyComponent::Input { index, .. } => *index == i,
        };
        if key::is_local_source(graph, input) {
            components.extend(ordinary.components.iter().filter(same_index).cloned());
            continue;
        }
        if by_content.contains(&i) {
            let sums: Result<Option<Vec<KeyComponent>>, SolveError> = key::selections(graph, v, i)
                .into_iter()
                .map(|selection| {
                    Ok(worker.checksum_output(&inputs[i], &selection)?.map(|checksum| {
                        KeyComponent::Content {
                            index: i,
                            source: key::STEP_RESULT_SOURCE.to_string(),
                            selection,
                            checksum,
                        }
                    }))
                })
                .collect();
            if let Ok(Some(sums)) = sums {
                components.extend(sums);
                changed = true;
                continue;
            }
        }
        let ordinary_input = ordinary.components.iter().find(same_index);
        changed |= !matches!(ordinary_input, Some(KeyComponent::Input { key, .. }) if *key == input_keys[i]);
        components.push(KeyComponent::Input { index: i, key: input_keys[i].clone() });
    }
    changed.then(|| CacheKey::new(&vertex.op, components))
}
