//! `ADD` of a git repository served by `git http-backend` on loopback: `#ref:subdir`,
//! annotated tags, `--keep-git-dir`, the default branch, and the cache (keyed by the commit
//! the ref points at: an unchanged branch hits, a moved one misses).

use crate::harness::{self, Image, Rbuild, require_lab};
use crate::http_server::Server;
use std::path::Path;

use crate::harness::require_git;

fn sh(dir: &Path, script: &str) -> String {
    harness::git_sh(dir, script)
}

/// A bare `repo.git` under `root/srv` with `main` (a.txt, sub/b.txt) and an annotated tag
/// `v1`; `root/work` is a clone to push more commits from.
fn repository(root: &Path) {
    sh(
        root,
        "mkdir srv && git init -q --bare -b main srv/repo.git \
         && git init -q -b main work && cd work && git config user.email e2e@example.com \
         && git config user.name e2e && mkdir sub && echo a-one > a.txt && echo b-one > sub/b.txt \
         && git add -A && git commit -q -m one && git tag -a v1 -m v1 \
         && echo a-two > a.txt && git commit -q -am two \
         && git push -q ../srv/repo.git main v1",
    );
}

fn build(rb: &Rbuild, ctx: &Path) -> (Image, crate::harness::Outcome) {
    let out = harness::tempdir();
    let tar = out.path().join("image.tar");
    let o = rb
        .cmd(["build", "--progress", "rawjson", "-o"])
        .arg(format!("type=oci,dest={}", tar.display()))
        .arg(ctx)
        .expect_ok();
    (Image::from_oci_archive(&tar), o)
}

fn ran(o: &crate::harness::Outcome) -> Vec<String> {
    o.events()
        .iter()
        .filter(|e| e["event"] == "started" && e["step"].as_str().is_some_and(|s| s.starts_with("sha256:")))
        .filter_map(|e| e["name"].as_str().map(str::to_string))
        .filter(|n| !n.starts_with("[internal]"))
        .collect()
}

#[test]
fn git_refs_subdirs_and_git_dirs_over_smart_http() {
    require_lab!();
    require_git!();
    let lab = harness::lab();
    let root = harness::tempdir();
    repository(root.path());
    let server = Server::start();
    server.serve_git(root.path().join("srv"));
    let url = server.url("/git/repo.git");
    let dockerfile = format!(
        "FROM {base}\n\
         ADD {url}#main:sub /sub/\n\
         ADD --keep-git-dir=true {url}#v1 /tagged\n\
         ADD {url} /head/\n\
         RUN cat /sub/b.txt /head/a.txt > /cat.txt\n",
        base = lab.base,
    );
    let ctx = harness::context(&[("Dockerfile", &dockerfile)]);
    let rb = Rbuild::new();
    let (image, first) = build(&rb, ctx.path());
    let fs = image.rootfs();
    let data = |p: &str| {
        String::from_utf8_lossy(&fs.get(p).unwrap_or_else(|| panic!("{p} missing")).data).into_owned()
    };
    assert_eq!(data("sub/b.txt"), "b-one\n", "#main:sub takes the subdirectory's contents");
    assert!(!fs.contains_key("sub/a.txt") && !fs.contains_key("head/.git"), "no .git unless asked");
    assert_eq!(data("tagged/a.txt"), "a-one\n", "#v1 is the annotated tag's commit");
    assert!(fs.contains_key("tagged/.git/HEAD"), "--keep-git-dir keeps .git");
    assert_eq!(data("head/a.txt"), "a-two\n", "no ref: the default branch");
    assert_eq!(data("cat.txt"), "b-one\na-two\n");
    assert!(ran(&first).iter().any(|n| n.contains("RUN cat")), "{first}");

    // Unchanged refs: every step is served from the cache.
    let (_, second) = build(&rb, ctx.path());
    assert_eq!(ran(&second), Vec::<String>::new(), "{second}");

    // main moves: its ADDs and what follows run again, the tag's does not.
    sh(
        root.path(),
        "cd work && echo b-three > sub/b.txt && git commit -q -am three && git push -q ../srv/repo.git main",
    );
    let (image, third) = build(&rb, ctx.path());
    let steps = ran(&third);
    assert!(
        steps.iter().any(|n| n.contains("#main:sub")) && steps.iter().any(|n| n.contains("RUN cat")),
        "{third}"
    );
    // The checkout of the tag (named like its step) is cached; only the copy on top of the
    // changed layers below it runs again.
    let count = |steps: &[String]| steps.iter().filter(|n| n.contains("#v1")).count();
    assert_eq!((count(&ran(&first)), count(&steps)), (2, 1), "the tag did not move:\n{third}");
    let fs = image.rootfs();
    assert_eq!(String::from_utf8_lossy(&fs["sub/b.txt"].data), "b-three\n");
}

#[test]
fn git_errors_name_the_repository_and_ref() {
    require_lab!();
    require_git!();
    let lab = harness::lab();
    let root = harness::tempdir();
    repository(root.path());
    let server = Server::start();
    server.serve_git(root.path().join("srv"));
    let url = server.url("/git/repo.git");
    let cases = [
        (format!("ADD {url}#nope /x"), vec!["does not contain ref nope", "/git/repo.git"]),
        (format!("ADD {url}#main:missing /x"), vec!["subdir", "missing"]),
        (format!("ADD --checksum=0123456789 {url}#main /x"), vec!["expected checksum to match 0123456789"]),
        (format!("COPY {url} /x"), vec!["source can't be a git ref for COPY"]),
        (format!("ADD {url}?ref=main&bogus=1 /x"), vec!["unexpected query \"bogus\""]),
    ];
    let rb = Rbuild::new();
    for (line, needles) in cases {
        let ctx = harness::context(&[("Dockerfile", &format!("FROM {}\n{line}\n", lab.base))]);
        let o = rb.build(ctx.path()).expect_fail();
        for n in needles {
            assert!(o.stderr.contains(n), "{line}: {n:?} not in the error:\n{o}");
        }
    }
}
