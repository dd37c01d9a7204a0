//! Low-level file-system helpers shared by the file operations: creating directories with
//! owner and times, copying file contents (reflink, `copy_file_range`, then read/write),
//! times, extended attributes and special files.

use super::FileOpError;
use super::owner::Ids;
use super::resolve::Root;
use rustix::fs::{AtFlags, CWD, FileType, Timespec, Timestamps};
use std::fs::{File, Metadata, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// `S_IFMT` and friends, for `st_mode` values.
pub(crate) const S_IFMT: u32 = 0o170000;
pub(crate) const S_IFDIR: u32 = 0o040000;
pub(crate) const S_IFREG: u32 = 0o100000;
pub(crate) const S_IFLNK: u32 = 0o120000;

/// Access and modification times of an entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Times {
    pub(crate) atime: (i64, i64),
    pub(crate) mtime: (i64, i64),
}

impl Times {
    pub(crate) fn of(meta: &Metadata) -> Times {
        Times { atime: (meta.atime(), meta.atime_nsec()), mtime: (meta.mtime(), meta.mtime_nsec()) }
    }

    /// Both times set to `secs` since the epoch.
    pub(crate) fn at(secs: i64) -> Times {
        Times { atime: (secs, 0), mtime: (secs, 0) }
    }
}

/// Sets the times of `path` without following a final symlink.
pub(crate) fn set_times(path: &Path, times: Times) -> io::Result<()> {
    let ts = |(sec, nsec): (i64, i64)| Timespec { tv_sec: sec, tv_nsec: nsec as _ };
    let stamps = Timestamps { last_access: ts(times.atime), last_modification: ts(times.mtime) };
    rustix::fs::utimensat(CWD, path, &stamps, AtFlags::SYMLINK_NOFOLLOW).map_err(io::Error::from)
}

/// Sets permission bits exactly (no umask). Never call on a symlink: chmod follows it.
pub(crate) fn chmod(path: &Path, mode: u32) -> io::Result<()> {
    std::fs::set_permissions(path, Permissions::from_mode(mode & 0o7777))
}

/// Changes the owner of `path` itself (a symlink is not followed).
pub(crate) fn lchown(path: &Path, ids: Ids) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(ids.uid), Some(ids.gid))
}

/// Creates `host` and its missing parents (fsutil's `MkdirAll`): each created directory gets
/// `perm` exactly, `owner` when given and the times when given. An existing directory is
/// left alone; an existing non-directory is an error. `host` must come from
/// [`Root::resolve`], so that its existing part holds no symlinks.
pub(crate) fn mkdir_all(
    root: &Root,
    host: &Path,
    perm: u32,
    owner: Option<Ids>,
    times: Option<Times>,
) -> Result<Vec<PathBuf>, FileOpError> {
    match std::fs::symlink_metadata(host) {
        Ok(m) if m.is_dir() => return Ok(Vec::new()),
        Ok(_) => {
            return Err(FileOpError::Conflict { path: root.display(host), reason: "not a directory" });
        }
        Err(_) => {}
    }
    let mut created = Vec::new();
    if let Some(parent) = host.parent()
        && parent.starts_with(root.host())
        && parent != host
    {
        created = mkdir_all(root, parent, perm, owner, times)?;
    }
    if let Err(e) = std::fs::create_dir(host) {
        // Lost a race with another creator, or "dir/." style input: fine if it is a dir now.
        if std::fs::symlink_metadata(host).is_ok_and(|m| m.is_dir()) {
            return Ok(created);
        }
        return Err(root.io_err("mkdir", host, e));
    }
    if let Some(ids) = owner {
        lchown(host, ids).map_err(|e| root.io_err("chown", host, e))?;
    }
    chmod(host, perm).map_err(|e| root.io_err("chmod", host, e))?;
    if let Some(t) = times {
        set_times(host, t).map_err(|e| root.io_err("utimes", host, e))?;
    }
    created.push(host.to_path_buf());
    Ok(created)
}

