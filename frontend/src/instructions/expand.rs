//! BuildKit's per-instruction variable expansion (the `Expand` methods of its
//! `instructions` package and the expansion done while dispatching).
//!
//! Expanded: ENV/ARG/LABEL keys and values, ADD/COPY sources, destination, `--chown`,
//! `--chmod` and ADD `--checksum`, heredoc sources of COPY/ADD unless the delimiter was
//! quoted, WORKDIR, USER, VOLUME, STOPSIGNAL, EXPOSE (with word splitting), RUN `--mount`
//! values, and the FROM base and `--platform`. Never expanded: RUN, CMD, ENTRYPOINT, SHELL,
//! HEALTHCHECK, ONBUILD, MAINTAINER, COPY `--from`, `--exclude`.

use super::run_mount::{MountError, MountSpec};
use super::{Command, FromCommand, HeredocSource, Instruction, KeyValue};
use crate::error::{DockerfileError, LineIndex, Span};
use crate::shell::{Env, Lexer, ShellError};

/// An instruction whose values could not be expanded or are invalid once expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExpandError {
    /// BuildKit's message.
    pub message: String,
    /// A suggested fix.
    pub help: Option<String>,
    /// The instruction (set by [`Instruction::expand`]).
    pub span: Option<Span>,
}

impl ExpandError {
    fn new(message: impl Into<String>) -> ExpandError {
        ExpandError { message: message.into(), help: None, span: None }
    }

    /// This error placed in `source` (the text the instruction was parsed from).
    pub fn into_dockerfile_error(self, file_name: &str, source: &str) -> DockerfileError {
        let index = LineIndex::new(source);
        let span = self.span.unwrap_or_default();
        DockerfileError::at(file_name, source, &index, span.start, span.end, self.message)
            .with_help(self.help)
    }
}

impl From<ShellError> for ExpandError {
    fn from(e: ShellError) -> ExpandError {
        ExpandError::new(e.to_string())
    }
}

impl From<MountError> for ExpandError {
    fn from(e: MountError) -> ExpandError {
        ExpandError { message: e.message, help: e.help, span: None }
    }
}

fn word(lexer: &Lexer, env: &dyn Env, s: &str) -> Result<String, ExpandError> {
    Ok(lexer.process_word(s, env)?)
}

fn opt_word(lexer: &Lexer, env: &dyn Env, s: &Option<String>) -> Result<Option<String>, ExpandError> {
    s.as_deref().map(|v| word(lexer, env, v)).transpose()
}

fn words(lexer: &Lexer, env: &dyn Env, list: &[String]) -> Result<Vec<String>, ExpandError> {
    list.iter().map(|s| word(lexer, env, s)).collect()
}

fn kvs(lexer: &Lexer, env: &dyn Env, list: &[KeyValue]) -> Result<Vec<KeyValue>, ExpandError> {
    list.iter()
        .map(|kv| {
            Ok(KeyValue {
                key: word(lexer, env, &kv.key)?,
                value: word(lexer, env, &kv.value)?,
                legacy: kv.legacy,
            })
        })
        .collect()
}

/// A symbolic mode like `u+x,go-w` or `a=rX` (what `chmod` accepts besides octal).
fn is_symbolic_mode(s: &str) -> bool {
    s.split(',').all(|clause| {
        let ops = clause.trim_start_matches(['u', 'g', 'o', 'a']);
        let mut rest = ops;
        if rest.is_empty() {
            return false;
        }
        while let Some(c) = rest.chars().next() {
            if !matches!(c, '+' | '-' | '=') {
                return false;
            }
            rest = &rest[1..];
            let perms = rest.trim_start_matches(['r', 'w', 'x', 'X', 's', 't']);
            let perms =
                if perms.len() == rest.len() { perms.trim_start_matches(['u', 'g', 'o']) } else { perms };
            rest = perms;
        }
        true
    })
}

fn chmod(lexer: &Lexer, env: &dyn Env, s: &Option<String>) -> Result<Option<String>, ExpandError> {
    let Some(v) = opt_word(lexer, env, s)? else {
        return Ok(None);
    };
    let octal_ok = u32::from_str_radix(&v, 8).is_ok_and(|m| m <= 0o7777);
    let numeric = v.chars().next().is_some_and(|c| c.is_ascii_digit());
    if !v.is_empty() && !octal_ok && (numeric || !is_symbolic_mode(&v)) {
        return Err(ExpandError {
            message: format!(
                "invalid chmod parameter: '{v}'. it should be octal string and between 0 and 07777"
            ),
            help: Some("use an octal mode such as 0644 or a symbolic one such as u+x".into()),
            span: None,
        });
    }
    Ok(Some(v))
}

