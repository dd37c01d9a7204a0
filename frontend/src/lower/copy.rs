//! `COPY` and `ADD`: file actions from the context, another stage, an image or inline
//! heredoc files; `--link` as a merge of a scratch copy onto the stage.

use super::LowerError;
use super::dispatch::{clean_path, commit_history, owner_of, resolve_in_workdir};
use super::git_ref::{self, GitRef};
use super::run::uppercase_first;
use super::stage::{Base, Lowering, StageState};
use crate::instructions::{AddCommand, CopyCommand, HeredocSource, Instruction};
use registry::Digest;
use solver::ir::{
    self, ChmodSpec, FileAction, FileOp, GitSource, HttpSource, Mkfile, Op, Source, VertexId, VertexMeta,
};

/// What the COPY/ADD reads, after flags were interpreted.
struct CopyPlan<'a> {
    is_add: bool,
    sources: &'a [String],
    heredocs: &'a [HeredocSource],
    dest: &'a str,
    chown: Option<&'a str>,
    chmod: Option<&'a str>,
    link: bool,
    exclude: &'a [String],
    parents: bool,
    unpack: Option<bool>,
    checksum: Option<&'a str>,
    keep_git_dir: bool,
    /// The `--from` source: `None` is the build context.
    from: Option<Base>,
    from_text: Option<&'a str>,
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// The name a download is stored under: the URL path's last element, `%`-decoded, as
/// BuildKit's frontend takes it (`path.Base(url.Path)`), or `__unnamed__`.
fn url_file_name(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    let base = path.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    let decoded = percent_decode(base);
    match decoded.as_str() {
        "" | "." | ".." => "__unnamed__".to_string(),
        _ if decoded.contains(['/', '\0']) => "__unnamed__".to_string(),
        _ => decoded,
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex =
            (bytes[i] == b'%').then(|| s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()));
        match hex.flatten() {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Lowering<'_> {
    pub(crate) fn dispatch_copy(
        &mut self,
        state: &mut StageState,
        inst: &Instruction,
        c: &CopyCommand,
    ) -> Result<(), LowerError> {
        let from = match &c.from {
            None => None,
            Some(f) => Some(self.resolve_from(f, inst.span)?),
        };
        let plan = CopyPlan {
            is_add: false,
            sources: &c.sources,
            heredocs: &c.heredoc_sources,
            dest: &c.dest,
            chown: c.chown.as_deref().filter(|s| !s.is_empty()),
            chmod: c.chmod.as_deref().filter(|s| !s.is_empty()),
            link: c.link,
            exclude: &c.exclude,
            parents: c.parents,
            unpack: None,
            checksum: None,
            keep_git_dir: false,
            from,
            from_text: c.from.as_deref(),
        };
        self.copy(state, inst, plan)
    }

    pub(crate) fn dispatch_add(
        &mut self,
        state: &mut StageState,
        inst: &Instruction,
        a: &AddCommand,
    ) -> Result<(), LowerError> {
        let plan = CopyPlan {
            is_add: true,
            sources: &a.sources,
            heredocs: &a.heredoc_sources,
            dest: &a.dest,
            chown: a.chown.as_deref().filter(|s| !s.is_empty()),
            chmod: a.chmod.as_deref().filter(|s| !s.is_empty()),
            link: a.link,
            exclude: &a.exclude,
            parents: false,
            unpack: a.unpack,
            checksum: a.checksum.as_deref().filter(|s| !s.is_empty()),
            keep_git_dir: a.keep_git_dir,
            from: None,
            from_text: None,
        };
        self.copy(state, inst, plan)
    }

    fn chmod_spec(&self, inst: &Instruction, chmod: &str) -> Result<ChmodSpec, LowerError> {
        let non_octal = || {
            self.errors.at(
                inst.span,
                format!(
                    "invalid chmod parameter: '{chmod}'. it should be octal string and between 0 and 07777"
                ),
            )
        };
        match u32::from_str_radix(chmod, 8) {
            Ok(bits) if bits <= 0o7777 => Ok(ChmodSpec::Octal(bits)),
            Ok(_) => Err(non_octal().into()),
            Err(_) if chmod.chars().all(|c| c.is_ascii_digit()) => Err(non_octal().into()),
            Err(_) => {
                let symbolic_ok = chmod.split(',').all(|clause| {
                    let ops = clause.trim_start_matches(['u', 'g', 'o', 'a']);
                    !ops.is_empty()
                        && ops.starts_with(['+', '-', '='])
                        && ops.chars().all(|ch| "+-=rwxXstugo".contains(ch))
                });
                if symbolic_ok {
                    Ok(ChmodSpec::Symbolic(chmod.to_string()))
                } else {
                    Err(self.errors.at(inst.span, format!("invalid chmod parameter: '{chmod}'")).into())
                }
            }
        }
    }

    fn copy(
        &mut self,
        state: &mut StageState,
        inst: &Instruction,
        plan: CopyPlan<'_>,
    ) -> Result<(), LowerError> {
        let dest = resolve_in_workdir(&state.workdir(), plan.dest, true);
        let owner = plan.chown.and_then(owner_of);
        let mode = match plan.chmod {
            Some(m) => Some(self.chmod_spec(inst, m)?),
            None => None,
        };
        if let Some(ck) = plan.checksum {
            if !plan.is_add {
                return Err(self.errors.at(inst.span, "checksum can't be specified for COPY").into());
            }
            if plan.sources.len() != 1 {
                return Err(self
                    .errors
                    .at(inst.span, "checksum can't be specified for multiple sources")
                    .into());
            }
            let git = git_ref::parse(&plan.sources[0]).ok().flatten().is_some();
            if !is_url(&plan.sources[0]) && !git {
                return Err(self.errors.at(inst.span, "checksum requires HTTP(S) or Git sources").into());
            }
            if !git {
                ck.parse::<Digest>().map_err(|e| self.errors.at(inst.span, e.to_string()))?;
            }
        }

        // Inputs of the file op: 0 is the stage (when not scratch and not --link).
        let link = plan.link && plan.chmod.is_none();
        let mut inputs: Vec<VertexId> = Vec::new();
        let base = match (link, state.vertex) {
            (false, Some(v)) => {
                inputs.push(v);
                Some(0)
            }
            _ => None,
        };
        let source_vertex: Option<VertexId> = match &plan.from {
            None => Some(self.context()),
            Some(Base::Scratch) => None,
            Some(Base::Stage(j)) => match self.states[*j].as_ref() {
                Some(s) if s.dispatched => s.vertex,
                _ => {
                    return Err(self
                        .errors
                        .at(
                            inst.span,
                            format!(
                                "cannot copy from stage {:?}, it needs to be defined before current stage {:?}",
                                plan.from_text.unwrap_or_default(),
                                state.display
                            ),
                        )
                        .into());
                }
            },
            Some(Base::Image(r)) => {
                let platform = state.platform.clone();
                let r = r.clone();
                match self.image(&r, &platform, &format!("[internal] load {r}")) {
                    Some((v, _)) => v,
                    None => return Err(LowerError::NeedImages(self.need.iter().cloned().collect())),
                }
            }
            Some(Base::Context(key)) => {
                let key = key.clone();
                self.named_source(&key)
            }
        };
        let source_index = |inputs: &mut Vec<VertexId>, v: Option<VertexId>, this: &mut Self| -> usize {
            let v = v.unwrap_or_else(|| {
                // Copying from an empty filesystem: an empty scratch op makes the source.
                this.graph
                    .add(Op::File(FileOp { base: None, actions: vec![] }), vec![], VertexMeta::default())
                    .expect("no inputs")
            });
            match inputs.iter().position(|i| *i == v) {
                Some(p) => p,
                None => {
                    inputs.push(v);
                    inputs.len() - 1
                }
            }
        };

        // Named before the sources: a download or a git checkout shows under the step's name.
        let shown = self
            .lexer
            .process_word(&inst.source_text, &state.env)
            .unwrap_or_else(|_| inst.source_text.clone());
        let name = state.progress_name(&uppercase_first(&shown));
        let meta = self.meta(name, inst.span, state);

        let epoch = None;
        let mut actions = Vec::new();
        let mut message = String::from(if plan.is_add { "ADD" } else { "COPY" });
        if plan.parents {
            message.push_str(" --parents");
        }
        if let Some(c) = plan.chown {
            message.push_str(&format!(" --chown={c}"));
        }
        if let Some(m) = plan.chmod {
            message.push_str(&format!(" --chmod={m}"));
        }
        for src in plan.sources {
            message.push_str(&format!(" {src}"));
            if let Some(git) = git_ref::parse(src).map_err(|m| self.errors.at(inst.span, m))? {
                if !plan.is_add {
                    return Err(self.errors.at(inst.span, "source can't be a git ref for COPY").into());
                }
                let v = self.git_source(inst, &plan, git, &meta)?;
                let idx = source_index(&mut inputs, Some(v), self);
                actions.push(self.remote_copy_action(idx, "/", &dest, &owner, &mode, &plan, false, true));
                continue;
            }
            if is_url(src) {
                if !plan.is_add {
                    return Err(self.errors.at(inst.span, "source can't be a URL for COPY").into());
                }
                if !self.opts.allow_http_sources {
                    return Err(self
                        .errors
                        .at(inst.span, format!("ADD from a URL ({src}) is not supported by this build"))
                        .into());
                }
                let filename = url_file_name(src);
                let http = Source::Http(HttpSource {
                    url: src.clone(),
                    checksum: plan.checksum.and_then(|c| c.parse().ok()),
                    filename: filename.clone(),
                    mode: 0o600,
                });
                let v = self.graph.add(Op::Source(http), vec![], meta.clone()).expect("no inputs");
                let idx = source_index(&mut inputs, Some(v), self);
                // Remote archives stay archives unless `--unpack=true` (BuildKit).
                let unpack = plan.unpack.unwrap_or(false);
                let from = format!("/{filename}");
                actions.push(self.remote_copy_action(idx, &from, &dest, &owner, &mode, &plan, unpack, false));
                continue;
            }
            if plan.from.is_none() {
                self.check_copy_ignored(inst, plan.is_add, src);
            }
            // With --parents the file op keeps the `/./` pivot itself, so the path is passed on
            // unnormalised (cleaning would drop the pivot).
            let src_path = if plan.parents {
                if src.starts_with('/') { src.clone() } else { format!("/{src}") }
            } else {
                clean_path(src, false)
            };
            let idx = source_index(&mut inputs, source_vertex, self);
            actions.push(self.copy_action(
                idx,
                &src_path,
                &dest,
                &owner,
                &mode,
                &plan,
                plan.unpack.unwrap_or(plan.is_add),
                epoch,
            ));
        }
        for doc in plan.heredocs {
            message.push_str(&format!(" <<{}", doc.path));
            let path = clean_path(&doc.path, false);
            let file = FileOp {
                base: None,
                actions: vec![FileAction::Mkfile(Mkfile {
                    path: path.clone(),
                    mode: 0o644,
                    data: doc.data.clone().into_bytes(),
                    owner: None,
                    timestamp: epoch,
                })],
            };
            let meta = VertexMeta { name: "preparing inline document".into(), ..Default::default() };
            let v = self.graph.add(Op::File(file), vec![], meta).expect("no inputs");
            let idx = source_index(&mut inputs, Some(v), self);
            let mut action = self.copy_action(idx, &path, &dest, &owner, &mode, &plan, false, epoch);
            if let FileAction::Copy(c) = &mut action {
                c.follow_symlinks = false;
                c.dir_copy_contents = false;
                c.allow_wildcard = false;
                c.allow_empty_wildcard = false;
            }
            actions.push(action);
        }
        message.push_str(&format!(" {}", plan.dest));

        let op = Op::File(FileOp { base, actions });
        let copied = self.graph.add(op, inputs, meta.clone()).expect("inputs exist");
        let v = match (link, state.vertex) {
            (true, Some(stage_vertex)) => {
                let merge_meta = VertexMeta { name: format!("{} (link)", meta.name), ..meta };
                self.graph.add(Op::Merge, vec![stage_vertex, copied], merge_meta).expect("inputs exist")
            }
            _ => copied,
        };
        state.vertex = Some(v);
        commit_history(state, format!("{message} # buildkit"), true);
        Ok(())
    }

    /// The git source of `git` (after reconciling its options with the instruction's flags).
    fn git_source(
        &mut self,
        inst: &Instruction,
        plan: &CopyPlan<'_>,
        git: GitRef,
        meta: &VertexMeta,
    ) -> Result<VertexId, LowerError> {
        if plan.keep_git_dir && git.keep_git_dir == Some(false) {
            return Err(self.errors.at(inst.span, "inconsistent keep-git-dir configuration").into());
        }
        let checksum = match (plan.checksum, git.checksum.as_deref()) {
            (Some(flag), Some(url)) if flag != url => {
                return Err(self
                    .errors
                    .at(inst.span, format!("checksum mismatch {flag:?} != {url:?}"))
                    .into());
            }
            (Some(c), _) | (None, Some(c)) => Some(c.to_string()),
            (None, None) => None,
        };
        let source = Source::Git(GitSource {
            remote: git.remote,
            reference: git.reference,
            subdir: git.subdir,
            keep_git_dir: git.keep_git_dir.unwrap_or(plan.keep_git_dir),
            checksum,
        });
        Ok(self.graph.add(Op::Source(source), vec![], meta.clone()).expect("no inputs"))
    }

    /// The copy out of a download or a checkout: BuildKit's `CopyInfo` for remote sources
    /// sets only the mode, `CreateDestPath` and (for downloads) `AttemptUnpack`.
    #[allow(clippy::too_many_arguments)]
    fn remote_copy_action(
        &self,
        source: usize,
        src: &str,
        dest: &str,
        owner: &Option<ir::Owner>,
        mode: &Option<ChmodSpec>,
        plan: &CopyPlan<'_>,
        unpack: bool,
        dir_contents: bool,
    ) -> FileAction {
        FileAction::Copy(ir::Copy {
            source,
            src: src.to_string(),
            dest: dest.to_string(),
            owner: owner.clone(),
            mode: mode.clone(),
            follow_symlinks: false,
            dir_copy_contents: dir_contents,
            attempt_unpack: unpack,
            create_dest_path: true,
            allow_wildcard: false,
            allow_empty_wildcard: false,
            include_patterns: Vec::new(),
            exclude_patterns: plan.exclude.to_vec(),
            parents: false,
            always_replace_existing: false,
            timestamp: None,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_action(
        &self,
        source: usize,
        src: &str,
        dest: &str,
        owner: &Option<ir::Owner>,
        mode: &Option<ChmodSpec>,
        plan: &CopyPlan<'_>,
        unpack: bool,
        timestamp: Option<i64>,
    ) -> FileAction {
        FileAction::Copy(ir::Copy {
            source,
            src: src.to_string(),
            dest: dest.to_string(),
            owner: owner.clone(),
            mode: mode.clone(),
            follow_symlinks: true,
            dir_copy_contents: true,
            attempt_unpack: unpack,
            create_dest_path: true,
            allow_wildcard: true,
            allow_empty_wildcard: true,
            include_patterns: Vec::new(),
            exclude_patterns: plan.exclude.to_vec(),
            parents: plan.parents,
            always_replace_existing: false,
            timestamp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::url_file_name;

    #[test]
    fn download_file_names() {
        let cases = [
            ("https://example.com/a/b.tar.gz", "b.tar.gz"),
            ("https://example.com/a/b.txt?x=1#frag", "b.txt"),
            ("https://example.com/dir/", "dir"),
            ("https://example.com/", "__unnamed__"),
            ("https://example.com", "__unnamed__"),
            ("http://example.com/with%20space.txt", "with space.txt"),
            ("http://example.com/..", "__unnamed__"),
        ];
        for (url, want) in cases {
            assert_eq!(url_file_name(url), want, "{url}");
        }
    }
}
