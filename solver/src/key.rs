//! Cache keys: what makes a step's result reusable.
//!
//! `key(v) = sha256(op, [component(input) for each input])`, where the component of an input
//! is its own key, except for local sources (the build context): there it is the checksum of
//! exactly the paths `v` selects from that source (contents, modes, owners, link targets; never
//! mtimes). Editing a file no step selects, or touching one, therefore changes no key.

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
