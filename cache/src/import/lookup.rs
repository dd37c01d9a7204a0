//! Path handling for layer import: normalizing tar names, resolving directories inside the
//! layer being written (never leaving it), and looking paths up in the merged view of the
//! layers below the way overlayfs does.

use crate::fsutil::{self, is_opaque, is_whiteout};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// How many symlinks one resolution may follow (Linux's own limit, `MAXSYMLINKS`).
const MAX_SYMLINK_HOPS: usize = 40;

/// The components of a tar entry name, normalized as if the layer root were `/`: empty and
/// `.` components vanish and `..` never climbs above the root (the same clamping containerd
/// applies), so no name can point outside the layer. An empty result names the root.
pub(crate) fn normalize(name: &[u8]) -> Vec<OsString> {
    let mut out = Vec::new();
    for c in name.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            c => out.push(fsutil::os_string(c)),
        }
    }
    out
}

/// Looks `comps` up in the union of `layers` (top-most first) with overlayfs rules: a
/// whiteout hides the path, a non-directory hides everything below it, an opaque directory
/// hides the same directory in lower layers. Symlinks are not followed. Returns the path in
/// the layer that provides the entry, and its metadata.
pub(crate) fn lookup_union(layers: &[&Path], comps: &[OsString]) -> io::Result<Option<(PathBuf, Metadata)>> {
    if comps.is_empty() {
        return Ok(None);
    }
    let last = comps.len() - 1;
    for layer in layers {
        let mut cur = layer.to_path_buf();
        let mut opaque_above = false;
        for (i, c) in comps.iter().enumerate() {
            cur.push(c);
            let meta = match fs::symlink_metadata(&cur) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(e),
            };
            if is_whiteout(&meta) {
                return Ok(None);
            }
            if i == last {
                return Ok(Some((cur, meta)));
            }
            if !meta.is_dir() {
                return Ok(None);
            }
            if is_opaque(&cur)? {
                opaque_above = true;
            }
        }
        if opaque_above {
            return Ok(None);
        }
    }
    Ok(None)
}

/// Names visible at the root of the union of `layers`.
pub(crate) fn union_root_names(layers: &[&Path]) -> io::Result<Vec<OsString>> {
    let mut names = std::collections::BTreeSet::new();
    for layer in layers {
        for entry in fs::read_dir(layer)? {
            names.insert(entry?.file_name());
        }
    }
    let mut visible = Vec::new();
    for name in names {
        if lookup_union(layers, std::slice::from_ref(&name))?.is_some() {
            visible.push(name);
        }
    }
    Ok(visible)
}

