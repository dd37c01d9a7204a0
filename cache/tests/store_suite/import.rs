//! Importing layer blobs: entry kinds, whiteouts, hard links across layers, safety, and
//! digest verification.

use crate::support::{
    TarBuilder, TestStore, is_whiteout, names, owner_mode, put_layer_blob, require_root, xattr,
};
use cache::{ImportError, StoreError};
use registry::{Compression, Descriptor, Digest, MediaType};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

#[test]
fn every_entry_kind_is_unpacked_with_its_metadata() {
    require_root!();
    let t = TestStore::new();
    let tar = TarBuilder::new()
        .dir("etc/", 0o755)
        .file_owned("etc/secret", b"s3cret", 0o600, 1000, 1001)
        .file("usr/bin/tool", b"#!/bin/sh\n", 0o4755)
        .symlink("usr/bin/alias", "tool")
        .hardlink("usr/bin/tool2", "usr/bin/tool")
        .device("dev/null", tar::EntryType::Char, 1, 3)
        .device("dev/loop0", tar::EntryType::Block, 7, 0)
        .device("run/fifo", tar::EntryType::Fifo, 0, 0)
        .pax(&[
            ("SCHILY.xattr.user.comment", b"hello"),
            (
                "SCHILY.xattr.security.capability",
                b"\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
            ),
        ])
        .file("usr/bin/ping", b"elf", 0o755)
        .pax(&[("uid", b"70000"), ("gid", b"70001"), ("mtime", b"1600000123.25")])
        .file("big-ids", b"x", 0o640)
        .finish();
    let id = t.import(&[], &tar, Compression::Gzip);
    let diff = t.store.layer_dir(&id);

    assert_eq!(fs::read(diff.join("etc/secret")).unwrap(), b"s3cret");
    assert_eq!(owner_mode(&diff.join("etc/secret")), (0o600, 1000, 1001));
    assert_eq!(owner_mode(&diff.join("usr/bin/tool")), (0o4755, 0, 0), "set-uid survives chown");
    assert_eq!(fs::read_link(diff.join("usr/bin/alias")).unwrap().to_str(), Some("tool"));
    let tool = fs::metadata(diff.join("usr/bin/tool")).unwrap();
    assert_eq!(tool.ino(), fs::metadata(diff.join("usr/bin/tool2")).unwrap().ino());
    assert_eq!(tool.nlink(), 2);
    let null = fs::symlink_metadata(diff.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    assert!(fs::symlink_metadata(diff.join("dev/loop0")).unwrap().file_type().is_block_device());
    assert!(fs::symlink_metadata(diff.join("run/fifo")).unwrap().file_type().is_fifo());
    assert_eq!(xattr(&diff.join("usr/bin/ping"), "user.comment").as_deref(), Some(&b"hello"[..]));
    assert!(xattr(&diff.join("usr/bin/ping"), "security.capability").is_some());
    let big = fs::symlink_metadata(diff.join("big-ids")).unwrap();
    assert_eq!(
        (big.uid(), big.gid(), big.mtime(), big.mtime_nsec()),
        (70000, 70001, 1_600_000_123, 250_000_000)
    );
    // Parents without their own entry are plain 0755 root directories.
    assert_eq!(owner_mode(&diff.join("usr/bin")), (0o755, 0, 0));
    assert_eq!(fs::symlink_metadata(diff.join("etc")).unwrap().mtime(), 1_600_000_000, "dir times set last");

    let rec = t.store.meta().layer(&id).unwrap().unwrap();
    assert_eq!(rec.diff_id, Some(Digest::of_bytes(&tar)));
    assert_eq!(rec.blobs.len(), 1);
    assert_eq!(rec.blobs[0].compression, Compression::Gzip);
    assert!(rec.size > 0);
}

#[test]
fn whiteouts_and_opaque_dirs_hide_lower_content() {
    require_root!();
    let t = TestStore::new();
    let base = TarBuilder::new()
        .file("a/1", b"1", 0o644)
        .file("a/2", b"2", 0o644)
        .file("b/x", b"x", 0o644)
        .file("b/sub/y", b"y", 0o644)
        .file("c/keep", b"k", 0o644)
        .file("d/old", b"old", 0o644)
        .finish();
    let l1 = t.import(&[], &base, Compression::Gzip);
    let top = TarBuilder::new()
        .whiteout("a/1")
        .opaque("b")
        .file("b/new", b"n", 0o644)
        .whiteout("c")
        // Deleted and re-created in the same layer: the new directory must be opaque.
        .whiteout("d")
        .dir("d/", 0o700)
        .file("d/fresh", b"f", 0o644)
        .finish();
    let l2 = t.import(std::slice::from_ref(&l1), &top, Compression::Zstd);

    let diff = t.store.layer_dir(&l2);
    assert!(is_whiteout(&diff.join("a/1")));
    assert!(is_whiteout(&diff.join("c")));
    assert_eq!(xattr(&diff.join("b"), "trusted.overlay.opaque").as_deref(), Some(&b"y"[..]));
    assert_eq!(xattr(&diff.join("d"), "trusted.overlay.opaque").as_deref(), Some(&b"y"[..]));
    assert!(t.store.meta().layer(&l2).unwrap().unwrap().has_whiteouts);

    let m = t.store.mount_readonly(&[l1, l2]).unwrap();
    let root = m.path();
    assert_eq!(names(root), ["a", "b", "d"]);
    assert_eq!(names(&root.join("a")), ["2"]);
    assert_eq!(names(&root.join("b")), ["new"]);
    assert_eq!(names(&root.join("d")), ["fresh"]);
    assert_eq!(owner_mode(&root.join("d")).0, 0o700);
}

#[test]
fn whiteout_after_same_layer_entry_keeps_that_entry() {
    require_root!();
    let t = TestStore::new();
    let l1 = t.import(&[], &TarBuilder::new().file("d/lower", b"l", 0o644).finish(), Compression::Gzip);
    // The whiteout comes after this layer's own d/: per the OCI rules it only hides d of
    // the lower layers.
    let top = TarBuilder::new().file("d/upper", b"u", 0o644).whiteout("d").finish();
    let l2 = t.import(std::slice::from_ref(&l1), &top, Compression::Gzip);
    let m = t.store.mount_readonly(&[l1, l2]).unwrap();
    assert_eq!(names(&m.path().join("d")), ["upper"]);
}

#[test]
fn hard_link_to_a_lower_layer_file_is_copied_up() {
    require_root!();
    let t = TestStore::new();
    let base = TarBuilder::new()
        .dir_owned("opt/", 0o750, 7, 8)
        .file_owned("opt/tool", b"binary", 0o711, 5, 6)
        .finish();
    let l1 = t.import(&[], &base, Compression::Gzip);
    let top =
        TarBuilder::new().hardlink("opt/tool-link", "opt/tool").file("opt/other/new", b"n", 0o644).finish();
    let l2 = t.import(std::slice::from_ref(&l1), &top, Compression::Gzip);

    let diff = t.store.layer_dir(&l2);
    let a = fs::metadata(diff.join("opt/tool")).unwrap();
    let b = fs::metadata(diff.join("opt/tool-link")).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_eq!(fs::read(diff.join("opt/tool-link")).unwrap(), b"binary");
    assert_eq!(owner_mode(&diff.join("opt/tool")), (0o711, 5, 6));
    // The parent made for the link copies the lower directory's metadata.
    assert_eq!(owner_mode(&diff.join("opt")), (0o750, 7, 8));

    let m = t.store.mount_readonly(&[l1, l2]).unwrap();
    assert_eq!(fs::read(m.path().join("opt/tool-link")).unwrap(), b"binary");
    assert_eq!(names(&m.path().join("opt")), ["other", "tool", "tool-link"]);
}

#[test]
fn hard_link_to_a_missing_or_deleted_target_is_rejected() {
    require_root!();
    let t = TestStore::new();
    let l1 = t.import(&[], &TarBuilder::new().file("f", b"f", 0o644).finish(), Compression::Gzip);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("missing", TarBuilder::new().hardlink("link", "nowhere").finish()),
        ("deleted here", TarBuilder::new().whiteout("f").hardlink("link", "f").finish()),
    ];
    for (what, tar) in cases {
        let (desc, diff_id) = put_layer_blob(&t.store, &tar, Compression::Gzip);
        let err = t.store.import_layer(std::slice::from_ref(&l1), &desc, &diff_id).unwrap_err();
        assert!(
            matches!(&err, StoreError::Import(ImportError::InvalidEntry { reason, .. }) if reason.contains("not found")),
            "{what}: {err}"
        );
    }
    assert_eq!(t.store.meta().list_layers().unwrap().len(), 1);
}

