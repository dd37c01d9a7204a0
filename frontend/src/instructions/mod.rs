//! The typed instruction model (BuildKit's `instructions` package): one [`Command`] variant
//! per instruction, grouped into [`Stage`]s, with values left unexpanded.
//!
//! [`parse`] reads a whole Dockerfile; [`Command::expand`] applies BuildKit's
//! per-instruction expansion rules once the build-time variables are known.

mod convert;
mod duration;
mod expand;
pub mod flags;
mod run_flags;
mod run_mount;
mod stages;

use serde::{Deserialize, Serialize};

pub use convert::parse_instruction;
pub use duration::parse_go_duration;
pub use expand::ExpandError;
pub use run_flags::{Device, NetworkMode, SecurityMode, parse_device};
pub(crate) use run_mount::go_parse_bool;
pub use run_mount::{CacheSharing, MountError, MountSpec, MountType};

use crate::error::{DockerfileError, LineIndex, Span};
use crate::lint::{self, Warning};
use crate::shell::Lexer;
use crate::syntax::{self, Directive, Heredoc};

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dockerfile {
    /// The name given to [`parse`], used in errors.
    pub file_name: String,
    /// The escape character from `# escape=` (default `\`).
    pub escape: char,
    /// The parser directives (`syntax`, `escape`, `check`).
    pub directives: Vec<Directive>,
    /// `ARG` instructions before the first `FROM` (global build arguments).
    pub meta_args: Vec<Instruction>,
    /// The build stages in order.
    pub stages: Vec<Stage>,
    /// Build-check warnings that can be decided from the file alone, filtered by
    /// `# check=skip=...`.
    pub warnings: Vec<Warning>,
    /// Warnings of the parser itself (empty continuation lines), before filtering.
    #[serde(skip)]
    pub(crate) parser_warnings: Vec<Warning>,
}

impl Dockerfile {
    /// Index of the stage named `name` (stage names compare case-insensitively).
    pub fn stage_index(&self, name: &str) -> Option<usize> {
        let name = name.to_lowercase();
        self.stages
            .iter()
            .position(|s| s.name.as_deref().map(str::to_lowercase).as_deref() == Some(name.as_str()))
    }

    /// The value of directive `name` (`syntax`, `escape`, `check`).
    pub fn directive(&self, name: &str) -> Option<&str> {
        self.directives.iter().find(|d| d.name == name).map(|d| d.value.as_str())
    }

    /// A lexer using this file's escape character.
    pub fn lexer(&self) -> Lexer {
        Lexer::new(self.escape)
    }
}

/// One build stage: a `FROM` and the instructions up to the next one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// The name after `AS`, as written (compare with [`Stage::normalized_name`]).
    pub name: Option<String>,
    /// The `FROM` image or stage, unexpanded.
    pub base: String,
    /// The raw `--platform` value.
    pub platform: Option<String>,
    /// The instructions of the stage, without the `FROM`.
    pub instructions: Vec<Instruction>,
    /// The `FROM` instruction.
    pub from: Instruction,
    /// The `FROM` line.
    pub span: Span,
    /// The description comment above the `FROM` (`# <name> <description>`).
    pub comment: Option<String>,
}

impl Stage {
    /// The stage name lower-cased, as BuildKit matches it.
    pub fn normalized_name(&self) -> Option<String> {
        self.name.as_ref().map(|n| n.to_lowercase())
    }
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instruction {
    /// What it does.
    pub command: Command,
    /// The keyword as written (`RUN`, `run`), for messages and casing checks.
    pub keyword: String,
    /// The instruction including continuation lines and heredoc bodies.
    pub span: Span,
    /// The instruction text with continuations joined and surrounding whitespace trimmed
    /// (what BuildKit shows in image history and progress).
    pub source_text: String,
}

/// A command line of RUN, CMD, ENTRYPOINT or a HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandLine {
    /// Shell form: run through the stage's SHELL. A keyword with no arguments at all gives
    /// an empty string.
    Shell(String),
    /// Exec (JSON) form.
    Exec(Vec<String>),
}

impl CommandLine {
    /// True for the shell form.
    pub fn is_shell(&self) -> bool {
        matches!(self, CommandLine::Shell(_))
    }
}

