//! `Source::Git`: `ADD <repository>#<ref>:<subdir>`, as BuildKit's git source does it, by
//! running the `git` program.
//!
//! Keys: a named ref (or the remote's default branch) is resolved with `git ls-remote` while
//! the keys are computed, and the op is pinned to that commit, so a moved branch misses the
//! cache and an unchanged one hits without fetching anything. A full commit hash is its own
//! key.
//!
//! Running the op fetches the commit (shallow where the server allows it) into a bare
//! repository inside the new layer's work directory, checks it out into the layer, keeps
//! only `subdir` when one is given, initialises submodules, and keeps a `.git` only with
//! `--keep-git-dir` (and no subdir, as in BuildKit). Every path gets the commit's time as its
//! mtime, so checking the same commit out again gives the same layer. Git runs with a
//! `022` umask, no system or user configuration, no terminal prompts, and local-file
//! submodules refused (`protocol.file.allow=user`).

use super::{LocalWorker, Ref, store_err};
use crate::error::SolveError;
use crate::ir::{GitSource, Op, Source, Vertex};
use crate::progress::ProgressSink;
use crate::scheduler::Step;
use std::path::{Component, Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// Errors of git sources.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The `git` program could not be started.
    #[error("cannot run git (is it installed?): {0}")]
    Spawn(#[source] std::io::Error),
    /// A git command failed.
    #[error("git {command} failed for {remote}: {stderr}")]
    Command {
        /// The remote (credentials masked).
        remote: String,
        /// The git subcommand.
        command: String,
        /// The end of what git printed on stderr.
        stderr: String,
    },
    /// The ref does not exist in the repository.
    #[error("repository {remote} does not contain ref {reference}")]
    NoRef {
        /// The remote (credentials masked).
        remote: String,
        /// The ref asked for.
        reference: String,
    },
    /// The resolved commit is not the one `--checksum` names.
    #[error("expected checksum to match {expected}, got {actual} ({remote})")]
    Checksum {
        /// The remote (credentials masked).
        remote: String,
        /// The checksum given.
        expected: String,
        /// The commit found.
        actual: String,
    },
    /// The fetched history lacks the commit the key was computed for.
    #[error("{remote}: commit {commit} could not be fetched (did the ref move during the build?)")]
    Moved {
        /// The remote (credentials masked).
        remote: String,
        /// The pinned commit.
        commit: String,
    },
    /// The subdirectory is missing, not a directory, or leaves the repository.
    #[error("{remote}: failed to open subdir {subdir}: {reason}")]
    Subdir {
        /// The remote (credentials masked).
        remote: String,
        /// The subdirectory.
        subdir: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file operation on the checkout failed.
    #[error("{remote}: {path}: {source}")]
    Io {
        /// The remote (credentials masked).
        remote: String,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// What a git source was pinned to while the keys were computed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Pin {
    /// The full commit hash.
    commit: String,
    /// The full name of the ref that pointed at it (`refs/heads/main`), when resolved by name.
    full_ref: Option<String>,
}

fn step_err(name: &str, e: GitError) -> SolveError {
    SolveError::step(name, e.to_string(), e)
}

/// A full hex commit hash (sha1 or sha256 repositories).
fn is_commit(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The remote with any password masked, for messages (BuildKit's `RedactCredentials`).
pub fn redact(remote: &str) -> String {
    let Some((scheme, rest)) = remote.split_once("://") else { return remote.to_string() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let masked = if userinfo.contains(':') { format!("{user}:xxxxx") } else { user.to_string() };
            format!("{scheme}://{masked}@{host}{}", &rest[authority_end..])
        }
        None => remote.to_string(),
    }
}

/// One git invocation.
struct Git<'a> {
    remote: &'a str,
    cancel: Option<&'a CancellationToken>,
}

impl Git<'_> {
    /// Runs `git <args>` in `cwd` and returns its stdout. A shallow fetch that the server
    /// refuses is retried without `--depth`, as BuildKit does (dumb HTTP has no shallow
    /// support).
    async fn run(&self, cwd: Option<&Path>, args: &[&str]) -> Result<String, GitError> {
        match self.run_once(cwd, args).await {
            Err(GitError::Command { stderr, .. })
                if args.contains(&"--depth=1")
                    && (stderr.contains("--depth") || stderr.contains("shallow")) =>
            {
                let deep: Vec<&str> = args.iter().copied().filter(|a| *a != "--depth=1").collect();
                self.run_once(cwd, &deep).await
            }
            other => other,
        }
    }

    async fn run_once(&self, cwd: Option<&Path>, args: &[&str]) -> Result<String, GitError> {
        // `sh` sets the umask for git alone: the process-wide umask is not ours to change.
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg("umask 022 && exec git -c protocol.file.allow=user \"$@\"")
            .arg("git")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()))
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", "/dev/null")
            .env("LC_ALL", "C")
            .env("GIT_SSH_COMMAND", "ssh -F /dev/null -o StrictHostKeyChecking=no")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some(sock) = std::env::var_os("SSH_AUTH_SOCK") {
            cmd.env("SSH_AUTH_SOCK", sock);
        }
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        let output = cmd.output();
        let output = match self.cancel {
            Some(token) => tokio::select! {
                o = output => o,
                _ = token.cancelled() => return Err(GitError::Spawn(std::io::Error::new(
                    std::io::ErrorKind::Interrupted,
                    "cancelled",
                ))),
            },
            None => output.await,
        }
        .map_err(GitError::Spawn)?;
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(3)..].join("; ");
        let command = args.iter().find(|a| !a.starts_with('-') && !a.contains('=')).copied().unwrap_or("");
        Err(GitError::Command {
            remote: redact(self.remote),
            command: command.to_string(),
            stderr: if tail.is_empty() { format!("{}", output.status) } else { tail },
        })
    }
}

