//! Cache keys: what makes a step's result reusable.
//!
//! `key(v) = sha256(op, [component(input) for each input])`, where the component of an input
//! is its own key, except for local sources (the build context): there it is the checksum of
//! exactly the paths `v` selects from that source (contents, modes, owners, link targets; never
//! mtimes). Editing a file no step selects, or touching one, therefore changes no key.
//!
//! When a step must run anyway, its dependents get a second chance (the scheduler's content
//! keys): for an input a step only copies from (`COPY --from`), the component becomes the
//! checksum of the copied paths in that input's result, so a stage that re-ran but produced
//! the same files leaves the copy, and everything built on it, served from the cache.

use crate::ir::{FileAction, Graph, Op, Source, VertexId};
use registry::Digest;
use serde::{Deserialize, Serialize};

/// What a consumer selects from a local source: one COPY source or one bind mount.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LocalSelection {
    /// Path inside the source (wildcards allowed when `allow_wildcard`); `/` or `.` is everything.
    pub path: String,
    /// Follow a symlink given as `path`.
    pub follow_symlinks: bool,
    /// Only these patterns.
    pub include_patterns: Vec<String>,
    /// Not these patterns.
    pub exclude_patterns: Vec<String>,
    /// `path` may contain wildcards.
    pub allow_wildcard: bool,
    /// `COPY --parents`: the part of `path` after a `/./` pivot is what is kept.
    pub parents: bool,
}

/// The selections vertex `v` makes from its input number `input` (empty when it reads none
/// of it through a path, which never happens for well-formed graphs).
pub fn selections(graph: &Graph, v: VertexId, input: usize) -> Vec<LocalSelection> {
    match &graph.vertex(v).op {
        Op::File(f) => f
            .actions
            .iter()
            .filter_map(|a| match a {
                FileAction::Copy(c) if c.source == input => Some(LocalSelection {
                    path: c.src.clone(),
                    follow_symlinks: c.follow_symlinks,
                    include_patterns: c.include_patterns.clone(),
                    exclude_patterns: c.exclude_patterns.clone(),
                    allow_wildcard: c.allow_wildcard,
                    parents: c.parents,
                }),
                _ => None,
            })
            .collect(),
        Op::Exec(e) => e
            .mounts
            .iter()
            .filter(|m| m.input == Some(input))
            .map(|m| LocalSelection {
                path: if m.selector.is_empty() { "/".into() } else { m.selector.clone() },
                follow_symlinks: true,
                include_patterns: Vec::new(),
                exclude_patterns: Vec::new(),
                allow_wildcard: false,
                parents: false,
            })
            .collect(),
        // Merge/Diff of a whole context: everything.
        _ => vec![LocalSelection {
            path: "/".into(),
            follow_symlinks: false,
            include_patterns: Vec::new(),
            exclude_patterns: Vec::new(),
            allow_wildcard: false,
            parents: false,
        }],
    }
}

/// Inputs of `v` that it reads only through the paths its COPY actions select (never as the
/// file system it modifies), and that are not local sources: their part of `v`'s key can be
/// the checksum of those paths in their result rather than their key (BuildKit's content
/// keys for `COPY --from`), so that a stage that re-ran but produced the same files does
/// not invalidate what copies from it.
pub fn content_selected_inputs(graph: &Graph, v: VertexId) -> Vec<usize> {
    let vertex = graph.vertex(v);
    let Op::File(f) = &vertex.op else { return Vec::new() };
    let mut out: Vec<usize> = f
        .actions
        .iter()
        .filter_map(|a| match a {
            FileAction::Copy(c) if Some(c.source) != f.base => Some(c.source),
            _ => None,
        })
        .filter(|&i| vertex.inputs.get(i).is_some_and(|&input| !is_local_source(graph, input)))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The `source` recorded in content components of another step's result: a constant, since
/// only the selected files may decide the key, not which stage produced them.
pub const STEP_RESULT_SOURCE: &str = "(result of another step)";

/// One part of a key, kept so that a miss can be explained later.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyComponent {
    /// The key of an input vertex.
    Input {
        /// Input position.
        index: usize,
        /// Its key.
        key: Digest,
    },
    /// The checksum of what the vertex selects from a local source.
    Content {
        /// Input position.
        index: usize,
        /// Context name.
        source: String,
        /// The selection.
        selection: LocalSelection,
        /// Its checksum.
        checksum: Digest,
    },
}

/// A computed key with the parts it was made of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKey {
    /// The key.
    pub key: Digest,
    /// Digest of the op alone (its canonical serialization).
    pub op: Digest,
    /// The parts, in input order.
    pub components: Vec<KeyComponent>,
}

impl CacheKey {
    /// Combines an op and its components into a key.
    pub fn new(op: &Op, components: Vec<KeyComponent>) -> CacheKey {
        let op_digest = Digest::of_bytes(&serde_json::to_vec(op).expect("IR ops always serialize"));
        #[derive(Serialize)]
        struct Form<'a> {
            version: u32,
            op: &'a Digest,
            components: &'a [KeyComponent],
        }
        // `version` changes whenever the meaning of a key changes, so old records never match.
        let form = Form { version: 1, op: &op_digest, components: &components };
        let key = Digest::of_bytes(&serde_json::to_vec(&form).expect("keys always serialize"));
        CacheKey { key, op: op_digest, components }
    }
}

/// True when `v` is a local source (its content enters the keys of its consumers instead).
pub fn is_local_source(graph: &Graph, v: VertexId) -> bool {
    matches!(graph.vertex(v).op, Op::Source(Source::Local(_)))
}
