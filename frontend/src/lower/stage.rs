//! The lowering driver: stage resolution, reachability, base images, and dispatching each
//! stage's instructions in Dockerfile order.

use super::args;
use super::{BaseImage, Errors, ImageRequest, LowerError, LowerOptions, Lowered};
use crate::error::{DockerfileError, Span};
use crate::instructions::{Command, Dockerfile, Instruction};
use crate::lint::Warning;
use crate::shell::{Env, EnvList, Lexer};
use registry::{ContainerConfig, ImageConfig, Platform, Reference, RootFs};
use solver::ir::{Graph, ImageSource, LocalSource, Op, Source, SourceLocation, VertexId, VertexMeta};
use std::collections::{BTreeMap, BTreeSet};

/// PATH for images that do not set one (BuildKit's `system.DefaultPathEnv` on Linux).
pub(crate) const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a stage starts from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Base {
    Scratch,
    Stage(usize),
    Image(Reference),
    /// A directory or git `--build-context`, by its key.
    Context(String),
}

/// A stage after its `FROM` line was expanded.
#[derive(Clone, Debug)]
pub(crate) struct StageInfo {
    /// Name for progress output (`build`, `stage-2`, or empty when there is only one stage).
    pub display: String,
    /// Lower-cased `AS` name.
    pub name: Option<String>,
    pub base: Base,
    /// From `FROM --platform`.
    pub platform: Option<Platform>,
    /// A named context of the stage's name replaces the stage: its instructions do not run.
    pub replaced: bool,
}

/// The build state of one stage while its instructions are dispatched (BuildKit's
/// `dispatchState`).
#[derive(Clone, Debug)]
pub(crate) struct StageState {
    /// The filesystem so far (None: empty).
    pub vertex: Option<VertexId>,
    pub image: ImageConfig,
    /// Variables visible to expansion and RUN: image env plus ARG values, in order.
    pub env: EnvList,
    /// ARGs declared in this stage (and inherited ones), with their values, for RUN history.
    pub build_args: Vec<(String, Option<String>)>,
    pub platform: Platform,
    /// The user for RUN and WORKDIR (the image's USER).
    pub user: String,
    /// `CMD` was set in this Dockerfile (so ENTRYPOINT does not reset it).
    pub cmd_set: bool,
    pub workdir_set: bool,
    /// Progress numbering.
    pub cmd_index: usize,
    pub cmd_total: usize,
    pub display: String,
    /// The current instruction came from an ONBUILD trigger.
    pub in_onbuild: bool,
    pub ignore_cache: bool,
    /// ONBUILD instructions of this stage (inherited by stages built FROM it).
    pub onbuild: Vec<String>,
    pub dispatched: bool,
    /// The registry image at the bottom of this stage (pinned), if any.
    pub base_image: Option<Reference>,
    /// Step names start with the platform (several platforms are built at once).
    pub platform_prefix: bool,
}

impl StageState {
    /// The state at the start of a stage built on `vertex` (None: scratch) with `image`.
    fn fresh(
        vertex: Option<VertexId>,
        image: ImageConfig,
        platform: &Platform,
        base_image: Option<Reference>,
    ) -> StageState {
        StageState {
            vertex,
            image,
            env: EnvList::new(),
            build_args: Vec::new(),
            platform: platform.clone(),
            user: String::new(),
            cmd_set: false,
            workdir_set: false,
            cmd_index: 0,
            cmd_total: 0,
            display: String::new(),
            in_onbuild: false,
            ignore_cache: false,
            onbuild: Vec::new(),
            dispatched: false,
            base_image,
            platform_prefix: false,
        }
    }

    /// The working directory for RUN and relative paths.
    pub fn workdir(&self) -> String {
        match self.image.config.working_dir.as_deref() {
            Some(w) if !w.is_empty() => w.to_string(),
            _ => "/".to_string(),
        }
    }

    /// `[stage 2/5] ` style progress prefix, counting this step.
    pub fn progress_name(&mut self, text: &str) -> String {
        if self.cmd_total == 0 {
            return text.to_string();
        }
        self.cmd_index += 1;
        let width = (self.cmd_total as f64).log10().floor() as usize + 1;
        let mut out = String::from("[");
        if self.platform_prefix {
            out.push_str(&self.platform.to_string());
            out.push(' ');
        }
        if !self.display.is_empty() {
            out.push_str(&self.display);
            out.push(' ');
        }
        out.push_str(&format!("{:>width$}/{}] ", self.cmd_index, self.cmd_total));
        if self.in_onbuild {
            out.push_str("ONBUILD ");
        }
        out + text
    }
}

