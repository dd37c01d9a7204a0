//! Mounting chains read-only and writable.

use crate::support::{TarBuilder, TestStore, is_whiteout, mounts_under, names, require_root};
use cache::{LayerId, Store, StoreError};
use registry::Compression;
use std::fs;

fn is_read_only(dir: &std::path::Path) -> bool {
    fs::write(dir.join("probe"), b"x").err().is_some_and(|e| e.raw_os_error() == Some(libc_erofs()))
}

fn libc_erofs() -> i32 {
    rustix::io::Errno::ROFS.raw_os_error()
}

#[test]
fn readonly_mounts_of_zero_one_and_many_layers() {
    require_root!();
    let t = TestStore::new();
    let l1 = t.layer_with_file("one", b"1");
    let l2 = t.layer_with_file("two", b"2");
    let cases: Vec<(&str, Vec<LayerId>, Vec<&str>)> = vec![
        ("empty chain", vec![], vec![]),
        ("one layer", vec![l1.clone()], vec!["one"]),
        ("two layers", vec![l1.clone(), l2.clone()], vec!["one", "two"]),
    ];
    for (what, chain, want) in cases {
        let m = t.store.mount_readonly(&chain).unwrap();
        assert_eq!(names(m.path()), want, "{what}");
        assert!(is_read_only(m.path()), "{what} must be read-only");
        let point = m.path().to_path_buf();
        assert_eq!(mounts_under(&t.root().join("mnt")).len(), 1, "{what}");
        drop(m);
        assert!(!point.exists(), "{what}: mount point removed on drop");
        assert!(mounts_under(&t.root().join("mnt")).is_empty(), "{what}: unmounted on drop");
    }
}

#[test]
fn single_layer_with_whiteouts_hides_them() {
    require_root!();
    let t = TestStore::new();
    let l1 = t.import(
        &[],
        &TarBuilder::new().file("gone", b"g", 0o644).file("kept", b"k", 0o644).finish(),
        Compression::Gzip,
    );
    let l2 = t.import(&[l1], &TarBuilder::new().whiteout("gone").finish(), Compression::Gzip);
    // Shown alone (as a Diff result would be), the whiteout must not appear as a device.
    let m = t.store.mount_readonly(&[l2]).unwrap();
    assert!(names(m.path()).is_empty());
}

#[test]
fn writable_mount_records_changes_in_the_upper_layer() {
    require_root!();
    let t = TestStore::new();
    let base = t.import(
        &[],
        &TarBuilder::new()
            .file("etc/config", b"old", 0o644)
            .file("etc/remove-me", b"x", 0o644)
            .file("var/data/a", b"a", 0o644)
            .finish(),
        Compression::Gzip,
    );
    let upper = t.store.new_layer().unwrap();
    let m = t.store.mount_writable(std::slice::from_ref(&base), &upper).unwrap();
    let root = m.path();
    fs::write(root.join("etc/config"), b"new").unwrap();
    fs::remove_file(root.join("etc/remove-me")).unwrap();
    fs::remove_dir_all(root.join("var/data")).unwrap();
    fs::create_dir(root.join("var/data")).unwrap();
    fs::write(root.join("var/data/b"), b"b").unwrap();
    fs::write(root.join("added"), b"+").unwrap();
    assert!(matches!(
        t.store.mount_writable(std::slice::from_ref(&base), &upper),
        Err(StoreError::LayerBusy { .. })
    ));
    drop(m);

    let diff = upper.diff_dir().to_path_buf();
    assert_eq!(fs::read(diff.join("etc/config")).unwrap(), b"new");
    assert!(is_whiteout(&diff.join("etc/remove-me")));
    assert_eq!(fs::read(diff.join("added")).unwrap(), b"+");
    let top = upper.commit().unwrap();
    assert!(!t.root().join("layers").join(top.as_str()).join("work").exists(), "work dir removed on commit");
    let rec = t.store.meta().layer(&top).unwrap().unwrap();
    assert!(rec.has_whiteouts);
    assert!(rec.size > 0);

    let m = t.store.mount_readonly(&[base, top]).unwrap();
    assert_eq!(fs::read(m.path().join("etc/config")).unwrap(), b"new");
    assert_eq!(names(&m.path().join("etc")), ["config"]);
    assert_eq!(names(&m.path().join("var/data")), ["b"]);
}

#[test]
fn writable_mount_on_an_empty_chain() {
    require_root!();
    let t = TestStore::new();
    let upper = t.store.new_layer().unwrap();
    let m = t.store.mount_writable(&[], &upper).unwrap();
    fs::write(m.path().join("first"), b"1").unwrap();
    drop(m);
    let id = upper.commit().unwrap();
    assert_eq!(names(&t.store.layer_dir(&id)), ["first"]);
    assert!(!t.store.meta().layer(&id).unwrap().unwrap().has_whiteouts);
}

