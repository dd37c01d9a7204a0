//! Named build contexts (`--build-context NAME=VALUE`), as BuildKit's dockerfile2llb uses
//! them: a stage named `NAME` is replaced by the context, `FROM NAME` starts from it, and
//! `COPY --from=NAME` / `RUN --mount=from=NAME` read from it. Stage names win over named
//! contexts when a later stage refers to an earlier one (the replaced stage then stands for
//! the context); a context wins over an image of the same name.

use super::stage::{Base, Lowering};
use super::{NamedContext, named_context_key};
use solver::ir::{self, FileAction, FileOp, GitSource, LocalSource, Op, Source, VertexId, VertexMeta};

impl Lowering<'_> {
    /// What `word` (a `FROM` base, a `--from` value or a stage name) means as a named
    /// context, if one was given under that name.
    pub(crate) fn named_base(&self, word: &str) -> Option<Base> {
        let key = named_context_key(word);
        match self.opts.named_contexts.get(&key)? {
            NamedContext::Image(reference) => Some(Base::Image(reference.clone())),
            NamedContext::Local { .. } | NamedContext::Git { .. } => Some(Base::Context(key)),
        }
    }

    /// The vertex that holds a directory or git context's files: the local source itself
    /// (read lazily, like the main context) or the git checkout.
    pub(crate) fn named_source(&mut self, key: &str) -> Option<VertexId> {
        if let Some(v) = self.named_sources.get(key) {
            return Some(*v);
        }
        let (op, name) = match self.opts.named_contexts.get(key)? {
            NamedContext::Local { source, excludes } => (
                Op::Source(Source::Local(LocalSource { name: source.clone(), excludes: excludes.clone() })),
                format!("[internal] load build context {key}"),
            ),
            NamedContext::Git { remote, reference, subdir } => (
                Op::Source(Source::Git(GitSource {
                    remote: remote.clone(),
                    reference: reference.clone(),
                    subdir: subdir.clone(),
                    keep_git_dir: false,
                    checksum: None,
                })),
                format!("[context {key}] git {}", solver::redact_git_remote(remote)),
            ),
            NamedContext::Image(_) => return None,
        };
        let meta = VertexMeta { name, ..Default::default() };
        let v = self.graph.add(op, vec![], meta).expect("sources have no inputs");
        self.named_sources.insert(key.to_string(), v);
        Some(v)
    }

    /// The root filesystem of a stage built `FROM` a directory or git context. A git
    /// checkout is a layer already; a directory's files are copied onto scratch (a local
    /// source is only ever read through a selection, so that its checksum is the cache key).
    pub(crate) fn named_root(&mut self, key: &str) -> Option<VertexId> {
        let source = self.named_source(key)?;
        if !matches!(self.opts.named_contexts.get(key), Some(NamedContext::Local { .. })) {
            return Some(source);
        }
        if let Some(v) = self.named_roots.get(key) {
            return Some(*v);
        }
        let copy = FileAction::Copy(ir::Copy {
            source: 0,
            src: "/".into(),
            dest: "/".into(),
            owner: None,
            mode: None,
            follow_symlinks: true,
            dir_copy_contents: true,
            attempt_unpack: false,
            create_dest_path: true,
            allow_wildcard: false,
            allow_empty_wildcard: false,
            include_patterns: Vec::new(),
            exclude_patterns: Vec::new(),
            parents: false,
            always_replace_existing: false,
            timestamp: None,
        });
        let meta =
            VertexMeta { name: format!("[context {key}] copy build context {key}"), ..Default::default() };
        let op = Op::File(FileOp { base: None, actions: vec![copy] });
        let v = self.graph.add(op, vec![source], meta).expect("inputs exist");
        self.named_roots.insert(key.to_string(), v);
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{LowerOptions, NamedContext, lower, named_context_key};
    use registry::Reference;
    use solver::ir::{Op, Source};

    fn options(source: &str, contexts: &[(&str, NamedContext)]) -> LowerOptions {
        LowerOptions {
            named_contexts: contexts.iter().map(|(k, v)| (named_context_key(k), v.clone())).collect(),
            ..LowerOptions::for_test(source)
        }
    }

    fn local(name: &str) -> NamedContext {
        NamedContext::Local { source: format!("named:{name}"), excludes: vec![] }
    }

    /// Names of the local sources and remotes of the git sources the graph reads.
    fn sources(df: &str, contexts: &[(&str, NamedContext)]) -> Vec<String> {
        let parsed = crate::parse(df, "Dockerfile").unwrap();
        let lowered = lower(&parsed, &options(df, contexts)).unwrap();
        let mut out: Vec<String> = lowered
            .graph
            .vertices()
            .filter_map(|(_, v)| match &v.op {
                Op::Source(Source::Local(l)) => Some(l.name.clone()),
                Op::Source(Source::Git(g)) => Some(g.remote.clone()),
                _ => None,
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn keys_are_case_insensitive_familiar_names() {
        let cases = [
            ("Deps", "deps"),
            ("alpine:latest", "alpine"),
            ("docker.io/library/alpine:3.20", "alpine:3.20"),
            ("docker.io/me/app", "me/app"),
            ("example.com/x:latest", "example.com/x"),
        ];
        for (name, key) in cases {
            assert_eq!(named_context_key(name), key, "{name}");
        }
    }

    #[test]
    fn contexts_replace_from_copy_and_mount_sources() {
        let git = NamedContext::Git { remote: "file:///r".into(), reference: None, subdir: None };
        type Case<'a> = (&'a str, Vec<(&'a str, NamedContext)>, Vec<&'a str>);
        let cases: Vec<Case> = vec![
            ("FROM scratch\nCOPY --from=deps / /\n", vec![("deps", local("deps"))], vec!["named:deps"]),
            ("FROM scratch\nCOPY --from=DEPS / /\n", vec![("deps", local("deps"))], vec!["named:deps"]),
            ("FROM deps\nCOPY a /\n", vec![("deps", local("deps"))], vec!["context", "named:deps"]),
            ("FROM scratch\nRUN --mount=from=src true\n", vec![("src", git.clone())], vec!["file:///r"]),
            // A stage of that name is replaced: its own COPY never reads the main context.
            (
                "FROM scratch AS deps\nCOPY x /\nFROM scratch\nCOPY --from=deps / /\n",
                vec![("deps", local("deps"))],
                vec!["named:deps"],
            ),
            ("FROM scratch AS deps\nCOPY x /\nFROM deps\n", vec![("deps", git)], vec!["file:///r"]),
            // Without a context, the stage is built.
            ("FROM scratch AS deps\nCOPY x /\nFROM scratch\nCOPY --from=deps / /\n", vec![], vec!["context"]),
        ];
        for (df, contexts, want) in cases {
            assert_eq!(sources(df, &contexts), want, "{df}");
        }
    }

    #[test]
    fn an_image_context_becomes_the_base_image() {
        let df = "FROM alpine\nRUN true\n";
        let pinned: Reference = "127.0.0.1:5000/base:1".parse().unwrap();
        let opts = options(df, &[("alpine", NamedContext::Image(pinned.clone()))]);
        let parsed = crate::parse(df, "Dockerfile").unwrap();
        match lower(&parsed, &opts) {
            Err(super::super::LowerError::NeedImages(images)) => {
                assert_eq!(images.len(), 1);
                assert_eq!(images[0].reference, pinned);
            }
            other => panic!("expected the context's image to be resolved, got {other:?}"),
        }
    }
}
