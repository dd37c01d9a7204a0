//! Build checks through the CLI: warnings at the end of a build, `# check=` skip and
//! `error=true`, `rbuild build --check` (BuildKit's report, exit 1, nothing built) and
//! `rbuild debug parse`.

use crate::harness::{self, Rbuild, require_lab};

#[test]
fn build_time_checks_warn_and_error_true_fails_before_running() {
    require_lab!();
    let lab = harness::lab();
    let rb = Rbuild::new();
    let cases: [(&str, &[&str], bool); 3] = [
        ("", &["UndefinedVar: Usage of undefined variable '$UNSET_THING' (line 3)"], true),
        ("# check=skip=UndefinedVar\n", &[], true),
        ("# check=error=true\n", &["UndefinedVar", "lint violation found for rules: UndefinedVar"], false),
    ];
    for (directive, needles, ok) in cases {
        let dockerfile = format!(
            "{directive}FROM {}\nARG DECLARED\nENV A=$UNSET_THING B=$DECLARED\nRUN echo ran-the-step\n",
            lab.base
        );
        // The directive shifts the lines by one.
        let dockerfile =
            if directive.is_empty() { dockerfile } else { dockerfile.replace("(line 3)", "(line 4)") };
        let ctx = harness::context(&[("Dockerfile", &dockerfile)]);
        let o = if ok { rb.build(ctx.path()).expect_ok() } else { rb.build(ctx.path()).expect_fail() };
        for n in needles {
            let n = if directive.is_empty() { n.to_string() } else { n.replace("(line 3)", "(line 4)") };
            assert!(o.stderr.contains(&n), "{directive:?}: {n:?} missing:\n{o}");
        }
        if needles.is_empty() {
            assert!(!o.stderr.contains("UndefinedVar"), "skipped rule reported:\n{o}");
        }
        assert!(!o.stderr.contains("$DECLARED"), "a declared ARG is not undefined:\n{o}");
        if !ok {
            assert!(!o.stderr.contains("ran-the-step"), "error=true fails before anything runs:\n{o}");
        }
    }
}

#[test]
fn check_flag_reports_like_buildx_and_builds_nothing() {
    require_lab!();
    let lab = harness::lab();
    let rb = Rbuild::new();
    let bad = format!("FROM {} as base\nCOPY secret.txt /\nENV X=$NOT_SET\nRUN exit 7\n", lab.base);
    let ctx =
        harness::context(&[("Dockerfile", &bad), ("secret.txt", "s"), (".dockerignore", "secret.txt\n")]);
    let o = rb.cmd(["build", "--check", "--progress", "plain"]).arg(ctx.path()).run();
    assert_eq!(o.code, Some(1), "failed checks exit 1:\n{o}");
    for needle in [
        "Check complete, 2 warnings have been found!",
        "WARNING: FromAsCasing - https://docs.docker.com/go/dockerfile/rule/from-as-casing/",
        "'as' and 'FROM' keywords' casing do not match",
        "WARNING: UndefinedVar - https://docs.docker.com/go/dockerfile/rule/undefined-var/",
        "Usage of undefined variable '$NOT_SET'",
        "Dockerfile:3\n--------------------\n",
        "   3 | >>> ENV X=$NOT_SET\n",
    ] {
        assert!(o.stdout.contains(needle), "{needle:?} missing from the report:\n{o}");
    }
    assert!(!o.stdout.contains("CopyIgnoredFile"), "experimental rules are off by default:\n{o}");
    assert!(!o.stderr.contains("exit code: 7"), "--check runs nothing:\n{o}");

    let experimental = format!("# check=experimental=CopyIgnoredFile\n{bad}");
    harness::write(&ctx.path().join("Dockerfile"), &experimental);
    let o = rb.cmd(["build", "--check", "-q"]).arg(ctx.path()).run();
    assert_eq!(o.code, Some(1), "{o}");
    assert!(
        o.stdout.contains("Attempting to Copy file \"secret.txt\" that is excluded by .dockerignore"),
        "{o}"
    );

    let good = format!("FROM {}\nRUN exit 7\n", lab.base);
    harness::write(&ctx.path().join("Dockerfile"), &good);
    let o = rb.cmd(["build", "--check", "-q"]).arg(ctx.path()).expect_ok();
    assert_eq!(o.stdout, "Check complete, no warnings found.\n");
}

#[test]
fn debug_parse_prints_buildkits_ast_dump() {
    require_lab!();
    let ctx = harness::context(&[
        (
            "Dockerfile",
            "FROM busybox AS b\nRUN --mount=type=cache,target=/c echo hi \\\n  there\nCMD [\"a\", \"b\"]\n",
        ),
        ("other.Dockerfile", "from scratch\nENV A=1 B=2\n"),
    ]);
    let rb = Rbuild::new();
    let o = rb.cmd(["debug", "parse"]).arg(ctx.path()).expect_ok();
    assert_eq!(
        o.stdout,
        "(from \"busybox\" \"AS\" \"b\")\n(run [\"--mount=type=cache,target=/c\"] \"echo hi   there\")\n(cmd \"a\" \"b\")\n"
    );
    let other = ctx.path().join("other.Dockerfile");
    let o = rb.cmd(["debug", "parse", "-f"]).arg(&other).arg(ctx.path()).expect_ok();
    assert_eq!(o.stdout, "(from \"scratch\")\n(env \"A\" \"1\" \"=\" \"B\" \"2\" \"=\")\n");
    harness::write(&other, "FROM scratch\nRUN <<EOF\nnever closed\n");
    let o = rb.cmd(["debug", "parse", "-f"]).arg(&other).arg(ctx.path()).expect_fail();
    assert!(o.stderr.contains("other.Dockerfile"), "{o}");
}
