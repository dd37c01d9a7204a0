//! Build records and miss explanations (`--explain`, `--expect-cached`, `debug why`): the
//! keys of each build are kept per target, and the first step that must run is compared
//! with its counterpart in the previous build.

use crate::{BuildRequest, EngineError};
use solver::explain::{self, BuildRecord, Explanation};
use solver::ir::{Graph, Op, Source, VertexId};
use solver::key::{CacheKey, KeyComponent};
use solver::{LocalWorker, Plan, Ref};
use std::collections::BTreeMap;

const RECORD_NAMESPACE: &str = "build-record";

/// At most this many files of one selection are listed per build (bigger selections are
/// explained without file names).
const LISTING_LIMIT: usize = 2000;

/// What identifies "the same target" across builds: context, Dockerfile, target stage and
/// platform.
pub(crate) fn target_id(req: &BuildRequest) -> String {
    let context = match &req.context_source {
        Some(source) => source.clone(),
        None => req.context.canonicalize().unwrap_or_else(|_| req.context.clone()).display().to_string(),
    };
    let text = format!(
        "{}\n{}\n{}\n{}",
        context,
        req.dockerfile_name,
        req.target.as_deref().unwrap_or(""),
        req.platforms.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(",")
    );
    registry::Digest::of_bytes(text.as_bytes()).hex().to_string()
}

/// The record of the previous build of this target, if any.
pub(crate) fn previous(store: &cache::Store, id: &str) -> Option<BuildRecord> {
    let raw = store.meta().get_kv(RECORD_NAMESPACE, id).ok()??;
    serde_json::from_slice(&raw).ok()
}

/// Stores `record` as the latest build of this target.
pub(crate) fn save(store: &cache::Store, id: &str, record: &BuildRecord) -> Result<(), EngineError> {
    let bytes = serde_json::to_vec(record).map_err(|e| EngineError::Invalid(format!("build record: {e}")))?;
    store.meta().put_kv(RECORD_NAMESPACE, id, &bytes)?;
    Ok(())
}

/// The record of this build, with file listings for the context selections that changed
/// since `previous` (unchanged ones keep the previous listing, so an unchanged rebuild lists
/// nothing).
pub(crate) fn record(
    graph: &Graph,
    keys: &BTreeMap<VertexId, CacheKey>,
    previous: Option<&BuildRecord>,
    worker: &LocalWorker,
) -> BuildRecord {
    let mut record = BuildRecord::new(graph, keys);
    for (rv, (v, _)) in record.vertices.iter_mut().zip(keys.iter()) {
        let before = previous.and_then(|p| p.counterpart(rv)).cloned();
        let vertex = graph.vertex(*v);
        for (i, component) in rv.key.components.iter().enumerate() {
            let KeyComponent::Content { index, selection, checksum, .. } = component else { continue };
            // Same selection, same checksum as last time: keep last time's listing (or its
            // absence, when the selection was too big to list) instead of walking it again.
            let unchanged = before.as_ref().and_then(|b| {
                b.key.components.iter().enumerate().find_map(|(j, c)| match c {
                    KeyComponent::Content { selection: s, checksum: d, .. }
                        if s == selection && d == checksum =>
                    {
                        Some(b.listings.get(&j).cloned())
                    }
                    _ => None,
                })
            });
            let listing = match unchanged {
                Some(kept) => kept,
                None => match &graph.vertex(vertex.inputs[*index]).op {
                    Op::Source(Source::Local(local)) => {
                        worker.listing(local, selection, LISTING_LIMIT).ok().flatten()
                    }
                    _ => None,
                },
            };
            if let Some(l) = listing {
                rv.listings.insert(i, l);
            }
        }
    }
    record
}

/// The explanation of the first step of `plan` that must run, if any.
pub(crate) fn first_miss(
    graph: &Graph,
    plan: &Plan<Ref>,
    record: &BuildRecord,
    previous: Option<&BuildRecord>,
    no_cache: bool,
) -> Option<Explanation> {
    let v = plan.to_run.iter().copied().find(|v| explain::is_explainable(&graph.vertex(*v).op))?;
    let vertex = graph.vertex(v);
    let recorded =
        record.vertices.iter().find(|r| r.name == vertex.meta.name && r.location == vertex.meta.location)?;
    Some(explain::explain(previous, record, recorded, no_cache || vertex.meta.ignore_cache))
}
