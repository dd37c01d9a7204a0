//! The build graph (IR): plain-data operations with deterministic digests.
//!
//! Modelled on BuildKit's LLB. A [`Vertex`] is an [`Op`] plus ordered inputs (earlier
//! vertices of the same [`Graph`]). Every op has a canonical serialization (serde JSON of the
//! op, with maps as `BTreeMap`) and its digest is the sha256 of that serialization together with
//! the digests of its inputs. Names, source locations and other volatile data live in
//! [`VertexMeta`] beside the op and never enter a digest.
//!
//! This module is a leaf: it depends on serde, sha2 and registry types only, so the frontend
//! can build graphs without pulling in the solver's runtime.

mod display;
mod ops;

pub use display::{to_dot, to_text};
pub use ops::*;

use registry::Digest;
use serde::{Deserialize, Serialize};

/// Index of a vertex inside its [`Graph`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VertexId(pub u32);

impl VertexId {
    /// The index as usize.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Where a vertex came from, for progress output and error messages. Not part of any digest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VertexMeta {
    /// Progress name, e.g. `[build 2/4] RUN make`.
    pub name: String,
    /// Source file and 1-based line range, when the vertex comes from a Dockerfile line.
    pub location: Option<SourceLocation>,
    /// Force a cache miss for this vertex (`--no-cache`, `--no-cache-filter`).
    pub ignore_cache: bool,
    /// Stage name or index the vertex belongs to, for `--no-cache-filter` and progress.
    pub stage: Option<String>,
}

/// A range of lines in a source file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceLocation {
    /// File name as the user gave it (`Dockerfile`).
    pub file: String,
    /// First line, 1-based.
    pub start_line: u32,
    /// Last line, 1-based, inclusive.
    pub end_line: u32,
}

/// One operation with its inputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vertex {
    /// What to do.
    pub op: Op,
    /// Results this op reads, by position (ops refer to them by index into this list).
    pub inputs: Vec<VertexId>,
    /// Volatile description.
    pub meta: VertexMeta,
    /// Digest of `op` and the inputs' digests (computed when added to the graph).
    pub digest: Digest,
}

/// A build graph. Vertices only refer to earlier vertices, so index order is a topological
/// order; equal vertices (same digest) are stored once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Graph {
    vertices: Vec<Vertex>,
}

/// Why a vertex cannot be added to a graph.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GraphError {
    /// An input refers to a vertex that does not exist (yet).
    #[error("vertex input {input} does not exist in a graph of {len} vertices")]
    UnknownInput {
        /// The bad input.
        input: u32,
        /// Number of vertices at the time.
        len: usize,
    },
    /// An op refers to input index `index` but has only `len` inputs.
    #[error("op refers to input #{index} but has {len} inputs")]
    BadInputIndex {
        /// The index the op used.
        index: usize,
        /// How many inputs the vertex has.
        len: usize,
    },
}

#[derive(Serialize)]
struct DigestForm<'a> {
    op: &'a Op,
    inputs: Vec<&'a str>,
}

impl Graph {
    /// An empty graph.
    pub fn new() -> Graph {
        Graph::default()
    }

    /// Adds a vertex, or returns the existing one with the same digest. When an equal vertex
    /// exists its metadata is kept, except that `ignore_cache` is or-ed in.
    pub fn add(&mut self, op: Op, inputs: Vec<VertexId>, meta: VertexMeta) -> Result<VertexId, GraphError> {
        for input in &inputs {
            if input.index() >= self.vertices.len() {
                return Err(GraphError::UnknownInput { input: input.0, len: self.vertices.len() });
            }
        }
        if let Some(index) = op.max_input_index()
            && index >= inputs.len()
        {
            return Err(GraphError::BadInputIndex { index, len: inputs.len() });
        }
        let digest = {
            let form = DigestForm {
                op: &op,
                inputs: inputs.iter().map(|i| self.vertices[i.index()].digest.as_str()).collect(),
            };
            let bytes = serde_json::to_vec(&form).expect("IR ops always serialize");
            Digest::of_bytes(&bytes)
        };
        if let Some(pos) = self.vertices.iter().position(|v| v.digest == digest) {
            self.vertices[pos].meta.ignore_cache |= meta.ignore_cache;
            return Ok(VertexId(pos as u32));
        }
        self.vertices.push(Vertex { op, inputs, meta, digest });
        Ok(VertexId((self.vertices.len() - 1) as u32))
    }

    /// The vertex `id`. Panics if `id` is not from this graph (ids are only created by `add`).
    pub fn vertex(&self, id: VertexId) -> &Vertex {
        &self.vertices[id.index()]
    }

