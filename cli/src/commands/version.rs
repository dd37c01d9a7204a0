//! `rbuild version`: what this program is and what it runs on.

use anyhow::Result;
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// `--help` examples.
pub const EXAMPLES: &str = "Examples:
  rbuild version
  rbuild version --format json | jq -r .cgroup";

/// `rbuild version` flags.
#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: VersionFormat,
}

/// `--format` values.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionFormat {
    /// Aligned lines, as `docker version`.
    Text,
    /// One JSON object.
    Json,
}

/// Everything `rbuild version` reports.
#[derive(Serialize, Debug)]
struct Info {
    version: &'static str,
    git_commit: &'static str,
    rustc: &'static str,
    os_arch: String,
    kernel: String,
    cgroup: String,
}

/// The cgroup layout of this host, as the executor will find it.
fn cgroup_version(root: &Path) -> String {
    if root.join("cgroup.controllers").exists() {
        "2".to_string()
    } else if root.join("unified/cgroup.controllers").exists() {
        "1 (hybrid: v2 at /sys/fs/cgroup/unified)".to_string()
    } else if root.join("memory").exists() || root.join("cpu").exists() {
        "1".to_string()
    } else {
        "none found".to_string()
    }
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |s| s.trim().into())
}

fn info() -> Info {
    Info {
        version: env!("CARGO_PKG_VERSION"),
        // Set by build.rs in release builds (or by whoever builds, e.g. a packaging script).
        git_commit: option_env!("RBUILD_GIT_COMMIT").filter(|c| !c.is_empty()).unwrap_or("unknown"),
        rustc: option_env!("RBUILD_RUSTC_VERSION").filter(|c| !c.is_empty()).unwrap_or("unknown"),
        os_arch: registry::Platform::host().to_string(),
        kernel: kernel(),
        cgroup: cgroup_version(Path::new("/sys/fs/cgroup")),
    }
}

/// `rbuild version`.
pub fn run(args: &VersionArgs) -> Result<ExitCode> {
    let info = info();
    let mut out = std::io::stdout().lock();
    match args.format {
        VersionFormat::Json => writeln!(out, "{}", serde_json::to_string(&info)?)?,
        VersionFormat::Text => {
            let rows = [
                ("Version", info.version.to_string()),
                ("Git commit", info.git_commit.to_string()),
                ("Rust version", info.rustc.to_string()),
                ("OS/Arch", info.os_arch),
                ("Kernel", info.kernel),
                ("Cgroup version", info.cgroup),
            ];
            writeln!(out, "rbuild:")?;
            for (key, value) in rows {
                writeln!(out, " {:<17}{value}", format!("{key}:"))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_layouts() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert_eq!(cgroup_version(root), "none found");
        std::fs::create_dir(root.join("memory")).unwrap();
        assert_eq!(cgroup_version(root), "1");
        std::fs::create_dir(root.join("unified")).unwrap();
        std::fs::write(root.join("unified/cgroup.controllers"), "").unwrap();
        assert!(cgroup_version(root).starts_with("1 (hybrid"));
        std::fs::write(root.join("cgroup.controllers"), "cpu memory").unwrap();
        assert_eq!(cgroup_version(root), "2");
    }
}
