//! Explaining cache misses: a record of the keys of one build, and a comparison that names,
//! for the first step that missed, which part of its key changed since the previous build of
//! the same target (`rbuild build --explain`, `rbuild debug why`, `--expect-cached`).

use crate::ir::{Graph, Op, Source, SourceLocation, VertexId};
use crate::key::{CacheKey, KeyComponent};
use registry::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The keys of one build, vertex by vertex, in topological order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildRecord {
    /// The vertices.
    pub vertices: Vec<RecordedVertex>,
}

/// One vertex of a [`BuildRecord`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedVertex {
    /// Progress name.
    pub name: String,
    /// Dockerfile lines.
    pub location: Option<SourceLocation>,
    /// Its cache key and the parts of it.
    pub key: CacheKey,
    /// The op, as data (for field-by-field comparison).
    pub op: serde_json::Value,
    /// For content components (by position in `key.components`): each selected file and its
    /// digest, when the selection was small enough to list.
    #[serde(default)]
    pub listings: BTreeMap<usize, Vec<(String, Digest)>>,
}

impl BuildRecord {
    /// The record of `graph`'s vertices that have keys, in topological order.
    pub fn new(graph: &Graph, keys: &BTreeMap<VertexId, CacheKey>) -> BuildRecord {
        let vertices = keys
            .iter()
            .map(|(v, key)| {
                let vertex = graph.vertex(*v);
                RecordedVertex {
                    name: vertex.meta.name.clone(),
                    location: vertex.meta.location.clone(),
                    key: key.clone(),
                    op: serde_json::to_value(&vertex.op).unwrap_or_default(),
                    listings: BTreeMap::new(),
                }
            })
            .collect();
        BuildRecord { vertices }
    }

    /// The vertex of this record that corresponds to `v` of another build: the same
    /// Dockerfile lines first, else the same name.
    pub fn counterpart(&self, v: &RecordedVertex) -> Option<&RecordedVertex> {
        let by_location = v.location.as_ref().and_then(|loc| {
            let same: Vec<&RecordedVertex> =
                self.vertices.iter().filter(|p| p.location.as_ref() == Some(loc)).collect();
            // Several vertices per line (a FROM image and its stage): prefer the same op kind.
            same.iter().find(|p| op_kind(&p.op) == op_kind(&v.op)).copied().or(same.first().copied())
        });
        by_location.or_else(|| self.vertices.iter().find(|p| p.name == v.name))
    }
}

fn op_kind(op: &serde_json::Value) -> String {
    match op {
        serde_json::Value::Object(m) => m.keys().next().cloned().unwrap_or_default(),
        serde_json::Value::String(s) => s.clone(),
        _ => String::new(),
    }
}

/// Why a step missed the cache.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// This target was never built on this store before.
    NoPreviousBuild,
    /// The step did not exist in the previous build.
    NewStep,
    /// The instruction itself changed.
    Instruction {
        /// Previous step name.
        old: String,
        /// Current step name.
        new: String,
    },
    /// The command changed.
    Command {
        /// Previous argv.
        old: Vec<String>,
        /// Current argv.
        new: Vec<String>,
    },
    /// Environment variables (ENV, ARG, build args) changed.
    Env {
        /// `(name, old value, new value)`.
        changes: Vec<(String, Option<String>, Option<String>)>,
    },
    /// The base image resolves to another manifest.
    BaseImage {
        /// Image name.
        reference: String,
        /// Previous manifest digest.
        old: Option<Digest>,
        /// Current manifest digest.
        new: Option<Digest>,
    },
    /// Files the step selects from the build context changed.
    Files {
        /// The selection (COPY source or bind-mount path).
        selection: String,
        /// Paths whose content, mode, owner or link target changed.
        modified: Vec<String>,
        /// Paths that appeared.
        added: Vec<String>,
        /// Paths that disappeared.
        removed: Vec<String>,
        /// Whether the per-file lists were available (large selections are not listed).
        listed: bool,
    },
    /// Some other field of the op changed (user, workdir, mounts, network...).
    Options {
        /// The fields that differ.
        fields: Vec<String>,
    },
    /// An input step produced a different result.
    Input {
        /// The input step.
        step: String,
    },
    /// The key is the same as last time but its result is no longer in the cache (pruned).
    Evicted,
    /// The cache was bypassed (`--no-cache`, `--no-cache-filter`).
    NoCache,
}