/// Resolves `reference` (the default branch when `None`) with `ls-remote`.
async fn ls_remote(git: &Git<'_>, reference: Option<&str>) -> Result<Pin, GitError> {
    let no_ref =
        || GitError::NoRef { remote: redact(git.remote), reference: reference.unwrap_or("HEAD").to_string() };
    let Some(reference) = reference else {
        let out = git.run(None, &["ls-remote", "--symref", git.remote, "HEAD"]).await?;
        let mut pin = Pin { commit: String::new(), full_ref: None };
        for line in out.lines() {
            match line.strip_prefix("ref: ") {
                Some(rest) => pin.full_ref = rest.split('\t').next().map(str::to_string),
                None => {
                    if let Some((sha, "HEAD")) = line.split_once('\t') {
                        pin.commit = sha.to_string();
                    }
                }
            }
        }
        return if is_commit(&pin.commit) { Ok(pin) } else { Err(no_ref()) };
    };
    // `ref^{}` too: the pattern alone does not list an annotated tag's peeled line.
    let peel_pattern = format!("{reference}^{{}}");
    let out = git.run(None, &["ls-remote", git.remote, reference, &peel_pattern]).await?;
    let refs: Vec<(&str, &str)> = out.lines().filter_map(|l| l.split_once('\t')).collect();
    // BuildKit takes the first match; an annotated tag is followed to its commit.
    let Some(&(sha, name)) = refs.first() else { return Err(no_ref()) };
    let peeled = format!("{name}^{{}}");
    let commit = refs.iter().find(|(_, n)| *n == peeled).map_or(sha, |(s, _)| *s);
    if !is_commit(commit) {
        return Err(no_ref());
    }
    Ok(Pin { commit: commit.to_string(), full_ref: Some(name.to_string()) })
}

fn check_checksum(src: &GitSource, commit: &str) -> Result<(), GitError> {
    match &src.checksum {
        Some(expected) if !commit.starts_with(expected.as_str()) => Err(GitError::Checksum {
            remote: redact(&src.remote),
            expected: expected.clone(),
            actual: commit.to_string(),
        }),
        _ => Ok(()),
    }
}

