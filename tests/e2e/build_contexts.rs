//! Build contexts as `docker buildx build` takes them (issue 8): `-f -`, the context `-`
//! (a Dockerfile, or a plain/gzip/bzip2/xz/zstd context tar on stdin, extracted safely), git
//! repositories as the context (`file://` and a local repository with `#ref:subdir`, no
//! network) and `--build-context NAME=DIR|docker-image://REF|git URL`, with their cache keys
//! and usage errors.

use crate::harness::{self, Outcome, Rbuild, require_lab};
use std::path::Path;

use crate::harness::require_git;

fn sh(dir: &Path, script: &str) -> String {
    harness::git_sh(dir, script)
}

/// `root/repo`: branch `main` with two commits; the first is tagged `v1` (annotated). Each
/// commit has `Dockerfile` (copies `a.txt`), `a.txt` and `sub/` with its own Dockerfile.
fn repository(root: &Path) {
    sh(
        root,
        "git init -q -b main repo && cd repo && git config user.email e2e@example.com \
         && git config user.name e2e && mkdir sub \
         && printf 'FROM scratch\\nCOPY a.txt /a.txt\\n' > Dockerfile \
         && printf 'FROM scratch\\nCOPY b.txt /from-sub.txt\\n' > sub/Dockerfile \
         && printf 'FROM scratch\\nCOPY a.txt /alt.txt\\n' > Dockerfile.alt \
         && echo a-one > a.txt && echo b-one > sub/b.txt \
         && git add -A && git commit -q -m one && git tag -a v1 -m v1 \
         && echo a-two > a.txt && echo b-two > sub/b.txt && git commit -q -am two",
    );
}

/// Runs `cmd` with a `type=local` output and returns the output directory.
fn build_local(cmd: crate::harness::Cmd) -> (tempfile::TempDir, Outcome) {
    let out = harness::tempdir();
    let o = cmd.arg("-o").arg(format!("type=local,dest={}", out.path().join("fs").display())).expect_ok();
    (out, o)
}

