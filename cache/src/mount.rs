//! Mounting layer chains: read-only views for inputs, and writable overlays whose writes land
//! in a mutable layer.
//!
//! Every mount point is a fresh directory under `<root>/mnt`; a [`Mounted`] detaches its
//! mount (`MNT_DETACH`, so busy mounts go away once their last user leaves) and removes the
//! directory when dropped. A killed process leaves mounts behind: [`detach_stale`] removes
//! them the next time the store opens.

use crate::error::{StoreError, io_err};
use crate::layer::{LayerDirGuard, LayerId, MutableLayer};
use crate::lease::PinGuard;
use crate::store::Store;
use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, UnmountFlags};
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// `mount(2)` copies at most one page of option data; longer `lowerdir` lists must be made
/// shorter or rejected.
const MAX_MOUNT_DATA: usize = 4095;

/// Options for writable mounts, best first; older kernels reject some, so each is tried in
/// turn. `index=off`, `redirect_dir=off` and `metacopy=off` keep the upper directory in
/// plain upperdir format, so a layer can be exported and reused as a lower layer anywhere:
/// no inode index tying the upper to its lowers, no directory-rename redirects and no
/// metadata-only copy-ups (both are xattrs a tar exporter cannot represent). `volatile`
/// (Linux 5.10) skips overlay's own syncs: the store flushes committed layers itself, in
/// one batch, and discards uncommitted ones after a crash.
pub(crate) const UPPER_OPTION_TIERS: [&str; 3] =
    ["index=off,redirect_dir=off,metacopy=off,volatile", "index=off,redirect_dir=off,metacopy=off", ""];

/// Errors of mounting and unmounting.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The mount system call failed.
    #[error("mount {kind} at {target}: {source}")]
    Mount {
        /// `overlay` or `bind`.
        kind: &'static str,
        /// The mount point.
        target: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Unmounting failed.
    #[error("unmount {target}: {source}")]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The chain's directory list does not fit in one overlay mount's options.
    #[error("a chain of {layers} layers does not fit in one overlay mount")]
    ChainTooDeep {
        /// Number of layers in the chain.
        layers: usize,
    },
}

/// A mounted layer chain. Unmounted (detached) and its mount point removed on drop; the
/// layers stay protected from garbage collection until then.
pub struct Mounted {
    path: PathBuf,
    mounted: bool,
    upper: Option<Arc<LayerDirGuard>>,
    _pin: PinGuard,
}

impl std::fmt::Debug for Mounted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mounted").field("path", &self.path).finish()
    }
}

impl Mounted {
    /// The mount point: the merged file system of the chain.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unmounts now, reporting errors that dropping would only log.
    pub fn unmount(mut self) -> Result<(), StoreError> {
        self.release()
    }

    fn release(&mut self) -> Result<(), StoreError> {
        if !std::mem::take(&mut self.mounted) {
            return Ok(());
        }
        detach(&self.path)?;
        if let Some(upper) = &self.upper {
            upper.mounted.store(false, Ordering::SeqCst);
        }
        fs::remove_dir(&self.path).map_err(io_err("remove mount point", &self.path))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            tracing::warn!(error = %e, "could not unmount layer chain");
        }
    }
}

impl Store {
    /// Mounts the merged view of `chain` (base first) read-only at a fresh directory under
    /// `<root>/mnt`: an empty directory for an empty chain, a read-only bind mount for one
    /// plain layer, otherwise an overlay with only lower directories.
    pub fn mount_readonly(&self, chain: &[LayerId]) -> Result<Mounted, StoreError> {
        let records = self.inner.check_chain(chain)?;
        let pin = self.inner.pins.pin(chain);
        let target = self.new_mount_point()?;
        let mut lowers = self.lower_dirs(chain);
        let result = match chain {
            [] => bind_readonly(&self.inner.empty_dir, &target),
            [only] if !records[0].has_whiteouts => bind_readonly(&self.inner.layer_dir(only), &target),
            _ => {
                // overlay needs two lower layers without an upper one; the empty directory
                // also makes whiteouts of a single layer disappear as they should.
                if lowers.len() == 1 {
                    lowers.push(self.inner.empty_dir.clone());
                }
                mount_overlay(&target, &lowers, None, "", MountFlags::RDONLY)
            }
        };
        finish_mount(result, target, None, pin)
    }

