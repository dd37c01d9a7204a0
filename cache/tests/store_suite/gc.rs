//! Disk usage and pruning.

use crate::support::{TarBuilder, TestStore, names, put_layer_blob, require_root};
use cache::{CacheRecord, ImageRecord, LayerId, PrunePolicy};
use registry::{Compression, Descriptor, Digest, MediaType};
use std::time::Duration;

fn key(name: &str) -> Digest {
    Digest::of_bytes(name.as_bytes())
}

fn all() -> PrunePolicy {
    PrunePolicy { all: true, ..Default::default() }
}

/// Imports a one-file layer and tags an image (manifest + config) made of it.
fn tagged_image(t: &TestStore, name: &str) -> (LayerId, Vec<Digest>) {
    let tar = TarBuilder::new().file("bin/sh", b"busybox", 0o755).finish();
    let (layer_desc, diff_id) = put_layer_blob(&t.store, &tar, Compression::Gzip);
    let layer = t.store.import_layer(&[], &layer_desc, &diff_id).unwrap();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config_desc = Descriptor::for_bytes(MediaType::OciConfig, &config);
    t.store.content().write_bytes(&config).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MediaType::OciManifest.as_str(),
        "config": config_desc,
        "layers": [layer_desc],
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let manifest_desc = Descriptor::for_bytes(MediaType::OciManifest, &manifest);
    t.store.content().write_bytes(&manifest).unwrap();
    let record = ImageRecord { manifest: manifest_desc.clone(), created_unix: 0, platforms: vec![] };
    t.store.meta().put_image(name, &record).unwrap();
    (layer, vec![manifest_desc.digest, config_desc.digest, layer_desc.digest])
}

fn record(t: &TestStore, name: &str, chain: &[LayerId], last_used_ago: i64) {
    let mut rec = CacheRecord::new(chain.to_vec(), name);
    rec.last_used_unix -= last_used_ago;
    t.store.meta().put_cache(&key(name), &rec).unwrap();
}

fn layer_exists(t: &TestStore, id: &LayerId) -> bool {
    t.store.meta().layer(id).unwrap().is_some() && t.store.layer_dir(id).is_dir()
}

#[test]
fn prune_never_removes_what_tagged_images_reach() {
    require_root!();
    let t = TestStore::new();
    let (base, image_blobs) = tagged_image(&t, "base:latest");
    let built = t.layer_with_file("app", b"app");
    record(&t, "RUN build", &[base.clone(), built.clone()], 0);
    let orphan_layer = t.layer_with_file("junk", b"junk");
    let orphan_blob = t.store.content().write_bytes(b"orphan").unwrap();

    let report = t.store.prune(&all()).unwrap();
    assert_eq!(report.removed.len(), 1);
    assert_eq!(report.removed[0].description, "RUN build");
    assert_eq!(report.removed_layers, 2);
    assert_eq!(report.removed_blobs, 1);
    assert!(report.reclaimed_bytes > 0);
    assert!(layer_exists(&t, &base));
    assert!(!layer_exists(&t, &built) && !layer_exists(&t, &orphan_layer));
    assert!(!t.store.content().contains(&orphan_blob));
    for d in &image_blobs {
        assert!(t.store.content().contains(d), "image blob {d} kept");
    }
    let usage = t.store.usage().unwrap();
    assert_eq!(usage.unreferenced_bytes, 0);
    assert!(usage.images_bytes > 0);

    assert!(t.store.meta().remove_image("base:latest").unwrap());
    t.store.prune(&all()).unwrap();
    assert!(!layer_exists(&t, &base));
    assert!(t.store.content().list().unwrap().is_empty());
    assert!(names(&t.root().join("layers")).is_empty());
}

#[test]
fn without_all_records_sharing_image_layers_stay() {
    require_root!();
    let t = TestStore::new();
    let (base, _) = tagged_image(&t, "base");
    let on_image = t.layer_with_file("a", b"a");
    let alone = t.layer_with_file("b", b"b");
    record(&t, "on image", &[base.clone(), on_image.clone()], 0);
    record(&t, "alone", std::slice::from_ref(&alone), 0);
    let report = t.store.prune(&PrunePolicy::default()).unwrap();
    let removed: Vec<_> = report.removed.iter().map(|r| r.description.as_str()).collect();
    assert_eq!(removed, ["alone"]);
    assert!(layer_exists(&t, &on_image));
    assert!(!layer_exists(&t, &alone));
}

