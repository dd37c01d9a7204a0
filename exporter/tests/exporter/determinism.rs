//! Same tree, same bytes: across runs, thread counts, stores, and mtimes beyond
//! `SOURCE_DATE_EPOCH`.

use crate::util::{self, require_root};
use exporter::{LayerOptions, export_layer, export_layer_with_threads};
use registry::Compression;
use std::fs;

/// A tree big enough for several gzip blocks, made without root.
fn plain_tree(root: &std::path::Path) {
    for i in 0..40 {
        let mut content = Vec::new();
        for j in 0..(i * 997) {
            content.extend_from_slice(format!("{i}:{j} some moderately compressible text\n").as_bytes());
        }
        util::write(&root.join(format!("dir{}/file{i}", i % 5)), &content, 0o644);
    }
    std::os::unix::fs::symlink("dir0/file0", root.join("link")).unwrap();
    util::set_all_mtimes(root, 1_600_000_000);
}

#[test]
fn same_tree_same_digest_whatever_the_threads() {
    let dir = tempfile::tempdir().unwrap();
    plain_tree(dir.path());
    let (_s1, store1) = util::store();
    let (_s2, store2) = util::store();
    for compression in [Compression::Gzip, Compression::Zstd, Compression::Uncompressed] {
        let opts = LayerOptions { compression, ..LayerOptions::default() };
        let first = export_layer(&store1, dir.path(), &opts).unwrap();
        assert!(first.blob.size > 0);
        for threads in [1, 2, 3, 7] {
            let again = export_layer_with_threads(&store2, dir.path(), &opts, threads).unwrap();
            assert_eq!(again, first, "{compression:?} with {threads} threads");
        }
    }
}

#[test]
fn gzip_levels_change_bytes_not_diff_ids() {
    let dir = tempfile::tempdir().unwrap();
    plain_tree(dir.path());
    let (_s, store) = util::store();
    let fast = export_layer(&store, dir.path(), &LayerOptions { level: Some(1), ..LayerOptions::default() })
        .unwrap();
    let best = export_layer(&store, dir.path(), &LayerOptions { level: Some(9), ..LayerOptions::default() })
        .unwrap();
    assert_eq!(fast.diff_id, best.diff_id);
    assert_ne!(fast.blob.digest, best.blob.digest);
    assert!(best.blob.size < fast.blob.size);
}

#[test]
fn source_date_epoch_clamps_newer_mtimes_only() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    plain_tree(a.path());
    plain_tree(b.path());
    util::set_all_mtimes(b.path(), 1_650_000_000);
    let (_s, store) = util::store();
    let digest = |dir: &std::path::Path, epoch| {
        export_layer(&store, dir, &LayerOptions { source_date_epoch: epoch, ..LayerOptions::default() })
            .unwrap()
            .diff_id
    };
    // Both trees are newer than the epoch: clamped, they are identical.
    assert_eq!(digest(a.path(), Some(1_500_000_000)), digest(b.path(), Some(1_500_000_000)));
    // Without clamping the mtimes differ, and an epoch after both clamps nothing.
    assert_ne!(digest(a.path(), None), digest(b.path(), None));
    assert_eq!(digest(a.path(), Some(1_700_000_000)), digest(a.path(), None));
}

#[test]
fn fixture_layer_is_reproducible_in_another_directory() {
    require_root!();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    util::layer_fixture(&a.path().join("l"));
    util::layer_fixture(&b.path().join("l"));
    let (_s, store) = util::store();
    let x = export_layer(&store, &a.path().join("l"), &LayerOptions::default()).unwrap();
    let y = export_layer_with_threads(&store, &b.path().join("l"), &LayerOptions::default(), 1).unwrap();
    assert_eq!(x, y);
    // Atime changes (reading the files) must not matter.
    for e in fs::read_dir(a.path().join("l/bin")).unwrap() {
        let _ = fs::read(e.unwrap().path());
    }
    assert_eq!(export_layer(&store, &a.path().join("l"), &LayerOptions::default()).unwrap(), x);
}

#[test]
fn empty_layer_has_dockers_well_known_diff_id() {
    // Go's archive/tar (docker, containerd, BuildKit) writes an empty layer as two zero
    // blocks; its digest is the "empty layer" every registry has seen.
    let dir = tempfile::tempdir().unwrap();
    let (_s, store) = util::store();
    let e = export_layer(&store, dir.path(), &LayerOptions::default()).unwrap();
    assert_eq!(e.diff_id.as_str(), "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef");
}