fn is_http_source(src: &str) -> bool {
    src.starts_with("http://") || src.starts_with("https://")
}

fn is_git_source(src: &str) -> bool {
    ["git://", "git@", "ssh://", "github.com/"].iter().any(|p| src.starts_with(p))
}

fn heredoc_sources(env: &dyn Env, list: &[HeredocSource]) -> Result<Vec<HeredocSource>, ExpandError> {
    // Heredoc bodies are expanded without quote processing, with `\` as escape whatever the
    // file's escape character is (as BuildKit does).
    let raw = Lexer::new('\\').skip_process_quotes(true);
    list.iter()
        .map(|h| {
            let data = if h.expand { raw.process_word(&h.data, env)? } else { h.data.clone() };
            Ok(HeredocSource { data, ..h.clone() })
        })
        .collect()
}

impl Command {
    /// This command with BuildKit's expansion applied, using `lexer` (built with the
    /// Dockerfile's escape character) and the variables in `env`. Instructions BuildKit
    /// does not expand are returned unchanged.
    pub fn expand(&self, lexer: &Lexer, env: &dyn Env) -> Result<Command, ExpandError> {
        Ok(match self {
            Command::From(f) => {
                let base = word(lexer, env, &f.base)?;
                if base.is_empty() {
                    return Err(ExpandError::new(format!("base name ({}) should not be blank", f.base)));
                }
                Command::From(FromCommand {
                    base,
                    name: f.name.clone(),
                    platform: opt_word(lexer, env, &f.platform)?,
                })
            }
            Command::Run(r) => {
                let mut expander = |v: &str| {
                    lexer.process_word(v, env).map_err(|e| MountError { message: e.to_string(), help: None })
                };
                let mounts = r
                    .mounts
                    .iter()
                    .map(|m| MountSpec::parse(&m.raw, Some(&mut expander)))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut r = r.clone();
                r.mounts = mounts;
                Command::Run(r)
            }
            Command::Copy(c) => {
                if let Some(from) = &c.from {
                    let probe = lexer.process_word_with_matches(from, env)?;
                    if !probe.matched.is_empty() || !probe.unmatched.is_empty() {
                        return Err(ExpandError {
                            message: "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround".into(),
                            help: None,
                            span: None,
                        });
                    }
                }
                let mut c = c.clone();
                c.chown = opt_word(lexer, env, &c.chown)?;
                c.chmod = chmod(lexer, env, &c.chmod)?;
                c.heredoc_sources = heredoc_sources(env, &c.heredoc_sources)?;
                c.sources = words(lexer, env, &c.sources)?;
                c.dest = word(lexer, env, &c.dest)?;
                // A `.git` URL is a repository: lowering rejects it with BuildKit's git message.
                if c.sources
                    .iter()
                    .any(|s| is_http_source(s) && !s.split(['#', '?']).next().unwrap_or(s).ends_with(".git"))
                {
                    return Err(ExpandError {
                        message: "source can't be a URL for COPY".into(),
                        help: Some("use ADD to download a URL".into()),
                        span: None,
                    });
                }
                Command::Copy(c)
            }
            Command::Add(a) => {
                let mut a = a.clone();
                a.chown = opt_word(lexer, env, &a.chown)?;
                a.chmod = chmod(lexer, env, &a.chmod)?;
                a.checksum = opt_word(lexer, env, &a.checksum)?;
                a.heredoc_sources = heredoc_sources(env, &a.heredoc_sources)?;
                a.sources = words(lexer, env, &a.sources)?;
                a.dest = word(lexer, env, &a.dest)?;
                if a.checksum.as_deref().is_some_and(|c| !c.is_empty()) {
                    if a.sources.len() != 1 {
                        return Err(ExpandError::new("checksum can't be specified for multiple sources"));
                    }
                    if !is_http_source(&a.sources[0]) && !is_git_source(&a.sources[0]) {
                        return Err(ExpandError::new("checksum requires HTTP(S) or Git sources"));
                    }
                }
                Command::Add(a)
            }
            Command::Env(list) => Command::Env(kvs(lexer, env, list)?),
            Command::Label(list) => Command::Label(kvs(lexer, env, list)?),
            Command::Arg(defs) => Command::Arg(
                defs.iter()
                    .map(|d| {
                        let mut d = d.clone();
                        d.key = word(lexer, env, &d.key)?;
                        d.value = opt_word(lexer, env, &d.value)?;
                        Ok(d)
                    })
                    .collect::<Result<Vec<_>, ExpandError>>()?,
            ),
            Command::Expose(ports) => {
                let mut out = Vec::new();
                for p in ports {
                    out.extend(lexer.process_words(p, env)?);
                }
                Command::Expose(out)
            }
            Command::Workdir(p) => Command::Workdir(word(lexer, env, p)?),
            Command::User(u) => Command::User(word(lexer, env, u)?),
            Command::StopSignal(s) => Command::StopSignal(word(lexer, env, s)?),
            Command::Volume(vols) => {
                let vols = words(lexer, env, vols)?;
                if vols.iter().any(|v| v.is_empty()) {
                    return Err(ExpandError::new("VOLUME specified can not be an empty string"));
                }
                Command::Volume(vols)
            }
            Command::Cmd(_)
            | Command::Entrypoint(_)
            | Command::Shell(_)
            | Command::Healthcheck(_)
            | Command::Onbuild(_)
            | Command::Maintainer(_) => self.clone(),
        })
    }
}

