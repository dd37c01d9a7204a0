//! The rules that can be decided from the Dockerfile alone.
//!
//! BuildKit runs some of these while dispatching, with values already expanded; here a
//! value that still contains a variable is left alone rather than guessed.

use std::collections::HashSet;
use std::sync::OnceLock;

use regex::Regex;

use super::Warning;
use super::rules::{self, Rule};
use crate::instructions::{Command, CommandLine, Dockerfile, Instruction, Stage};
use crate::shell::{EnvList, Lexer};

pub(super) fn run(df: &Dockerfile) -> Vec<Warning> {
    let mut out = Vec::new();
    let mut warn = |rule: Rule, message: String, span| out.push(Warning::new(rule, message, span));
    instruction_casing(df, &mut warn);
    for inst in &df.meta_args {
        args_and_env(inst, &mut warn);
    }
    let mut seen = HashSet::new();
    for stage in &df.stages {
        from_checks(stage, &mut warn);
        if let Some(name) = stage.normalized_name() {
            if name == "context" || name == "scratch" {
                warn(rules::RESERVED_STAGE_NAME, rules::reserved_stage_name(&name), stage.span);
            }
            if !seen.insert(name.clone()) {
                warn(rules::DUPLICATE_STAGE_NAME, rules::duplicate_stage_name(&name), stage.span);
            }
        }
    }
    stage_checks(df, &mut warn);
    invalid_default_arg_in_from(df, &mut warn);
    out
}

type Warn<'a> = dyn FnMut(Rule, String, crate::Span) + 'a;

fn all_instructions(df: &Dockerfile) -> Vec<&Instruction> {
    let mut all: Vec<&Instruction> = df.meta_args.iter().collect();
    for s in &df.stages {
        all.push(&s.from);
        all.extend(s.instructions.iter());
    }
    all
}

fn instruction_casing(df: &Dockerfile, warn: &mut Warn<'_>) {
    let all = all_instructions(df);
    let (mut lower, mut upper) = (0, 0);
    for i in &all {
        let k = &i.keyword;
        if *k == k.to_lowercase() {
            lower += 1;
        } else if *k == k.to_uppercase() {
            upper += 1;
        }
    }
    let majority_lower = lower > upper;
    for i in all {
        let k = &i.keyword;
        let casing = if majority_lower && *k != k.to_lowercase() {
            "lowercase"
        } else if !majority_lower && *k != k.to_uppercase() {
            "uppercase"
        } else {
            continue;
        };
        warn(rules::CONSISTENT_INSTRUCTION_CASING, rules::consistent_instruction_casing(k, casing), i.span);
    }
}

/// The words of FROM after the keyword and flags: base, `AS`, name.
fn from_words(stage: &Stage) -> Vec<&str> {
    stage.from.source_text.split_whitespace().skip(1).skip_while(|w| w.starts_with("--")).collect()
}

fn from_checks(stage: &Stage, warn: &mut Warn<'_>) {
    let span = stage.span;
    if let Some(name) = &stage.name {
        if *name != name.to_lowercase() {
            warn(rules::STAGE_NAME_CASING, rules::stage_name_casing(name), span);
        }
        let words = from_words(stage);
        let from = &stage.from.keyword;
        if let Some(as_kw) = words.get(1) {
            let from_lower = *from == from.to_lowercase();
            let from_upper = *from == from.to_uppercase();
            let mismatch = if from_lower {
                *as_kw != as_kw.to_lowercase()
            } else if from_upper {
                *as_kw != as_kw.to_uppercase()
            } else {
                false
            };
            if mismatch {
                warn(rules::FROM_AS_CASING, rules::from_as_casing(from, as_kw), span);
            }
        }
    }
    let Some(platform) = &stage.platform else {
        return;
    };
    if platform == "$TARGETPLATFORM" || platform == "${TARGETPLATFORM}" {
        warn(rules::REDUNDANT_TARGET_PLATFORM, rules::redundant_target_platform(platform), span);
        return;
    }
    if platform.contains('$') {
        return;
    }
    let Ok(value) = Lexer::new('\\').process_word(platform, &EnvList::new()) else {
        return;
    };
    let Some((os, arch)) = parse_platform(&value) else {
        return;
    };
    let name = stage.normalized_name().unwrap_or_default();
    if name.contains(&os) || name.contains(&arch) {
        return;
    }
    warn(
        rules::FROM_PLATFORM_FLAG_CONST_DISALLOWED,
        rules::from_platform_flag_const_disallowed(&value),
        span,
    );
}

