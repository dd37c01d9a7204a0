//! `type=local` (copy of the final file system) and `type=tar` (its tarball).

use crate::util::{self, require_root};
use exporter::{Destination, write_local, write_rootfs_tar};
use rustix::fs::FileType;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// A root file system as a mounted overlay would show it (no whiteouts, but a real 0:0
/// character device is just a device here).
fn rootfs(root: &Path) {
    util::mkdir(root, 0o755);
    util::write(&root.join("bin/tool"), b"tool\n", 0o755);
    util::chown(&root.join("bin/tool"), 1000, 1001);
    util::chmod(&root.join("bin/tool"), 0o4755);
    fs::hard_link(root.join("bin/tool"), root.join("bin/again")).unwrap();
    std::os::unix::fs::symlink("/bin/tool", root.join("bin/abs-link")).unwrap();
    util::write(&root.join("etc/conf"), b"conf\n", 0o600);
    util::set_xattr(&root.join("etc/conf"), "user.origin", b"test");
    util::mkdir(&root.join("tmp"), 0o1777);
    util::mkdir(&root.join("dev"), 0o755);
    util::mknod(&root.join("dev/null"), FileType::CharacterDevice, 1, 3);
    util::mknod(&root.join("dev/zero-zero"), FileType::CharacterDevice, 0, 0);
    util::mknod(&root.join("dev/fifo"), FileType::Fifo, 0, 0);
    util::set_all_mtimes(root, 1_650_000_000);
    let t = rustix::fs::Timespec { tv_sec: 1_650_000_123, tv_nsec: 456_789 };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        root.join("etc/conf"),
        &rustix::fs::Timestamps { last_access: t, last_modification: t },
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
}

#[test]
fn local_copy_keeps_metadata_and_links() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("rootfs");
    rootfs(&src);
    let dest = dir.path().join("out");
    write_local(&src, &dest).unwrap();

    let tool = fs::symlink_metadata(dest.join("bin/tool")).unwrap();
    assert_eq!((tool.mode() & 0o7777, tool.uid(), tool.gid()), (0o4755, 1000, 1001));
    assert_eq!(tool.ino(), fs::metadata(dest.join("bin/again")).unwrap().ino());
    assert_eq!(fs::read_link(dest.join("bin/abs-link")).unwrap().to_str(), Some("/bin/tool"));
    let conf = fs::metadata(dest.join("etc/conf")).unwrap();
    assert_eq!((conf.mode() & 0o7777, conf.mtime(), conf.mtime_nsec()), (0o600, 1_650_000_123, 456_789));
    assert_eq!(util::get_xattr(&dest.join("etc/conf"), "user.origin").as_deref(), Some(&b"test"[..]));
    assert_eq!(fs::metadata(dest.join("tmp")).unwrap().mode() & 0o7777, 0o1777);
    assert_eq!(
        fs::metadata(dest.join("bin")).unwrap().mtime(),
        1_650_000_000,
        "dir times set after children"
    );
    let null = fs::symlink_metadata(dest.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    assert!(fs::symlink_metadata(dest.join("dev/fifo")).unwrap().file_type().is_fifo());
}

#[test]
fn local_copy_replaces_without_following_symlinks() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("rootfs");
    rootfs(&src);
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let dest = dir.path().join("out");
    fs::create_dir_all(dest.join("etc/conf")).unwrap(); // a dir where a file goes
    std::os::unix::fs::symlink(&outside, dest.join("bin")).unwrap(); // a symlink where a dir goes
    util::write(&dest.join("unrelated"), b"kept\n", 0o644);
    write_local(&src, &dest).unwrap();

    assert!(fs::symlink_metadata(dest.join("bin")).unwrap().is_dir());
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "nothing written through the old symlink");
    assert_eq!(fs::read(dest.join("etc/conf")).unwrap(), b"conf\n");
    assert_eq!(fs::read(dest.join("unrelated")).unwrap(), b"kept\n");
}

#[test]
fn rootfs_tar_lists_everything_as_is() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("rootfs");
    rootfs(&src);
    let tar = dir.path().join("rootfs.tar");
    write_rootfs_tar(&src, &Destination::File(tar.clone())).unwrap();
    let listing = util::run("tar", &["--numeric-owner", "-tvf", util::path_str(&tar)]);
    // "again" sorts before "tool", so it is the first path of the hard-linked pair.
    for want in ["-rwsr-xr-x 1000/1001", "bin/tool link to bin/again", "dev/zero-zero", "0,0", "drwxrwxrwt"] {
        assert!(listing.contains(want), "missing {want:?} in\n{listing}");
    }
    assert!(!listing.contains(".wh."), "a root file system has no whiteouts");
    let out = dir.path().join("x");
    util::untar(&tar, &out);
    assert_eq!(util::get_xattr(&out.join("etc/conf"), "user.origin").as_deref(), Some(&b"test"[..]));
    let err = write_rootfs_tar(&src, &Destination::Dir(dir.path().join("d"))).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
}
