//! File-system helpers for layer directories: overlay markers, xattrs, ownership, times,
//! and copying one node with all its metadata.
//!
//! Every helper acts on the path itself and never follows a symlink in the last component.

use crate::error::{StoreError, io_err};
use rustix::fs::{AtFlags, CWD, FileType, Gid, Mode, Timespec, Timestamps, Uid, XattrFlags};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The xattr overlayfs reads to decide that a directory hides the layers below it.
pub(crate) const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Prefix of the xattrs overlayfs keeps for itself; never copied from tars or between layers.
const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";

/// True for an overlay whiteout: a character device with device number 0:0.
pub(crate) fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// True when the directory carries `trusted.overlay.opaque=y`.
pub(crate) fn is_opaque(path: &Path) -> io::Result<bool> {
    let mut buf = [0u8; 4];
    match rustix::fs::lgetxattr(path, OPAQUE_XATTR, &mut buf[..]) {
        Ok(n) => Ok(&buf[..n] == b"y"),
        Err(rustix::io::Errno::NODATA) => Ok(false),
        Err(rustix::io::Errno::RANGE) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Marks a directory opaque for overlayfs.
pub(crate) fn set_opaque(path: &Path) -> io::Result<()> {
    rustix::fs::lsetxattr(path, OPAQUE_XATTR, b"y", XattrFlags::empty()).map_err(Into::into)
}

/// Creates an overlay whiteout (character device 0:0) at `path`.
pub(crate) fn make_whiteout(path: &Path) -> io::Result<()> {
    rustix::fs::mknodat(CWD, path, FileType::CharacterDevice, Mode::empty(), 0).map_err(Into::into)
}

/// Creates a device node or fifo.
pub(crate) fn make_node(path: &Path, kind: FileType, dev: u64) -> io::Result<()> {
    rustix::fs::mknodat(CWD, path, kind, Mode::from_raw_mode(0o600), dev).map_err(Into::into)
}

/// All xattrs of `path` except overlay's private ones, as (name, value).
pub(crate) fn list_xattrs(path: &Path) -> io::Result<Vec<(OsString, Vec<u8>)>> {
    let mut names = vec![0u8; 1024];
    let len = loop {
        match rustix::fs::llistxattr(path, &mut names[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => names.resize(names.len() * 4, 0),
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        }
    };
    let mut out = Vec::new();
    for name in names[..len].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if name.starts_with(OVERLAY_XATTR_PREFIX) {
            continue;
        }
        let name = OsStr::from_bytes(name);
        let mut value = vec![0u8; 256];
        loop {
            match rustix::fs::lgetxattr(path, name, &mut value[..]) {
                Ok(n) => {
                    value.truncate(n);
                    break;
                }
                Err(rustix::io::Errno::RANGE) => value.resize(value.len() * 4, 0),
                // Removed between list and get: nothing to copy.
                Err(rustix::io::Errno::NODATA) => {
                    value.clear();
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        out.push((name.to_os_string(), value));
    }
    Ok(out)
}

/// Sets one xattr on `path` itself. Overlay-private names are refused silently: they must
/// never come from outside (a forged `trusted.overlay.redirect` would change what overlayfs
/// shows).
pub(crate) fn set_xattr(path: &Path, name: &OsStr, value: &[u8]) -> io::Result<()> {
    if name.as_bytes().starts_with(OVERLAY_XATTR_PREFIX) {
        return Ok(());
    }
    rustix::fs::lsetxattr(path, name, value, XattrFlags::empty()).map_err(Into::into)
}

/// Sets owner, then mode (chown clears set-id bits, so the order matters), of `path` itself.
/// Symlinks keep their mode: Linux has no lchmod.
pub(crate) fn set_owner_mode(path: &Path, uid: u32, gid: u32, mode: u32, is_symlink: bool) -> io::Result<()> {
    rustix::fs::chownat(
        CWD,
        path,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    if !is_symlink {
        fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777))?;
    }
    Ok(())
}

/// Sets access and modification times of `path` itself.
pub(crate) fn set_times(path: &Path, atime: (i64, i64), mtime: (i64, i64)) -> io::Result<()> {
    let ts = |(sec, nsec): (i64, i64)| Timespec { tv_sec: sec, tv_nsec: nsec as _ };
    let times = Timestamps { last_access: ts(atime), last_modification: ts(mtime) };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(Into::into)
}

/// Times of `meta` as (seconds, nanoseconds) pairs: (atime, mtime).
pub(crate) fn times_of(meta: &Metadata) -> ((i64, i64), (i64, i64)) {
    ((meta.atime(), meta.atime_nsec()), (meta.mtime(), meta.mtime_nsec()))
}

/// Copies owner, mode, xattrs and times from `src_meta`/`src` onto `dst` (already created).
pub(crate) fn copy_metadata(src: &Path, src_meta: &Metadata, dst: &Path) -> io::Result<()> {
    let is_symlink = src_meta.file_type().is_symlink();
    set_owner_mode(dst, src_meta.uid(), src_meta.gid(), src_meta.mode(), is_symlink)?;
    for (name, value) in list_xattrs(src)? {
        set_xattr(dst, &name, &value)?;
    }
    let (atime, mtime) = times_of(src_meta);
    set_times(dst, atime, mtime)
}

/// Copies one non-directory node (file, symlink, device, fifo, socket) from `src` to a new
/// `dst`, with its metadata.
pub(crate) fn copy_node(src: &Path, dst: &Path) -> Result<(), StoreError> {
    let meta = fs::symlink_metadata(src).map_err(io_err("stat", src))?;
    let ft = meta.file_type();
    if ft.is_file() {
        let mut from = File::open(src).map_err(io_err("open", src))?;
        let mut to = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(o_nofollow())
            .open(dst)
            .map_err(io_err("create", dst))?;
        io::copy(&mut from, &mut to).map_err(io_err("copy into", dst))?;
    } else if ft.is_symlink() {
        let target = fs::read_link(src).map_err(io_err("read link", src))?;
        std::os::unix::fs::symlink(&target, dst).map_err(io_err("create symlink", dst))?;
    } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() || ft.is_socket() {
        let kind = FileType::from_raw_mode(meta.mode());
        make_node(dst, kind, meta.rdev()).map_err(io_err("create node", dst))?;
    } else {
        return Err(StoreError::Invalid {
            what: "copy source",
            reason: format!("{} is a directory", src.display()),
        });
    }
    copy_metadata(src, &meta, dst).map_err(io_err("copy metadata to", dst))
}

/// `O_NOFOLLOW` for [`OpenOptionsExt::custom_flags`]: creating a file never writes
/// through a symlink planted at its place.
pub(crate) fn o_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// Flushes the file system holding `path` (one `syncfs` instead of an fsync per file), so a
/// layer is on disk before its database record says it exists.
pub(crate) fn sync_filesystem(path: &Path) -> Result<(), StoreError> {
    let dir = File::open(path).map_err(io_err("open", path))?;
    rustix::fs::syncfs(&dir).map_err(|e| io_err("sync file system of", path)(e.into()))
}

/// Removes whatever is at `path` (file, symlink, node or whole directory tree).
pub(crate) fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// An `OsString` from raw bytes.
pub(crate) fn os_string(bytes: &[u8]) -> OsString {
    OsString::from_vec(bytes.to_vec())
}
