//! Opening and creating paths inside the rootfs without ever leaving it.
//!
//! The rootfs is untrusted: `/etc` may be a symlink to `/`, `/etc/resolv.conf` may point
//! to `../../host/file`. Every lookup goes through `openat2(RESOLVE_IN_ROOT)`, which makes
//! the kernel treat the rootfs as `/` for absolute symlinks and `..`, and every creation is
//! relative to a directory fd obtained that way. Symlinks met on the way (including
//! dangling ones, as runc's securejoin does) are followed by hand, inside the root.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{self as rfs, FileType, Mode, OFlags, ResolveFlags};

/// What to create when a path is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Kind {
    Dir,
    File,
}

const MAX_SYMLINKS: usize = 40;

fn resolve_flags() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

/// Puts the components of `path` in front of the queue. `..` stays in the queue: it needs
/// the prefix resolved so far and is applied when reached.
fn push_components(pending: &mut VecDeque<String>, path: &str) {
    let fresh: Vec<&str> = path.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    for part in fresh.into_iter().rev() {
        pending.push_front(part.to_owned());
    }
}

fn join(parts: &[String]) -> String {
    if parts.is_empty() { "/".to_owned() } else { format!("/{}", parts.join("/")) }
}

/// Opens `path` (relative to `root`, resolved inside it) as an `O_PATH` fd without
/// following a final symlink.
pub(crate) fn open_path(root: BorrowedFd<'_>, path: &str) -> io::Result<OwnedFd> {
    Ok(rfs::openat2(
        root,
        path,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        resolve_flags(),
    )?)
}

/// Reads a small regular file inside the root; `None` when it does not exist. Refuses
/// FIFOs and devices (a hostile image could make a read block forever) and reads at most
/// `limit` bytes.
pub(crate) fn read_file(root: BorrowedFd<'_>, path: &str, limit: u64) -> io::Result<Option<String>> {
    use std::io::Read;
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = match rfs::openat2(root, path, flags, Mode::empty(), resolve_flags()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(rfs::fstat(&fd)?.st_mode) != FileType::RegularFile {
        return Err(io::Error::other(format!("{path} is not a regular file")));
    }
    let mut text = String::new();
    std::fs::File::from(fd).take(limit).read_to_string(&mut text)?;
    Ok(Some(text))
}

/// Paths on the way to `dest` that do not exist yet (the first missing component and
/// everything below it): what a runtime will create as mount points.
pub(crate) fn missing_prefixes(root: BorrowedFd<'_>, dest: &str) -> Vec<String> {
    let parts: Vec<&str> = dest.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    let mut out = Vec::new();
    for i in 1..=parts.len() {
        let prefix = format!("/{}", parts[..i].join("/"));
        if !out.is_empty()
            || matches!(open_path(root, &prefix), Err(e) if e.raw_os_error() == Some(libc::ENOENT))
        {
            out.push(prefix);
        }
    }
    out
}

/// Result of [`ensure`].
pub(crate) struct Ensured {
    /// `O_PATH` fd of the final object (never a symlink).
    pub fd: OwnedFd,
    /// Resolved path inside the root.
    pub path: String,
}

/// Opens `path` inside `root`, creating missing components (directories, and the last one
/// as `kind`). Each created path is passed to `on_create` with the fd of its parent
/// directory, so that the caller can decide whether it counts as a mount stub.
pub(crate) fn ensure(
    root: BorrowedFd<'_>,
    path: &str,
    kind: Kind,
    on_create: &mut dyn FnMut(&str, BorrowedFd<'_>),
) -> io::Result<Ensured> {
    let mut pending = VecDeque::new();
    let mut resolved: Vec<String> = Vec::new();
    push_components(&mut pending, path);
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        let mut candidate = resolved.clone();
        candidate.push(name.clone());
        let candidate_path = join(&candidate);
        match open_path(root, &candidate_path) {
            Ok(fd) => {
                let st = rfs::fstat(&fd)?;
                if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(io::Error::from_raw_os_error(libc::ELOOP));
                    }
                    let target = rfs::readlinkat(&fd, "", Vec::new())?;
                    let target = target.to_string_lossy().into_owned();
                    if target.starts_with('/') {
                        resolved.clear();
                    }
                    push_components(&mut pending, &target);
                    continue;
                }
                resolved = candidate;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                let parent = rfs::openat2(
                    root,
                    join(&resolved),
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                    resolve_flags(),
                )?;
                let last = pending.is_empty() && kind == Kind::File;
                if last {
                    let flags =
                        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                    drop(rfs::openat(&parent, name.as_str(), flags, Mode::from_raw_mode(0o644))?);
                } else {
                    rfs::mkdirat(&parent, name.as_str(), Mode::from_raw_mode(0o755))?;
                }
                on_create(&candidate_path, parent.as_fd());
                resolved = candidate;
            }
            Err(e) => return Err(e),
        }
    }
    let path = join(&resolved);
    let fd = open_path(root, &path)?;
    Ok(Ensured { fd, path })
}

/// `/proc/self/fd/N`: lets path-based syscalls such as `mount(2)` act on an fd.
pub(crate) fn fd_path(fd: &impl AsFd) -> String {
    use std::os::fd::AsRawFd;
    format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root_fd(dir: &std::path::Path) -> OwnedFd {
        rfs::open(dir, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap()
    }

    #[test]
    fn creates_missing_components_and_reports_them() {
        let tmp = tempfile::tempdir().unwrap();
        let root = root_fd(tmp.path());
        let mut created = Vec::new();
        let got =
            ensure(root.as_fd(), "/etc/resolv.conf", Kind::File, &mut |p, _| created.push(p.to_owned()))
                .unwrap();
        assert_eq!(got.path, "/etc/resolv.conf");
        assert_eq!(created, vec!["/etc", "/etc/resolv.conf"]);
        assert!(tmp.path().join("etc/resolv.conf").is_file());
        // Existing paths create nothing.
        created.clear();
        ensure(root.as_fd(), "etc/./resolv.conf", Kind::File, &mut |p, _| created.push(p.to_owned()))
            .unwrap();
        assert!(created.is_empty());
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        // An absolute link to "/" and a relative one climbing far above the root.
        symlink("/", tmp.path().join("escape")).unwrap();
        symlink(format!("../../../../..{}", outside.path().display()), tmp.path().join("climb")).unwrap();
        symlink("/target/dir", tmp.path().join("dangling")).unwrap();
        let root = root_fd(tmp.path());
        let cases = [
            ("/escape/tmp/x", "/tmp/x"),
            ("/climb/y", &*format!("{}/y", outside.path().display())),
            ("/dangling/file", "/target/dir/file"),
        ];
        for (path, want) in cases {
            let got = ensure(root.as_fd(), path, Kind::File, &mut |_, _| {}).unwrap();
            assert_eq!(got.path, want, "{path}");
            assert!(tmp.path().join(want.trim_start_matches('/')).exists(), "{path}");
        }
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0, "nothing written outside the root");
    }

    #[test]
    fn symlink_loops_fail() {
        let tmp = tempfile::tempdir().unwrap();
        symlink("/b", tmp.path().join("a")).unwrap();
        symlink("/a", tmp.path().join("b")).unwrap();
        let root = root_fd(tmp.path());
        let err = ensure(root.as_fd(), "/a/x", Kind::Dir, &mut |_, _| {}).err().unwrap();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }
}
