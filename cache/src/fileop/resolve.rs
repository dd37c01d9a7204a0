//! Path resolution scoped to a root directory, like containerd's `fs.RootPath`: symlinks are
//! followed as if the root were `/` (an absolute target restarts at the root, `..` stops at
//! it), so the result is always inside the root. Components that do not exist are appended
//! lexically.

use super::FileOpError;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Linux's limit on symlinks followed in one lookup (`MAXSYMLINKS` is 40; containerd allows
/// 255 and so do we, since a chain of links inside an image is legitimate).
const MAX_LINKS: usize = 255;

/// A directory that paths are resolved inside.
#[derive(Debug, Clone)]
pub(crate) struct Root {
    host: PathBuf,
}

impl Root {
    pub(crate) fn new(host: &Path) -> Root {
        Root { host: host.to_path_buf() }
    }

    /// The directory on the host.
    pub(crate) fn host(&self) -> &Path {
        &self.host
    }

    /// `host_path` as seen inside the root (`/a/b`), for messages.
    pub(crate) fn display(&self, host_path: &Path) -> String {
        match host_path.strip_prefix(&self.host) {
            Ok(rel) if rel.as_os_str().is_empty() => "/".to_string(),
            Ok(rel) => format!("/{}", rel.display()),
            Err(_) => host_path.display().to_string(),
        }
    }

    /// A file-system error on `host_path`, shown inside the root.
    pub(crate) fn io_err(&self, op: &'static str, host_path: &Path, source: io::Error) -> FileOpError {
        FileOpError::Io { op, path: self.display(host_path), source }
    }

    /// Resolves `path` (absolute or relative, both taken from the root) to a host path.
    /// `follow_last` decides whether a symlink in the last component is followed.
    pub(crate) fn resolve(&self, path: &str, follow_last: bool) -> Result<PathBuf, FileOpError> {
        let rel = self.resolve_rel(path, follow_last)?;
        Ok(self.join(&rel))
    }

    /// Like [`Root::resolve`] but returns the path relative to the root as components.
    pub(crate) fn resolve_rel(&self, path: &str, follow_last: bool) -> Result<Vec<Vec<u8>>, FileOpError> {
        let mut resolved: Vec<Vec<u8>> = Vec::new();
        // Remaining components, last one at the end of the stack.
        let mut pending: Vec<Vec<u8>> = components(path.as_bytes()).rev().map(<[u8]>::to_vec).collect();
        let mut links = 0;
        while let Some(comp) = pending.pop() {
            if comp == b".." {
                resolved.pop();
                continue;
            }
            if pending.is_empty() && !follow_last {
                resolved.push(comp);
                break;
            }
            let mut candidate = self.join(&resolved);
            candidate.push(OsStr::from_bytes(&comp));
            let meta = match std::fs::symlink_metadata(&candidate) {
                Ok(meta) => meta,
                Err(e) if is_missing(&e) => {
                    // Nothing below a missing component can be a link: finish lexically.
                    resolved.push(comp);
                    while let Some(rest) = pending.pop() {
                        if rest == b".." {
                            resolved.pop();
                        } else {
                            resolved.push(rest);
                        }
                    }
                    break;
                }
                Err(e) => return Err(self.io_err("lstat", &candidate, e)),
            };
            if !meta.file_type().is_symlink() {
                resolved.push(comp);
                continue;
            }
            links += 1;
            if links > MAX_LINKS {
                return Err(FileOpError::SymlinkLoop { path: path.to_string() });
            }
            let target =
                std::fs::read_link(&candidate).map_err(|e| self.io_err("readlink", &candidate, e))?;
            let target = target.as_os_str().as_bytes();
            if target.starts_with(b"/") {
                resolved.clear();
            }
            pending.extend(components(target).rev().map(<[u8]>::to_vec));
        }
        Ok(resolved)
    }

    /// The host path of root-relative components (no resolution).
    pub(crate) fn join(&self, rel: &[Vec<u8>]) -> PathBuf {
        let mut p = self.host.clone();
        for c in rel {
            p.push(OsStr::from_bytes(c));
        }
        p
    }
}

/// The non-empty, non-`.` components of a slash-separated path.
fn components(path: &[u8]) -> impl DoubleEndedIterator<Item = &[u8]> {
    path.split(|b| *b == b'/').filter(|c| !c.is_empty() && *c != b".")
}

/// ENOENT, or ENOTDIR (a file where a directory is expected): both mean "does not exist".
pub(crate) fn is_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error())
}

/// Root-relative components as a slash-separated relative path (`a/b`, or "" for the root).
pub(crate) fn rel_string(rel: &[Vec<u8>]) -> String {
    rel.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("real/sub")).unwrap();
        symlink("/", root.join("toroot")).unwrap();
        symlink("../../..", root.join("real/up")).unwrap();
        symlink("/real", root.join("abs")).unwrap();
        symlink("sub", root.join("real/rel")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        let r = Root::new(root);
        let cases: &[(&str, bool, &str)] = &[
            ("/toroot/etc/passwd", true, "etc/passwd"),
            ("/real/up/x", true, "x"),
            ("/abs/rel/f", true, "real/sub/f"),
            ("/abs/rel", false, "real/rel"),
            ("/abs/rel", true, "real/sub"),
            ("../../a/./b/../c", true, "a/c"),
            ("/missing/../real", true, "real"),
            ("/", true, ""),
        ];
        for (path, follow, want) in cases {
            let got = r.resolve_rel(path, *follow).unwrap();
            assert_eq!(rel_string(&got), *want, "{path}");
        }
        assert!(matches!(r.resolve("/loop/x", true), Err(FileOpError::SymlinkLoop { .. })));
    }
}
