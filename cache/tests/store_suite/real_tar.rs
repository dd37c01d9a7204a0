//! Layers written by GNU tar (the reference implementation of the format) import to the
//! same tree they were made from.

use crate::support::{TestStore, put_layer_blob, require_root};
use registry::Compression;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

/// A tree with every kind of entry GNU tar writes.
fn make_tree(src: &Path) {
    fs::create_dir_all(src.join("etc/ssl")).unwrap();
    fs::write(src.join("etc/hostname"), b"box\n").unwrap();
    fs::write(src.join("etc/ssl/key"), b"secret").unwrap();
    fs::set_permissions(src.join("etc/ssl"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(src.join("etc/ssl/key"), fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(src.join("etc/ssl/key"), Some(101), Some(102)).unwrap();
    fs::create_dir_all(src.join("usr/bin")).unwrap();
    fs::write(src.join("usr/bin/prog"), vec![0x7fu8; 300_000]).unwrap();
    fs::set_permissions(src.join("usr/bin/prog"), fs::Permissions::from_mode(0o2755)).unwrap();
    fs::hard_link(src.join("usr/bin/prog"), src.join("usr/bin/prog-alias")).unwrap();
    symlink("prog", src.join("usr/bin/link")).unwrap();
    symlink("/does/not/exist", src.join("usr/bin/dangling")).unwrap();
    let long = "d".repeat(120);
    fs::create_dir_all(src.join(&long)).unwrap();
    fs::write(src.join(&long).join("é ü ✓ file"), b"unicode").unwrap();
    fs::create_dir(src.join("dev")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        src.join("dev/zero"),
        rustix::fs::FileType::CharacterDevice,
        0o666.into(),
        rustix::fs::makedev(1, 5),
    )
    .unwrap();
    rustix::fs::mknodat(rustix::fs::CWD, src.join("dev/pipe"), rustix::fs::FileType::Fifo, 0o600.into(), 0)
        .unwrap();
    rustix::fs::lsetxattr(src.join("etc/hostname"), "user.origin", b"test", rustix::fs::XattrFlags::empty())
        .unwrap();
    fs::create_dir(src.join("empty-dir")).unwrap();
}

/// Compares two trees entry by entry: kind, mode, owner, size, content, link target,
/// device number, user xattrs and modification time (seconds).
fn assert_same_tree(want: &Path, got: &Path) {
    let mut wanted = crate::support::names(want);
    wanted.retain(|n| n != "lost+found");
    assert_eq!(wanted, crate::support::names(got), "entries of {}", got.display());
    for name in wanted {
        let (w, g) = (want.join(&name), got.join(&name));
        let (wm, gm) = (fs::symlink_metadata(&w).unwrap(), fs::symlink_metadata(&g).unwrap());
        let what = g.display().to_string();
        assert_eq!(wm.mode(), gm.mode(), "mode of {what}");
        assert_eq!((wm.uid(), wm.gid()), (gm.uid(), gm.gid()), "owner of {what}");
        assert_eq!(wm.rdev(), gm.rdev(), "device of {what}");
        if !wm.is_dir() {
            assert_eq!(wm.mtime(), gm.mtime(), "mtime of {what}");
        }
        assert_eq!(
            crate::support::xattr(&w, "user.origin"),
            crate::support::xattr(&g, "user.origin"),
            "{what}"
        );
        if wm.file_type().is_symlink() {
            assert_eq!(fs::read_link(&w).unwrap(), fs::read_link(&g).unwrap(), "target of {what}");
        } else if wm.is_file() {
            assert_eq!(wm.nlink(), gm.nlink(), "links of {what}");
            assert_eq!(fs::read(&w).unwrap(), fs::read(&g).unwrap(), "content of {what}");
        } else if wm.is_dir() {
            assert_same_tree(&w, &g);
        }
    }
}

#[test]
fn gnu_tar_layers_round_trip() {
    require_root!();
    let t = TestStore::new();
    let src = t.dir.path().join("src");
    fs::create_dir(&src).unwrap();
    make_tree(&src);
    let tar_path = t.dir.path().join("layer.tar");
    let status = Command::new("tar")
        .args(["--format=pax", "--xattrs", "--xattrs-include=user.*", "--numeric-owner", "-C"])
        .arg(&src)
        .arg("-cf")
        .arg(&tar_path)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let tar = fs::read(&tar_path).unwrap();
    for c in [Compression::Gzip, Compression::Zstd] {
        let (desc, diff_id) = put_layer_blob(&t.store, &tar, c);
        let id = t.store.import_layer(&[], &desc, &diff_id).unwrap();
        let m = t.store.mount_readonly(std::slice::from_ref(&id)).unwrap();
        assert_same_tree(&src, m.path());
    }
}