/// A `key=value` pair of ENV or LABEL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// Written in the legacy `KEY value` form (no `=`).
    pub legacy: bool,
}

/// One name of an ARG instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArgDef {
    /// The name.
    pub key: String,
    /// The default after `=`, if any.
    pub value: Option<String>,
    /// The description comment above the ARG (`# <name> <description>`).
    pub comment: Option<String>,
}

/// A file given inline with a heredoc to COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeredocSource {
    /// The heredoc name, used as the file name.
    pub path: String,
    /// The content (leading tabs already removed for `<<-`).
    pub data: String,
    /// Whether variables in `data` are expanded (false for a quoted delimiter).
    pub expand: bool,
}

/// `FROM [--platform=...] base [AS name]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FromCommand {
    /// The image or stage.
    pub base: String,
    /// The stage name, as written.
    pub name: Option<String>,
    /// The raw `--platform` value.
    pub platform: Option<String>,
}

/// `RUN`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCommand {
    /// The command (for a heredoc script, the line with the `<<EOF` marker).
    pub cmd: CommandLine,
    /// Heredoc bodies, in marker order (not tab-stripped; see [`Heredoc::chomp`]).
    pub heredocs: Vec<Heredoc>,
    /// `--mount` values (complete only after [`Command::expand`]).
    pub mounts: Vec<MountSpec>,
    /// `--network`.
    pub network: NetworkMode,
    /// `--security`.
    pub security: SecurityMode,
    /// `--device`.
    pub devices: Vec<Device>,
    /// Names of the flags given, sorted.
    pub flags_used: Vec<String>,
}

/// `COPY`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyCommand {
    /// Source paths or patterns.
    pub sources: Vec<String>,
    /// Inline files from heredocs.
    pub heredoc_sources: Vec<HeredocSource>,
    /// The destination.
    pub dest: String,
    /// `--from`: stage name, stage index, image or named context.
    pub from: Option<String>,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// `--parents`.
    pub parents: bool,
}

/// `ADD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddCommand {
    /// Sources: paths, URLs or git repositories.
    pub sources: Vec<String>,
    /// Inline files from heredocs.
    pub heredoc_sources: Vec<HeredocSource>,
    /// The destination.
    pub dest: String,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// `--checksum` of a URL or git source.
    pub checksum: Option<String>,
    /// `--keep-git-dir`.
    pub keep_git_dir: bool,
    /// `--unpack`, when given.
    pub unpack: Option<bool>,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable any inherited check.
    Disable,
    /// `HEALTHCHECK [options] CMD ...`.
    Check(HealthcheckSpec),
}

/// The options and command of a `HEALTHCHECK CMD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthcheckSpec {
    /// The image-config test: `["CMD-SHELL", cmd]` or `["CMD", args...]`.
    pub test: Vec<String>,
    /// `--interval` in nanoseconds (0 when not given).
    pub interval: i64,
    /// `--timeout` in nanoseconds.
    pub timeout: i64,
    /// `--start-period` in nanoseconds.
    pub start_period: i64,
    /// `--start-interval` in nanoseconds.
    pub start_interval: i64,
    /// `--retries` (0 when not given).
    pub retries: i64,
}

/// `ONBUILD`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnbuildCommand {
    /// The trigger as stored in the image config (heredoc bodies appended).
    pub expression: String,
    /// The trigger parsed on its own; `None` when it does not parse (BuildKit reports that
    /// only when a child image runs the trigger).
    pub trigger: Option<Box<Instruction>>,
}

/// What an instruction does; values are as written (unexpanded).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// `FROM` (only inside [`Stage::from`]).
    From(FromCommand),
    /// `RUN`.
    Run(RunCommand),
    /// `CMD`.
    Cmd(CommandLine),
    /// `ENTRYPOINT`; `Exec([])` resets it.
    Entrypoint(CommandLine),
    /// `COPY`.
    Copy(CopyCommand),
    /// `ADD`.
    Add(AddCommand),
    /// `ENV`.
    Env(Vec<KeyValue>),
    /// `ARG`.
    Arg(Vec<ArgDef>),
    /// `LABEL`.
    Label(Vec<KeyValue>),
    /// `EXPOSE` (sorted as BuildKit sorts them).
    Expose(Vec<String>),
    /// `WORKDIR`.
    Workdir(String),
    /// `USER`.
    User(String),
    /// `VOLUME`.
    Volume(Vec<String>),
    /// `STOPSIGNAL`.
    StopSignal(String),
    /// `HEALTHCHECK`.
    Healthcheck(Healthcheck),
    /// `SHELL`.
    Shell(Vec<String>),
    /// `ONBUILD`.
    Onbuild(OnbuildCommand),
    /// `MAINTAINER`.
    Maintainer(String),
}