/// Creates `dst` (which must not exist) with the contents of the regular file `src` and
/// returns it open for writing metadata. Tries a reflink, then `copy_file_range` (which
/// the kernel may turn into a server-side or CoW copy), then plain reads and writes.
pub(crate) fn copy_file(src: &Path, dst: &Path) -> io::Result<File> {
    let mut input = OpenOptions::new().read(true).custom_flags(libc_flags::O_NOFOLLOW).open(src)?;
    let mut output = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc_flags::O_NOFOLLOW)
        .open(dst)?;
    let size = input.metadata()?.len();
    if size == 0 {
        return Ok(output);
    }
    if rustix::fs::ioctl_ficlone(&output, &input).is_ok() {
        return Ok(output);
    }
    let mut copied: u64 = 0;
    loop {
        let want = (size.saturating_sub(copied)).clamp(1 << 16, 1 << 30) as usize;
        match rustix::fs::copy_file_range(&input, None, &output, None, want) {
            Ok(0) => return Ok(output),
            Ok(n) => copied += n as u64,
            Err(e) if copied == 0 && fallback_errno(e) => break,
            Err(e) => return Err(e.into()),
        }
    }
    // copy_file_range is not available between these file systems: plain copy.
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(output),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        output.write_all(&buf[..n])?;
    }
}

fn fallback_errno(e: rustix::io::Errno) -> bool {
    use rustix::io::Errno;
    [Errno::XDEV, Errno::NOSYS, Errno::OPNOTSUPP, Errno::INVAL, Errno::PERM, Errno::IO].contains(&e)
}

/// Flags not exposed by std.
mod libc_flags {
    pub(super) const O_NOFOLLOW: i32 = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
}

/// The extended attributes of `path` itself (a symlink's own), sorted by name.
pub(crate) fn list_xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let size = match rustix::fs::llistxattr_query(path) {
        Ok(0) => return Ok(Vec::new()),
        Ok(n) => n,
        Err(e) if e == rustix::io::Errno::OPNOTSUPP => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut names = vec![0u8; size];
    let n = rustix::fs::llistxattr(path, &mut names[..])?;
    names.truncate(n);
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name_str = std::ffi::OsStr::new(std::str::from_utf8(name).unwrap_or(""));
        if name_str.is_empty() {
            continue;
        }
        let len = match rustix::fs::lgetxattr_query(path, name_str) {
            Ok(n) => n,
            // Removed between list and get: skip it.
            Err(rustix::io::Errno::NODATA) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut value = vec![0u8; len];
        let got = if len == 0 { 0 } else { rustix::fs::lgetxattr(path, name_str, &mut value[..])? };
        value.truncate(got);
        out.push((name.to_vec(), value));
    }
    out.sort();
    Ok(out)
}

/// Copies extended attributes from `src` to `dst`, best effort as BuildKit does (a
/// destination file system without xattr support or a forbidden namespace is not an error).
pub(crate) fn copy_xattrs(src: &Path, dst: &Path) {
    let Ok(attrs) = list_xattrs(src) else { return };
    for (name, value) in attrs {
        let Ok(name) = std::str::from_utf8(&name) else { continue };
        if let Err(e) = rustix::fs::lsetxattr(dst, name, &value, rustix::fs::XattrFlags::empty()) {
            tracing::debug!(path = %dst.display(), xattr = name, error = %e, "xattr not copied");
        }
    }
}

/// Creates a device node, FIFO or socket like the source's `st_mode`/`st_rdev`.
pub(crate) fn make_special(dst: &Path, st_mode: u32, rdev: u64) -> io::Result<()> {
    let file_type = FileType::from_raw_mode(st_mode as _);
    let mode = rustix::fs::Mode::from_raw_mode((st_mode & 0o7777) as _);
    rustix::fs::mknodat(CWD, dst, file_type, mode, rdev as _).map_err(io::Error::from)
}

/// Removes `path` whatever it is (directories recursively); a missing path is fine.
pub(crate) fn remove_all(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