/// One lowering run.
pub(crate) struct Lowering<'a> {
    pub df: &'a Dockerfile,
    pub opts: &'a LowerOptions,
    pub errors: Errors<'a>,
    pub lexer: Lexer,
    pub graph: Graph,
    pub global_args: EnvList,
    pub target_platform: Platform,
    pub implicit_target: bool,
    pub consumed_args: BTreeSet<String>,
    pub warnings: Vec<Warning>,
    pub need: BTreeSet<ImageRequest>,
    pub context_vertex: Option<VertexId>,
    pub proxy_env: Vec<String>,
    pub stages: Vec<StageInfo>,
    pub states: Vec<Option<StageState>>,
    /// Image sources created so far, by (reference, platform).
    pub image_vertices: BTreeMap<ImageRequest, (VertexId, ImageConfig)>,
    /// Source vertices of directory and git named contexts, by key.
    pub named_sources: BTreeMap<String, VertexId>,
    /// Root filesystems made from directory named contexts (`FROM name`), by key.
    pub named_roots: BTreeMap<String, VertexId>,
}

impl<'a> Lowering<'a> {
    pub fn new(df: &'a Dockerfile, opts: &'a LowerOptions) -> Lowering<'a> {
        let implicit_target = opts.target_platform.is_none();
        let target_platform = opts.target_platform.clone().unwrap_or_else(|| opts.build_platform.clone());
        Lowering {
            df,
            opts,
            errors: Errors::new(&df.file_name, &opts.source),
            lexer: df.lexer(),
            graph: Graph::new(),
            global_args: EnvList::new(),
            target_platform,
            implicit_target,
            consumed_args: BTreeSet::new(),
            warnings: df.warnings.clone(),
            need: BTreeSet::new(),
            context_vertex: None,
            proxy_env: args::proxy_env(&opts.build_args),
            stages: Vec::new(),
            states: Vec::new(),
            image_vertices: BTreeMap::new(),
            named_sources: BTreeMap::new(),
            named_roots: BTreeMap::new(),
        }
    }

    fn stage_names(&self) -> Vec<&str> {
        self.df.stages.iter().filter_map(|s| s.name.as_deref()).collect()
    }

    /// Index of the stage named `name` (case-insensitive), among stages `0..limit`.
    pub fn find_stage(&self, name: &str, limit: usize) -> Option<usize> {
        let lower = name.to_lowercase();
        self.stages[..limit.min(self.stages.len())]
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
    }

    pub fn run(mut self) -> Result<Lowered, LowerError> {
        let df = self.df;
        let target_index = match &self.opts.target {
            None => df.stages.len() - 1,
            Some(t) => df.stage_index(t).ok_or_else(|| {
                let names = self.stage_names();
                let help = crate::suggest::search(t, &names, false);
                let mut msg = format!("target stage {t:?} could not be found");
                if let Some(h) = help {
                    msg.push_str(&format!(" (did you mean {h}?)"));
                }
                LowerError::Dockerfile(self.errors.general(msg))
            })?,
        };
        let target_name = df.stages[target_index].name.clone().unwrap_or_default();
        self.global_args = args::default_args(
            &self.target_platform,
            &self.opts.build_platform,
            &target_name,
            &self.opts.build_args,
        );
        self.meta_args()?;
        self.resolve_stage_bases()?;
        let reachable = self.reachable(target_index)?;
        self.request_images(&reachable)?;
        if !self.need.is_empty() {
            return Err(LowerError::NeedImages(self.need.into_iter().collect()));
        }
        self.states = vec![None; df.stages.len()];
        for (i, _) in df.stages.iter().enumerate() {
            if reachable.contains(&i) {
                self.dispatch_stage(i)?;
            }
        }
        if !self.need.is_empty() {
            return Err(LowerError::NeedImages(self.need.into_iter().collect()));
        }
        let mut target = self.states[target_index].take().expect("target stage dispatched");
        self.finalize(&mut target);
        let unused_build_args = self
            .opts
            .build_args
            .keys()
            .filter(|k| !self.consumed_args.contains(*k) && !args::is_builtin(k))
            .cloned()
            .collect();
        let source_date_epoch =
            self.opts.build_args.get("SOURCE_DATE_EPOCH").and_then(|v| v.trim().parse::<i64>().ok());
        let (warnings, lint_error) = self.finish_warnings();
        Ok(Lowered {
            graph: self.graph,
            target: target.vertex,
            image: target.image,
            base_history: 0,
            base_image: target.base_image.clone(),
            warnings,
            lint_error,
            unused_build_args,
            source_date_epoch,
        })
    }

    /// Global ARGs before the first FROM.
    fn meta_args(&mut self) -> Result<(), LowerError> {
        for inst in &self.df.meta_args {
            let Command::Arg(defs) = &inst.command else { continue };
            for def in defs {
                self.consumed_args.insert(def.key.clone());
                let value = match self.opts.build_args.get(&def.key) {
                    Some(v) => Some(v.clone()),
                    None => match &def.value {
                        Some(default) => Some(
                            self.lexer
                                .process_word(default, &self.global_args)
                                .map_err(|e| self.errors.at(inst.span, e.to_string()))?,
                        ),
                        None => None,
                    },
                };
                if let Some(v) = value {
                    self.global_args.set(def.key.clone(), v);
                }
            }
        }
        Ok(())
    }

    /// Expands every FROM line with the global args and classifies its base.
    fn resolve_stage_bases(&mut self) -> Result<(), LowerError> {
        let df = self.df;
        let single = df.stages.len() == 1;
        for (i, stage) in df.stages.iter().enumerate() {
            self.check_from_args(stage);
            let base = self
                .lexer
                .process_word(&stage.base, &self.global_args)
                .map_err(|e| self.errors.at(stage.span, e.to_string()))?;
            if base.is_empty() {
                return Err(self
                    .errors
                    .at(stage.span, format!("base name ({}) should not be blank", stage.base))
                    .into());
            }
            let platform = match &stage.platform {
                None => None,
                Some(raw) => {
                    let v = self
                        .lexer
                        .process_word(raw, &self.global_args)
                        .map_err(|e| self.errors.at(stage.span, e.to_string()))?;
                    if v.is_empty() {
                        return Err(self
                            .errors
                            .at(stage.span, format!("empty platform value from expression {raw}"))
                            .into());
                    }
                    Some(v.parse::<Platform>().map_err(|e| {
                        self.errors.at(stage.span, format!("failed to parse platform {raw}: {e}"))
                    })?)
                }
            };
            let name = stage.normalized_name();
            // A named context of the stage's own name replaces the whole stage (BuildKit).
            let replacement = name.as_deref().and_then(|n| self.named_base(n));
            let replaced = replacement.is_some();
            let base = if let Some(b) = replacement {
                b
            } else if let Some(j) = self.find_stage(&base, i) {
                Base::Stage(j)
            } else if base.eq_ignore_ascii_case("scratch") {
                Base::Scratch
            } else if let Some(b) = self.named_base(&base) {
                b
            } else {
                Base::Image(base.parse::<Reference>().map_err(|e| {
                    self.errors.at(stage.span, format!("failed to parse stage name {base:?}: {}", e.reason))
                })?)
            };
            let display = if single {
                String::new()
            } else {
                stage.name.clone().unwrap_or_else(|| format!("stage-{i}"))
            };
            self.stages.push(StageInfo { display, name, base, platform, replaced });
        }
        Ok(())
    }

    /// What a `--from` value (COPY or RUN --mount) refers to, seen from stage `current`.
    pub fn resolve_from(&self, value: &str, span: Span) -> Result<Base, DockerfileError> {
        if let Ok(index) = value.parse::<usize>() {
            if index >= self.stages.len() {
                return Err(self.errors.at(span, format!("invalid stage index {index}")));
            }
            return Ok(Base::Stage(index));
        }
        if let Some(j) = self.find_stage(value, self.stages.len()) {
            return Ok(Base::Stage(j));
        }
        if value.eq_ignore_ascii_case("scratch") {
            return Ok(Base::Scratch);
        }
        if let Some(b) = self.named_base(value) {
            return Ok(b);
        }
        value
            .parse::<Reference>()
            .map(Base::Image)
            .map_err(|e| self.errors.at(span, format!("invalid --from {value:?}: {}", e.reason)))
    }

    /// Stages other stages' instructions refer to (COPY --from, RUN --mount from=).
    fn instruction_deps(&self, inst: &Instruction) -> Result<Vec<Base>, DockerfileError> {
        let mut out = Vec::new();
        match &inst.command {
            Command::Copy(c) => {
                if let Some(from) = &c.from {
                    if from.contains('$') {
                        return Err(self.errors.at(
                            inst.span,
                            "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
                        ));
                    }
                    out.push(self.resolve_from(from, inst.span)?);
                }
            }
            Command::Run(r) => {
                for m in &r.mounts {
                    if let Some(from) = &m.from
                        && !from.contains('$')
                    {
                        out.push(self.resolve_from(from, inst.span)?);
                    }
                }
            }
            _ => {}
        }
        Ok(out)
    }

    /// Stages the target needs, transitively.
    fn reachable(&self, target: usize) -> Result<BTreeSet<usize>, LowerError> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![target];
        while let Some(i) = stack.pop() {
            if !seen.insert(i) {
                continue;
            }
            if let Base::Stage(j) = self.stages[i].base {
                stack.push(j);
            }
            for inst in &self.stage_instructions(i)? {
                for dep in self.instruction_deps(inst)? {
                    if let Base::Stage(j) = dep {
                        stack.push(j);
                    }
                }
            }
        }
        Ok(seen)
    }

    /// The ONBUILD triggers stage `i` inherits from its base stage or its base image (when
    /// that is resolved already), followed by its own instructions.
    fn stage_instructions(&self, i: usize) -> Result<Vec<Instruction>, LowerError> {
        if self.stages[i].replaced {
            return Ok(Vec::new());
        }
        let span = self.df.stages[i].span;
        let mut triggers: Vec<String> = match &self.stages[i].base {
            Base::Stage(j) => self.df.stages[*j]
                .instructions
                .iter()
                .filter_map(|inst| match &inst.command {
                    Command::Onbuild(ob) => Some(ob.expression.clone()),
                    _ => None,
                })
                .collect(),
            Base::Image(r) => {
                let req = ImageRequest { reference: r.clone(), platform: self.stage_platform(i) };
                self.opts.images.get(&req).and_then(|b| b.config.config.on_build.clone()).unwrap_or_default()
            }
            Base::Scratch | Base::Context(_) => Vec::new(),
        };
        let mut out = self.parse_triggers(&mut triggers, span)?;
        out.extend(self.df.stages[i].instructions.iter().cloned());
        Ok(out)
    }

    /// The platform stage `i` builds for.
    pub fn stage_platform(&self, i: usize) -> Platform {
        match (&self.stages[i].platform, &self.stages[i].base) {
            (Some(p), _) => p.clone(),
            (None, Base::Stage(j)) => self.stage_platform(*j),
            (None, _) => self.target_platform.clone(),
        }
    }

    /// Records every base image the reachable stages need that is not resolved yet.
    fn request_images(&mut self, reachable: &BTreeSet<usize>) -> Result<(), LowerError> {
        for &i in reachable {
            let platform = self.stage_platform(i);
            if let Base::Image(r) = &self.stages[i].base {
                self.want_image(r.clone(), platform.clone());
            }
            for inst in &self.stage_instructions(i)? {
                for dep in self.instruction_deps(inst)? {
                    if let Base::Image(r) = dep {
                        self.want_image(r, platform.clone());
                    }
                }
            }
        }
        Ok(())
    }

    fn want_image(&mut self, reference: Reference, platform: Platform) {
        let req = ImageRequest { reference, platform };
        if !self.opts.images.contains_key(&req) {
            self.need.insert(req);
        }
    }

    /// The source vertex and config of a resolved image (None when it still must be resolved).
    pub fn image(
        &mut self,
        reference: &Reference,
        platform: &Platform,
        name: &str,
    ) -> Option<(Option<VertexId>, ImageConfig)> {
        let req = ImageRequest { reference: reference.clone(), platform: platform.clone() };
        let Some(BaseImage { pinned, config }) = self.opts.images.get(&req) else {
            self.need.insert(req);
            return None;
        };
        if let Some((v, c)) = self.image_vertices.get(&req) {
            return Some((Some(*v), c.clone()));
        }
        // An image without layers is scratch with a config (BuildKit does the same).
        if config.rootfs.diff_ids.is_empty() {
            return Some((None, config.clone()));
        }
        let op =
            Op::Source(Source::Image(ImageSource { reference: pinned.clone(), platform: platform.clone() }));
        let meta = VertexMeta { name: name.to_string(), ..Default::default() };
        let v = self.graph.add(op, vec![], meta).expect("sources have no inputs");
        self.image_vertices.insert(req, (v, config.clone()));
        Some((Some(v), config.clone()))
    }

    /// The build context's local source vertex.
    pub fn context(&mut self) -> VertexId {
        if let Some(v) = self.context_vertex {
            return v;
        }
        let op = Op::Source(Source::Local(LocalSource {
            name: self.opts.context_name.clone(),
            excludes: self.opts.dockerignore.clone(),
        }));
        let meta = VertexMeta { name: "[internal] load build context".into(), ..Default::default() };
        let v = self.graph.add(op, vec![], meta).expect("sources have no inputs");
        self.context_vertex = Some(v);
        v
    }

    /// Metadata for a vertex made by `inst` in a stage.
    pub fn meta(&self, name: String, inst_span: Span, state: &StageState) -> VertexMeta {
        VertexMeta {
            name,
            location: Some(SourceLocation {
                file: self.df.file_name.clone(),
                start_line: inst_span.start_line as u32,
                end_line: inst_span.end_line as u32,
            }),
            ignore_cache: state.ignore_cache,
            stage: Some(state.display.clone()).filter(|s| !s.is_empty()),
        }
    }

    fn empty_image(&self, platform: &Platform) -> ImageConfig {
        ImageConfig {
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            variant: platform.variant.clone(),
            config: ContainerConfig {
                env: Some(vec![format!("PATH={DEFAULT_PATH}")]),
                working_dir: Some("/".into()),
                ..Default::default()
            },
            rootfs: RootFs::default(),
            ..Default::default()
        }
    }

    fn stage_total(&self, i: usize, triggers: usize) -> usize {
        let base = usize::from(matches!(self.stages[i].base, Base::Image(_)));
        if self.stages[i].replaced {
            return base;
        }
        let steps = self.df.stages[i]
            .instructions
            .iter()
            .filter(|inst| {
                matches!(
                    inst.command,
                    Command::Add(_) | Command::Copy(_) | Command::Run(_) | Command::Workdir(_)
                )
            })
            .count();
        base + steps + triggers
    }

    fn dispatch_stage(&mut self, i: usize) -> Result<(), LowerError> {
        let df = self.df;
        let stage = &df.stages[i];
        let info = self.stages[i].clone();
        let platform = self.stage_platform(i);
        let ignore_cache = self.opts.no_cache
            || info
                .name
                .as_ref()
                .is_some_and(|n| self.opts.no_cache_filter.iter().any(|f| f.eq_ignore_ascii_case(n)))
            || self.opts.no_cache_filter.iter().any(|f| f == &i.to_string());
        let mut state = match &info.base {
            Base::Stage(j) => {
                let parent = self.states[*j].clone().ok_or_else(|| {
                    self.errors.at(
                        stage.span,
                        format!("stage {:?} must be built before this stage", self.stages[*j].display),
                    )
                })?;
                let mut s = parent;
                s.image.config.on_build = None;
                s.cmd_index = 0;
                s.dispatched = false;
                s
            }
            Base::Scratch => StageState::fresh(None, self.empty_image(&platform), &platform, None),
            Base::Context(key) => {
                let root = self.named_root(key);
                StageState::fresh(root, self.empty_image(&platform), &platform, None)
            }
            Base::Image(r) => {
                let (vertex, mut config) = match self.image(r, &platform, "") {
                    Some(x) => x,
                    None => return Err(LowerError::NeedImages(self.need.iter().cloned().collect())),
                };
                config.created = None;
                let request = ImageRequest { reference: r.clone(), platform: platform.clone() };
                let pinned = self.opts.images.get(&request).map(|b| b.pinned.clone());
                StageState::fresh(vertex, config, &platform, pinned)
            }
        };
        // ONBUILD triggers: from the base image's config, or the base stage's ONBUILD lines.
        let mut triggers: Vec<String> = match &info.base {
            _ if info.replaced => Vec::new(),
            Base::Stage(_) => std::mem::take(&mut state.onbuild),
            _ => state.image.config.on_build.take().unwrap_or_default(),
        };
        state.onbuild = Vec::new();
        state.image.config.on_build = None;
        let trigger_insts = self.parse_triggers(&mut triggers, stage.span)?;

        state.display = info.display.clone();
        state.platform_prefix = self.opts.platform_prefix;
        state.ignore_cache = ignore_cache;
        state.platform = platform.clone();
        state.cmd_total = self.stage_total(i, trigger_insts.len());
        state.cmd_index = 0;
        if state.image.config.env_get("PATH").is_none() {
            let env = state.image.config.env.get_or_insert_with(Vec::new);
            env.push(format!("PATH={DEFAULT_PATH}"));
        }
        for kv in state.image.config.env.clone().unwrap_or_default() {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            state.env.set(k, v);
        }
        state.user = state.image.config.user.clone().unwrap_or_default();
        self.check_base_platform(i, &state);
        if let (Base::Image(r), Some(v)) = (&info.base, state.vertex) {
            let name = state.progress_name(&format!("FROM {r}"));
            // The image is shared by every stage built on it: `--no-cache-filter` re-runs a
            // stage's own steps, not its base (as BuildKit marks only the stage's ops).
            let meta = VertexMeta { ignore_cache: false, ..self.meta(name, stage.span, &state) };
            let vm = self.graph.meta_mut(v);
            if vm.name.is_empty() {
                *vm = meta;
            }
        }
        for inst in &trigger_insts {
            state.in_onbuild = true;
            self.dispatch(&mut state, inst)?;
        }
        state.in_onbuild = false;
        let own: &[Instruction] = if info.replaced { &[] } else { &stage.instructions };
        for inst in own {
            self.dispatch(&mut state, inst)?;
        }
        state.dispatched = true;
        self.states[i] = Some(state);
        Ok(())
    }

    fn parse_triggers(&self, triggers: &mut Vec<String>, span: Span) -> Result<Vec<Instruction>, LowerError> {
        let mut out = Vec::new();
        for t in triggers.drain(..) {
            let text = format!("FROM scratch\n{t}\n");
            let parsed = crate::parse(&text, &self.df.file_name)
                .map_err(|e| self.errors.at(span, format!("invalid ONBUILD trigger {t:?}: {}", e.message)))?;
            let mut insts = parsed.stages.into_iter().next().map(|s| s.instructions).unwrap_or_default();
            if insts.len() != 1 {
                return Err(self.errors.at(span, "onbuild trigger should be a single expression").into());
            }
            let mut inst = insts.remove(0);
            if matches!(inst.command, Command::Onbuild(_) | Command::Maintainer(_)) {
                return Err(self
                    .errors
                    .at(span, format!("{} isn't allowed as an ONBUILD trigger", inst.command.name()))
                    .into());
            }
            // Errors of a trigger point at the FROM line that pulled it in.
            inst.span = span;
            out.push(inst);
        }
        Ok(out)
    }

    fn finalize(&self, target: &mut StageState) {
        if !self.opts.labels.is_empty() {
            let labels = target.image.config.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in &self.opts.labels {
                labels.insert(k.clone(), v.clone());
            }
        }
        if !self.implicit_target {
            let p = &self.target_platform;
            let same = p.os == target.image.os && p.architecture == target.image.architecture;
            target.image.os = p.os.clone();
            target.image.architecture = p.architecture.clone();
            if p.variant.is_some() || !same {
                target.image.variant = p.variant.clone();
            }
        }
    }

    /// Expands a word with the stage's variables; errors point at `span`.
    pub fn expand_word(&self, word: &str, env: &dyn Env, span: Span) -> Result<String, DockerfileError> {
        self.lexer.process_word(word, env).map_err(|e| self.errors.at(span, e.to_string()))
    }
}
