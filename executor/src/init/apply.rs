//! Carrying out the mount plan, and mounting overlays.
//!
//! Targets are always opened inside the rootfs (`in_root`) and mounted through
//! `/proc/self/fd/N`, so a symlink planted in the image can never redirect a mount onto
//! the host. Runs in pid 1 of the sandbox, in its private mount namespace, before
//! `pivot_root`.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, StatVfsMountFlags, StatxFlags};
use rustix::mount as rmount;

use super::in_root::{self, Kind, fd_path};
use super::plan::Step;
use crate::protocol::OverlayFeatures;

/// Mount id of the file system an fd is on (Linux 5.8+), to tell the rootfs from mounts
/// inside it.
pub(crate) fn mount_id(fd: BorrowedFd<'_>) -> io::Result<u64> {
    Ok(rfs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)?.stx_mnt_id)
}

fn open_host(path: &Path) -> io::Result<OwnedFd> {
    Ok(rfs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())?)
}

/// Flags of the mount a host path is on that a bind remount must keep, so that binding a
/// `nosuid` or `noexec` host directory does not lift those restrictions.
fn inherited_flags(fd: BorrowedFd<'_>) -> io::Result<MsFlags> {
    let st = rfs::fstatvfs(fd)?;
    let pairs = [
        (StatVfsMountFlags::NOSUID, MsFlags::MS_NOSUID),
        (StatVfsMountFlags::NODEV, MsFlags::MS_NODEV),
        (StatVfsMountFlags::NOEXEC, MsFlags::MS_NOEXEC),
        (StatVfsMountFlags::RDONLY, MsFlags::MS_RDONLY),
        (StatVfsMountFlags::NOATIME, MsFlags::MS_NOATIME),
        (StatVfsMountFlags::NODIRATIME, MsFlags::MS_NODIRATIME),
        (StatVfsMountFlags::RELATIME, MsFlags::MS_RELATIME),
    ];
    Ok(pairs
        .iter()
        .filter(|(sv, _)| st.f_flag.contains(*sv))
        .fold(MsFlags::empty(), |acc, (_, ms)| acc | *ms))
}

/// Binds `source` onto `target` (an O_PATH fd), then applies `remount` flags (plus the
/// source's own restrictions) with a bind remount of the new mount.
fn bind(
    root: BorrowedFd<'_>,
    source: BorrowedFd<'_>,
    target: &in_root::Ensured,
    remount: Option<MsFlags>,
) -> io::Result<()> {
    mount(
        Some(fd_path(&source).as_str()),
        fd_path(&target.fd).as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )?;
    if let Some(flags) = remount {
        // The target fd still names the covered directory; reopen to reach the new mount.
        let top = in_root::open_path(root, &target.path)?;
        let flags = flags | inherited_flags(source)?;
        mount(
            None::<&str>,
            fd_path(&top).as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
            None::<&str>,
        )?;
    }
    Ok(())
}

fn overlay_data(lower: &[PathBuf], upper_work: Option<(&Path, &Path)>, features: OverlayFeatures) -> String {
    let lower: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
    let mut data = format!("lowerdir={}", lower.join(":"));
    if let Some((upper, work)) = upper_work {
        data.push_str(&format!(",upperdir={},workdir={}", upper.display(), work.display()));
        for (key, value) in features.options() {
            data.push_str(&format!(",{key}={value}"));
        }
        for flag in features.flags() {
            data.push_str(&format!(",{flag}"));
        }
    }
    data
}

/// Mount options longer than this do not fit mount(2)'s one-page data buffer.
const MAX_MOUNT_DATA: usize = 4000;

