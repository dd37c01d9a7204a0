//! Walking a directory tree in the order the archive lists it and turning each file into an
//! [`Entry`].
//!
//! Order: depth first, the entries of one directory sorted by their archive name in byte
//! order, so parents always precede their children and the same tree always gives the same
//! sequence. The root itself is not listed (BuildKit's overlay differ skips it too).
//!
//! In an overlayfs upperdir (a layer) deletions are recorded as whiteouts: a character
//! device 0:0 becomes an empty regular file `.wh.<name>` and a directory with
//! `trusted.overlay.opaque=y` is followed by `<dir>/.wh..wh..opq`. Both markers carry mode 0,
//! uid/gid 0 and mtime 0 as containerd 2 (and therefore BuildKit) writes whiteouts.

use super::ArchiveError;
use super::entry::{Entry, Kind};
use super::xattr;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

/// What kind of tree is archived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TreeKind {
    /// An overlayfs upperdir: whiteout devices and opaque xattrs become OCI whiteouts.
    Layer,
    /// A plain file system (a mounted rootfs): everything is archived as it is.
    Plain,
}

/// How to walk.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WalkOptions {
    /// Layer or plain tree.
    pub kind: TreeKind,
    /// Clamp every mtime to at most this many seconds since the epoch.
    pub source_date_epoch: Option<i64>,
}

struct Child {
    name: Vec<u8>,
    /// The last path component as it appears in the archive (`.wh.x` for a whiteout).
    tar_name: Vec<u8>,
    meta: Metadata,
    whiteout: bool,
}

struct Frame {
    dir: PathBuf,
    rel: Vec<u8>,
    children: std::vec::IntoIter<Child>,
}

/// Calls `emit` for every entry of the tree at `root`, in archive order.
pub(crate) fn walk(
    root: &Path,
    opts: &WalkOptions,
    emit: &mut dyn FnMut(&Entry) -> Result<(), ArchiveError>,
) -> Result<(), ArchiveError> {
    let meta = fs::symlink_metadata(root).map_err(io_err("lstat", root))?;
    if !meta.is_dir() {
        return Err(ArchiveError::Unsupported { path: root.to_path_buf(), reason: "not a directory" });
    }
    let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let mut stack = vec![Frame {
        dir: root.to_path_buf(),
        rel: Vec::new(),
        children: list(root, opts.kind)?.into_iter(),
    }];
    while let Some(frame) = stack.last_mut() {
        let Some(child) = frame.children.next() else {
            stack.pop();
            continue;
        };
        let path = frame.dir.join(OsStr::from_bytes(&child.name));
        let mut rel = frame.rel.clone();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(&child.tar_name);

        if child.whiteout {
            emit(&marker(rel))?;
            continue;
        }
        let Some((entry, opaque)) = to_entry(&path, rel, &child.meta, opts, &mut links)? else {
            continue;
        };
        emit(&entry)?;
        if matches!(entry.kind, Kind::Dir) {
            if opaque {
                let mut p = entry.path.clone();
                p.push(b'/');
                p.extend_from_slice(OPAQUE_MARKER);
                emit(&marker(p))?;
            }
            let children = list(&path, opts.kind)?.into_iter();
            stack.push(Frame { dir: path, rel: entry.path, children });
        }
    }
    Ok(())
}

/// A whiteout or opaque marker: an empty file with fixed metadata.
fn marker(path: Vec<u8>) -> Entry {
    Entry {
        path,
        kind: Kind::File { size: 0, source: None },
        mode: 0,
        uid: 0,
        gid: 0,
        mtime: 0,
        mtime_nsec: 0,
        xattrs: Vec::new(),
    }
}

fn list(dir: &Path, kind: TreeKind) -> Result<Vec<Child>, ArchiveError> {
    let mut out = Vec::new();
    for dirent in fs::read_dir(dir).map_err(io_err("read directory", dir))? {
        let dirent = dirent.map_err(io_err("read directory", dir))?;
        let name = dirent.file_name().as_bytes().to_vec();
        let path = dir.join(OsStr::from_bytes(&name));
        let meta = fs::symlink_metadata(&path).map_err(io_err("lstat", &path))?;
        let whiteout = kind == TreeKind::Layer && meta.file_type().is_char_device() && meta.rdev() == 0;
        let tar_name = if whiteout { [WHITEOUT_PREFIX, &name].concat() } else { name.clone() };
        out.push(Child { name, tar_name, meta, whiteout });
    }
    out.sort_by(|a, b| a.tar_name.cmp(&b.tar_name));
    Ok(out)
}