/// The op pinned to the commit its ref points at now; `None` when the op names a commit.
pub(super) async fn pin(
    w: &LocalWorker,
    vertex: &Vertex,
    src: &GitSource,
    _progress: &ProgressSink,
) -> Result<Option<Op>, SolveError> {
    let name = &vertex.meta.name;
    if let Some(r) = src.reference.as_deref().filter(|r| is_commit(r)) {
        check_checksum(src, r).map_err(|e| step_err(name, e))?;
        return Ok(None);
    }
    let git = Git { remote: &src.remote, cancel: None };
    let pin = ls_remote(&git, src.reference.as_deref()).await.map_err(|e| step_err(name, e))?;
    check_checksum(src, &pin.commit).map_err(|e| step_err(name, e))?;
    w.remote.git_pins.lock().expect("pins lock").insert(vertex.digest.clone(), pin.clone());
    let pinned = GitSource { checksum: Some(pin.commit), ..src.clone() };
    Ok(Some(Op::Source(Source::Git(pinned))))
}

/// Runs the op: fetch, check out, trim to the subdirectory, stamp mtimes, commit the layer.
pub(super) async fn fetch(
    w: &LocalWorker,
    step: &Step,
    vertex: &Vertex,
    src: &GitSource,
) -> Result<Ref, SolveError> {
    let err = |e| step_err(&step.name, e);
    let git = Git { remote: &src.remote, cancel: Some(&step.cancel) };
    let pinned = w.remote.git_pins.lock().expect("pins lock").get(&vertex.digest).cloned();
    let pin = match (pinned, src.reference.as_deref()) {
        (Some(p), _) => p,
        (None, Some(r)) if is_commit(r) => Pin { commit: r.to_string(), full_ref: None },
        (None, r) => {
            let p = ls_remote(&git, r).await.map_err(err)?;
            check_checksum(src, &p.commit).map_err(err)?;
            p
        }
    };
    let subdir = clean_subdir(src).map_err(err)?;
    let layer = w.store.new_layer().map_err(|e| store_err(&step.name, e))?;
    let diff = layer.diff_dir().to_path_buf();
    let scratch = layer.work_dir().to_path_buf();
    let result = checkout(&git, src, &pin, subdir.as_deref(), &diff, &scratch).await;
    if step.cancel.is_cancelled() {
        return Err(SolveError::Cancelled);
    }
    result.map_err(err)?;
    let name = step.name.clone();
    let id = tokio::task::spawn_blocking(move || layer.commit())
        .await
        .map_err(|e| SolveError::Internal(format!("git layer task: {e}")))?
        .map_err(|e| store_err(&name, e))?;
    Ok(Ref::Chain(vec![id]))
}

/// The subdirectory to keep, cleaned (`None`: the whole repository).
fn clean_subdir(src: &GitSource) -> Result<Option<PathBuf>, GitError> {
    let Some(raw) = src.subdir.as_deref().filter(|s| !s.is_empty()) else { return Ok(None) };
    let mut out = PathBuf::new();
    for c in Path::new(raw).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::ParentDir if out.pop() => {}
            Component::ParentDir => {
                return Err(GitError::Subdir {
                    remote: redact(&src.remote),
                    subdir: raw.to_string(),
                    reason: "it leaves the repository".into(),
                });
            }
            _ => {}
        }
    }
    Ok(if out.as_os_str().is_empty() { None } else { Some(out) })
}

