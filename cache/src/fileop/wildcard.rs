//! Wildcard expansion of a source path (fsutil's `ResolveWildcards`): the components before
//! the first wildcard are resolved inside the root, then the tree below is walked in
//! lexical order and every entry whose relative path matches the rest is a match (a
//! matching directory is not descended into).

use super::FileOpError;
use super::resolve::{Root, is_missing, rel_string};
use super::select::Filter;
use crate::patterns::{glob_match, split_wildcards};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Expands `src` inside `root`. Matches are returned as paths relative to the root
/// (`a/b`), with symlinks in the non-wildcard prefix resolved; entries hidden by the
/// filter's ignore patterns are skipped. A missing prefix directory is an error.
pub(crate) fn resolve_wildcards(
    root: &Root,
    src: &str,
    follow_links: bool,
    filter: &Filter,
) -> Result<Vec<String>, FileOpError> {
    let (base, pattern) = split_wildcards(src);
    if pattern.is_empty() {
        return Ok(vec![base.trim_start_matches('/').to_string()]);
    }
    let base_rel = rel_string(&root.resolve_rel(&base, follow_links)?);
    let base_host = root.host().join(&base_rel);
    match std::fs::symlink_metadata(&base_host) {
        // Only when links are not followed: like Go's Walk, do not descend into the link
        // (opening it would follow it on the host).
        Ok(m) if m.file_type().is_symlink() => return Ok(Vec::new()),
        Ok(_) => {}
        Err(e) if is_missing(&e) => return Err(FileOpError::NotFound { path: format!("/{base_rel}") }),
        Err(e) => return Err(root.io_err("lstat", &base_host, e)),
    }
    if filter.ignored(&base_rel, true) {
        return Err(FileOpError::NotFound { path: format!("/{base_rel}") });
    }
    // '*', '?' and literals never match '/', so a match has at most as many separators as
    // the pattern has '/' and classes; deeper directories cannot hold matches.
    let max_depth = pattern.bytes().filter(|b| *b == b'/' || *b == b'[').count() + 1;
    glob_match(&pattern, "")?;
    let mut out = Vec::new();
    walk(root, &base_host, &base_rel, "", 1, max_depth, &pattern, filter, &mut out)?;
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn walk(
    root: &Root,
    dir: &Path,
    base_rel: &str,
    rel: &str,
    depth: usize,
    max_depth: usize,
    pattern: &str,
    filter: &Filter,
    out: &mut Vec<String>,
) -> Result<(), FileOpError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        // Not a directory: a wildcard below a file matches nothing.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) => return Ok(()),
        Err(e) => return Err(root.io_err("readdir", dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| root.io_err("readdir", dir, e))?;
        let is_dir = entry.file_type().map_err(|e| root.io_err("lstat", &entry.path(), e))?.is_dir();
        names.push((entry.file_name().as_bytes().to_vec(), is_dir));
    }
    names.sort();
    for (raw, is_dir) in names {
        let name = String::from_utf8_lossy(&raw).into_owned();
        let child_rel = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        let root_rel =
            if base_rel.is_empty() { child_rel.clone() } else { format!("{base_rel}/{child_rel}") };
        if filter.ignored(&root_rel, is_dir) {
            continue;
        }
        if glob_match(pattern, &child_rel)? {
            out.push(root_rel);
            continue;
        }
        if is_dir && depth < max_depth {
            let mut child = dir.to_path_buf();
            child.push(OsStr::from_bytes(&raw));
            walk(root, &child, base_rel, &child_rel, depth + 1, max_depth, pattern, filter, out)?;
        }
    }
    Ok(())
}