/// Builds the entry for one file; `None` for sockets (they cannot be archived; BuildKit
/// drops them too). The flag says whether the directory is opaque.
fn to_entry(
    path: &Path,
    rel: Vec<u8>,
    meta: &Metadata,
    opts: &WalkOptions,
    links: &mut HashMap<(u64, u64), Vec<u8>>,
) -> Result<Option<(Entry, bool)>, ArchiveError> {
    let ft = meta.file_type();
    if ft.is_socket() {
        return Ok(None);
    }
    let all_xattrs = xattr::list(path).map_err(io_err("read xattrs of", path))?;
    let mut opaque = false;
    let mut xattrs = Vec::with_capacity(all_xattrs.len());
    for (name, value) in all_xattrs {
        let overlay = name.strip_prefix(b"trusted.overlay.").or_else(|| name.strip_prefix(b"user.overlay."));
        match overlay {
            Some(b"opaque") if opts.kind == TreeKind::Layer => opaque = ft.is_dir() && value == b"y",
            Some(b"redirect") if opts.kind == TreeKind::Layer => {
                return Err(unsupported(path, "overlay redirect_dir is not supported in layers"));
            }
            Some(b"metacopy") if opts.kind == TreeKind::Layer => {
                return Err(unsupported(path, "overlay metacopy is not supported in layers"));
            }
            // Other overlay bookkeeping (origin, impure, nlink, ...) never leaves the host;
            // neither does an SELinux label, which belongs to the host's policy.
            Some(_) => {}
            None if name == b"security.selinux" => {}
            None => xattrs.push((name, value)),
        }
    }

    let kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        let target = fs::read_link(path).map_err(io_err("readlink", path))?;
        Kind::Symlink(target.as_os_str().as_bytes().to_vec())
    } else if ft.is_file() {
        Kind::File { size: meta.len(), source: Some(path.to_path_buf()) }
    } else if ft.is_char_device() {
        let (major, minor) = dev_numbers(meta.rdev());
        Kind::Char { major, minor }
    } else if ft.is_block_device() {
        let (major, minor) = dev_numbers(meta.rdev());
        Kind::Block { major, minor }
    } else if ft.is_fifo() {
        Kind::Fifo
    } else {
        return Err(unsupported(path, "unknown file type"));
    };

    // Hard links inside the tree point to the first path the walk met.
    let kind = if !ft.is_dir() && meta.nlink() > 1 {
        match links.get(&(meta.dev(), meta.ino())) {
            Some(first) => Kind::HardLink(first.clone()),
            None => {
                links.insert((meta.dev(), meta.ino()), rel.clone());
                kind
            }
        }
    } else {
        kind
    };

    let (mut mtime, mut mtime_nsec) = (meta.mtime(), u32::try_from(meta.mtime_nsec()).unwrap_or(0));
    if let Some(epoch) = opts.source_date_epoch
        && mtime >= epoch
    {
        (mtime, mtime_nsec) = (epoch, 0);
    }
    let entry = Entry {
        path: rel,
        kind,
        mode: meta.mode() & 0o7777,
        uid: u64::from(meta.uid()),
        gid: u64::from(meta.gid()),
        mtime,
        mtime_nsec,
        xattrs,
    };
    Ok(Some((entry, opaque)))
}

fn dev_numbers(rdev: u64) -> (u64, u64) {
    (u64::from(rustix::fs::major(rdev)), u64::from(rustix::fs::minor(rdev)))
}

fn unsupported(path: &Path, reason: &'static str) -> ArchiveError {
    ArchiveError::Unsupported { path: path.to_path_buf(), reason }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ArchiveError + 'a {
    move |source| ArchiveError::Io { op, path: path.to_path_buf(), source }
}