/// `os/arch[/variant]` normalized like containerd's `platforms.Parse`.
fn parse_platform(s: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = s.split('/').collect();
    let ok = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if parts.iter().any(|p| !ok(p)) || parts.len() > 3 {
        return None;
    }
    let norm_arch = |a: &str| {
        match a.to_lowercase().as_str() {
            "i386" => "386",
            "x86_64" | "x86-64" | "amd64" => "amd64",
            "aarch64" | "arm64" => "arm64",
            "armhf" | "armel" | "arm" => "arm",
            other => return other.to_string(),
        }
        .to_string()
    };
    let known_os = [
        "linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos", "android", "ios",
        "aix", "plan9", "js", "wasip1",
    ];
    let os = parts[0].to_lowercase().replace("macos", "darwin");
    if parts.len() == 1 {
        if known_os.contains(&os.as_str()) {
            return Some((os, "amd64".into()));
        }
        let arch = norm_arch(parts[0]);
        let known_arch = [
            "386", "amd64", "arm", "arm64", "ppc64le", "s390x", "riscv64", "mips64le", "loong64", "ppc64",
            "mips", "mipsle", "mips64", "wasm",
        ];
        return known_arch.contains(&arch.as_str()).then(|| ("linux".to_string(), arch));
    }
    Some((os, norm_arch(parts[1])))
}

fn secrets_regexes() -> &'static (Regex, Regex) {
    static RE: OnceLock<(Regex, Regex)> = OnceLock::new();
    RE.get_or_init(|| {
        let deny = r"(?i)(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)";
        let allow = r"(?i)(?:_|^)(?:public)(?:_|$)";
        let compile = |p: &str| Regex::new(p).unwrap_or_else(|_| unreachable!("static pattern"));
        (compile(deny), compile(allow))
    })
}

fn secret_key(instruction: &str, key: &str, span: crate::Span, warn: &mut Warn<'_>) {
    let (deny, allow) = secrets_regexes();
    if deny.is_match(key) && !allow.is_match(key) {
        warn(rules::SECRETS_USED_IN_ARG_OR_ENV, rules::secrets_used_in_arg_or_env(instruction, key), span);
    }
}

fn args_and_env(inst: &Instruction, warn: &mut Warn<'_>) {
    match &inst.command {
        Command::Arg(defs) => {
            for d in defs {
                secret_key("ARG", &d.key, inst.span, warn);
            }
        }
        Command::Env(kvs) | Command::Label(kvs) => {
            for kv in kvs {
                if kv.legacy {
                    warn(
                        rules::LEGACY_KEY_VALUE_FORMAT,
                        rules::legacy_key_value_format(&inst.keyword),
                        inst.span,
                    );
                }
                if matches!(inst.command, Command::Env(_)) {
                    secret_key("ENV", &kv.key, inst.span, warn);
                }
            }
        }
        _ => {}
    }
}

/// What a stage leaves behind for stages built on it.
#[derive(Clone, Copy, Default)]
struct Inherited {
    shell: bool,
    workdir: bool,
}

fn stage_checks(df: &Dockerfile, warn: &mut Warn<'_>) {
    let parents = df.stage_parents();
    let mut after: Vec<Inherited> = Vec::with_capacity(df.stages.len());
    for (index, stage) in df.stages.iter().enumerate() {
        let mut state = parents[index].map(|p| after[p]).unwrap_or_default();
        let mut last_cmd: Option<&Instruction> = None;
        let mut last_entrypoint: Option<&Instruction> = None;
        let mut last_health: Option<&Instruction> = None;
        for inst in &stage.instructions {
            args_and_env(inst, warn);
            let tracker = match &inst.command {
                Command::Cmd(_) => Some(&mut last_cmd),
                Command::Entrypoint(_) => Some(&mut last_entrypoint),
                Command::Healthcheck(_) => Some(&mut last_health),
                _ => None,
            };
            if let Some(prev) = tracker {
                if let Some(p) = prev {
                    let msg = rules::multiple_instructions_disallowed(&inst.keyword);
                    warn(rules::MULTIPLE_INSTRUCTIONS_DISALLOWED, msg, p.span);
                }
                *prev = Some(inst);
            }
            match &inst.command {
                Command::Maintainer(_) => {
                    warn(rules::MAINTAINER_DEPRECATED, rules::maintainer_deprecated(), inst.span)
                }
                Command::Shell(_) => state.shell = true,
                Command::Cmd(CommandLine::Shell(_)) | Command::Entrypoint(CommandLine::Shell(_))
                    if !state.shell =>
                {
                    warn(
                        rules::JSON_ARGS_RECOMMENDED,
                        rules::json_args_recommended(&inst.keyword),
                        inst.span,
                    );
                }
                Command::Workdir(path) => {
                    if !state.workdir && !path.starts_with('/') && !path.contains('$') {
                        warn(rules::WORKDIR_RELATIVE_PATH, rules::workdir_relative_path(path), inst.span);
                    }
                    state.workdir = true;
                }
                Command::Expose(ports) => {
                    for p in ports.iter().filter(|p| !p.contains('$')) {
                        let (port, proto) = p.split_once('/').unwrap_or((p, ""));
                        if port.contains(':') {
                            warn(rules::EXPOSE_INVALID_FORMAT, rules::expose_invalid_format(p), inst.span);
                        }
                        if proto != proto.to_lowercase() {
                            warn(rules::EXPOSE_PROTO_CASING, rules::expose_proto_casing(p), inst.span);
                        }
                    }
                }
                _ => {}
            }
        }
        after.push(state);
    }
}

