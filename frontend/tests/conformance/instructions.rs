//! `instructions/`: instruction-level accept/reject cases, flag cases and device cases.
//!
//! Cases of the `instructions.*` phases are checked exactly. Cases of the conversion and
//! build phases are checked by emulating dispatch with the frontend alone: parse, select
//! the target, and expand every instruction with the ARG/ENV values declared before it. An
//! expected error that only a real build can produce (missing files, images, cycles, build
//! results) is reported as deferred, not as a failure.

use frontend::instructions::flags::BFlags;
use frontend::instructions::{Healthcheck, parse_device};
use frontend::shell::{EnvList, Lexer};
use frontend::syntax::{self, RawArg, RawInstruction};
use frontend::{Command, CommandLine, Span};
use serde_json::Value;

use super::{Report, conformance_dir, expect_eq, read_json, strings};

/// Every case except the six deferred to real builds.
const FLOOR: usize = 90;

#[test]
fn instructions_conformance() {
    let Some(root) = conformance_dir("instructions") else {
        return;
    };
    let dir = root.join("instructions");
    let mut report = Report::new("instructions");
    for case in read_json(&dir.join("cases.json")).as_array().unwrap() {
        let id = case["id"].as_str().unwrap().to_string();
        match instruction_case(case) {
            Outcome::Done(result) => report.check(id, result),
            Outcome::Deferred => report.defer(id),
        }
    }
    for (n, case) in read_json(&dir.join("bflags-cases.json")).as_array().unwrap().iter().enumerate() {
        report.check(format!("bflags-{n}"), bflags_case(case));
    }
    for (n, case) in read_json(&dir.join("device-cases.json")).as_array().unwrap().iter().enumerate() {
        report.check(format!("device-{n}"), device_case(case));
    }
    report.finish(FLOOR);
}

enum Outcome {
    Done(Result<(), String>),
    Deferred,
}

/// An error as the frontend reports it: full message and lines.
struct Failure {
    message: String,
    full: String,
    lines: Vec<u64>,
}

impl From<frontend::DockerfileError> for Failure {
    fn from(e: frontend::DockerfileError) -> Failure {
        let lines = (e.span.start_line as u64..=e.span.end_line.max(e.span.start_line) as u64).collect();
        Failure { message: e.message.clone(), full: e.to_string(), lines }
    }
}

fn check_error(case: &Value, got: Failure) -> Result<(), String> {
    if let Some(want) = case["error_substring"].as_str() {
        let exact = case["error_match"].as_str() == Some("exact");
        if exact && got.message != want {
            return Err(format!("message {:?}, want exactly {want:?}", got.message));
        }
        if !exact && !got.full.contains(want) {
            return Err(format!("error {:?} does not contain {want:?}", got.full));
        }
    }
    for s in strings(&case["error_substrings"]) {
        if !got.full.contains(&s) {
            return Err(format!("error {:?} does not contain {s:?}", got.full));
        }
    }
    if case["error_lines"].is_array() {
        let want: Vec<u64> =
            case["error_lines"].as_array().unwrap().iter().filter_map(Value::as_u64).collect();
        expect_eq("error lines", got.lines, want)?;
    }
    Ok(())
}

fn instruction_case(case: &Value) -> Outcome {
    let phase = case["phase"].as_str().unwrap_or_default();
    let expect_error = case["expect_error"].as_bool().unwrap_or(false);
    let dockerfile = case["dockerfile"].as_str().map(|d| d.replace("{{BASE}}", "busybox"));
    if phase.starts_with("instructions.ParseInstruction") {
        let parsed = match (&dockerfile, case["ast"].as_str()) {
            (Some(src), _) => syntax::parse_raw(src, "Dockerfile").map_err(Failure::from).and_then(|raw| {
                frontend::parse_instruction(&raw.instructions[0], src, "Dockerfile").map_err(Failure::from)
            }),
            (None, Some(ast)) => {
                frontend::parse_instruction(&raw_from_dump(ast), "", "Dockerfile").map_err(Failure::from)
            }
            (None, None) => return Outcome::Done(Err("case has neither dockerfile nor ast".into())),
        };
        return Outcome::Done(match (parsed, expect_error) {
            (Err(f), true) => check_error(case, f),
            (Ok(i), true) => Err(format!("accepted, want an error: {:?}", i.command)),
            (Err(f), false) => Err(format!("rejected: {}", f.full)),
            (Ok(i), false) => check_expected(&case["expected"], &i.command),
        });
    }
    let Some(src) = dockerfile else {
        return Outcome::Done(Err("case has no dockerfile".into()));
    };
    if phase.starts_with("instructions.Parse") {
        return Outcome::Done(match frontend::parse(&src, "Dockerfile") {
            Ok(df) => check_doc_comments(&case["expected"], &df),
            Err(e) => Err(format!("rejected: {e}")),
        });
    }
    match (emulate_dispatch(&src, case["target"].as_str()), expect_error) {
        (Err(f), true) => Outcome::Done(check_error(case, f)),
        (Ok(()), true) => Outcome::Deferred,
        (Err(f), false) => Outcome::Done(Err(format!("rejected: {}", f.full))),
        (Ok(()), false) => Outcome::Done(Ok(())),
    }
}