async fn checkout(
    git: &Git<'_>,
    src: &GitSource,
    pin: &Pin,
    subdir: Option<&Path>,
    diff: &Path,
    scratch: &Path,
) -> Result<(), GitError> {
    let remote = redact(&src.remote);
    let io = |path: &Path| {
        let (remote, path) = (remote.clone(), path.to_path_buf());
        move |source| GitError::Io { remote, path, source }
    };
    let bare = scratch.join("repo");
    let bare_s = bare.to_string_lossy().into_owned();
    git.run(None, &["-c", "init.defaultBranch=master", "init", "-q", "--bare", &bare_s]).await?;
    let gd = ["--git-dir", bare_s.as_str()];
    let with_gd = |rest: &[&str]| -> Vec<String> { gd.iter().chain(rest).map(|s| s.to_string()).collect() };
    let run = |args: Vec<String>, cwd: Option<PathBuf>| async move {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        git.run(cwd.as_deref(), &refs).await
    };
    run(with_gd(&["remote", "add", "origin", &src.remote]), None).await?;
    let has_commit = || run(with_gd(&["cat-file", "-e", &format!("{}^{{commit}}", pin.commit)]), None);
    let named = pin.full_ref.as_deref().or(src.reference.as_deref()).filter(|r| !is_commit(r));
    match named {
        Some(r) => {
            run(with_gd(&["fetch", "-q", "--depth=1", "--no-tags", "origin", r]), None).await?;
        }
        None => {
            if run(with_gd(&["fetch", "-q", "--depth=1", "--no-tags", "origin", &pin.commit]), None)
                .await
                .is_err()
            {
                let all = [
                    "fetch",
                    "-q",
                    "origin",
                    "+refs/heads/*:refs/remotes/origin/*",
                    "+refs/tags/*:refs/tags/*",
                ];
                run(with_gd(&all), None).await?;
            }
        }
    }
    if has_commit().await.is_err() {
        // The ref moved after the key was computed: the pinned commit may still be there.
        let _ = run(with_gd(&["fetch", "-q", "--no-tags", "origin", &pin.commit]), None).await;
        if has_commit().await.is_err() {
            return Err(GitError::Moved { remote, commit: pin.commit.clone() });
        }
    }
    let tree = match subdir {
        Some(_) => scratch.join("checkout"),
        None => diff.to_path_buf(),
    };
    std::fs::create_dir_all(&tree).map_err(io(&tree))?;
    let tree_s = tree.to_string_lossy().into_owned();
    let submodules = ["submodule", "update", "-q", "--init", "--recursive", "--depth=1"];
    if subdir.is_none() && src.keep_git_dir {
        keep_git_dir(git, &bare_s, pin, diff).await?;
        if diff.join(".gitmodules").exists() {
            git.run(Some(diff), &submodules).await?;
        }
    } else {
        run(with_gd(&["--work-tree", &tree_s, "checkout", "-q", &pin.commit, "--", "."]), None).await?;
        if tree.join(".gitmodules").exists() {
            let args: Vec<&str> = ["--work-tree", tree_s.as_str()].into_iter().chain(submodules).collect();
            run(with_gd(&args), Some(tree.clone())).await?;
        }
    }
    let commit_time: i64 =
        run(with_gd(&["log", "-1", "--format=%ct", &pin.commit]), None).await?.trim().parse().unwrap_or(0);
    if let Some(sub) = subdir {
        let from = inside(&tree, sub).ok_or_else(|| GitError::Subdir {
            remote: remote.clone(),
            subdir: sub.display().to_string(),
            reason: "no such directory in the repository".into(),
        })?;
        for entry in std::fs::read_dir(&from).map_err(io(&from))? {
            let entry = entry.map_err(io(&from))?;
            let to = diff.join(entry.file_name());
            std::fs::rename(entry.path(), &to).map_err(io(&to))?;
        }
    }
    stamp(diff, commit_time).map_err(io(diff))
}

/// `tree/sub` when every component of it is a real directory (no symlink leads out).
fn inside(tree: &Path, sub: &Path) -> Option<PathBuf> {
    let mut cur = tree.to_path_buf();
    for c in sub.components() {
        cur.push(c);
        if !std::fs::symlink_metadata(&cur).ok()?.is_dir() {
            return None;
        }
    }
    Some(cur)
}