fn read(out: &tempfile::TempDir, path: &str) -> String {
    let p = out.path().join("fs").join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `N` of the final `image … (N steps run, M cached)` line.
fn steps_run(o: &Outcome) -> usize {
    let line = o.stderr.lines().rev().find(|l| l.contains(" steps run, ")).expect("summary line");
    let n = line.split('(').nth(1).and_then(|r| r.split_whitespace().next()).expect("count");
    n.parse().expect("number")
}

/// Whether the step whose name contains `needle` ran (`#N DONE`, not `#N CACHED`) in a
/// `--progress plain` build.
fn ran(o: &Outcome, needle: &str) -> bool {
    let Some(id) = o
        .stderr
        .lines()
        .find(|l| l.starts_with('#') && l.contains(needle))
        .and_then(|l| l.split_whitespace().next())
    else {
        return false;
    };
    o.stderr.lines().any(|l| l.starts_with(&format!("{id} DONE")))
}

#[test]
fn dockerfile_or_context_tar_from_stdin() {
    require_lab!();
    let rb = Rbuild::new();
    let ctx =
        harness::context(&[("a.txt", "from-context\n"), ("Dockerfile", "FROM scratch\nCOPY a.txt /a.txt\n")]);
    let tmp = harness::tempdir();
    let dockerfile = tmp.path().join("Dockerfile.stdin");
    std::fs::write(&dockerfile, "FROM scratch\nCOPY a.txt /stdin.txt\n").unwrap();

    // `-f -`: the Dockerfile from stdin, files from the directory.
    let (out, _) = build_local(rb.build(ctx.path()).arg("-f").arg("-").stdin_file(&dockerfile));
    assert_eq!(read(&out, "stdin.txt"), "from-context\n");

    // The context `-` holding a Dockerfile: no context files (a heredoc still works).
    let lone = tmp.path().join("Dockerfile.lone");
    std::fs::write(&lone, "FROM scratch\nCOPY <<EOF /hello.txt\nhello\nEOF\n").unwrap();
    let (out, _) = build_local(rb.cmd(["build", "--progress", "plain", "-"]).stdin_file(&lone));
    assert_eq!(read(&out, "hello.txt"), "hello\n");
    let copy = tmp.path().join("Dockerfile.copy");
    std::fs::write(&copy, "FROM scratch\nCOPY a.txt /\n").unwrap();
    let o = rb.cmd(["build", "--progress", "plain", "-"]).stdin_file(&copy).expect_fail();
    assert!(o.stderr.contains("a.txt"), "COPY from the empty context names the file:\n{o}");

    // The context `-` holding a tar, plain or compressed: detected by content, as docker does.
    let tar = tmp.path().join("ctx.tar");
    sh(ctx.path(), &format!("tar -cf {} .", tar.display()));
    let cases = [
        ("plain", "cat"),
        ("gzip", "gzip -c"),
        ("bzip2", "bzip2 -c"),
        ("xz", "xz -c"),
        ("zstd", "zstd -q -c"),
    ];
    for (name, compress) in cases {
        let file = tmp.path().join(format!("ctx-{name}"));
        sh(tmp.path(), &format!("{compress} {} > {}", tar.display(), file.display()));
        let (out, _) = build_local(rb.cmd(["build", "--progress", "plain", "-"]).stdin_file(&file));
        assert_eq!(read(&out, "a.txt"), "from-context\n", "{name}");
    }
    // `-f` names a Dockerfile inside the tar.
    harness::write(&ctx.path().join("other/Dockerfile"), "FROM scratch\nCOPY a.txt /other.txt\n");
    let tar2 = tmp.path().join("ctx2.tar.gz");
    sh(ctx.path(), &format!("tar -czf {} .", tar2.display()));
    let (out, _) = build_local(
        rb.cmd(["build", "--progress", "plain", "-f", "other/Dockerfile", "-"]).stdin_file(&tar2),
    );
    assert_eq!(read(&out, "other.txt"), "from-context\n");
}

#[test]
fn stdin_usage_errors_and_unsafe_tars() {
    require_lab!();
    let rb = Rbuild::new();
    let tmp = harness::tempdir();
    let dockerfile = tmp.path().join("Dockerfile");
    std::fs::write(&dockerfile, "FROM scratch\n").unwrap();
    let o = rb.cmd(["build", "-f", "-", "-"]).stdin_file(&dockerfile).run();
    assert_eq!(o.code, Some(2), "{o}");
    assert!(o.stderr.contains("-f - and the context - cannot be used together"), "{o}");

    // Entries that leave the context are refused, and nothing is written outside it.
    sh(tmp.path(), "mkdir -p w/in && cd w/in && echo x > ../evil && printf 'FROM scratch\\n' > Dockerfile");
    let cases = [
        ("dotdot", "cd w/in && tar -cPf ../../dotdot.tar Dockerfile ../evil"),
        ("absolute", "cd w/in && tar -cPf ../../absolute.tar Dockerfile /etc/hostname"),
        (
            "symlink",
            "mkdir -p s && cd s && ln -sfn /tmp link && printf 'FROM scratch\\n' > Dockerfile \
             && tar -cf ../symlink.tar Dockerfile link && mkdir -p ../s2/link && echo x > ../s2/link/pwned \
             && tar -rf ../symlink.tar -C ../s2 link/pwned",
        ),
    ];
    for (name, script) in cases {
        sh(tmp.path(), script);
        let o = rb.cmd(["build", "-"]).stdin_file(tmp.path().join(format!("{name}.tar"))).expect_fail();
        assert!(o.stderr.contains("refusing entry"), "{name}:\n{o}");
    }
    assert!(!Path::new("/tmp/pwned").exists());
    // A Dockerfile in the tar that links out of it is not read from the host.
    sh(tmp.path(), "mkdir l && cd l && ln -s /etc/hostname Dockerfile && tar -cf ../link.tar Dockerfile");
    let o = rb.cmd(["build", "-"]).stdin_file(tmp.path().join("link.tar")).expect_fail();
    assert!(o.stderr.contains("a symbolic link out of the context is not followed"), "{o}");
}

#[test]
fn git_repositories_as_the_context() {
    require_lab!();
    require_git!();
    let rb = Rbuild::new();
    let root = harness::tempdir();
    repository(root.path());
    let repo = root.path().join("repo");
    let url = format!("file://{}", repo.display());
    let local_v1 = format!("{}#v1", repo.display());
    let url_v1 = format!("{url}#v1");
    let url_sub = format!("{url}#main:sub");
    let url_v1_sub = format!("{url}#v1:sub");
    let first = sh(root.path(), "git -C repo rev-parse 'v1^{commit}'");
    let url_commit = format!("{url}#{first}");
    // (context, extra flags, file in the result, its content)
    let cases: Vec<(&str, Vec<&str>, &str, &str)> = vec![
        (&url, vec![], "a.txt", "a-two\n"),
        (&url_v1, vec![], "a.txt", "a-one\n"),
        (&local_v1, vec![], "a.txt", "a-one\n"),
        (&url_sub, vec![], "from-sub.txt", "b-two\n"),
        (&url_v1_sub, vec![], "from-sub.txt", "b-one\n"),
        (&url_v1, vec!["-f", "Dockerfile.alt"], "alt.txt", "a-one\n"),
        (&url_commit, vec![], "a.txt", "a-one\n"),
    ];
    for (context, flags, file, content) in cases {
        let cmd = rb.cmd(["build", "--progress", "plain"]).args(&flags).arg(context);
        let (out, _) = build_local(cmd);
        assert_eq!(read(&out, file), content, "{context} {flags:?}");
        assert!(!out.path().join("fs/.git").exists());
    }
    // A rebuild of the same commit is served from the cache (keys follow the files, not the
    // temporary checkout), and the checkout is removed afterwards.
    let tmpdir = harness::tempdir();
    let again =
        rb.cmd(["build", "--progress", "plain", "--expect-cached"]).arg(&url_v1).env("TMPDIR", tmpdir.path());
    again.expect_ok();
    assert_eq!(std::fs::read_dir(tmpdir.path()).unwrap().count(), 0, "the temporary context is removed");
    // The Dockerfile from stdin, the files from the repository.
    let df = root.path().join("Dockerfile.stdin");
    std::fs::write(&df, "FROM scratch\nCOPY sub/b.txt /b.txt\n").unwrap();
    let (out, _) =
        build_local(rb.cmd(["build", "--progress", "plain", "-f", "-"]).arg(&url_v1).stdin_file(&df));
    assert_eq!(read(&out, "b.txt"), "b-one\n");
    // Unknown refs and subdirectories that leave the repository fail with the URL named.
    for bad in [format!("{url}#nope"), format!("{url}#main:../..")] {
        let o = rb.cmd(["build"]).arg(&bad).expect_fail();
        assert!(o.stderr.contains(repo.to_str().unwrap()), "{bad}:\n{o}");
    }
}

#[test]
fn named_directory_git_and_image_contexts() {
    require_lab!();
    require_git!();
    let lab = harness::lab();
    let rb = Rbuild::new();
    let root = harness::tempdir();
    repository(root.path());
    let deps = harness::context(&[
        ("lib/dep.txt", "dep\n"),
        ("ignored.txt", "no\n"),
        (".dockerignore", "ignored.txt\n"),
    ]);
    let git_v1 = format!("src=file://{}#v1:sub", root.path().join("repo").display());
    let deps_flag = format!("deps={}", deps.path().display());
    let image_flag = format!("alpine=docker-image://{}", lab.base);
    // (Dockerfile, --build-context flags, file in the result, its content)
    let cases: Vec<(&str, Vec<&str>, &str, &str)> = vec![
        ("FROM scratch\nCOPY --from=deps lib/dep.txt /d.txt\n", vec![&deps_flag], "d.txt", "dep\n"),
        // Case-insensitive, and a stage of that name is replaced (its COPY would fail).
        (
            "FROM scratch AS deps\nCOPY missing.txt /\nFROM scratch\nCOPY --from=DEPS lib /lib\n",
            vec![&deps_flag],
            "lib/dep.txt",
            "dep\n",
        ),
        ("FROM deps\n", vec![&deps_flag], "lib/dep.txt", "dep\n"),
        ("FROM scratch\nCOPY --from=src b.txt /b.txt\n", vec![&git_v1], "b.txt", "b-one\n"),
        (
            "FROM alpine\nRUN --mount=from=deps,target=/d cat /d/lib/dep.txt > /out.txt\n",
            vec![&image_flag, &deps_flag],
            "out.txt",
            "dep\n",
        ),
        (
            "FROM alpine\nRUN --mount=from=src,target=/s cat /s/b.txt > /out.txt\n",
            vec![&image_flag, &git_v1],
            "out.txt",
            "b-one\n",
        ),
    ];
    for (dockerfile, flags, file, content) in cases {
        let ctx = harness::context(&[("Dockerfile", dockerfile)]);
        let mut cmd = rb.build(ctx.path());
        for f in &flags {
            cmd = cmd.arg("--build-context").arg(f);
        }
        let (out, _) = build_local(cmd);
        assert_eq!(read(&out, file), content, "{dockerfile}");
    }
    // A directory context's own .dockerignore applies.
    let ctx = harness::context(&[("Dockerfile", "FROM deps\n")]);
    let (out, _) = build_local(rb.build(ctx.path()).arg("--build-context").arg(&deps_flag));
    assert!(!out.path().join("fs/ignored.txt").exists());
    // The image context is really the base: busybox's sh ran in it.
    let ctx = harness::context(&[("Dockerfile", "FROM alpine\nRUN echo ok > /ok\n")]);
    let (out, _) = build_local(rb.build(ctx.path()).arg("--build-context").arg(&image_flag));
    assert_eq!(read(&out, "ok"), "ok\n");
    assert!(out.path().join("fs/bin/busybox").exists());
}

#[test]
fn named_directory_context_cache_keys_follow_its_content() {
    require_lab!();
    let lab = harness::lab();
    let rb = Rbuild::new();
    let deps = harness::context(&[("a.txt", "one\n"), ("b.txt", "b\n")]);
    let dockerfile =
        format!("FROM {}\nCOPY --from=deps a.txt /a.txt\nRUN cat /a.txt > /copy.txt\n", lab.base);
    let ctx = harness::context(&[("Dockerfile", &dockerfile)]);
    let flag = format!("deps={}", deps.path().display());
    let build = || rb.build(ctx.path()).arg("--build-context").arg(&flag).expect_ok();
    let first = build();
    assert!(ran(&first, "COPY --from=deps") && ran(&first, "RUN cat"), "{first}");
    assert_eq!(steps_run(&build()), 0, "unchanged: everything cached");
    harness::write(&deps.path().join("b.txt"), "not selected\n");
    assert_eq!(steps_run(&build()), 0, "a file the COPY does not select changed: still cached");
    harness::write(&deps.path().join("a.txt"), "two\n");
    let changed = build();
    assert!(
        ran(&changed, "COPY --from=deps") && ran(&changed, "RUN cat"),
        "the copied file changed:\n{changed}"
    );
    assert!(!ran(&changed, "FROM "), "the base is still cached:\n{changed}");
}

#[test]
fn build_context_flag_errors() {
    require_lab!();
    let rb = Rbuild::new();
    let ctx = harness::context(&[("Dockerfile", "FROM scratch\n")]);
    // (flag value, exit code, text in the message)
    let cases = [
        ("novalue", 2, "invalid --build-context \"novalue\": expected NAME=VALUE"),
        ("=dir", 2, "--build-context"),
        ("scratch=.", 2, "reserved"),
        ("x=oci-layout:///tmp/layout", 2, "oci-layout:// build context is not supported yet"),
        ("x=https://example.com/ctx.tar.gz", 2, "not supported yet"),
        ("x=/nonexistent/rbuild-dir", 1, "/nonexistent/rbuild-dir"),
    ];
    for (value, code, text) in cases {
        let o = rb.build(ctx.path()).arg("--build-context").arg(value).run();
        assert_eq!(o.code, Some(code), "{value}:\n{o}");
        assert!(o.stderr.contains(text), "{value}: expected {text:?}:\n{o}");
    }
    let o = rb.cmd(["build", "https://example.com/context.tar.gz"]).run();
    assert_eq!(o.code, Some(2), "{o}");
    assert!(o.stderr.contains("not supported yet"), "{o}");
}
