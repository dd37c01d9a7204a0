//! Checks a [`Spec`] before anything is created, so that bad input is an
//! [`ExecutorError::InvalidSpec`] naming the field, not a failure deep inside the sandbox.

use std::net::IpAddr;
use std::path::Path;

use crate::error::ExecutorError;
use crate::etc_files::validate_host_word;
use crate::spec::{MountKind, Rootfs, Spec};

fn overlay_path(what: &str, p: &Path) -> Result<(), String> {
    let s = p.to_str().ok_or_else(|| format!("{what} {} is not UTF-8", p.display()))?;
    if !p.is_absolute() {
        return Err(format!("{what} {s:?} is not absolute"));
    }
    // overlayfs splits its options on ',' and lower layers on ':'.
    if s.contains([',', ':', '\\']) {
        return Err(format!("{what} {s:?} contains ',', ':' or '\\', which overlayfs options cannot carry"));
    }
    Ok(())
}

fn container_path(what: &str, p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!("{what} {p:?} is not absolute"));
    }
    if p.contains('\0') {
        return Err(format!("{what} {p:?} contains a NUL byte"));
    }
    Ok(())
}

fn check(spec: &Spec) -> Result<(), String> {
    if spec.args.is_empty() || spec.args[0].is_empty() {
        return Err("args is empty".to_owned());
    }
    if spec.args.iter().chain(&spec.env).any(|s| s.contains('\0')) {
        return Err("args and env must not contain NUL bytes".to_owned());
    }
    if let Some(bad) = spec.env.iter().find(|e| !e.contains('=') || e.starts_with('=')) {
        return Err(format!("env entry {bad:?} is not KEY=VALUE"));
    }
    container_path("cwd", &spec.cwd)?;
    validate_host_word("hostname", &spec.hostname)?;
    for (host, ip) in &spec.extra_hosts {
        validate_host_word("extra host", host)?;
        ip.parse::<IpAddr>().map_err(|_| format!("extra host {host:?} has an invalid IP address {ip:?}"))?;
    }
    let Rootfs::Overlay { lower, upper, work } = &spec.rootfs;
    for l in lower {
        overlay_path("rootfs lower layer", l)?;
    }
    overlay_path("rootfs upper directory", upper)?;
    overlay_path("rootfs work directory", work)?;
    for m in &spec.mounts {
        container_path("mount destination", &m.dest)?;
        if m.dest.trim_matches('/').is_empty() {
            return Err("a mount cannot replace /".to_owned());
        }
        match &m.kind {
            MountKind::Bind { source, .. } => {
                if !source.is_absolute() {
                    return Err(format!("bind source {} is not absolute", source.display()));
                }
                if !source.exists() {
                    return Err(format!("bind source {} does not exist", source.display()));
                }
            }
            MountKind::Tmpfs { .. } => {}
            MountKind::Overlay { lower, upper_work } => {
                if lower.is_empty() {
                    return Err(format!("overlay mount at {} has no lower layer", m.dest));
                }
                for l in lower {
                    overlay_path("overlay mount layer", l)?;
                }
                if let Some((u, w)) = upper_work {
                    overlay_path("overlay mount upper directory", u)?;
                    overlay_path("overlay mount work directory", w)?;
                }
            }
        }
    }
    Ok(())
}

pub(crate) fn validate(spec: &Spec) -> Result<(), ExecutorError> {
    check(spec).map_err(ExecutorError::invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Mount;

    fn base() -> Spec {
        Spec::new(
            vec!["sh".into()],
            Rootfs::Overlay { lower: vec!["/l".into()], upper: "/u".into(), work: "/w".into() },
        )
    }

    #[test]
    fn invalid_specs_table() {
        type Edit = fn(&mut Spec);
        let cases: &[(&str, Edit)] = &[
            ("args is empty", |s| s.args.clear()),
            ("not KEY=VALUE", |s| s.env.push("NOEQUALS".into())),
            ("cwd \"rel\" is not absolute", |s| s.cwd = "rel".into()),
            ("hostname", |s| s.hostname = "bad name".into()),
            ("invalid IP", |s| s.extra_hosts.push(("db".into(), "999.1.1.1".into()))),
            ("cannot carry", |s| {
                s.rootfs =
                    Rootfs::Overlay { lower: vec!["/a:b".into()], upper: "/u".into(), work: "/w".into() }
            }),
            ("not absolute", |s| {
                s.mounts.push(Mount { dest: "x".into(), kind: MountKind::Tmpfs { size: None } })
            }),
            ("cannot replace /", |s| {
                s.mounts.push(Mount { dest: "/".into(), kind: MountKind::Tmpfs { size: None } })
            }),
            ("does not exist", |s| {
                s.mounts.push(Mount {
                    dest: "/x".into(),
                    kind: MountKind::Bind { source: "/nonexistent/rbuild".into(), readonly: true },
                })
            }),
            ("no lower layer", |s| {
                s.mounts.push(Mount {
                    dest: "/x".into(),
                    kind: MountKind::Overlay { lower: vec![], upper_work: None },
                })
            }),
        ];
        for (want, edit) in cases {
            let mut spec = base();
            edit(&mut spec);
            let err = validate(&spec).unwrap_err().to_string();
            assert!(err.contains(want), "{want}: {err}");
        }
        validate(&base()).unwrap();
    }
}
