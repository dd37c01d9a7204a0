//! The file-system outputs: copying the final root file system into a directory
//! (`type=local`) or into a tar (`type=tar`).

use crate::ExportError;
use crate::archive::{self, ArchiveError, Entry, Kind, TreeKind, WalkOptions};
use crate::layout::write_destination;
use crate::output::Destination;
use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Writes the tree at `rootfs` as a tar archive (sorted, numeric owners, xattrs) to `dest`.
pub fn write_rootfs_tar(rootfs: &Path, dest: &Destination) -> Result<(), ExportError> {
    let opts = WalkOptions { kind: TreeKind::Plain, source_date_epoch: None };
    write_destination(dest, |out| {
        archive::write_tree(rootfs, &opts, out).map(drop).map_err(ExportError::from)
    })
}

/// Writes several trees as one tar archive, each under its own directory (`prefix/...`), to
/// `dest`: the `type=tar` output of a multi-platform build, laid out as BuildKit does.
pub fn write_rootfs_tars(trees: &[(String, PathBuf)], dest: &Destination) -> Result<(), ExportError> {
    let opts = WalkOptions { kind: TreeKind::Plain, source_date_epoch: None };
    write_destination(dest, |out| {
        archive::write_prefixed_trees(trees, &opts, out).map(drop).map_err(ExportError::from)
    })
}

/// Copies the tree at `rootfs` into `dest` (created if missing), keeping file types, modes
/// (setuid/sticky included), owners, mtimes, xattrs, symlinks and hard links.
///
/// Existing files in `dest` are replaced, existing directories merged; symlinks already in
/// `dest` are replaced, never followed. Ownership and privileged xattrs need root: without
/// it files keep the caller's ownership and such xattrs are skipped, as buildx does when
/// it writes a local output as a normal user.
pub fn write_local(rootfs: &Path, dest: &Path) -> Result<(), ExportError> {
    fs::create_dir_all(dest).map_err(io_err("create", dest))?;
    let opts = WalkOptions { kind: TreeKind::Plain, source_date_epoch: None };
    // Directory times are set last: creating their children would change them again.
    let mut dirs: Vec<(PathBuf, Entry)> = Vec::new();
    archive::walk(rootfs, &opts, &mut |entry| {
        let target = dest.join(OsStr::from_bytes(&entry.path));
        copy_entry(entry, &target, dest).map_err(|source| ArchiveError::Io {
            op: "write",
            path: target.clone(),
            source,
        })?;
        if matches!(entry.kind, Kind::Dir) {
            dirs.push((target, entry.clone()));
        }
        Ok(())
    })?;
    for (path, entry) in dirs.iter().rev() {
        set_times(path, entry).map_err(io_err("set times of", path))?;
    }
    Ok(())
}

fn copy_entry(entry: &Entry, target: &Path, dest: &Path) -> io::Result<()> {
    let existing = fs::symlink_metadata(target).ok();
    match (&entry.kind, &existing) {
        (Kind::Dir, Some(m)) if m.is_dir() => {}
        (_, Some(m)) if m.is_dir() => fs::remove_dir_all(target)?,
        (_, Some(_)) => fs::remove_file(target)?,
        (_, None) => {}
    }
    match &entry.kind {
        Kind::Dir => {
            if existing.as_ref().is_none_or(|m| !m.is_dir()) {
                fs::create_dir(target)?;
            }
        }
        Kind::File { source, .. } => {
            let mut out = fs::OpenOptions::new().write(true).create_new(true).open(target)?;
            if let Some(src) = source {
                let fd = rustix::fs::open(
                    src,
                    rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                io::copy(&mut fs::File::from(fd), &mut out)?;
            }
        }
        Kind::Symlink(t) => std::os::unix::fs::symlink(OsStr::from_bytes(t), target)?,
        Kind::HardLink(first) => {
            // Metadata was applied when the first path was written.
            return fs::hard_link(dest.join(OsStr::from_bytes(first)), target);
        }
        Kind::Char { major, minor } | Kind::Block { major, minor } => {
            let ft = if matches!(entry.kind, Kind::Char { .. }) {
                FileType::CharacterDevice
            } else {
                FileType::BlockDevice
            };
            let dev = rustix::fs::makedev(to_u32(*major)?, to_u32(*minor)?);
            rustix::fs::mknodat(CWD, target, ft, Mode::from_raw_mode(0o600), dev)?;
        }
        Kind::Fifo => rustix::fs::mknodat(CWD, target, FileType::Fifo, Mode::from_raw_mode(0o600), 0)?,
    }
    apply_metadata(entry, target)
}

fn to_u32(v: u64) -> io::Result<u32> {
    u32::try_from(v).map_err(|_| io::Error::other("device number out of range"))
}

/// Owner, mode, xattrs and (except for directories) times. Owner first: chown clears
/// setuid bits and file capabilities, which the later steps restore.
fn apply_metadata(entry: &Entry, target: &Path) -> io::Result<()> {
    match rustix::fs::chownat(
        CWD,
        target,
        Some(rustix::fs::Uid::from_raw(to_u32(entry.uid)?)),
        Some(rustix::fs::Gid::from_raw(to_u32(entry.gid)?)),
        AtFlags::SYMLINK_NOFOLLOW,
    ) {
        Ok(()) | Err(Errno::PERM) => {}
        Err(e) => return Err(e.into()),
    }
    if !matches!(entry.kind, Kind::Symlink(_)) {
        rustix::fs::chmodat(CWD, target, Mode::from_raw_mode(entry.mode), AtFlags::empty())?;
    }
    for (name, value) in &entry.xattrs {
        match archive::xattr::set(target, name, value) {
            // Privileged namespaces without root, or a destination without xattr support.
            Err(e)
                if [Errno::PERM, Errno::NOTSUP]
                    .iter()
                    .any(|n| e.raw_os_error() == Some(n.raw_os_error())) => {}
            r => r?,
        }
    }
    if !matches!(entry.kind, Kind::Dir) {
        set_times(target, entry)?;
    }
    Ok(())
}

fn set_times(path: &Path, entry: &Entry) -> io::Result<()> {
    let t = Timespec { tv_sec: entry.mtime, tv_nsec: entry.mtime_nsec.into() };
    let times = Timestamps { last_access: t, last_modification: t };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ExportError + 'a {
    move |source| ExportError::Io { op, path: path.to_path_buf(), source }
}
