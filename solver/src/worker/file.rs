//! `File`: COPY/ADD/mkdir/rm on an overlay mount of the base chain with a fresh upper
//! layer, reading sources from the build context or read-only mounts of other chains.

use super::{LocalWorker, Ref, store_err};
use crate::error::SolveError;
use crate::ir::{self, ChmodSpec, FileAction};
use crate::scheduler::Step;
use cache::fileop::{self, CopyAction, Mode, Owner, SourceRoot};
use std::collections::BTreeMap;

fn owner(o: &Option<ir::Owner>) -> Option<Owner> {
    o.as_ref().map(|o| match o {
        ir::Owner::Ids { uid, gid } => Owner::Ids { uid: *uid, gid: *gid },
        ir::Owner::Names { user, group } => Owner::Names { user: user.clone(), group: group.clone() },
    })
}

fn mode(step: &str, m: &Option<ChmodSpec>) -> Result<Option<Mode>, SolveError> {
    match m {
        None => Ok(None),
        Some(ChmodSpec::Octal(bits)) => Mode::parse(&format!("{bits:o}")).map(Some),
        Some(ChmodSpec::Symbolic(s)) => Mode::parse(s).map(Some),
    }
    .map_err(|e| SolveError::step(step, format!("invalid chmod: {e}"), e))
}

pub async fn apply(w: &LocalWorker, step: &Step, op: &ir::FileOp, inputs: &[Ref]) -> Result<Ref, SolveError> {
    let chain: Vec<cache::LayerId> = match op.base {
        Some(i) => inputs[i].chain(&step.name)?.to_vec(),
        None => Vec::new(),
    };
    // Source inputs, in first-use order, each mounted (or taken as a directory) once.
    let mut source_index: BTreeMap<usize, usize> = BTreeMap::new();
    let mut sources: Vec<SourceRoot> = Vec::new();
    let mut views: Vec<cache::Mounted> = Vec::new();
    let mut actions = Vec::with_capacity(op.actions.len());
    for action in &op.actions {
        actions.push(match action {
            FileAction::Mkdir(m) => fileop::FileAction::Mkdir {
                path: m.path.clone(),
                mode: m.mode,
                make_parents: m.make_parents,
                owner: owner(&m.owner),
                timestamp: m.timestamp,
            },
            FileAction::Mkfile(m) => fileop::FileAction::Mkfile {
                path: m.path.clone(),
                mode: m.mode,
                data: m.data.clone(),
                owner: owner(&m.owner),
                timestamp: m.timestamp,
            },
            FileAction::Rm(r) => fileop::FileAction::Rm {
                path: r.path.clone(),
                allow_not_found: r.allow_not_found,
                allow_wildcard: r.allow_wildcard,
            },
            FileAction::Copy(c) => {
                let index = match source_index.get(&c.source) {
                    Some(i) => *i,
                    None => {
                        let root = match &inputs[c.source] {
                            Ref::Dir { path, excludes } => {
                                SourceRoot::context(path.clone(), excludes.clone())
                            }
                            Ref::Chain(src_chain) => {
                                let view = w
                                    .store
                                    .mount_readonly(src_chain)
                                    .map_err(|e| store_err(&step.name, e))?;
                                let root = SourceRoot::new(view.path().to_path_buf());
                                views.push(view);
                                root
                            }
                        };
                        sources.push(root);
                        source_index.insert(c.source, sources.len() - 1);
                        sources.len() - 1
                    }
                };
                fileop::FileAction::Copy(CopyAction {
                    source: index,
                    src: c.src.clone(),
                    dest: c.dest.clone(),
                    owner: owner(&c.owner),
                    mode: mode(&step.name, &c.mode)?,
                    follow_symlinks: c.follow_symlinks,
                    dir_copy_contents: c.dir_copy_contents,
                    attempt_unpack: c.attempt_unpack,
                    create_dest_path: c.create_dest_path,
                    allow_wildcard: c.allow_wildcard,
                    allow_empty_wildcard: c.allow_empty_wildcard,
                    include_patterns: c.include_patterns.clone(),
                    exclude_patterns: c.exclude_patterns.clone(),
                    parents: c.parents,
                    always_replace_existing: c.always_replace_existing,
                    timestamp: c.timestamp,
                })
            }
        });
    }
    let layer = w.store.new_layer().map_err(|e| store_err(&step.name, e))?;
    let dest = w.store.mount_writable(&chain, &layer).map_err(|e| store_err(&step.name, e))?;
    let dest_path = dest.path().to_path_buf();
    let name = step.name.clone();
    let result = tokio::task::spawn_blocking(move || fileop::apply(&dest_path, &sources, &actions))
        .await
        .map_err(|e| SolveError::Internal(format!("file op task: {e}")))?;
    drop(dest);
    drop(views);
    result.map_err(|e| SolveError::step(&name, e.to_string(), e))?;
    let id = tokio::task::spawn_blocking(move || layer.commit())
        .await
        .map_err(|e| SolveError::Internal(format!("layer commit task: {e}")))?
        .map_err(|e| store_err(&step.name, e))?;
    let mut out = chain;
    out.push(id);
    Ok(Ref::Chain(out))
}