/// Mounts an overlay on `target`. Long layer lists go through the new mount API, adding
/// one layer per `lowerdir+` (Linux 6.8+), since mount(2) options are limited to a page.
pub(crate) fn mount_overlay(
    target: BorrowedFd<'_>,
    lower: &[PathBuf],
    upper_work: Option<(&Path, &Path)>,
    flags: MsFlags,
    features: OverlayFeatures,
) -> io::Result<()> {
    if features.volatile
        && let Some((_, work)) = upper_work
    {
        // A `volatile` mount leaves this marker behind, and overlayfs refuses the work
        // directory while it is there, as the upper directory may have lost writes in a
        // crash. Within one boot nothing was lost (the page cache outlives any process), and
        // layers left unsynced by an earlier boot are discarded by the store; so a work
        // directory that is used again (a retried step, the executor's tests) is fine.
        match std::fs::remove_dir_all(work.join("work/incompat/volatile")) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    let data = overlay_data(lower, upper_work, features);
    if data.len() <= MAX_MOUNT_DATA {
        mount(Some("overlay"), fd_path(&target).as_str(), Some("overlay"), flags, Some(data.as_str()))?;
        return Ok(());
    }
    let fs = rmount::fsopen("overlay", rmount::FsOpenFlags::FSOPEN_CLOEXEC)?;
    for layer in lower {
        rmount::fsconfig_set_string(&fs, "lowerdir+", layer)?;
    }
    if let Some((upper, work)) = upper_work {
        rmount::fsconfig_set_string(&fs, "upperdir", upper)?;
        rmount::fsconfig_set_string(&fs, "workdir", work)?;
        for (key, value) in features.options() {
            rmount::fsconfig_set_string(&fs, key, value)?;
        }
        for flag in features.flags() {
            rmount::fsconfig_set_flag(&fs, flag)?;
        }
    }
    rmount::fsconfig_create(&fs)?;
    let mut attrs = rmount::MountAttrFlags::empty();
    if flags.contains(MsFlags::MS_NODEV) {
        attrs |= rmount::MountAttrFlags::MOUNT_ATTR_NODEV;
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        attrs |= rmount::MountAttrFlags::MOUNT_ATTR_RDONLY;
    }
    let mnt = rmount::fsmount(&fs, rmount::FsMountFlags::FSMOUNT_CLOEXEC, attrs)?;
    rmount::move_mount(
        &mnt,
        "",
        target,
        "",
        rmount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | rmount::MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )?;
    Ok(())
}

/// Mounts the run's rootfs on `target` (the empty mount point in the state directory).
pub(crate) fn mount_rootfs(
    target: &Path,
    lower: &[PathBuf],
    upper: &Path,
    work: &Path,
    features: OverlayFeatures,
) -> io::Result<()> {
    let target_fd = open_host(target)?;
    if lower.is_empty() {
        // Nothing below: the upper directory itself is the root filesystem.
        let source = open_host(upper)?;
        mount(
            Some(fd_path(&source).as_str()),
            fd_path(&target_fd).as_str(),
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )?;
        let top = open_host(target)?;
        mount(
            None::<&str>,
            fd_path(&top).as_str(),
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NODEV | inherited_flags(source.as_fd())?,
            None::<&str>,
        )?;
        return Ok(());
    }
    mount_overlay(target_fd.as_fd(), lower, Some((upper, work)), MsFlags::MS_NODEV, features)
}

/// Applies plan steps inside one rootfs, remembering the mount points it had to create in
/// the rootfs itself (the mount stubs).
pub(crate) struct Applier<'a> {
    root: BorrowedFd<'a>,
    root_mount: u64,
    overlay: OverlayFeatures,
    /// Paths created in the rootfs, in creation order.
    pub stubs: Vec<String>,
}