#[test]
fn names_cannot_escape_the_layer() {
    require_root!();
    let t = TestStore::new();
    let outside = t.dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let tar = TarBuilder::new()
        .file("../../escape1", b"1", 0o644)
        .file("/abs/escape2", b"2", 0o644)
        .symlink("root-link", "/")
        .file("root-link/escape3", b"3", 0o644)
        .symlink("up", "../../../../../../..")
        .file("up/escape4", b"4", 0o644)
        .symlink("out", outside.to_str().unwrap())
        .file("out/escape5", b"5", 0o644)
        .hardlink("stolen", "../../../../etc/passwd")
        .finish();
    let (desc, diff_id) = put_layer_blob(&t.store, &tar, Compression::Gzip);
    let err = t.store.import_layer(&[], &desc, &diff_id).unwrap_err();
    // The hard link is resolved inside the layer, where etc/passwd does not exist.
    assert!(matches!(err, StoreError::Import(ImportError::InvalidEntry { .. })), "{err}");
    assert!(names(&outside).is_empty(), "nothing may land outside the layer");
    assert!(!t.dir.path().join("escape1").exists());

    // Without the hard link every entry lands inside the layer.
    let tar = TarBuilder::new()
        .file("../../escape1", b"1", 0o644)
        .file("/abs/escape2", b"2", 0o644)
        .symlink("root-link", "/")
        .file("root-link/escape3", b"3", 0o644)
        .symlink("up", "../../../../../../..")
        .file("up/escape4", b"4", 0o644)
        .symlink("out", outside.to_str().unwrap())
        .file("out/escape5", b"5", 0o644)
        .finish();
    let id = t.import(&[], &tar, Compression::Gzip);
    let diff = t.store.layer_dir(&id);
    for (path, content) in [("escape1", "1"), ("abs/escape2", "2"), ("escape3", "3"), ("escape4", "4")] {
        assert_eq!(fs::read_to_string(diff.join(path)).unwrap(), content, "{path}");
    }
    let inside_out = diff.join(outside.strip_prefix("/").unwrap()).join("escape5");
    assert_eq!(fs::read_to_string(inside_out).unwrap(), "5");
    assert!(names(&outside).is_empty());
}