/// The explanation of one miss.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The step that missed.
    pub step: String,
    /// Its Dockerfile lines.
    pub location: Option<SourceLocation>,
    /// Why.
    pub reason: Reason,
}

fn show(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "(unset)".into())
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NoPreviousBuild => write!(f, "no previous build of this target on this store"),
            Reason::NewStep => write!(f, "the step is new since the previous build"),
            Reason::Instruction { old, new } => {
                write!(f, "the instruction changed: was `{old}`, now `{new}`")
            }
            Reason::Command { old, new } => write!(f, "the command changed: was {old:?}, now {new:?}"),
            Reason::Env { changes } => {
                let list: Vec<String> =
                    changes.iter().map(|(k, a, b)| format!("{k}: {} -> {}", show(a), show(b))).collect();
                write!(f, "variables changed: {}", list.join(", "))
            }
            Reason::BaseImage { reference, old, new } => write!(
                f,
                "base image {reference} changed: {} -> {}",
                old.as_ref().map_or("(none)".into(), |d| d.to_string()),
                new.as_ref().map_or("(none)".into(), |d| d.to_string())
            ),
            Reason::Files { selection, modified, added, removed, listed } => {
                write!(f, "files selected by {selection:?} changed")?;
                if !*listed {
                    return write!(f, " (too many files to list)");
                }
                let mut parts = Vec::new();
                for (label, list) in [("modified", modified), ("added", added), ("removed", removed)] {
                    if !list.is_empty() {
                        let shown: Vec<&str> = list.iter().take(10).map(String::as_str).collect();
                        let more = if list.len() > 10 {
                            format!(" and {} more", list.len() - 10)
                        } else {
                            String::new()
                        };
                        parts.push(format!("{label}: {}{more}", shown.join(", ")));
                    }
                }
                if parts.is_empty() { Ok(()) } else { write!(f, ": {}", parts.join("; ")) }
            }
            Reason::Options { fields } => write!(f, "step options changed: {}", fields.join(", ")),
            Reason::Input { step } => write!(f, "its input `{step}` produced a different result"),
            Reason::Evicted => write!(f, "its cache record was removed (pruned) since the previous build"),
            Reason::NoCache => write!(f, "the cache was bypassed (--no-cache or --no-cache-filter)"),
        }
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.reason)
    }
}