    /// Mounts `chain` (base first) with `upper`'s diff as the writable upper layer at a
    /// fresh directory under `<root>/mnt`. Writes land in `upper`; deletions of lower files
    /// become whiteouts there. A mutable layer can have one writable mount at a time, and
    /// cannot be committed while it is mounted.
    pub fn mount_writable(&self, chain: &[LayerId], upper: &MutableLayer) -> Result<Mounted, StoreError> {
        if !Arc::ptr_eq(&upper.store, &self.inner) {
            return Err(StoreError::Invalid {
                what: "upper layer",
                reason: format!("layer {} belongs to another store", upper.id()),
            });
        }
        if upper.guard.mounted.compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst).is_err() {
            return Err(StoreError::LayerBusy { id: upper.id().clone() });
        }
        let result = (|| {
            self.inner.check_chain(chain)?;
            let pin = self.inner.pins.pin(chain);
            let target = self.new_mount_point()?;
            let mut lowers = self.lower_dirs(chain);
            if lowers.is_empty() {
                lowers.push(self.inner.empty_dir.clone());
            }
            let upper_dirs = Some((upper.diff_dir(), upper.work_dir()));
            let mounted = match self.inner.overlay_opts.get() {
                Some(&tier) => {
                    mount_overlay(&target, &lowers, upper_dirs, UPPER_OPTION_TIERS[tier], MountFlags::empty())
                }
                None => {
                    let mut result = Ok(());
                    for (tier, opts) in UPPER_OPTION_TIERS.iter().enumerate() {
                        result = mount_overlay(&target, &lowers, upper_dirs, opts, MountFlags::empty());
                        match &result {
                            Ok(()) => {
                                if tier > 0 {
                                    tracing::info!(options = opts, "overlayfs rejected better options");
                                }
                                let _ = self.inner.overlay_opts.set(tier);
                                break;
                            }
                            Err(StoreError::Mount(MountError::Mount { source, .. }))
                                if source.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                            }
                            Err(_) => break,
                        }
                    }
                    result
                }
            };
            finish_mount(mounted, target, Some(upper.guard.clone()), pin)
        })();
        if result.is_err() {
            upper.guard.mounted.store(false, Ordering::SeqCst);
        }
        result
    }

    fn new_mount_point(&self) -> Result<PathBuf, StoreError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        loop {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = self.inner.mnt_dir.join(format!("{}-{n}", std::process::id()));
            match fs::create_dir(&path) {
                Ok(()) => return Ok(path),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("create mount point", &path)(e)),
            }
        }
    }
}

fn finish_mount(
    result: Result<(), StoreError>,
    target: PathBuf,
    upper: Option<Arc<LayerDirGuard>>,
    pin: PinGuard,
) -> Result<Mounted, StoreError> {
    match result {
        Ok(()) => Ok(Mounted { path: target, mounted: true, upper, _pin: pin }),
        Err(e) => {
            let _ = fs::remove_dir(&target);
            Err(e)
        }
    }
}

fn bind_readonly(source: &Path, target: &Path) -> Result<(), StoreError> {
    let err = |source: rustix::io::Errno| MountError::Mount {
        kind: "bind",
        target: target.to_path_buf(),
        source: source.into(),
    };
    rustix::mount::mount_bind(source, target).map_err(err)?;
    // A bind mount is read-only only after a remount with MS_RDONLY (mount(2)).
    if let Err(e) = rustix::mount::mount_remount(target, MountFlags::BIND | MountFlags::RDONLY, "") {
        let _ = rustix::mount::unmount(target, UnmountFlags::DETACH);
        return Err(err(e).into());
    }
    Ok(())
}

