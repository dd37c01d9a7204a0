//! How `RUN` steps run, through the real CLI: secret, ssh and cache mounts, network modes,
//! entitlements, privileges, resource limits and what the build reports about them
//! (issue 6).

mod cache_mounts;
mod limits;
mod network_security;
mod oci_runtime;
mod secrets;
mod ssh;

use crate::harness::{self, Cmd, Outcome, Rbuild};
use std::path::Path;

/// A build of `ctx` exporting the final filesystem to a fresh directory, with `extra` flags.
pub fn build_local(rb: &Rbuild, ctx: &Path, extra: &[&str]) -> (Outcome, tempfile::TempDir) {
    let out = harness::tempdir();
    let o =
        rb.build(ctx).arg("-o").arg(format!("type=local,dest={}", out.path().display())).args(extra).run();
    (o, out)
}

/// The text of `path` in an exported filesystem.
pub fn read(out: &Path, path: &str) -> String {
    std::fs::read_to_string(out.join(path.trim_start_matches('/')))
        .unwrap_or_else(|e| panic!("{path} in the exported filesystem: {e}"))
}

/// `rbuild --root ROOT <args>` with extra environment variables (e.g. a secret's).
pub fn with_env(rb: &Rbuild, vars: &[(&str, &str)], args: &[&str]) -> Cmd {
    let mut c =
        Cmd::tool("/usr/bin/env").arg(format!("DOCKER_CONFIG={}", rb.root().join("docker-config").display()));
    for (k, v) in vars {
        c = c.arg(format!("{k}={v}"));
    }
    c.arg(harness::rbuild::PROGRAM).arg("--root").arg(rb.root()).args(args)
}

/// Names of the graph steps that ran and that were cached, from `--progress rawjson`.
pub fn ran_and_cached(o: &Outcome) -> (Vec<String>, Vec<String>) {
    let (mut ran, mut cached) = (Vec::new(), Vec::new());
    for e in o.events() {
        let name = e["name"].as_str().unwrap_or_default().to_string();
        if !e["step"].as_str().is_some_and(|s| s.starts_with("sha256:")) || name.starts_with("[internal]") {
            continue;
        }
        match e["event"].as_str() {
            Some("started") => ran.push(name),
            Some("cached") => cached.push(name),
            _ => {}
        }
    }
    (ran, cached)
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// A value no file of the base image or the tools can contain by chance.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{prefix}-{}-{}", std::process::id(), nanos.as_nanos())
}