impl Command {
    /// The canonical upper-case keyword.
    pub fn name(&self) -> &'static str {
        match self {
            Command::From(_) => "FROM",
            Command::Run(_) => "RUN",
            Command::Cmd(_) => "CMD",
            Command::Entrypoint(_) => "ENTRYPOINT",
            Command::Copy(_) => "COPY",
            Command::Add(_) => "ADD",
            Command::Env(_) => "ENV",
            Command::Arg(_) => "ARG",
            Command::Label(_) => "LABEL",
            Command::Expose(_) => "EXPOSE",
            Command::Workdir(_) => "WORKDIR",
            Command::User(_) => "USER",
            Command::Volume(_) => "VOLUME",
            Command::StopSignal(_) => "STOPSIGNAL",
            Command::Healthcheck(_) => "HEALTHCHECK",
            Command::Shell(_) => "SHELL",
            Command::Onbuild(_) => "ONBUILD",
            Command::Maintainer(_) => "MAINTAINER",
        }
    }
}

/// Parses a Dockerfile. `file_name` names it in errors and warnings.
///
/// Fails on syntax errors, invalid flags and instructions BuildKit rejects before building,
/// an invalid `# check=` directive, and a file without any `FROM`. Warnings of the build
/// checks that need no build-time knowledge are in [`Dockerfile::warnings`].
pub fn parse(source: &str, file_name: &str) -> Result<Dockerfile, DockerfileError> {
    let raw = syntax::parse_raw(source, file_name)?;
    let index = LineIndex::new(source);
    let err_at = |span: Span, message: String| {
        DockerfileError::at(file_name, source, &index, span.start, span.end, message)
    };
    let lint_config = match raw.directives.iter().find(|d| d.name == "check") {
        Some(d) => {
            let start = index.line_start(d.line);
            let span = Span::new(&index, start, index.line_end(source, d.line));
            lint::LintConfig::parse(&d.value)
                .map_err(|e| err_at(span, format!("failed to parse check options: {e}")))?
        }
        None => lint::LintConfig::default(),
    };
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &raw.instructions {
        let inst = convert::convert(node, source, file_name, &index)?;
        match &inst.command {
            Command::From(from) => stages.push(Stage {
                name: from.name.clone(),
                base: from.base.clone(),
                platform: from.platform.clone(),
                instructions: vec![],
                span: inst.span,
                comment: convert::get_comment(&node.prev_comment, from.name.as_deref().unwrap_or("")),
                from: inst,
            }),
            Command::Arg(_) if stages.is_empty() => meta_args.push(inst),
            _ => match stages.last_mut() {
                Some(stage) => stage.instructions.push(inst),
                None => {
                    return Err(err_at(inst.span, "no build stage in current context".into())
                        .with_help(Some("start the Dockerfile with a FROM instruction".into())));
                }
            },
        }
    }
    if stages.is_empty() {
        let span = meta_args.last().map(|i: &Instruction| i.span).unwrap_or_default();
        return Err(err_at(span, "dockerfile contains no stages to build".into())
            .with_help(Some("add a FROM instruction".into())));
    }
    let mut df = Dockerfile {
        file_name: file_name.to_string(),
        escape: raw.escape,
        directives: raw.directives.clone(),
        meta_args,
        stages,
        warnings: vec![],
        parser_warnings: lint::parser_warnings(&raw),
    };
    if let Some(i) = df.find_cycle() {
        let stage = &df.stages[i];
        let name = stage.normalized_name().unwrap_or_else(|| i.to_string());
        return Err(err_at(stage.span, format!("circular dependency detected on stage: {name}")));
    }
    df.warnings = lint_config.filter(lint::lint_unfiltered(&df));
    Ok(df)
}