#[test]
fn keep_duration_keeps_recently_used_records() {
    require_root!();
    let t = TestStore::new();
    let old = t.layer_with_file("old", b"o");
    let new = t.layer_with_file("new", b"n");
    record(&t, "old", std::slice::from_ref(&old), 7200);
    record(&t, "new", std::slice::from_ref(&new), 10);
    let policy = PrunePolicy { all: true, keep_duration: Some(Duration::from_secs(3600)), keep_bytes: None };
    let report = t.store.prune(&policy).unwrap();
    assert_eq!(report.removed.iter().map(|r| r.description.as_str()).collect::<Vec<_>>(), ["old"]);
    assert!(layer_exists(&t, &new) && !layer_exists(&t, &old));
}

#[test]
fn keep_bytes_removes_least_recently_used_first() {
    require_root!();
    let t = TestStore::new();
    let big = vec![1u8; 256 * 1024];
    let layers: Vec<LayerId> = (0..3).map(|i| t.layer_with_file(&format!("f{i}"), &big)).collect();
    for (i, id) in layers.iter().enumerate() {
        record(&t, &format!("r{i}"), std::slice::from_ref(id), 1000 - i as i64 * 100);
    }
    let sizes: Vec<u64> = layers.iter().map(|id| t.store.meta().layer(id).unwrap().unwrap().size).collect();
    let total: u64 = sizes.iter().sum();
    let report = t.store.prune(&PrunePolicy { keep_bytes: Some(total - sizes[0]), ..all() }).unwrap();
    assert_eq!(report.removed.iter().map(|r| r.description.as_str()).collect::<Vec<_>>(), ["r0"]);
    // Under the cap already: nothing more goes.
    assert!(t.store.enforce_cap(total).unwrap().removed.is_empty());
    let report = t.store.enforce_cap(0).unwrap();
    assert_eq!(report.removed.len(), 2);
    assert!(t.store.meta().list_layers().unwrap().is_empty());
}

#[test]
fn usage_tells_shared_from_exclusive() {
    require_root!();
    let t = TestStore::new();
    let a = t.layer_with_file("a", &[0u8; 50_000]);
    let b = t.layer_with_file("b", &[0u8; 20_000]);
    let c = t.layer_with_file("c", &[0u8; 30_000]);
    record(&t, "ab", &[a.clone(), b.clone()], 30);
    record(&t, "ac", &[a.clone(), c.clone()], 20);
    record(&t, "c", std::slice::from_ref(&c), 10);
    let size = |id: &LayerId| t.store.meta().layer(id).unwrap().unwrap().size;
    let usage = t.store.usage().unwrap();
    let by_name = |n: &str| usage.records.iter().find(|r| r.description == n).unwrap().clone();
    let ab = by_name("ab");
    assert_eq!((ab.size, ab.exclusive_size, ab.shared), (size(&a) + size(&b), size(&b), true));
    let ac = by_name("ac");
    assert_eq!((ac.size, ac.exclusive_size, ac.shared), (size(&a) + size(&c), 0, true));
    let c_only = by_name("c");
    assert_eq!((c_only.size, c_only.exclusive_size, c_only.shared), (size(&c), 0, true));
    let order: Vec<_> = usage.records.iter().map(|r| r.description.as_str()).collect();
    assert_eq!(order, ["c", "ac", "ab"], "most recently used first");
    assert_eq!(usage.layers_bytes, size(&a) + size(&b) + size(&c));
    assert_eq!(usage.unreferenced_bytes, 0);
    assert!(usage.total_bytes > usage.layers_bytes);
}

#[test]
fn leases_and_mounts_protect_work_in_progress() {
    require_root!();
    let t = TestStore::new();
    let lease = t.store.lease();
    let fresh = t.layer_with_file("fresh", b"f");
    let fresh_blob = t.store.content().write_bytes(b"being exported").unwrap();
    let mounted = t.layer_with_file("m", b"m");
    record(&t, "mounted", std::slice::from_ref(&mounted), 0);
    let m = t.store.mount_readonly(std::slice::from_ref(&mounted)).unwrap();
    let usage = t.store.usage().unwrap();
    assert!(usage.records[0].in_use);

    t.store.prune(&all()).unwrap();
    assert!(layer_exists(&t, &fresh), "leased layer kept");
    assert!(t.store.content().contains(&fresh_blob), "blob written during the lease kept");
    assert!(t.store.meta().get_cache(&key("mounted")).unwrap().is_some(), "record in use kept");

    drop(lease);
    t.store.prune(&all()).unwrap();
    assert!(!layer_exists(&t, &fresh));
    assert!(!t.store.content().contains(&fresh_blob));
    assert!(layer_exists(&t, &mounted), "still mounted");
    drop(m);
    t.store.prune(&all()).unwrap();
    assert!(!layer_exists(&t, &mounted));
}