/// Why a directory could not be resolved inside the layer.
#[derive(Debug)]
pub(crate) enum ResolveError {
    /// A component is an existing non-directory.
    NotADirectory(PathBuf),
    /// Symlinks loop or nest too deeply.
    TooManySymlinks,
    /// A file-system call failed.
    Io(&'static str, PathBuf, io::Error),
}

/// A directory created while resolving, with the times it should end up with.
pub(crate) struct CreatedDir {
    pub(crate) path: PathBuf,
    pub(crate) times: Option<((i64, i64), (i64, i64))>,
}

/// Resolves the directory `comps` inside `root` like a chroot would: symlinks inside the
/// layer are followed but clamped to it. With `create`, missing directories are made with
/// the metadata the lower layers show at that path (or 0755 root-owned when they show
/// none), and a whiteout is replaced by a new opaque directory; without `create`, a missing
/// component gives `None`.
pub(crate) fn resolve_dir(
    root: &Path,
    lowers: &[&Path],
    comps: &[OsString],
    create: bool,
    created: &mut Vec<CreatedDir>,
) -> Result<Option<PathBuf>, ResolveError> {
    let mut resolved: Vec<OsString> = Vec::new();
    let mut pending: VecDeque<OsString> = comps.iter().cloned().collect();
    let mut hops = 0;
    while let Some(c) = pending.pop_front() {
        match c.as_bytes() {
            b"" | b"." => continue,
            b".." => {
                resolved.pop();
                continue;
            }
            _ => {}
        }
        let mut path = root.to_path_buf();
        path.extend(&resolved);
        path.push(&c);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => resolved.push(c),
            Ok(m) if m.file_type().is_symlink() => {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(ResolveError::TooManySymlinks);
                }
                let target =
                    fs::read_link(&path).map_err(|e| ResolveError::Io("read link", path.clone(), e))?;
                let target = target.as_os_str().as_bytes();
                if target.starts_with(b"/") {
                    resolved.clear();
                }
                for part in target.split(|b| *b == b'/').rev() {
                    pending.push_front(fsutil::os_string(part));
                }
            }
            Ok(m) if create && is_whiteout(&m) => {
                // The path was deleted earlier in this layer; a directory now re-created
                // there must not show the lower layers' contents.
                fs::remove_file(&path).map_err(|e| ResolveError::Io("remove whiteout", path.clone(), e))?;
                fs::create_dir(&path).map_err(|e| ResolveError::Io("create directory", path.clone(), e))?;
                fsutil::set_opaque(&path).map_err(|e| ResolveError::Io("mark opaque", path.clone(), e))?;
                created.push(CreatedDir { path, times: None });
                resolved.push(c);
            }
            Ok(_) => return Err(ResolveError::NotADirectory(path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                fs::create_dir(&path).map_err(|e| ResolveError::Io("create directory", path.clone(), e))?;
                resolved.push(c);
                let lower = lookup_union(lowers, &resolved)
                    .map_err(|e| ResolveError::Io("look up in lower layers", path.clone(), e))?;
                let times = match lower {
                    Some((src, meta)) if meta.is_dir() => {
                        fsutil::copy_metadata(&src, &meta, &path)
                            .map_err(|e| ResolveError::Io("copy directory metadata", path.clone(), e))?;
                        Some(fsutil::times_of(&meta))
                    }
                    _ => {
                        fsutil::set_owner_mode(&path, 0, 0, 0o755, false)
                            .map_err(|e| ResolveError::Io("set directory mode", path.clone(), e))?;
                        None
                    }
                };
                created.push(CreatedDir { path, times });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ResolveError::Io("stat", path, e)),
        }
    }
    let mut path = root.to_path_buf();
    path.extend(&resolved);
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalize_inside_the_root() {
        let cases: &[(&str, &[&str])] = &[
            ("a/b/c", &["a", "b", "c"]),
            ("./a//b/", &["a", "b"]),
            ("/etc/passwd", &["etc", "passwd"]),
            ("../../etc/passwd", &["etc", "passwd"]),
            ("a/../../b", &["b"]),
            ("a/./b/../c", &["a", "c"]),
            ("./", &[]),
            ("..", &[]),
        ];
        for (name, want) in cases {
            let got = normalize(name.as_bytes());
            let got: Vec<_> = got.iter().map(|c| c.to_str().unwrap()).collect();
            assert_eq!(&got, want, "{name}");
        }
    }

    #[test]
    fn resolve_follows_symlinks_but_stays_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        fs::create_dir_all(root.join("real")).unwrap();
        std::os::unix::fs::symlink("/real", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../..", root.join("up")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        let mut created = Vec::new();
        let comps = |s: &str| normalize(s.as_bytes());
        let got = resolve_dir(&root, &[], &comps("abs/x"), true, &mut created).unwrap().unwrap();
        assert_eq!(got, root.join("real/x"));
        let got = resolve_dir(&root, &[], &comps("up/escaped"), true, &mut created).unwrap().unwrap();
        assert_eq!(got, root.join("escaped"));
        assert!(!tmp.path().join("escaped").exists());
        assert!(matches!(
            resolve_dir(&root, &[], &comps("loop/x"), true, &mut created),
            Err(ResolveError::TooManySymlinks)
        ));
        assert!(resolve_dir(&root, &[], &comps("missing/x"), false, &mut created).unwrap().is_none());
    }
}