impl<'a> Applier<'a> {
    pub(crate) fn new(root: BorrowedFd<'a>, overlay: OverlayFeatures) -> io::Result<Applier<'a>> {
        Ok(Applier { root, root_mount: mount_id(root)?, overlay, stubs: Vec::new() })
    }

    /// Opens (creating if needed) a path; creations on the rootfs mount are stubs.
    pub(crate) fn ensure(&mut self, dest: &str, kind: Kind) -> io::Result<in_root::Ensured> {
        let root_mount = self.root_mount;
        let stubs = &mut self.stubs;
        in_root::ensure(self.root, dest, kind, &mut |path, parent| {
            // Creations inside a tmpfs or bind mount are not part of the layer.
            if mount_id(parent).map(|id| id == root_mount).unwrap_or(true) {
                stubs.push(path.to_owned());
            }
        })
    }

    /// Creates a directory that is meant to stay (the working directory).
    pub(crate) fn ensure_kept(&self, dest: &str) -> io::Result<()> {
        in_root::ensure(self.root, dest, Kind::Dir, &mut |_, _| {}).map(drop)
    }

    pub(crate) fn apply(&mut self, step: &Step) -> io::Result<()> {
        match step {
            Step::Fs { dest, fstype, flags, data } => {
                let target = self.ensure(dest, Kind::Dir)?;
                let data = (!data.is_empty()).then_some(data.as_str());
                mount(Some(*fstype), fd_path(&target.fd).as_str(), Some(*fstype), *flags, data)?;
            }
            Step::Bind { dest, kind, source, remount } => {
                let source = open_host(source)?;
                let target = self.ensure(dest, *kind)?;
                bind(self.root, source.as_fd(), &target, *remount)?;
            }
            Step::Overlay { dest, lower, upper_work } => {
                let target = self.ensure(dest, Kind::Dir)?;
                let upper_work = upper_work.as_ref().map(|(u, w)| (u.as_path(), w.as_path()));
                let flags = if upper_work.is_some() {
                    MsFlags::MS_NODEV
                } else {
                    MsFlags::MS_NODEV | MsFlags::MS_RDONLY
                };
                mount_overlay(target.fd.as_fd(), lower, upper_work, flags, self.overlay)?;
            }
            Step::Symlink { dest, target } => {
                let (parent, name) = dest.rsplit_once('/').unwrap_or(("", dest));
                let parent = self.ensure(if parent.is_empty() { "/" } else { parent }, Kind::Dir)?;
                rfs::symlinkat(target.as_str(), &parent.fd, name)?;
            }
            Step::Mask { dest } => {
                let Some(fd) = open_existing(self.root, dest)? else { return Ok(()) };
                if FileType::from_raw_mode(rfs::fstat(&fd)?.st_mode) == FileType::Directory {
                    mount(
                        Some("tmpfs"),
                        fd_path(&fd).as_str(),
                        Some("tmpfs"),
                        MsFlags::MS_RDONLY,
                        None::<&str>,
                    )?;
                } else {
                    let null = open_host(Path::new("/dev/null"))?;
                    mount(
                        Some(fd_path(&null).as_str()),
                        fd_path(&fd).as_str(),
                        None::<&str>,
                        MsFlags::MS_BIND,
                        None::<&str>,
                    )?;
                }
            }
            Step::ReadOnly { dest } => {
                let Some(fd) = open_existing(self.root, dest)? else { return Ok(()) };
                let path = fd_path(&fd);
                mount(
                    Some(path.as_str()),
                    path.as_str(),
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )?;
                let top = in_root::open_path(self.root, dest)?;
                let flags = MsFlags::MS_BIND
                    | MsFlags::MS_REMOUNT
                    | MsFlags::MS_RDONLY
                    | inherited_flags(top.as_fd())?;
                mount(None::<&str>, fd_path(&top).as_str(), None::<&str>, flags, None::<&str>)?;
            }
        }
        Ok(())
    }
}

fn open_existing(root: BorrowedFd<'_>, dest: &str) -> io::Result<Option<OwnedFd>> {
    match in_root::open_path(root, dest) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options() {
        let lower = vec![PathBuf::from("/a"), PathBuf::from("/b")];
        let all = OverlayFeatures { index: true, redirect_dir: true, metacopy: true, volatile: true };
        let upper = Some((Path::new("/u"), Path::new("/w")));
        let cases = [
            (None, all, "lowerdir=/a:/b"),
            (upper, OverlayFeatures::default(), "lowerdir=/a:/b,upperdir=/u,workdir=/w"),
            (
                upper,
                OverlayFeatures { index: true, ..OverlayFeatures::default() },
                "lowerdir=/a:/b,upperdir=/u,workdir=/w,index=off",
            ),
            (
                upper,
                all,
                "lowerdir=/a:/b,upperdir=/u,workdir=/w,index=off,redirect_dir=off,metacopy=off,volatile",
            ),
        ];
        for (upper_work, features, want) in cases {
            assert_eq!(overlay_data(&lower, upper_work, features), want);
        }
    }
}
