//! Raw instructions to typed ones, with BuildKit's argument and flag validation
//! (`instructions/parse.go`), in BuildKit's order of checks.

use super::flags::{BFlags, FlagError};
use super::run_flags::{NetworkMode, SecurityMode, parse_device};
use super::run_mount::MountSpec;
use super::{
    AddCommand, ArgDef, Command, CommandLine, CopyCommand, FromCommand, Healthcheck, HealthcheckSpec,
    HeredocSource, Instruction, KeyValue, OnbuildCommand, RunCommand, parse_go_duration,
};
use crate::error::{DockerfileError, LineIndex, Span};
use crate::suggest;
use crate::syntax::{Heredoc, RawArg, RawInstruction, chomp_heredoc_content, go_quote, must_parse_heredoc};

/// All instruction keywords, for suggestions.
pub(crate) const INSTRUCTIONS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// What part of the instruction an error points at.
enum At {
    Keyword,
    Flag(usize),
    /// The flag given as `--<name>...`.
    FlagNamed(&'static str),
    Rest,
}

struct ConvError {
    at: At,
    message: String,
    help: Option<String>,
}

type CResult<T> = Result<T, ConvError>;

fn fail<T>(message: impl Into<String>) -> CResult<T> {
    Err(ConvError { at: At::Rest, message: message.into(), help: None })
}

impl From<FlagError> for ConvError {
    fn from(e: FlagError) -> ConvError {
        ConvError { at: At::Flag(e.index), message: e.message, help: e.help }
    }
}

fn at_least_one(cmd: &str) -> ConvError {
    ConvError { at: At::Keyword, message: format!("{cmd} requires at least one argument"), help: None }
}

fn exactly_one(cmd: &str) -> ConvError {
    ConvError { at: At::Keyword, message: format!("{cmd} requires exactly one argument"), help: None }
}

fn no_destination(cmd: &str) -> ConvError {
    ConvError {
        at: At::Rest,
        message: format!(
            "{cmd} requires at least two arguments, but only one was provided. Destination could not be determined"
        ),
        help: Some("add a destination path after the source".into()),
    }
}

/// The description in `comments` for `name` (`# name description`).
pub(crate) fn get_comment(comments: &[String], name: &str) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    let prefix = format!("{name} ");
    comments.iter().find_map(|c| c.strip_prefix(&prefix).map(str::to_string))
}

/// Converts one raw instruction. `source` and `file_name` are used to place errors; the
/// spans of `node` must point into `source`.
pub fn parse_instruction(
    node: &RawInstruction,
    source: &str,
    file_name: &str,
) -> Result<Instruction, DockerfileError> {
    convert(node, source, file_name, &LineIndex::new(source))
}

pub(crate) fn convert(
    node: &RawInstruction,
    source: &str,
    file_name: &str,
    index: &LineIndex,
) -> Result<Instruction, DockerfileError> {
    convert_command(node).map(|command| make_instruction(node, command)).map_err(|e| {
        let span = match e.at {
            At::Keyword => node.keyword_span,
            At::Flag(i) => node.flag_spans.get(i).copied().unwrap_or(node.keyword_span),
            At::FlagNamed(name) => node
                .flags
                .iter()
                .position(|f| {
                    f.strip_prefix("--")
                        .and_then(|f| f.strip_prefix(name))
                        .is_some_and(|r| r.starts_with('='))
                })
                .and_then(|i| node.flag_spans.get(i).copied())
                .unwrap_or(node.keyword_span),
            At::Rest if node.rest_span.end > node.rest_span.start => node.rest_span,
            At::Rest => node.keyword_span,
        };
        let span = if span.end > span.start { span } else { Span { end: span.start, ..span } };
        DockerfileError::at(file_name, source, index, span.start, span.end, e.message).with_help(e.help)
    })
}

fn make_instruction(node: &RawInstruction, command: Command) -> Instruction {
    Instruction {
        command,
        keyword: node.keyword.clone(),
        span: node.span,
        source_text: node.original.trim().to_string(),
    }
}

fn command_line(args: &[String], json: bool) -> CommandLine {
    if json { CommandLine::Exec(args.to_vec()) } else { CommandLine::Shell(args.join(" ")) }
}