impl Instruction {
    /// [`Command::expand`] of this instruction; errors carry the instruction's span.
    pub fn expand(&self, lexer: &Lexer, env: &dyn Env) -> Result<Instruction, ExpandError> {
        match self.command.expand(lexer, env) {
            Ok(command) => Ok(Instruction { command, ..self.clone() }),
            Err(mut e) => {
                e.span = Some(self.span);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::EnvList;

    fn expand_first(src: &str, env: &EnvList) -> Result<Command, String> {
        let df = crate::parse(&format!("FROM x\n{src}"), "Dockerfile").map_err(|e| e.to_string())?;
        df.stages[0].instructions[0].command.expand(&df.lexer(), env).map_err(|e| e.message)
    }

    #[test]
    fn rules() {
        let env = EnvList::from_pairs([("A", "1"), ("B", "two words"), ("M", "0644")]);
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("RUN echo $A", Ok("Run echo $A")),
            ("ENV K$A=$B", Ok("Env K1=two words")),
            ("EXPOSE $B 80", Ok("Expose two words 80")),
            ("WORKDIR /x/$A", Ok("Workdir /x/1")),
            (
                "COPY --from=$A a b",
                Err(
                    "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
                ),
            ),
            ("COPY --chmod=$M a b", Ok("Copy chmod=0644")),
            (
                "COPY --chmod=64a a b",
                Err("invalid chmod parameter: '64a'. it should be octal string and between 0 and 07777"),
            ),
            ("COPY --chmod=u+x,go-w a b", Ok("Copy chmod=u+x,go-w")),
            (
                "COPY --chmod=u+q a b",
                Err("invalid chmod parameter: 'u+q'. it should be octal string and between 0 and 07777"),
            ),
            ("ADD --checksum=sha256:0 a b", Err("checksum requires HTTP(S) or Git sources")),
            ("RUN --mount=typ=tmpfs true", Err("unexpected key 'typ' in 'typ=tmpfs'")),
            ("COPY <<EOF /a\n\"$A\" \\$A\nEOF", Ok("Copy data=\"1\" $A\n")),
            ("COPY <<'EOF' /a\n$A\nEOF", Ok("Copy data=$A\n")),
        ];
        for (src, want) in cases {
            let got = expand_first(src, &env).map(|c| match c {
                Command::Run(r) => format!(
                    "Run {}",
                    match r.cmd {
                        super::super::CommandLine::Shell(s) => s,
                        _ => String::new(),
                    }
                ),
                Command::Env(kv) => format!("Env {}={}", kv[0].key, kv[0].value),
                Command::Expose(p) => format!("Expose {}", p.join(" ")),
                Command::Workdir(w) => format!("Workdir {w}"),
                Command::Copy(c) if !c.heredoc_sources.is_empty() => {
                    format!("Copy data={}", c.heredoc_sources[0].data)
                }
                Command::Copy(c) => format!("Copy chmod={}", c.chmod.unwrap_or_default()),
                other => format!("{other:?}"),
            });
            assert_eq!(got.as_deref().map_err(|e| e.as_str()), *want, "{src}");
        }
    }
}