/// Parses, selects the target and expands every instruction like BuildKit's dispatch does,
/// without building anything.
fn emulate_dispatch(src: &str, target: Option<&str>) -> Result<(), Failure> {
    let df = frontend::parse(src, "Dockerfile")?;
    let fail = |e: frontend::ExpandError| Failure::from(e.into_dockerfile_error("Dockerfile", src));
    if let Some(t) = target
        && df.stage_index(t).is_none()
    {
        let span = Span::default();
        return Err(Failure {
            message: format!("target stage {t:?} could not be found"),
            full: String::new(),
            lines: vec![span.start_line as u64],
        });
    }
    let lexer: Lexer = df.lexer();
    let mut meta = EnvList::new();
    for inst in &df.meta_args {
        let inst = inst.expand(&lexer, &meta).map_err(fail)?;
        record(&inst.command, &mut meta);
    }
    for stage in &df.stages {
        stage.from.expand(&lexer, &meta).map_err(fail)?;
        let mut env = EnvList::new();
        for inst in &stage.instructions {
            let inst = inst.expand(&lexer, &env).map_err(fail)?;
            record(&inst.command, &mut env);
        }
    }
    Ok(())
}

fn record(cmd: &Command, env: &mut EnvList) {
    match cmd {
        Command::Arg(defs) => {
            for d in defs {
                env.set(d.key.clone(), d.value.clone().unwrap_or_default());
            }
        }
        Command::Env(kvs) => {
            for kv in kvs {
                env.set(kv.key.clone(), kv.value.clone());
            }
        }
        _ => {}
    }
}

fn check_expected(want: &Value, got: &Command) -> Result<(), String> {
    if want.is_null() {
        return Ok(());
    }
    if let Some(test) = want.get("healthcheck_test") {
        let Command::Healthcheck(Healthcheck::Check(spec)) = got else {
            return Err(format!("not a HEALTHCHECK CMD: {got:?}"));
        };
        return expect_eq("test", spec.test.clone(), strings(test));
    }
    if let Some(flags) = want.get("flags_used") {
        let Command::Run(run) = got else {
            return Err(format!("not a RUN: {got:?}"));
        };
        return expect_eq("flags used", run.flags_used.clone(), strings(flags));
    }
    if let Some(dest) = want.get("dest") {
        let (sources, contents, d) = match got {
            Command::Copy(c) => (&c.sources, &c.heredoc_sources, &c.dest),
            Command::Add(a) => (&a.sources, &a.heredoc_sources, &a.dest),
            other => return Err(format!("not a COPY/ADD: {other:?}")),
        };
        expect_eq("dest", d.as_str(), dest.as_str().unwrap_or_default())?;
        expect_eq("source paths", sources.clone(), strings(&want["source_paths"]))?;
        let got: Vec<Value> = contents
            .iter()
            .map(|c| serde_json::json!({"path": c.path, "data": c.data, "expand": c.expand}))
            .collect();
        return expect_eq(
            "source contents",
            got,
            want["source_contents"].as_array().cloned().unwrap_or_default(),
        );
    }
    if let Some(prepend) = want.get("prepend_shell") {
        let Command::Run(run) = got else {
            return Err(format!("not a RUN: {got:?}"));
        };
        let (shell, line) = match &run.cmd {
            CommandLine::Shell(s) => (true, vec![s.clone()]),
            CommandLine::Exec(a) => (false, a.clone()),
        };
        expect_eq("prepend shell", shell, prepend.as_bool().unwrap_or(false))?;
        expect_eq("cmd line", line, strings(&want["cmd_line"]))?;
        let files: Vec<Value> = run
            .heredocs
            .iter()
            .map(|h| serde_json::json!({"name": h.name, "data": h.content, "chomp": h.chomp}))
            .collect();
        return expect_eq("files", files, want["files"].as_array().cloned().unwrap_or_default());
    }
    Err(format!("unknown expectation {want}"))
}