fn kvps(args: &[String], cmd: &str) -> CResult<Vec<super::KeyValue>> {
    if args.is_empty() {
        return Err(at_least_one(cmd));
    }
    if !args.len().is_multiple_of(3) {
        return fail(format!("Bad input to {cmd}, too many arguments"));
    }
    args.chunks(3)
        .map(|c| {
            if c[0].is_empty() {
                return fail(format!("{cmd} names can not be blank"));
            }
            Ok(KeyValue { key: c[0].clone(), value: c[1].clone(), legacy: c[2].is_empty() })
        })
        .collect()
}

fn sources_and_dest(
    args: &[String],
    heredocs: &[Heredoc],
    cmd: &str,
) -> CResult<(Vec<String>, Vec<HeredocSource>, String)> {
    let Some((dest, srcs)) = args.split_last() else {
        return Err(no_destination(cmd));
    };
    if must_parse_heredoc(dest).is_some() {
        return fail(format!("{cmd} cannot accept a heredoc as a destination"));
    }
    let mut paths = Vec::new();
    let mut contents = Vec::new();
    for src in srcs {
        match must_parse_heredoc(src) {
            Some(h) => {
                let content = heredocs
                    .iter()
                    .rev()
                    .find(|d| d.name == h.name)
                    .map(|d| d.content.as_str())
                    .unwrap_or("");
                let data = if h.chomp { chomp_heredoc_content(content) } else { content.to_string() };
                contents.push(HeredocSource { path: h.name, data, expand: h.expand });
            }
            None => paths.push(src.clone()),
        }
    }
    Ok((paths, contents, dest.clone()))
}

fn nonempty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn interval(flags: &BFlags, name: &'static str) -> CResult<i64> {
    let v = flags.value(name);
    if v.is_empty() {
        return Ok(0);
    }
    let at_flag =
        |message: String, help: Option<String>| ConvError { at: At::FlagNamed(name), message, help };
    let d = parse_go_duration(v)
        .map_err(|m| at_flag(m, Some("use a duration such as 30s, 1m30s or 500ms".into())))?;
    if d == 0 {
        return Ok(0);
    }
    if d < 1_000_000 {
        return Err(at_flag(format!("Interval {} cannot be less than 1ms", go_quote(name)), None));
    }
    Ok(d)
}

/// BuildKit's hint for SHELL written without JSON.
fn not_json(cmd: &str, original: &str) -> ConvError {
    let lower = original.to_lowercase().replace(&format!("{} ", cmd.to_lowercase()), "");
    let looks_like_path = lower.find("\"").is_some_and(|i| {
        let b = lower.as_bytes();
        b.len() > i + 3 && b[i + 1].is_ascii_lowercase() && b[i + 2] == b':' && b[i + 3] == b'\\'
    });
    let extra = if looks_like_path && !lower.contains("\\\\") && lower.contains('[') && lower.contains(']') {
        format!(
            ". It looks like '{lower}' includes a file path without an escaped back-slash. JSON requires back-slashes to be escaped such as [\"c:\\\\path\\\\to\\\\file.exe\", \"/parameter\"]"
        )
    } else {
        String::new()
    };
    ConvError {
        at: At::Rest,
        message: format!("{cmd} requires the arguments to be in JSON form{extra}"),
        help: Some(format!("write it as {cmd} [\"executable\", \"param1\"]")),
    }
}