/// A `.git` in the checkout like BuildKit's: the commit fetched from the bare repository,
/// checked out detached, the remote named `origin` with its real URL.
async fn keep_git_dir(git: &Git<'_>, bare: &str, pin: &Pin, diff: &Path) -> Result<(), GitError> {
    const PULL: &str = "refs/rbuild/checkout";
    let dir = diff.to_string_lossy().into_owned();
    git.run(None, &["--git-dir", bare, "update-ref", PULL, &pin.commit]).await?;
    git.run(None, &["-c", "init.defaultBranch=master", "init", "-q", &dir]).await?;
    let origin = format!("file://{bare}");
    git.run(Some(diff), &["remote", "add", "origin", &origin]).await?;
    let refspec =
        match pin.full_ref.as_deref().filter(|r| r.starts_with("refs/heads/") || r.starts_with("refs/tags/"))
        {
            Some(full) => format!("{PULL}:{full}"),
            None => PULL.to_string(),
        };
    git.run(Some(diff), &["fetch", "-q", "-u", "--depth=1", "origin", &refspec]).await?;
    git.run(Some(diff), &["checkout", "-q", &pin.commit]).await?;
    git.run(Some(diff), &["remote", "set-url", "origin", &redact(git.remote)]).await?;
    git.run(Some(diff), &["reflog", "expire", "--all", "--expire=now"]).await?;
    let fetch_head = diff.join(".git/FETCH_HEAD");
    match std::fs::remove_file(&fetch_head) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(GitError::Io { remote: redact(git.remote), path: fetch_head, source: e })
        }
        _ => Ok(()),
    }
}