/// Mounts an overlay. Directory paths go into the options as they are when they fit and
/// need no escaping; otherwise each directory is opened and named `/proc/self/fd/N`
/// (overlayfs resolves the names once, at mount time, so the fds can be closed after).
fn mount_overlay(
    target: &Path,
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    extra: &str,
    flags: MountFlags,
) -> Result<(), StoreError> {
    let plain = |p: &Path| {
        let b = p.as_os_str().as_bytes();
        !b.iter().any(|c| matches!(c, b',' | b':' | b'\\' | 0)) && std::str::from_utf8(b).is_ok()
    };
    let all_dirs = lowers.iter().map(PathBuf::as_path).chain(upper.into_iter().flat_map(|(u, w)| [u, w]));
    let mut fds: Vec<OwnedFd> = Vec::new();
    let mut data = if all_dirs.clone().all(plain) {
        overlay_options(
            lowers.iter().map(|p| p.to_string_lossy().into_owned()),
            upper.map(|(u, w)| (u.to_string_lossy().into_owned(), w.to_string_lossy().into_owned())),
            extra,
        )
    } else {
        String::new()
    };
    if data.is_empty() || data.len() > MAX_MOUNT_DATA {
        let mut names = Vec::new();
        for dir in all_dirs {
            let fd = rustix::fs::open(dir, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| io_err("open layer directory", dir)(e.into()))?;
            names.push(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            fds.push(fd);
        }
        let upper_names = upper.map(|_| (names[lowers.len()].clone(), names[lowers.len() + 1].clone()));
        names.truncate(lowers.len());
        data = overlay_options(names.into_iter(), upper_names, extra);
        if data.len() > MAX_MOUNT_DATA {
            return Err(MountError::ChainTooDeep { layers: lowers.len() }.into());
        }
    }
    let data = CString::new(data)
        .map_err(|_| StoreError::Invalid { what: "overlay options", reason: "contain NUL".into() })?;
    rustix::mount::mount("overlay", target, "overlay", flags, data.as_c_str())
        .map_err(|e| MountError::Mount { kind: "overlay", target: target.to_path_buf(), source: e.into() })?;
    drop(fds);
    Ok(())
}

fn overlay_options(
    lowers: impl Iterator<Item = String>,
    upper: Option<(String, String)>,
    extra: &str,
) -> String {
    let mut data = format!("lowerdir={}", lowers.collect::<Vec<_>>().join(":"));
    if let Some((u, w)) = upper {
        data.push_str(&format!(",upperdir={u},workdir={w}"));
    }
    if !extra.is_empty() {
        data.push(',');
        data.push_str(extra);
    }
    data
}

fn detach(target: &Path) -> Result<(), StoreError> {
    match rustix::mount::unmount(target, UnmountFlags::DETACH) {
        // EINVAL: not a mount point (already gone).
        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(MountError::Unmount { target: target.to_path_buf(), source: e.into() }.into()),
    }
}

/// Detaches every mount at or below `mnt_dir`'s children (left by a killed process) and
/// removes the mount points. Returns how many mounts were detached. Directories that stay
/// non-empty are left alone: removing their contents could reach into a layer.
pub(crate) fn detach_stale(mnt_dir: &Path) -> Result<usize, StoreError> {
    let table =
        fs::read("/proc/self/mountinfo").map_err(io_err("read", Path::new("/proc/self/mountinfo")))?;
    let prefix = mnt_dir.as_os_str().as_bytes();
    let mut stale: Vec<PathBuf> = Vec::new();
    for line in table.split(|b| *b == b'\n') {
        // Field 5 is the mount point, with space, tab, newline and backslash octal-escaped.
        let Some(field) = line.split(|b| *b == b' ').nth(4) else { continue };
        let point = unescape_mountinfo(field);
        if point.len() > prefix.len() + 1 && point.starts_with(prefix) && point[prefix.len()] == b'/' {
            stale.push(PathBuf::from(std::ffi::OsStr::from_bytes(&point)));
        }
    }
    // Deepest first, so nested mounts go before their parents.
    stale.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    stale.dedup();
    for point in &stale {
        detach(point)?;
    }
    for entry in fs::read_dir(mnt_dir).map_err(io_err("read directory", mnt_dir))? {
        let path = entry.map_err(io_err("read directory", mnt_dir))?.path();
        if let Err(e) = fs::remove_dir(&path) {
            tracing::warn!(path = %path.display(), error = %e, "leaving a non-empty directory under mnt");
        }
    }
    Ok(stale.len())
}

fn unescape_mountinfo(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\'
            && field.get(i + 1..i + 4).is_some_and(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)))
        {
            let d = &field[i + 1..i + 4];
            out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
            i += 4;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_unescapes_octal() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"/a/b", b"/a/b"),
            (b"/a\\040b", b"/a b"),
            (b"/a\\134b", b"/a\\b"),
            (b"/tail\\04", b"/tail\\04"),
        ];
        for (input, want) in cases {
            assert_eq!(unescape_mountinfo(input), *want, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn options_list_lowers_top_first_and_extras() {
        let got = overlay_options(
            ["/l2".to_string(), "/l1".to_string()].into_iter(),
            Some(("/u".into(), "/w".into())),
            "index=off",
        );
        assert_eq!(got, "lowerdir=/l2:/l1,upperdir=/u,workdir=/w,index=off");
        assert_eq!(overlay_options(["/a".to_string()].into_iter(), None, ""), "lowerdir=/a");
    }
}