/// `InvalidDefaultArgInFrom`: a FROM that uses variables and, with only the defaults of the
/// global ARGs, names no valid image.
fn invalid_default_arg_in_from(df: &Dockerfile, warn: &mut Warn<'_>) {
    let lexer = df.lexer();
    // The predefined platform arguments, with the values of a linux/amd64 build: only the
    // validity of the result matters here.
    let mut env = EnvList::from_pairs([
        ("BUILDPLATFORM", "linux/amd64"),
        ("BUILDOS", "linux"),
        ("BUILDARCH", "amd64"),
        ("BUILDVARIANT", ""),
        ("TARGETPLATFORM", "linux/amd64"),
        ("TARGETOS", "linux"),
        ("TARGETARCH", "amd64"),
        ("TARGETVARIANT", ""),
    ]);
    for inst in &df.meta_args {
        let Command::Arg(defs) = &inst.command else { continue };
        for d in defs {
            if let Some(v) = &d.value {
                match lexer.process_word(v, &env) {
                    Ok(v) => env.set(d.key.clone(), v),
                    Err(_) => return,
                }
            }
        }
    }
    for stage in &df.stages {
        if !stage.base.contains('$') {
            continue;
        }
        let Ok(name) = lexer.process_word(&stage.base, &env) else {
            return;
        };
        if !is_valid_reference(&name) {
            warn(
                rules::INVALID_DEFAULT_ARG_IN_FROM,
                rules::invalid_default_arg_in_from(&stage.base),
                stage.span,
            );
        }
    }
}

/// Whether `s` parses as a Docker image reference (`ParseNormalizedNamed`).
pub(crate) fn is_valid_reference(s: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        let component = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
        let domain_comp = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
        let domain = format!(r"(?:{domain_comp}(?:\.{domain_comp})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?");
        let name = format!(r"(?:{domain}/)?{component}(?:/{component})*");
        let tag = r"[\w][\w.-]{0,127}";
        let digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
        Regex::new(&format!("^{name}(?::{tag})?(?:@{digest})?$"))
            .unwrap_or_else(|_| unreachable!("static pattern"))
    });
    if s.is_empty() || s.len() > 255 + 128 + 80 || !re.is_match(s) {
        return false;
    }
    let path = s.split(['@']).next().unwrap_or(s);
    // A 64-character hex string is an image ID, not a name.
    !(path.len() == 64 && path.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        for ok in [
            "busybox",
            "docker.io/library/busybox:1.36",
            "localhost:5000/a/b@sha256:0123456789abcdef0123456789abcdef",
            "scratch",
        ] {
            assert!(is_valid_reference(ok), "{ok}");
        }
        for bad in ["", "Busybox", "img:", ":tag", "a//b"] {
            assert!(!is_valid_reference(bad), "{bad}");
        }
    }

    #[test]
    fn platforms() {
        assert_eq!(parse_platform("linux/amd64"), Some(("linux".into(), "amd64".into())));
        assert_eq!(parse_platform("linux/x86_64"), Some(("linux".into(), "amd64".into())));
        assert_eq!(parse_platform("arm64"), Some(("linux".into(), "arm64".into())));
        assert_eq!(parse_platform("a b"), None);
    }
}