/// Sets the mtime (and atime) of everything under `root` to `secs`, without following links.
fn stamp(root: &Path, secs: i64) -> std::io::Result<()> {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};
    let t = Timespec { tv_sec: secs, tv_nsec: 0 };
    let times = Timestamps { last_access: t, last_modification: t };
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path.clone());
            }
            utimensat(CWD, &path, &times, AtFlags::SYMLINK_NOFOLLOW)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_and_redaction() {
        assert!(is_commit(&"a".repeat(40)));
        assert!(!is_commit("deadbeef") && !is_commit(&"A".repeat(40)) && !is_commit("main"));
        let cases = [
            ("https://user:secret@example.com/r.git", "https://user:xxxxx@example.com/r.git"),
            ("https://token@example.com/r.git", "https://token@example.com/r.git"),
            ("https://example.com/a@b.git", "https://example.com/a@b.git"),
            ("git@github.com:moby/buildkit.git", "git@github.com:moby/buildkit.git"),
        ];
        for (raw, want) in cases {
            assert_eq!(redact(raw), want);
        }
    }

    /// A repository with a `main` branch (two commits), an annotated tag on the first and a
    /// subdirectory, served over `file://`.
    fn has_git() -> bool {
        let found = std::process::Command::new("git").arg("--version").output().is_ok();
        if !found {
            eprintln!("skipped: git is not installed");
        }
        found
    }

    fn fixture() -> (tempfile::TempDir, String, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let sh = |script: &str| {
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(script)
                .current_dir(dir.path())
                .env("HOME", dir.path())
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .output()
                .unwrap();
            assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        sh("git init -q -b main repo && cd repo && git config user.email t@e && git config user.name t \
            && mkdir -p sub/deep && echo one > a.txt && echo inner > sub/deep/f && chmod 755 sub/deep/f \
            && git add -A && GIT_COMMITTER_DATE=@1000000000 git commit -q -m one && git tag -a v1 -m v1");
        let first = sh("git -C repo rev-parse HEAD");
        sh("cd repo && echo two > a.txt && git commit -q -am two");
        let second = sh("git -C repo rev-parse HEAD");
        let url = format!("file://{}", repo.display());
        (dir, url, first, second)
    }

    fn source(url: &str, reference: Option<&str>, subdir: Option<&str>, keep: bool) -> GitSource {
        GitSource {
            remote: url.into(),
            reference: reference.map(String::from),
            subdir: subdir.map(String::from),
            keep_git_dir: keep,
            checksum: None,
        }
    }

    async fn check_out(src: &GitSource, pin: &Pin, out: &Path) -> Result<(), GitError> {
        let scratch = out.with_extension("scratch");
        std::fs::create_dir_all(out).unwrap();
        std::fs::create_dir_all(&scratch).unwrap();
        let git = Git { remote: &src.remote, cancel: None };
        checkout(&git, src, pin, clean_subdir(src)?.as_deref(), out, &scratch).await
    }

    #[tokio::test]
    async fn refs_resolve_to_commits_over_file_urls() {
        if !has_git() {
            return;
        }
        let (_dir, url, first, second) = fixture();
        let git = Git { remote: &url, cancel: None };
        let head = ls_remote(&git, None).await.unwrap();
        assert_eq!(head, Pin { commit: second.clone(), full_ref: Some("refs/heads/main".into()) });
        let tag = ls_remote(&git, Some("v1")).await.unwrap();
        assert_eq!(tag.commit, first, "an annotated tag resolves to its commit");
        assert!(matches!(ls_remote(&git, Some("nope")).await, Err(GitError::NoRef { .. })));
        let mut src = source(&url, Some("main"), None, false);
        src.checksum = Some(second[..8].to_string());
        assert!(check_checksum(&src, &second).is_ok());
        src.checksum = Some(first.clone());
        assert!(matches!(check_checksum(&src, &second), Err(GitError::Checksum { .. })));
    }

    #[tokio::test]
    async fn checkouts_of_a_ref_a_subdir_and_with_git_dir() {
        if !has_git() {
            return;
        }
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let (dir, url, first, second) = fixture();
        let git = Git { remote: &url, cancel: None };

        let whole = dir.path().join("whole");
        let src = source(&url, Some("v1"), None, false);
        let pin = ls_remote(&git, Some("v1")).await.unwrap();
        check_out(&src, &pin, &whole).await.unwrap();
        assert_eq!(std::fs::read_to_string(whole.join("a.txt")).unwrap(), "one\n");
        assert!(!whole.join(".git").exists(), ".git is dropped by default");
        let meta = std::fs::metadata(whole.join("sub/deep/f")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o755);
        assert_eq!(meta.mtime(), 1000000000, "mtimes are the commit time");

        let sub = dir.path().join("sub");
        let src = source(&url, None, Some("/sub/"), false);
        let pin = Pin { commit: second.clone(), full_ref: None };
        check_out(&src, &pin, &sub).await.unwrap();
        assert_eq!(std::fs::read_to_string(sub.join("deep/f")).unwrap(), "inner\n");
        assert!(!sub.join("a.txt").exists());
        let missing = source(&url, None, Some("nope"), false);
        let err = check_out(&missing, &pin, &dir.path().join("missing")).await.unwrap_err();
        assert!(matches!(err, GitError::Subdir { .. }), "{err}");

        let kept = dir.path().join("kept");
        let src = source(&url, Some("main"), None, true);
        let pin = ls_remote(&git, Some("main")).await.unwrap();
        check_out(&src, &pin, &kept).await.unwrap();
        let head = std::process::Command::new("git")
            .args(["-C", &kept.to_string_lossy(), "rev-parse", "HEAD"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&head.stdout).trim(), second);
        assert!(!kept.join(".git/FETCH_HEAD").exists());

        let old = dir.path().join("old");
        let src = source(&url, Some(&first), None, false);
        check_out(&src, &Pin { commit: first.clone(), full_ref: None }, &old).await.unwrap();
        assert_eq!(std::fs::read_to_string(old.join("a.txt")).unwrap(), "one\n");
    }

    #[test]
    fn subdirs_stay_inside() {
        let src = |s: &str| GitSource {
            remote: "file:///r".into(),
            reference: None,
            subdir: Some(s.into()),
            keep_git_dir: false,
            checksum: None,
        };
        assert_eq!(clean_subdir(&src("/a/b/")).unwrap(), Some(PathBuf::from("a/b")));
        assert_eq!(clean_subdir(&src("a/../b")).unwrap(), Some(PathBuf::from("b")));
        assert_eq!(clean_subdir(&src("/")).unwrap(), None);
        assert!(clean_subdir(&src("../x")).is_err());
    }
}