fn check_doc_comments(want: &Value, df: &frontend::Dockerfile) -> Result<(), String> {
    let args_of = |cmd: &Command| -> Vec<(String, String)> {
        match cmd {
            Command::Arg(defs) => {
                defs.iter().map(|d| (d.key.clone(), d.comment.clone().unwrap_or_default())).collect()
            }
            _ => vec![],
        }
    };
    let want_args = |v: &Value| -> Vec<(String, String)> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        (
                            x["key"].as_str().unwrap_or("").to_string(),
                            x["doc"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let meta: Vec<(String, String)> = df.meta_args.iter().flat_map(|i| args_of(&i.command)).collect();
    expect_eq("meta args", meta, want_args(&want["meta_args"]))?;
    let stages = want["stages"].as_array().cloned().unwrap_or_default();
    expect_eq("stage count", df.stages.len(), stages.len())?;
    for (s, w) in df.stages.iter().zip(&stages) {
        expect_eq(
            "stage name",
            s.normalized_name().unwrap_or_default().as_str(),
            w["name"].as_str().unwrap_or(""),
        )?;
        expect_eq(
            "stage doc",
            s.comment.clone().unwrap_or_default().as_str(),
            w["doc"].as_str().unwrap_or(""),
        )?;
        let cmds = w["commands"].as_array().cloned().unwrap_or_default();
        expect_eq("command count", s.instructions.len(), cmds.len())?;
        for (i, c) in s.instructions.iter().zip(&cmds) {
            expect_eq("command type", i.command.name(), c["type"].as_str().unwrap_or(""))?;
            expect_eq("args", args_of(&i.command), want_args(&c["args"]))?;
        }
    }
    Ok(())
}

/// A raw instruction from BuildKit's dump notation, e.g. `(env "a" "b" "")`.
fn raw_from_dump(dump: &str) -> RawInstruction {
    let inner = dump.trim().trim_start_matches('(').trim_end_matches(')');
    let (keyword, mut rest) = inner.split_once(' ').unwrap_or((inner, ""));
    let mut words = Vec::new();
    while let Some(start) = rest.find('"') {
        let mut word = String::new();
        let mut chars = rest[start + 1..].char_indices();
        let mut end = rest.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => word.push(chars.next().map(|(_, c)| c).unwrap_or('\\')),
                '"' => {
                    end = start + 1 + i + 1;
                    break;
                }
                c => word.push(c),
            }
        }
        words.push(RawArg::Word(word));
        rest = &rest[end..];
    }
    RawInstruction {
        keyword: keyword.to_uppercase(),
        flags: vec![],
        args: words,
        json: false,
        heredocs: vec![],
        original: String::new(),
        prev_comment: vec![],
        span: Span::default(),
        keyword_span: Span::default(),
        flag_spans: vec![],
        rest_span: Span::default(),
    }
}

fn bflags_case(case: &Value) -> Result<(), String> {
    let args = strings(&case["args"]);
    let mut flags = BFlags::new(&args);
    for f in case["defined_flags"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        match f["type"].as_str().unwrap() {
            "bool" => flags.add_bool(name, f["default"].as_bool().unwrap_or(false)),
            _ => flags.add_string(name, f["default"].as_str().unwrap_or("")),
        }
    }
    let parsed = flags.parse();
    if case["expect_error"].as_bool().unwrap_or(false) {
        return if parsed.is_err() { Ok(()) } else { Err("accepted, want an error".into()) };
    }
    parsed.map_err(|e| e.message)?;
    if let Some(values) = case["expected_values"].as_object() {
        for (name, v) in values {
            let want = match v {
                Value::Bool(b) => b.to_string(),
                other => other.as_str().unwrap_or_default().to_string(),
            };
            expect_eq(name, flags.value(name), want.as_str())?;
        }
    }
    if case["expected_used"].is_array() {
        expect_eq("used", flags.used(), strings(&case["expected_used"]))?;
    }
    Ok(())
}

fn device_case(case: &Value) -> Result<(), String> {
    let got = parse_device(case["input"].as_str().unwrap_or_default());
    if case["expect_error"].as_bool().unwrap_or(false) {
        return match got {
            Ok(d) => Err(format!("accepted: {d:?}")),
            Err((msg, _)) => expect_eq("error", msg.as_str(), case["error"].as_str().unwrap_or_default()),
        };
    }
    let d = got.map_err(|(m, _)| m)?;
    expect_eq("name", d.name.as_str(), case["expected"]["name"].as_str().unwrap_or_default())?;
    expect_eq("required", d.required, case["expected"]["required"].as_bool().unwrap_or(false))
}
