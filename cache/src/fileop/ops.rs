//! `mkdir`, `mkfile` and `rm` (BuildKit's `solver/llbsolver/file/backend.go`).

use super::FileOpError;
use super::fsops::{self, Times};
use super::owner::Ids;
use super::resolve::{Root, is_missing};
use super::select::Filter;
use super::wildcard::resolve_wildcards;
use crate::patterns::{clean, contains_wildcards};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

pub(crate) fn mkdir(
    dest: &Root,
    path: &str,
    mode: u32,
    make_parents: bool,
    owner: Option<Ids>,
    timestamp: Option<i64>,
) -> Result<(), FileOpError> {
    let p = dest.resolve(path, true)?;
    let times = timestamp.map(Times::at);
    let perm = mode & 0o777;
    if make_parents {
        fsops::mkdir_all(dest, &p, perm, owner, times)?;
        return Ok(());
    }
    if let Err(e) = std::fs::create_dir(&p) {
        // BuildKit: an existing path (of any type) is not an error without parents either.
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            return Ok(());
        }
        return Err(dest.io_err("mkdir", &p, e));
    }
    if let Some(ids) = owner {
        fsops::lchown(&p, ids).map_err(|e| dest.io_err("chown", &p, e))?;
    }
    fsops::chmod(&p, perm).map_err(|e| dest.io_err("chmod", &p, e))?;
    if let Some(t) = times {
        fsops::set_times(&p, t).map_err(|e| dest.io_err("utimes", &p, e))?;
    }
    Ok(())
}

/// Writes the file next to its final place and renames it over whatever is there, so an
/// existing device node or FIFO at the path is replaced, never written through.
pub(crate) fn mkfile(
    dest: &Root,
    path: &str,
    mode: u32,
    data: &[u8],
    owner: Option<Ids>,
    timestamp: Option<i64>,
) -> Result<(), FileOpError> {
    let target = clean(&format!("/{path}"));
    let p = dest.resolve(&target, true)?;
    if p == dest.host() {
        return Err(FileOpError::InvalidPath { path: path.to_string(), reason: "is a directory (the root)" });
    }
    let parent = p.parent().unwrap_or(dest.host());
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-mkfile")
        .tempfile_in(parent)
        .map_err(|e| dest.io_err("create", &p, e))?;
    let pp = &p;
    let err = |op| move |e: std::io::Error| dest.io_err(op, pp, e);
    tmp.write_all(data).map_err(err("write"))?;
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode & 0o777)).map_err(err("chmod"))?;
    if let Some(ids) = owner {
        std::os::unix::fs::fchown(tmp.as_file(), Some(ids.uid), Some(ids.gid)).map_err(err("chown"))?;
    }
    if let Some(t) = timestamp.map(Times::at) {
        fsops::set_times(tmp.path(), t).map_err(err("utimes"))?;
    }
    tmp.persist(&p).map_err(|e| dest.io_err("rename", &p, e.error))?;
    Ok(())
}

pub(crate) fn rm(
    dest: &Root,
    path: &str,
    allow_not_found: bool,
    allow_wildcard: bool,
) -> Result<(), FileOpError> {
    if allow_wildcard && contains_wildcards(path) {
        let pattern = clean(&format!("/{path}"));
        for m in resolve_wildcards(dest, &pattern, false, &Filter::default())? {
            rm_path(dest, &m, allow_not_found)?;
        }
        return Ok(());
    }
    rm_path(dest, path, allow_not_found)
}

/// Removes one path: its parent is resolved inside the root, the last component is not
/// followed (removing a symlink removes the link).
fn rm_path(dest: &Root, path: &str, allow_not_found: bool) -> Result<(), FileOpError> {
    let cleaned = clean(&format!("/{path}"));
    let (dir, base) = cleaned.rsplit_once('/').unwrap_or(("", &cleaned));
    if base.is_empty() {
        return Err(FileOpError::InvalidPath { path: path.to_string(), reason: "cannot remove the root" });
    }
    let mut p = dest.resolve(dir, true)?;
    p.push(base);
    if !allow_not_found {
        // BuildKit stats (following a final symlink): a dangling link counts as missing.
        // The link is followed inside the root, never on the host.
        let followed = dest.resolve(&cleaned, true)?;
        if let Err(e) = std::fs::symlink_metadata(&followed)
            && is_missing(&e)
        {
            return Err(FileOpError::NotFound { path: cleaned });
        }
    }
    fsops::remove_all(&p).map_err(|e| dest.io_err("remove", &p, e))
}
