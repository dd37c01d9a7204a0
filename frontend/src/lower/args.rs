//! Build arguments: the automatic platform args, global (meta) args before the first
//! `FROM`, and the proxy args that reach `RUN` without being declared.

use crate::shell::EnvList;
use registry::Platform;
use std::collections::BTreeMap;

/// Build args that are passed to `RUN` without an `ARG` line and never enter the cache key
/// or the image history (BuildKit's proxy env; matched case-insensitively).
pub const PROXY_ARGS: &[&str] = &["HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY"];

/// True when `name` is one of the automatic platform args or a proxy arg: giving it as a
/// build arg is never reported as unused.
pub fn is_builtin(name: &str) -> bool {
    PLATFORM_ARGS.contains(&name)
        || PROXY_ARGS.iter().any(|p| p.eq_ignore_ascii_case(name))
        || name == "SOURCE_DATE_EPOCH"
        || name.starts_with("BUILDKIT_")
}

const PLATFORM_ARGS: &[&str] = &[
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETSTAGE",
];

fn platform_string(p: &Platform) -> String {
    p.to_string()
}

/// The args every build starts with: the platform args (a build arg of the same name wins)
/// and `TARGETSTAGE`.
pub fn default_args(
    target: &Platform,
    build: &Platform,
    target_stage: &str,
    build_args: &BTreeMap<String, String>,
) -> EnvList {
    let pairs: [(&str, String); 9] = [
        ("BUILDPLATFORM", platform_string(build)),
        ("BUILDOS", build.os.clone()),
        ("BUILDARCH", build.architecture.clone()),
        ("BUILDVARIANT", build.variant.clone().unwrap_or_default()),
        ("TARGETPLATFORM", platform_string(target)),
        ("TARGETOS", target.os.clone()),
        ("TARGETARCH", target.architecture.clone()),
        ("TARGETVARIANT", target.variant.clone().unwrap_or_default()),
        ("TARGETSTAGE", target_stage.to_string()),
    ];
    let mut env = EnvList::new();
    for (k, v) in pairs {
        let v = build_args.get(k).cloned().unwrap_or(v);
        env.set(k, v);
    }
    env
}

/// The proxy env of `RUN` steps, from build args (both spellings are set, as tools read
/// either).
pub fn proxy_env(build_args: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for name in PROXY_ARGS {
        if let Some((_, v)) = build_args.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
            out.push(format!("{name}={v}"));
            out.push(format!("{}={v}", name.to_ascii_lowercase()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shell::Env;

    #[test]
    fn platform_args_and_overrides() {
        let target: Platform = "linux/arm64".parse().unwrap();
        let build: Platform = "linux/amd64".parse().unwrap();
        let mut args = BTreeMap::new();
        args.insert("TARGETOS".to_string(), "freebsd".to_string());
        let env = default_args(&target, &build, "final", &args);
        assert_eq!(env.get("TARGETPLATFORM").as_deref(), Some("linux/arm64"));
        assert_eq!(env.get("TARGETOS").as_deref(), Some("freebsd"));
        assert_eq!(env.get("TARGETVARIANT").as_deref(), Some(""));
        assert_eq!(env.get("BUILDVARIANT").as_deref(), Some(""));
        assert_eq!(env.get("TARGETSTAGE").as_deref(), Some("final"));
    }

    #[test]
    fn proxy_args_in_both_spellings() {
        let mut args = BTreeMap::new();
        args.insert("http_proxy".to_string(), "hp".to_string());
        args.insert("FOO".to_string(), "x".to_string());
        assert_eq!(proxy_env(&args), vec!["HTTP_PROXY=hp", "http_proxy=hp"]);
        assert!(is_builtin("no_proxy") && is_builtin("TARGETARCH") && !is_builtin("FOO"));
    }
}