fn convert_command(node: &RawInstruction) -> CResult<Command> {
    let args = node.arg_strings();
    let mut flags = BFlags::new(&node.flags);
    let keyword = node.keyword.to_lowercase();
    Ok(match keyword.as_str() {
        "env" => {
            flags.parse()?;
            Command::Env(kvps(&args, "ENV")?)
        }
        "maintainer" => {
            if args.len() != 1 {
                return Err(exactly_one("MAINTAINER"));
            }
            flags.parse()?;
            Command::Maintainer(args[0].clone())
        }
        "label" => {
            flags.parse()?;
            Command::Label(kvps(&args, "LABEL")?)
        }
        "add" => {
            if args.len() < 2 {
                return Err(no_destination("ADD"));
            }
            flags.add_strings("exclude");
            flags.add_string("chown", "");
            flags.add_string("chmod", "");
            flags.add_bool("link", false);
            flags.add_bool("keep-git-dir", false);
            flags.add_string("checksum", "");
            flags.add_bool("unpack", false);
            flags.parse()?;
            let (sources, heredoc_sources, dest) = sources_and_dest(&args, &node.heredocs, "ADD")?;
            Command::Add(AddCommand {
                sources,
                heredoc_sources,
                dest,
                chown: nonempty(flags.value("chown")),
                chmod: nonempty(flags.value("chmod")),
                link: flags.is_true("link"),
                exclude: flags.values("exclude").to_vec(),
                checksum: nonempty(flags.value("checksum")),
                keep_git_dir: flags.is_true("keep-git-dir"),
                unpack: flags.is_used("unpack").then(|| flags.is_true("unpack")),
            })
        }
        "copy" => {
            if args.len() < 2 {
                return Err(no_destination("COPY"));
            }
            flags.add_strings("exclude");
            flags.add_bool("parents", false);
            flags.add_string("chown", "");
            flags.add_string("from", "");
            flags.add_string("chmod", "");
            flags.add_bool("link", false);
            flags.parse()?;
            let (sources, heredoc_sources, dest) = sources_and_dest(&args, &node.heredocs, "COPY")?;
            Command::Copy(CopyCommand {
                sources,
                heredoc_sources,
                dest,
                from: nonempty(flags.value("from")),
                chown: nonempty(flags.value("chown")),
                chmod: nonempty(flags.value("chmod")),
                link: flags.is_true("link"),
                exclude: flags.values("exclude").to_vec(),
                parents: flags.is_true("parents"),
            })
        }
        "from" => {
            let name = match args.len() {
                3 if args[1].eq_ignore_ascii_case("as") => {
                    let lower = args[2].to_lowercase();
                    let valid = lower.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                        && lower
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
                    if !valid {
                        return fail(format!(
                            "invalid name for build stage: {}, name can't start with a number or contain symbols",
                            go_quote(&args[2])
                        ));
                    }
                    Some(args[2].clone())
                }
                1 => None,
                _ => {
                    return Err(ConvError {
                        at: At::Rest,
                        message: "FROM requires either one or three arguments".into(),
                        help: Some("use FROM <image> [AS <name>]".into()),
                    });
                }
            };
            flags.add_string("platform", "");
            flags.parse()?;
            Command::From(FromCommand {
                base: args[0].clone(),
                name,
                platform: nonempty(flags.value("platform")),
            })
        }
        "onbuild" => {
            if args.is_empty() {
                return Err(at_least_one("ONBUILD"));
            }
            flags.parse()?;
            let trigger = args[0].trim().to_uppercase();
            match trigger.as_str() {
                "ONBUILD" => return fail("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
                "MAINTAINER" | "FROM" => {
                    return fail(format!("{trigger} isn't allowed as an ONBUILD trigger"));
                }
                _ => {}
            }
            let mut expression = strip_onbuild(&node.original).to_string();
            for h in &node.heredocs {
                expression.push('\n');
                expression.push_str(&h.content);
                expression.push_str(&h.name);
            }
            let trigger = match node.args.first() {
                Some(RawArg::Instruction(child)) => {
                    let mut child = child.as_ref().clone();
                    child.heredocs = node.heredocs.clone();
                    convert_command(&child).ok().map(|c| Box::new(make_instruction(&child, c)))
                }
                _ => None,
            };
            Command::Onbuild(OnbuildCommand { expression, trigger })
        }
        "workdir" => {
            if args.len() != 1 {
                return Err(exactly_one("WORKDIR"));
            }
            flags.parse()?;
            Command::Workdir(args[0].clone())
        }
        "run" => {
            flags.add_strings("device");
            flags.add_strings("mount");
            flags.add_string("network", "default");
            flags.add_string("security", "sandbox");
            flags.parse()?;
            let flags_used = flags.used();
            let cmd = command_line(&args, node.json);
            let devices = flags
                .values("device")
                .iter()
                .map(|d| {
                    parse_device(d).map_err(|(message, help)| ConvError { at: At::Keyword, message, help })
                })
                .collect::<CResult<Vec<_>>>()?;
            let mounts = flags
                .values("mount")
                .iter()
                .map(|m| {
                    MountSpec::parse(m, None).map_err(|e| ConvError {
                        at: At::Keyword,
                        message: e.message,
                        help: e.help,
                    })
                })
                .collect::<CResult<Vec<_>>>()?;
            let network = NetworkMode::parse(flags.value("network")).map_err(|m| ConvError {
                at: At::Keyword,
                message: m,
                help: Some("use default, none or host".into()),
            })?;
            let security = SecurityMode::parse(flags.value("security")).map_err(|m| ConvError {
                at: At::Keyword,
                message: m,
                help: Some("use sandbox or insecure".into()),
            })?;
            Command::Run(RunCommand {
                cmd,
                heredocs: node.heredocs.clone(),
                mounts,
                network,
                security,
                devices,
                flags_used,
            })
        }
        "cmd" => {
            flags.parse()?;
            Command::Cmd(command_line(&args, node.json))
        }
        "entrypoint" => {
            flags.parse()?;
            Command::Entrypoint(command_line(&args, node.json))
        }
        "healthcheck" => {
            if args.is_empty() {
                return Err(at_least_one("HEALTHCHECK"));
            }
            let typ = args[0].to_uppercase();
            let rest = &args[1..];
            if typ == "NONE" {
                if !rest.is_empty() {
                    return fail("HEALTHCHECK NONE takes no arguments");
                }
                return Ok(Command::Healthcheck(Healthcheck::Disable));
            }
            for name in ["interval", "timeout", "start-period", "start-interval", "retries"] {
                flags.add_string(name, "");
            }
            flags.parse()?;
            if typ != "CMD" {
                return Err(ConvError {
                    at: At::Rest,
                    message: format!("Unknown type {} in HEALTHCHECK (try CMD)", go_quote(&typ)),
                    help: None,
                });
            }
            if rest.is_empty() {
                return fail("Missing command after HEALTHCHECK CMD");
            }
            let test = if node.json {
                std::iter::once("CMD".to_string()).chain(rest.iter().cloned()).collect()
            } else {
                vec!["CMD-SHELL".to_string(), rest.join(" ")]
            };
            let spec = HealthcheckSpec {
                test,
                interval: interval(&flags, "interval")?,
                timeout: interval(&flags, "timeout")?,
                start_period: interval(&flags, "start-period")?,
                start_interval: interval(&flags, "start-interval")?,
                retries: match flags.value("retries") {
                    "" => 0,
                    v => {
                        let r: i64 =
                            v.parse().ok().filter(|r: &i64| i32::try_from(*r).is_ok()).ok_or_else(|| {
                                ConvError {
                                    at: At::FlagNamed("retries"),
                                    message: format!(
                                        "strconv.ParseInt: parsing {}: invalid syntax",
                                        go_quote(v)
                                    ),
                                    help: None,
                                }
                            })?;
                        if r < 0 {
                            return Err(ConvError {
                                at: At::FlagNamed("retries"),
                                message: format!("--retries cannot be negative ({r})"),
                                help: None,
                            });
                        }
                        r
                    }
                },
            };
            Command::Healthcheck(Healthcheck::Check(spec))
        }
        "expose" => {
            if args.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            flags.parse()?;
            let mut ports = args.clone();
            ports.sort();
            Command::Expose(ports)
        }
        "user" => {
            if args.len() != 1 {
                return Err(exactly_one("USER"));
            }
            flags.parse()?;
            Command::User(args[0].clone())
        }
        "volume" => {
            if args.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            flags.parse()?;
            let mut volumes = Vec::new();
            for v in &args {
                let v = v.trim();
                if v.is_empty() {
                    return fail("VOLUME specified can not be an empty string");
                }
                volumes.push(v.to_string());
            }
            Command::Volume(volumes)
        }
        "stopsignal" => {
            if args.len() != 1 {
                return Err(exactly_one("STOPSIGNAL"));
            }
            Command::StopSignal(args[0].clone())
        }
        "arg" => {
            if args.is_empty() {
                return Err(at_least_one("ARG"));
            }
            let mut defs = Vec::new();
            for arg in &args {
                let (key, value) = match arg.split_once('=') {
                    Some((k, v)) => {
                        if k.is_empty() {
                            return fail("ARG names can not be blank");
                        }
                        (k.to_string(), Some(v.to_string()))
                    }
                    None => (arg.clone(), None),
                };
                let comment = get_comment(&node.prev_comment, &key);
                defs.push(ArgDef { key, value, comment });
            }
            Command::Arg(defs)
        }
        "shell" => {
            flags.parse()?;
            if args.is_empty() {
                return Err(at_least_one("SHELL"));
            }
            if !node.json {
                return Err(not_json("SHELL", &node.original));
            }
            Command::Shell(args)
        }
        _ => {
            return Err(ConvError {
                at: At::Keyword,
                message: format!("unknown instruction: {}", node.keyword),
                help: suggest::did_you_mean(&node.keyword, &INSTRUCTIONS, false),
            });
        }
    })
}

/// `original` without the leading `ONBUILD` keyword (case-insensitive, BuildKit's
/// `(?i)^\s*ONBUILD\s*`).
fn strip_onbuild(original: &str) -> &str {
    let is_space = |c: char| matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ');
    let s = original.trim_start_matches(is_space);
    match s.get(..7) {
        Some(kw) if kw.eq_ignore_ascii_case("onbuild") => s[7..].trim_start_matches(is_space),
        _ => original,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(src: &str) -> Result<Command, String> {
        let raw = crate::syntax::parse_raw(src, "Dockerfile").map_err(|e| e.message)?;
        parse_instruction(&raw.instructions[0], src, "Dockerfile").map(|i| i.command).map_err(|e| {
            // BuildKit's own suggestions are part of its message; rbuild's extra hints are not.
            if e.help.as_deref().is_some_and(|h| h.starts_with("did you mean")) {
                e.full_message()
            } else {
                e.message
            }
        })
    }

    #[test]
    fn errors_in_buildkit_words() {
        let cases = [
            ("MAINTAINER", "MAINTAINER requires exactly one argument"),
            (
                "ADD x",
                "ADD requires at least two arguments, but only one was provided. Destination could not be determined",
            ),
            ("FROM a b", "FROM requires either one or three arguments"),
            (
                "FROM a AS 1x",
                "invalid name for build stage: \"1x\", name can't start with a number or contain symbols",
            ),
            ("RUNN x", "unknown instruction: RUNN (did you mean RUN?)"),
            ("COPY --lnk a b", "unknown flag: --lnk (did you mean link?)"),
            ("SHELL sh -c", "SHELL requires the arguments to be in JSON form"),
            ("HEALTHCHECK --interval=50ns CMD true", "Interval \"interval\" cannot be less than 1ms"),
            ("HEALTHCHECK FOO x", "Unknown type \"FOO\" in HEALTHCHECK (try CMD)"),
            ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
            ("RUN --network=bridge x", "invalid network mode \"bridge\""),
            ("COPY /a <<EOF\nEOF", "COPY cannot accept a heredoc as a destination"),
        ];
        for (src, want) in cases {
            assert_eq!(conv(src).unwrap_err(), want, "{src}");
        }
    }

    #[test]
    fn commands() {
        assert_eq!(
            conv("HEALTHCHECK CMD hello world").unwrap(),
            Command::Healthcheck(Healthcheck::Check(HealthcheckSpec {
                test: vec!["CMD-SHELL".into(), "hello world".into()],
                interval: 0,
                timeout: 0,
                start_period: 0,
                start_interval: 0,
                retries: 0,
            }))
        );
        let Command::Onbuild(o) = conv("ONBUILD RUN <<EOF\nhi\nEOF").unwrap() else { panic!() };
        assert_eq!(o.expression, "RUN <<EOF\nhi\nEOF");
        assert!(matches!(o.trigger.as_deref().map(|t| &t.command), Some(Command::Run(_))));
        assert_eq!(conv("ENTRYPOINT []").unwrap(), Command::Entrypoint(CommandLine::Exec(vec![])));
    }
}
