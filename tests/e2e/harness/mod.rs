//! Test harness: a real registry ([`registry`]), the program with a fresh store per test
//! ([`rbuild`], in the background with [`running`]), the busybox base image made by rbuild
//! itself ([`base`]), readers for what builds produce ([`image`], [`steps`]), and golden files
//! with the masking of what varies between runs ([`golden`]).

pub mod base;
pub mod golden;
pub mod image;
pub mod rbuild;
pub mod registry;
pub mod running;
pub mod steps;

pub use base::{Lab, lab};
pub use image::Image;
pub use rbuild::{Cmd, Outcome, Rbuild};
pub use registry::Registry;
pub use running::Running;
pub use steps::Steps;

use std::path::Path;

/// Returns from the test, with a printed reason, when the host cannot run the end-to-end tests
/// (not root, or the lab's tools are missing).
macro_rules! require_lab {
    () => {
        if let Some(reason) = $crate::harness::missing_lab() {
            eprintln!("skipped: {reason}");
            return;
        }
    };
}
pub(crate) use require_lab;

/// Returns from the test, with a printed reason, when the `git` program is missing.
macro_rules! require_git {
    () => {
        if std::process::Command::new("git").arg("--version").output().is_err() {
            eprintln!("skipped: git is not installed (scripts/setup.sh installs it)");
            return;
        }
    };
}
pub(crate) use require_git;

/// Runs `script` with `/bin/sh` in `dir` (git isolated from the host's configuration, fixed
/// commit dates) and returns its trimmed stdout; panics with its stderr when it fails.
pub fn git_sh(dir: &Path, script: &str) -> String {
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_DATE", "@1600000000")
        .env("GIT_COMMITTER_DATE", "@1600000000")
        .output()
        .expect("sh");
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Why this host cannot run the end-to-end tests, if it cannot.
pub fn missing_lab() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|r| r.split_whitespace().next());
    if uid != Some("0") {
        return Some("the end-to-end tests need root (namespaces, overlayfs, cgroups)".into());
    }
    for tool in ["/usr/bin/docker-registry", "/bin/busybox", "/usr/bin/skopeo", "/usr/bin/setpriv"] {
        if !Path::new(tool).exists() {
            return Some(format!("{tool} is missing (see bench/setup-lab.sh)"));
        }
    }
    None
}

/// A temporary build context holding `files` (`path`, content); parents are created.
pub fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("rbuild-e2e-ctx-").tempdir().expect("temp context");
    for (path, content) in files {
        write(&dir.path().join(path), content);
    }
    dir
}

/// Writes `content` to `path`, creating parent folders.
pub fn write(path: &Path, content: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create parent dirs");
    }
    std::fs::write(path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A temporary folder for outputs.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("rbuild-e2e-out-").tempdir().expect("temp dir")
}
