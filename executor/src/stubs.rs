//! Removing mount stubs from the upper directory after a run, like BuildKit's
//! `MountStubsCleaner`: a mount point the sandbox had to create (e.g. `/etc/resolv.conf`
//! in an image without one) must not end up in the layer when it is still empty.
//!
//! The upper directory was writable by the command, so it is treated as hostile: lookups
//! refuse symlinks and stay beneath it.

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps};

fn beneath() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS | ResolveFlags::NO_XDEV
}

fn open_dir_beneath(upper: &OwnedFd, path: &str) -> io::Result<OwnedFd> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    Ok(rfs::openat2(
        upper,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        beneath(),
    )?)
}

fn is_empty_dir(parent: &OwnedFd, name: &str) -> io::Result<bool> {
    let dir = rfs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut entries = rfs::Dir::read_from(&dir)?;
    while let Some(entry) = entries.read() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Removes each stub that is still an empty directory or empty regular file, deepest
/// first, keeping the parent directory's timestamps (moby/buildkit#3148: reproducible
/// layers). Returns how many were removed; missing or non-empty stubs are left alone.
pub(crate) fn remove_empty_stubs(upper: &Path, stubs: &[String]) -> io::Result<usize> {
    let mut paths: Vec<&str> =
        stubs.iter().map(|s| s.as_str()).filter(|s| !s.trim_matches('/').is_empty()).collect();
    paths.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    paths.dedup();
    let upper = rfs::open(upper, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let mut removed = 0;
    for path in paths {
        let trimmed = path.trim_end_matches('/');
        let (parent, name) = trimmed.rsplit_once('/').unwrap_or(("", trimmed));
        let Ok(parent) = open_dir_beneath(&upper, parent) else { continue };
        let Ok(st) = rfs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) else { continue };
        let (empty, flags) = match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => (is_empty_dir(&parent, name).unwrap_or(false), AtFlags::REMOVEDIR),
            FileType::RegularFile => (st.st_size == 0, AtFlags::empty()),
            _ => (false, AtFlags::empty()),
        };
        if !empty {
            continue;
        }
        let times = rfs::fstat(&parent)?;
        if rfs::unlinkat(&parent, name, flags).is_ok() {
            removed += 1;
        }
        let stamp = |sec: i64, nsec: i64| Timespec { tv_sec: sec, tv_nsec: nsec as _ };
        let restore = Timestamps {
            last_access: stamp(times.st_atime as i64, times.st_atime_nsec as i64),
            last_modification: stamp(times.st_mtime as i64, times.st_mtime_nsec as i64),
        };
        rfs::futimens(&parent, &restore)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn removes_only_empty_stubs_deepest_first() {
        let tmp = tempfile::tempdir().unwrap();
        let u = tmp.path();
        std::fs::create_dir_all(u.join("etc")).unwrap();
        std::fs::write(u.join("etc/resolv.conf"), "").unwrap();
        std::fs::write(u.join("etc/hosts"), "written by the command").unwrap();
        std::fs::create_dir_all(u.join("mnt/cache")).unwrap();
        std::fs::create_dir_all(u.join("proc")).unwrap();
        std::fs::write(u.join("proc/keep"), "").unwrap();
        let before = std::fs::metadata(u.join("etc")).unwrap().modified().unwrap();
        let stubs: Vec<String> =
            ["/etc/resolv.conf", "/etc/hosts", "/mnt", "/mnt/cache", "/proc", "/missing"]
                .map(String::from)
                .to_vec();
        let removed = remove_empty_stubs(u, &stubs).unwrap();
        assert_eq!(removed, 3, "resolv.conf, mnt/cache, then mnt");
        assert!(!u.join("etc/resolv.conf").exists());
        assert!(u.join("etc/hosts").exists());
        assert!(!u.join("mnt").exists());
        assert!(u.join("proc/keep").exists());
        assert_eq!(std::fs::metadata(u.join("etc")).unwrap().modified().unwrap(), before);
    }

    #[test]
    fn symlinks_in_upper_are_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("victim"), "").unwrap();
        let tmp = tempfile::tempdir().unwrap();
        // The command replaced /etc with a link to the host.
        symlink(outside.path(), tmp.path().join("etc")).unwrap();
        let removed = remove_empty_stubs(tmp.path(), &["/etc/victim".to_owned()]).unwrap();
        assert_eq!(removed, 0);
        assert!(outside.path().join("victim").exists());
    }
}