#[test]
fn commit_while_mounted_is_refused_and_the_layer_discarded_later() {
    require_root!();
    let t = TestStore::new();
    let upper = t.store.new_layer().unwrap();
    let dir = upper.diff_dir().parent().unwrap().to_path_buf();
    let m = t.store.mount_writable(&[], &upper).unwrap();
    assert!(matches!(upper.commit(), Err(StoreError::LayerBusy { .. })));
    assert!(dir.exists(), "kept while the mount uses it");
    drop(m);
    assert!(!dir.exists(), "removed once the mount is gone");
    assert!(t.store.meta().list_layers().unwrap().is_empty());
}

#[test]
fn dropped_mutable_layer_leaves_nothing() {
    require_root!();
    let t = TestStore::new();
    let layer = t.store.new_layer().unwrap();
    fs::write(layer.diff_dir().join("f"), b"f").unwrap();
    drop(layer);
    assert!(names(&t.root().join("layers")).is_empty());
}

#[test]
fn unknown_layers_are_not_found() {
    require_root!();
    let t = TestStore::new();
    let ghost: LayerId = "ghost".parse().unwrap();
    let err = t.store.mount_readonly(std::slice::from_ref(&ghost)).unwrap_err();
    assert!(matches!(err, StoreError::LayerNotFound(ref id) if *id == ghost), "{err}");
    let upper = t.store.new_layer().unwrap();
    assert!(t.store.mount_writable(&[ghost], &upper).is_err());
    // A failed mount releases the layer for the next try.
    let w = t.store.mount_writable(&[], &upper).unwrap();
    assert_eq!(names(&t.root().join("mnt")).len(), 1, "only the successful mount's point remains");
    drop(w);
}

#[test]
fn deep_chains_with_long_paths_still_mount() {
    require_root!();
    // A long root makes the plain lowerdir list exceed one page, forcing /proc/self/fd names.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("r".repeat(200));
    let store = Store::open(&root).unwrap();
    let mut chain = Vec::new();
    for i in 0..40 {
        let layer = store.new_layer().unwrap();
        fs::write(layer.diff_dir().join(format!("f{i:02}")), i.to_string()).unwrap();
        chain.push(layer.commit().unwrap());
    }
    assert!(store.lower_dirs(&chain).iter().map(|p| p.as_os_str().len() + 1).sum::<usize>() > 4096);
    let m = store.mount_readonly(&chain).unwrap();
    assert_eq!(names(m.path()).len(), 40);
    assert_eq!(fs::read_to_string(m.path().join("f39")).unwrap(), "39");
    let upper = store.new_layer().unwrap();
    let w = store.mount_writable(&chain, &upper).unwrap();
    fs::remove_file(w.path().join("f00")).unwrap();
    drop(w);
    assert!(is_whiteout(&upper.diff_dir().join("f00")));
    drop(m);
    assert!(fs::read_dir(root.join("mnt")).unwrap().next().is_none());
}

#[test]
fn chains_repeating_a_layer_mount_with_its_top_most_place() {
    require_root!();
    let t = TestStore::new();
    let a = t.import(&[], &TarBuilder::new().file("f", b"from a", 0o644).finish(), Compression::Gzip);
    let b = t.import(
        std::slice::from_ref(&a),
        &TarBuilder::new().file("f", b"from b", 0o644).finish(),
        Compression::Gzip,
    );
    let chain = [a.clone(), b.clone(), a.clone()];
    assert_eq!(t.store.lower_dirs(&chain), [t.store.layer_dir(&a), t.store.layer_dir(&b)]);
    let m = t.store.mount_readonly(&chain).unwrap();
    assert_eq!(fs::read(m.path().join("f")).unwrap(), b"from a");
    let upper = t.store.new_layer().unwrap();
    let w = t.store.mount_writable(&chain, &upper).unwrap();
    assert_eq!(fs::read(w.path().join("f")).unwrap(), b"from a");
}

#[test]
fn handles_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
    assert_send_sync::<cache::MutableLayer>();
    assert_send_sync::<cache::Mounted>();
    assert_send_sync::<cache::Lease>();
}

#[test]
fn upper_layers_stay_in_plain_upperdir_format() {
    require_root!();
    let t = TestStore::new();
    let base = t.import(
        &[],
        &TarBuilder::new().file("dir/inner", b"inner", 0o644).file("file", b"content", 0o644).finish(),
        Compression::Gzip,
    );
    let upper = t.store.new_layer().unwrap();
    let m = t.store.mount_writable(std::slice::from_ref(&base), &upper).unwrap();
    // Without redirects, renaming a lower directory is refused (tools then copy), so no
    // redirect xattr an exporter could not represent ever appears.
    let err = fs::rename(m.path().join("dir"), m.path().join("moved")).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(rustix::io::Errno::XDEV.raw_os_error()));
    // Without metacopy, a metadata change copies the whole file up.
    std::os::unix::fs::chown(m.path().join("file"), Some(42), Some(42)).unwrap();
    drop(m);
    let copied = upper.diff_dir().join("file");
    assert_eq!(fs::read(&copied).unwrap(), b"content");
    assert!(crate::support::xattr(&copied, "trusted.overlay.metacopy").is_none());
}
