//! Explaining cache misses: `--explain`, `--expect-cached` and `debug why` name the step and
//! the part of its key that changed since the previous build of the same target.

use crate::harness::{self, Rbuild, require_lab};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn dockerfile(base: &str, command: &str) -> String {
    format!(
        "FROM {base}\n\
         ARG V=1\n\
         COPY a.txt /a.txt\n\
         RUN {command} > /out\n\
         COPY b/ /b/\n"
    )
}

fn context(base: &str) -> tempfile::TempDir {
    harness::context(&[
        ("Dockerfile", &dockerfile(base, "cat /a.txt")),
        ("a.txt", "a\n"),
        ("b/one.txt", "1\n"),
        ("b/two.txt", "2\n"),
    ])
}

/// The `NOTE: cache miss:` line of an `--explain` build.
fn explained(rb: &Rbuild, ctx: &Path, extra: &[&str]) -> String {
    let o = rb.build(ctx).args(["--explain"]).args(extra).expect_ok();
    o.stderr
        .lines()
        .find(|l| l.starts_with("NOTE: cache miss:"))
        .unwrap_or_else(|| panic!("no explanation in:\n{o}"))
        .to_string()
}

type Change = fn(&Path, &str);

#[test]
fn each_kind_of_change_is_named() {
    require_lab!();
    let base = harness::lab().base.clone();
    let cases: &[(&str, Change, &[&str], &[&str])] = &[
        (
            "edit a selected file",
            |ctx, _| harness::write(&ctx.join("a.txt"), "a edited\n"),
            &[],
            &["COPY a.txt /a.txt", "modified: /a.txt"],
        ),
        (
            "add a file to a copied directory",
            |ctx, _| harness::write(&ctx.join("b/three.txt"), "3\n"),
            &[],
            &["COPY b/ /b/", "added: /b/three.txt"],
        ),
        (
            "chmod a selected file",
            |ctx, _| {
                std::fs::set_permissions(ctx.join("b/one.txt"), std::fs::Permissions::from_mode(0o755))
                    .unwrap()
            },
            &[],
            &["modified: /b/one.txt"],
        ),
        ("change a build arg", |_, _| {}, &["--build-arg", "V=2"], &["RUN cat /a.txt", "V: 1 -> 2"]),
        (
            "change the command",
            |ctx, base| harness::write(&ctx.join("Dockerfile"), &dockerfile(base, "cat /a.txt /a.txt")),
            &[],
            &["RUN cat /a.txt /a.txt", "command changed"],
        ),
    ];
    for (what, change, args, expected) in cases {
        let rb = Rbuild::new();
        let ctx = context(&base);
        rb.build(ctx.path()).expect_ok();
        change(ctx.path(), &base);
        let line = explained(&rb, ctx.path(), args);
        for e in *expected {
            assert!(line.contains(e), "{what}: expected {e:?} in {line:?}");
        }
    }
}

#[test]
fn a_first_build_says_there_is_no_previous_build() {
    require_lab!();
    let rb = Rbuild::new();
    let ctx = context(&harness::lab().base);
    let line = explained(&rb, ctx.path(), &[]);
    assert!(line.contains("no previous build"), "{line}");
}

#[test]
fn expect_cached_fails_before_running_and_passes_when_cached() {
    require_lab!();
    let rb = Rbuild::new();
    let ctx = context(&harness::lab().base);
    rb.build(ctx.path()).expect_ok();
    rb.build(ctx.path()).args(["--expect-cached"]).expect_ok();
    harness::write(&ctx.path().join("a.txt"), "changed\n");
    let o = rb.build(ctx.path()).args(["--expect-cached"]).expect_fail();
    assert_eq!(o.code, Some(1), "{o}");
    let err = o.error_text();
    assert!(err.contains("COPY a.txt /a.txt") && err.contains("modified: /a.txt"), "{err}");
    assert!(!o.stderr.contains("RUN cat /a.txt\n#"), "a step ran although the build had to fail first:\n{o}");
    // debug why says the same without building; nothing was recorded by the failed build.
    let why = rb.cmd(["debug", "why"]).arg(ctx.path()).expect_ok();
    assert!(why.stdout.contains("Dockerfile:3") && why.stdout.contains("modified: /a.txt"), "{why}");
    rb.build(ctx.path()).expect_ok();
    let why = rb.cmd(["debug", "why"]).arg(ctx.path()).expect_ok();
    assert!(why.stdout.contains("every step would be served from the cache"), "{why}");
}