    /// Mutable metadata of a vertex (names are refined after creation by the frontend).
    pub fn meta_mut(&mut self, id: VertexId) -> &mut VertexMeta {
        &mut self.vertices[id.index()].meta
    }

    /// All vertices in topological order.
    pub fn vertices(&self) -> impl Iterator<Item = (VertexId, &Vertex)> {
        self.vertices.iter().enumerate().map(|(i, v)| (VertexId(i as u32), v))
    }

    /// Number of vertices.
    pub fn len(&self) -> usize {
        self.vertices.len()
    }

    /// True when the graph has no vertices.
    pub fn is_empty(&self) -> bool {
        self.vertices.is_empty()
    }

    /// Adds every vertex of `other` to this graph (equal vertices are shared) and returns,
    /// for each vertex of `other`, its id here. Used to solve several platforms' graphs as
    /// one, so that what they have in common runs once.
    pub fn import(&mut self, other: &Graph) -> Vec<VertexId> {
        let mut ids: Vec<VertexId> = Vec::with_capacity(other.len());
        for v in &other.vertices {
            let inputs = v.inputs.iter().map(|i| ids[i.index()]).collect();
            let id = self.add(v.op.clone(), inputs, v.meta.clone()).expect("a valid graph stays valid");
            ids.push(id);
        }
        ids
    }

    /// The vertices `targets` depend on (including themselves), in topological order.
    pub fn reachable(&self, targets: &[VertexId]) -> Vec<VertexId> {
        let mut needed = vec![false; self.vertices.len()];
        let mut stack: Vec<VertexId> = targets.to_vec();
        while let Some(v) = stack.pop() {
            if !std::mem::replace(&mut needed[v.index()], true) {
                stack.extend(self.vertices[v.index()].inputs.iter().copied());
            }
        }
        needed.iter().enumerate().filter(|(_, n)| **n).map(|(i, _)| VertexId(i as u32)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_mkdir(path: &str) -> Op {
        Op::File(FileOp {
            base: None,
            actions: vec![FileAction::Mkdir(Mkdir {
                path: path.into(),
                mode: 0o755,
                make_parents: true,
                owner: None,
                timestamp: None,
            })],
        })
    }

    #[test]
    fn equal_ops_are_deduplicated_and_meta_is_not_hashed() {
        let mut g = Graph::new();
        let a = g
            .add(scratch_mkdir("/a"), vec![], VertexMeta { name: "one".into(), ..Default::default() })
            .unwrap();
        let b = g
            .add(scratch_mkdir("/a"), vec![], VertexMeta { name: "two".into(), ..Default::default() })
            .unwrap();
        let c = g.add(scratch_mkdir("/c"), vec![], VertexMeta::default()).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(g.len(), 2);
        assert_eq!(g.vertex(a).meta.name, "one");
    }

    #[test]
    fn digest_depends_on_inputs() {
        let mut g = Graph::new();
        let a = g.add(scratch_mkdir("/a"), vec![], VertexMeta::default()).unwrap();
        let c = g.add(scratch_mkdir("/c"), vec![], VertexMeta::default()).unwrap();
        let rm = |g: &mut Graph, input| {
            g.add(
                Op::File(FileOp {
                    base: Some(0),
                    actions: vec![FileAction::Rm(Rm {
                        path: "/x".into(),
                        allow_not_found: true,
                        allow_wildcard: false,
                    })],
                }),
                vec![input],
                VertexMeta::default(),
            )
            .unwrap()
        };
        let on_a = rm(&mut g, a);
        let on_c = rm(&mut g, c);
        assert_ne!(g.vertex(on_a).digest, g.vertex(on_c).digest);
        assert_eq!(g.reachable(&[on_a]), vec![a, on_a]);
    }

    #[test]
    fn import_shares_equal_vertices() {
        let mut a = Graph::new();
        let x = a.add(scratch_mkdir("/x"), vec![], VertexMeta::default()).unwrap();
        let mut b = Graph::new();
        b.add(scratch_mkdir("/y"), vec![], VertexMeta::default()).unwrap();
        let bx = b.add(scratch_mkdir("/x"), vec![], VertexMeta::default()).unwrap();
        let ids = a.import(&b);
        assert_eq!(ids[bx.index()], x);
        assert_eq!(a.len(), 2);
    }

    #[test]
    fn rejects_dangling_inputs() {
        let mut g = Graph::new();
        assert!(matches!(
            g.add(scratch_mkdir("/a"), vec![VertexId(3)], VertexMeta::default()),
            Err(GraphError::UnknownInput { .. })
        ));
        let bad = Op::File(FileOp { base: Some(1), actions: vec![] });
        assert!(matches!(g.add(bad, vec![], VertexMeta::default()), Err(GraphError::BadInputIndex { .. })));
    }
}