fn env_map(op: &serde_json::Value) -> BTreeMap<String, String> {
    op.pointer("/exec/env")
        .and_then(|e| e.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|kv| kv.as_str())
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (kv.to_string(), String::new()),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn strings(v: Option<&serde_json::Value>) -> Vec<String> {
    v.and_then(|a| a.as_array())
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Why `current` (a vertex of this build that missed) differs from `previous`.
fn compare(previous: &RecordedVertex, current: &RecordedVertex, record: &BuildRecord) -> Reason {
    if previous.key.key == current.key.key {
        return Reason::Evicted;
    }
    if previous.key.op != current.key.op {
        // Base images: the pinned digest moved.
        if let (Some(old), Some(new)) =
            (previous.op.pointer("/source/image/reference"), current.op.pointer("/source/image/reference"))
        {
            let parse =
                |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<registry::Reference>().ok());
            if let (Some(o), Some(n)) = (parse(old), parse(new)) {
                let name = registry::Reference { digest: None, ..n.clone() }.to_string();
                return Reason::BaseImage { reference: name, old: o.digest, new: n.digest };
            }
        }
        let (old_exec, new_exec) = (previous.op.pointer("/exec"), current.op.pointer("/exec"));
        if let (Some(o), Some(n)) = (old_exec, new_exec) {
            let (old_env, new_env) = (env_map(&previous.op), env_map(&current.op));
            if old_env != new_env {
                let mut names: Vec<&String> = old_env.keys().chain(new_env.keys()).collect();
                names.sort();
                names.dedup();
                let changes = names
                    .into_iter()
                    .filter(|k| old_env.get(*k) != new_env.get(*k))
                    .map(|k| (k.clone(), old_env.get(k).cloned(), new_env.get(k).cloned()))
                    .collect();
                return Reason::Env { changes };
            }
            let (old_args, new_args) = (strings(o.get("args")), strings(n.get("args")));
            if old_args != new_args {
                return Reason::Command { old: old_args, new: new_args };
            }
            let fields: Vec<String> = n
                .as_object()
                .map(|m| {
                    m.iter().filter(|(k, v)| o.get(k.as_str()) != Some(*v)).map(|(k, _)| k.clone()).collect()
                })
                .unwrap_or_default();
            return Reason::Options { fields };
        }
        return Reason::Instruction { old: previous.name.clone(), new: current.name.clone() };
    }
    for (i, component) in current.key.components.iter().enumerate() {
        match component {
            KeyComponent::Content { selection, checksum, index, .. } => {
                let before = previous.key.components.iter().enumerate().find(|(_, c)| match c {
                    KeyComponent::Content { selection: s, index: j, .. } => s == selection && j == index,
                    _ => false,
                });
                let changed = match before {
                    Some((_, KeyComponent::Content { checksum: old, .. })) => old != checksum,
                    _ => true,
                };
                if !changed {
                    continue;
                }
                let (old_list, new_list) =
                    (before.and_then(|(j, _)| previous.listings.get(&j)), current.listings.get(&i));
                let (modified, added, removed, listed) = match (old_list, new_list) {
                    (Some(old), Some(new)) => {
                        let old: BTreeMap<&String, &Digest> = old.iter().map(|(p, d)| (p, d)).collect();
                        let new: BTreeMap<&String, &Digest> = new.iter().map(|(p, d)| (p, d)).collect();
                        let modified = new
                            .iter()
                            .filter(|(p, d)| old.get(*p).is_some_and(|o| o != *d))
                            .map(|(p, _)| (*p).clone())
                            .collect();
                        let added =
                            new.keys().filter(|p| !old.contains_key(*p)).map(|p| (*p).clone()).collect();
                        let removed =
                            old.keys().filter(|p| !new.contains_key(*p)).map(|p| (*p).clone()).collect();
                        (modified, added, removed, true)
                    }
                    _ => (Vec::new(), Vec::new(), Vec::new(), false),
                };
                return Reason::Files { selection: selection.path.clone(), modified, added, removed, listed };
            }
            KeyComponent::Input { key, index } => {
                let before = previous.key.components.iter().find_map(|c| match c {
                    KeyComponent::Input { key: k, index: j } if j == index => Some(k),
                    _ => None,
                });
                if before != Some(key) {
                    let step = record
                        .vertices
                        .iter()
                        .find(|v| &v.key.key == key)
                        .map_or_else(|| format!("input #{index}"), |v| v.name.clone());
                    return Reason::Input { step };
                }
            }
        }
    }
    Reason::Options { fields: vec!["key".into()] }
}

/// Explains why `missed` (the first vertex of `current` that must run) missed, compared with
/// the previous build of the same target.
pub fn explain(
    previous: Option<&BuildRecord>,
    current: &BuildRecord,
    missed: &RecordedVertex,
    bypassed: bool,
) -> Explanation {
    let reason = if bypassed {
        Reason::NoCache
    } else {
        match previous {
            None => Reason::NoPreviousBuild,
            Some(prev) => match prev.counterpart(missed) {
                None => Reason::NewStep,
                Some(before) => compare(before, missed, current),
            },
        }
    };
    Explanation { step: missed.name.clone(), location: missed.location.clone(), reason }
}

/// True for the vertices whose misses are worth explaining (local sources are re-read every
/// build and never "miss").
pub fn is_explainable(op: &Op) -> bool {
    !matches!(op, Op::Source(Source::Local(_)))
}
