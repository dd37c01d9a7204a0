//! Build facts for `rbuild version`: the rustc version, and in release builds the git commit.
//!
//! Debug builds do not watch git, so that a commit does not rebuild the program during
//! development; they report the commit only when `RBUILD_GIT_COMMIT` is set by whoever builds.

use std::path::Path;
use std::process::Command;

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok().filter(|o| o.status.success())?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=RBUILD_GIT_COMMIT");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    if let Some(v) = output(Command::new(rustc).arg("--version")) {
        println!("cargo:rustc-env=RBUILD_RUSTC_VERSION={v}");
    }
    if std::env::var_os("RBUILD_GIT_COMMIT").is_some() {
        return;
    }
    if std::env::var("PROFILE").as_deref() != Ok("release") {
        return;
    }
    let Some(git_dir) = output(Command::new("git").args(["rev-parse", "--absolute-git-dir"])) else { return };
    let git_dir = Path::new(&git_dir);
    println!("cargo:rerun-if-changed={}", git_dir.join("HEAD").display());
    if let Ok(head) = std::fs::read_to_string(git_dir.join("HEAD"))
        && let Some(reference) = head.trim().strip_prefix("ref: ")
    {
        println!("cargo:rerun-if-changed={}", git_dir.join(reference).display());
        println!("cargo:rerun-if-changed={}", git_dir.join("packed-refs").display());
    }
    if let Some(commit) = output(Command::new("git").args(["rev-parse", "--short=12", "HEAD"])) {
        println!("cargo:rustc-env=RBUILD_GIT_COMMIT={commit}");
    }
}