#[test]
fn every_compression_imports_and_reimport_reuses_the_layer() {
    require_root!();
    let t = TestStore::new();
    let tar = TarBuilder::new().file("hello", b"world", 0o644).finish();
    let mut ids = Vec::new();
    for c in [Compression::Uncompressed, Compression::Gzip, Compression::Zstd] {
        let (desc, diff_id) = put_layer_blob(&t.store, &tar, c);
        ids.push(t.store.import_layer(&[], &desc, &diff_id).unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "same diff id on the same parent: one layer");
    let rec = t.store.meta().layer(&ids[0]).unwrap().unwrap();
    assert_eq!(rec.blobs.len(), 3, "one blob per compression");
    assert_eq!(t.store.meta().list_layers().unwrap().len(), 1);
    // A blob claiming the same diff id with other content is verified, not trusted.
    let liar = TarBuilder::new().file("hello", b"lies", 0o644).finish();
    let (mut desc, _) = put_layer_blob(&t.store, &liar, Compression::Zstd);
    desc.media_type = MediaType::OciLayerZstd;
    let err = t.store.import_layer(&[], &desc, &Digest::of_bytes(&tar)).unwrap_err();
    assert!(matches!(err, StoreError::Import(ImportError::DiffIdMismatch { .. })), "{err}");
    assert_eq!(
        t.store.meta().layer(&ids[0]).unwrap().unwrap().blob(Compression::Zstd).unwrap().diff_id,
        Digest::of_bytes(&tar)
    );
    // On another parent the same blob is a different layer.
    let other = t.import(std::slice::from_ref(&ids[0]), &tar, Compression::Gzip);
    assert_ne!(other, ids[0]);
}

#[test]
fn digest_mismatches_leave_nothing_behind() {
    require_root!();
    let t = TestStore::new();
    let tar = TarBuilder::new().file("a", b"a", 0o644).finish();
    let (desc, diff_id) = put_layer_blob(&t.store, &tar, Compression::Gzip);
    let wrong_diff = Digest::of_bytes(b"something else");
    let wrong_size = Descriptor { size: desc.size + 1, ..desc.clone() };
    let cases: Vec<(&str, Descriptor, Digest)> =
        vec![("diff id", desc.clone(), wrong_diff), ("blob size", wrong_size, diff_id.clone())];
    for (what, desc, diff_id) in cases {
        let err = t.store.import_layer(&[], &desc, &diff_id).unwrap_err();
        let ok = match what {
            "diff id" => matches!(err, StoreError::Import(ImportError::DiffIdMismatch { .. })),
            _ => matches!(err, StoreError::Import(ImportError::BlobMismatch { .. })),
        };
        assert!(ok, "{what}: {err}");
        assert!(t.store.meta().list_layers().unwrap().is_empty(), "{what}");
        assert!(names(&t.root().join("layers")).is_empty(), "{what}");
    }
}

#[test]
fn corrupt_or_foreign_blobs_are_rejected() {
    require_root!();
    let t = TestStore::new();
    let tar = TarBuilder::new().file("a", &[7u8; 100_000], 0o644).finish();
    let mut gz = crate::support::compress(&tar, Compression::Gzip);
    let mid = gz.len() / 2;
    gz[mid] ^= 0xff;
    let digest = t.store.content().write_bytes(&gz).unwrap();
    let corrupt = Descriptor {
        media_type: MediaType::OciLayerGzip,
        digest,
        size: gz.len() as u64,
        platform: None,
        annotations: Default::default(),
    };
    let err = t.store.import_layer(&[], &corrupt, &Digest::of_bytes(&tar)).unwrap_err();
    assert!(
        matches!(err, StoreError::Import(ImportError::Read { .. } | ImportError::DiffIdMismatch { .. })),
        "{err}"
    );

    let config = Descriptor { media_type: MediaType::OciConfig, ..corrupt.clone() };
    let err = t.store.import_layer(&[], &config, &Digest::of_bytes(&tar)).unwrap_err();
    assert!(matches!(err, StoreError::Import(ImportError::NotALayer { .. })), "{err}");

    let missing = Descriptor { digest: Digest::of_bytes(b"not stored"), ..corrupt };
    let err = t.store.import_layer(&[], &missing, &Digest::of_bytes(&tar)).unwrap_err();
    assert!(err.is_not_found(), "{err}");

    let unknown_parent: cache::LayerId = "nosuchlayer".parse().unwrap();
    let (desc, diff_id) = put_layer_blob(&t.store, &tar, Compression::Gzip);
    let err = t.store.import_layer(&[unknown_parent], &desc, &diff_id).unwrap_err();
    assert!(matches!(err, StoreError::LayerNotFound(_)), "{err}");
    assert!(names(&t.root().join("layers")).is_empty());
}

#[test]
fn later_entries_replace_earlier_ones() {
    require_root!();
    let t = TestStore::new();
    let tar = TarBuilder::new()
        .file("x", b"file first", 0o644)
        .dir("x/", 0o755)
        .file("x/inner", b"i", 0o644)
        .dir("y/", 0o700)
        .file("y/keep", b"k", 0o644)
        .dir("y/", 0o755)
        .symlink("z", "somewhere")
        .file("z", b"now a file", 0o600)
        .finish();
    let id = t.import(&[], &tar, Compression::Gzip);
    let diff = t.store.layer_dir(&id);
    assert_eq!(names(&diff.join("x")), ["inner"]);
    assert_eq!(names(&diff.join("y")), ["keep"], "directories merge");
    assert_eq!(owner_mode(&diff.join("y")).0, 0o755);
    assert_eq!(fs::read(diff.join("z")).unwrap(), b"now a file");
}

#[test]
fn opaque_marker_at_the_root_hides_all_lower_content() {
    require_root!();
    let t = TestStore::new();
    let base = TarBuilder::new().file("a", b"a", 0o644).file("b/c", b"c", 0o644).finish();
    let l1 = t.import(&[], &base, Compression::Gzip);
    let top = TarBuilder::new().file(".wh..wh..opq", b"", 0o644).file("b/new", b"n", 0o644).finish();
    let l2 = t.import(std::slice::from_ref(&l1), &top, Compression::Gzip);
    // overlayfs ignores the opaque xattr on a layer root, so the import whiteouts each
    // lower entry instead.
    assert!(is_whiteout(&t.store.layer_dir(&l2).join("a")));
    let m = t.store.mount_readonly(&[l1, l2]).unwrap();
    assert_eq!(names(m.path()), ["b"]);
    assert_eq!(names(&m.path().join("b")), ["new"], "a directory this layer provides is opaque too");
}
