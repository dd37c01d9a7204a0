//! Bad input and unreachable or unwilling registries: each build exits non-zero with a clear
//! cause on its first error line, and nothing gets tagged.

use crate::harness::{self, Cmd, Outcome, Rbuild, Registry, require_lab};
use std::net::TcpListener;

/// The tag every failing build asks for; it must never show up in `rbuild images`.
const FAILED_TAG: &str = "e2e/failed:never";

/// One failing build.
struct Case {
    name: &'static str,
    /// `None`: the context has no Dockerfile at all.
    dockerfile: Option<String>,
    extra_args: Vec<String>,
    /// Each must occur on the first error line of stderr.
    first_line_has: Vec<String>,
    /// Each must occur in the error report (stderr from its first error line on).
    report_has: Vec<String>,
}

fn case(name: &'static str, dockerfile: Option<String>, first_line_has: &[&str]) -> Case {
    Case {
        name,
        dockerfile,
        extra_args: Vec::new(),
        first_line_has: first_line_has.iter().map(|s| s.to_string()).collect(),
        report_has: Vec::new(),
    }
}

impl Case {
    fn args(mut self, a: &[&str]) -> Case {
        self.extra_args.extend(a.iter().map(|s| s.to_string()));
        self
    }
    fn report_has(mut self, s: &[&str]) -> Case {
        self.report_has.extend(s.iter().map(|s| s.to_string()));
        self
    }
}

/// A loopback port with nothing listening on it.
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The first line of stderr that starts an error report.
fn first_error_line(o: &Outcome) -> String {
    o.stderr
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("error"))
        .unwrap_or_else(|| panic!("no error line on stderr:\n{o}"))
        .to_string()
}

/// Runs `case` in a fresh store and checks the failure; returns a description of what is
/// wrong, if anything.
fn check(rb: &Rbuild, case: &Case) -> Option<String> {
    let ctx = harness::context(&[]);
    if let Some(df) = &case.dockerfile {
        harness::write(&ctx.path().join("Dockerfile"), df);
    }
    harness::write(&ctx.path().join("present.txt"), "present\n");
    let o = rb.build(ctx.path()).args(["-t", FAILED_TAG]).args(&case.extra_args).run();
    let mut problems = Vec::new();
    eprintln!("--- {} (exit {:?})\n{}", case.name, o.code, harness::rbuild::tail(&o.stderr, 8));
    match o.code {
        Some(1) | Some(2) => {}
        _ => problems.push(format!("exit code {:?}, want 1 (build failure) or 2 (usage)", o.code)),
    }
    if let Some(line) = o.stderr.lines().find(|l| l.to_ascii_lowercase().starts_with("error")) {
        for want in &case.first_line_has {
            if !line.contains(want.as_str()) {
                problems.push(format!("first error line {line:?} lacks {want:?}"));
            }
        }
    } else {
        problems.push("no line starting with \"error\" on stderr".into());
    }
    let report = o.error_text();
    for want in &case.report_has {
        if !report.contains(want.as_str()) {
            problems.push(format!("error report lacks {want:?}"));
        }
    }
    if o.stderr.contains("panicked at") {
        problems.push("rbuild panicked".into());
    }
    let images = rb.images();
    if images.contains("e2e/failed") {
        problems.push(format!("the failed build was tagged:\n{images}"));
    }
    (!problems.is_empty()).then(|| format!("case {}: {}\n{o}", case.name, problems.join("; ")))
}

#[test]
fn bad_input_fails_with_a_clear_cause_and_tags_nothing() {
    require_lab!();
    let lab = harness::lab();
    let base = &lab.base;
    let port = dead_port();
    let missing_image = lab.registry.image("lab/does-not-exist:latest");
    let cases = [
        case("missing Dockerfile", None, &["Dockerfile"]),
        case("syntax error", Some(format!("FROM {base}\nENV A=1\nFROM\n")), &["FROM"])
            .report_has(&["Dockerfile:3"]),
        case("unknown instruction", Some(format!("FROM {base}\nFOO bar\n")), &["FOO"])
            .report_has(&["Dockerfile:2"]),
        case("unknown target stage", Some(format!("FROM {base} AS build\nRUN true\n")), &["nosuchstage"])
            .args(&["--target", "nosuchstage"]),
        case(
            "missing COPY source",
            Some(format!("FROM {base}\nCOPY nothere.txt /\n")),
            &["nothere.txt", "not found"],
        ),
        case(
            "failing RUN",
            Some(format!("FROM {base}\nRUN echo first-words && echo last-words >&2 && exit 7\n")),
            &["exit 7", "exit code: 7"],
        )
        .report_has(&["last-words"]),
        case(
            "unreachable registry",
            Some(format!("FROM 127.0.0.1:{port}/lab/busybox:latest\n")),
            &[&format!("127.0.0.1:{port}")],
        ),
        case(
            "image not in registry",
            Some(format!("FROM {missing_image}\n")),
            &["lab/does-not-exist", "not found"],
        ),
    ];
    let rb = Rbuild::new();
    let failures: Vec<String> = cases.iter().filter_map(|c| check(&rb, c)).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn syntax_error_names_file_and_line() {
    require_lab!();
    let ctx = harness::context(&[("Dockerfile", "FROM scratch\n\nCOPY present.txt\n")]);
    let o = Rbuild::new().build(ctx.path()).expect_fail();
    assert_eq!(o.code, Some(1));
    assert!(o.stderr.contains("Dockerfile:3"), "no Dockerfile:3 in\n{o}");
}

#[test]
fn wrong_credentials_fail_and_right_ones_work() {
    require_lab!();
    let lab = harness::lab();
    let auth = Registry::start_with_auth("tester", "secret");
    let image = auth.image("lab/busybox:latest");
    Cmd::tool("skopeo")
        .args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--dest-creds",
            "tester:secret",
        ])
        .arg(format!("docker://{}", lab.base))
        .arg(format!("docker://{image}"))
        .expect_ok();
    let ctx = harness::context(&[("Dockerfile", &format!("FROM {image}\nRUN echo ok > /ok\n"))]);

    let anonymous = Rbuild::new();
    let o = anonymous.build(ctx.path()).args(["-t", FAILED_TAG]).expect_fail();
    eprintln!("no credentials:\n{}", o.error_text());
    assert!(o.stderr.to_lowercase().contains("unauthorized") || o.stderr.contains("401"), "{o}");

    let wrong = Rbuild::new();
    wrong.login(&auth.host(), "tester", "wrong-password");
    let o = wrong.build(ctx.path()).args(["-t", FAILED_TAG]).expect_fail();
    assert_eq!(o.code, Some(1), "{o}");
    eprintln!("wrong credentials:\n{}", o.error_text());
    let line = first_error_line(&o);
    assert!(line.contains(&auth.host()), "the error does not name the registry: {line}");
    let lower = o.stderr.to_lowercase();
    assert!(
        lower.contains("unauthorized") || lower.contains("401") || lower.contains("authentication"),
        "the error does not say the credentials were refused:\n{o}"
    );
    assert!(!wrong.images().contains("e2e/failed"), "failed build tagged");

    let right = Rbuild::new();
    right.login(&auth.host(), "tester", "secret");
    right.build(ctx.path()).args(["-t", "e2e/auth-ok:1"]).expect_ok();
    assert!(right.images().contains("e2e/auth-ok"));
}
