//! Metadata database round trips and invariants.

use crate::support::{TestStore, require_root};
use cache::{CacheRecord, ImageRecord, LayerBlob, LayerId, Store, StoreError};
use registry::{Compression, Descriptor, Digest, MediaType};

fn key(n: u8) -> Digest {
    Digest::of_bytes(&[n])
}

fn blob_desc(t: &TestStore, bytes: &[u8], media_type: MediaType) -> Descriptor {
    let digest = t.store.content().write_bytes(bytes).unwrap();
    Descriptor {
        media_type,
        digest,
        size: bytes.len() as u64,
        platform: None,
        annotations: Default::default(),
    }
}

#[test]
fn cache_records_round_trip_touch_and_remove() {
    require_root!();
    let t = TestStore::new();
    let l1 = t.layer_with_file("a", b"a");
    let manifest = blob_desc(&t, b"{}", MediaType::OciManifest);
    let mut rec = CacheRecord::new(vec![l1.clone()], "RUN make");
    rec.last_used_unix -= 1000;
    rec.blobs.push(manifest.digest.clone());
    rec.extra = serde_json::json!({"resolved": manifest.digest.to_string()});
    t.store.meta().put_cache(&key(1), &rec).unwrap();
    assert_eq!(t.store.meta().get_cache(&key(1)).unwrap().as_ref(), Some(&rec));
    assert_eq!(t.store.meta().get_cache(&key(2)).unwrap(), None);

    t.store.meta().touch_cache(&key(1)).unwrap();
    t.store.meta().touch_cache(&key(2)).unwrap();
    let touched = t.store.meta().get_cache(&key(1)).unwrap().unwrap();
    assert!(touched.last_used_unix >= rec.last_used_unix + 1000);
    assert_eq!(t.store.meta().list_cache().unwrap().len(), 1);
    assert!(t.store.meta().remove_cache(&key(1)).unwrap());
    assert!(!t.store.meta().remove_cache(&key(1)).unwrap());
}

#[test]
fn records_must_name_existing_layers_and_blobs() {
    require_root!();
    let t = TestStore::new();
    let ghost: LayerId = "ghost".parse().unwrap();
    let err = t.store.meta().put_cache(&key(1), &CacheRecord::new(vec![ghost.clone()], "x")).unwrap_err();
    assert!(matches!(err, StoreError::LayerNotFound(_)), "{err}");

    let mut rec = CacheRecord::new(vec![], "x");
    rec.blobs.push(Digest::of_bytes(b"missing"));
    assert!(t.store.meta().put_cache(&key(1), &rec).unwrap_err().is_not_found());

    let missing = Descriptor {
        media_type: MediaType::OciManifest,
        digest: Digest::of_bytes(b"nope"),
        size: 4,
        platform: None,
        annotations: Default::default(),
    };
    let img = ImageRecord { manifest: missing.clone(), created_unix: 0, platforms: vec![] };
    assert!(t.store.meta().put_image("app:latest", &img).unwrap_err().is_not_found());
    let blob = LayerBlob { compression: Compression::Gzip, descriptor: missing, diff_id: key(9) };
    let l1 = t.layer_with_file("a", b"a");
    assert!(t.store.meta().set_layer_blob(&l1, blob.clone()).unwrap_err().is_not_found());
    let stored = LayerBlob { descriptor: blob_desc(&t, b"gz", MediaType::OciLayerGzip), ..blob };
    assert!(matches!(t.store.meta().set_layer_blob(&ghost, stored), Err(StoreError::LayerNotFound(_))));
    assert!(t.store.meta().list_cache().unwrap().is_empty());
    assert!(t.store.meta().list_images().unwrap().is_empty());
}

#[test]
fn layer_blobs_keep_one_per_compression() {
    require_root!();
    let t = TestStore::new();
    let l1 = t.layer_with_file("a", b"a");
    assert_eq!(t.store.meta().layer(&l1).unwrap().unwrap().diff_id, None);
    let diff_id = key(7);
    for (bytes, c, mt) in [
        (&b"gzip-1"[..], Compression::Gzip, MediaType::OciLayerGzip),
        (b"zstd-1", Compression::Zstd, MediaType::OciLayerZstd),
        (b"gzip-2", Compression::Gzip, MediaType::OciLayerGzip),
    ] {
        let blob =
            LayerBlob { compression: c, descriptor: blob_desc(&t, bytes, mt), diff_id: diff_id.clone() };
        t.store.meta().set_layer_blob(&l1, blob).unwrap();
    }
    let rec = t.store.meta().layer(&l1).unwrap().unwrap();
    assert_eq!(rec.diff_id, Some(diff_id));
    assert_eq!(rec.blobs.len(), 2);
    assert_eq!(rec.blob(Compression::Gzip).unwrap().descriptor.digest, Digest::of_bytes(b"gzip-2"));
    assert!(rec.blob(Compression::Uncompressed).is_none());
}

#[test]
fn images_round_trip_list_and_remove() {
    require_root!();
    let t = TestStore::new();
    let m1 = blob_desc(&t, b"{\"schemaVersion\":2}", MediaType::OciManifest);
    let rec = ImageRecord {
        manifest: m1,
        created_unix: 1_700_000_000,
        platforms: vec!["linux/amd64".parse().unwrap(), "linux/arm64/v8".parse().unwrap()],
    };
    for name in ["b:1", "a:latest"] {
        t.store.meta().put_image(name, &rec).unwrap();
    }
    assert_eq!(t.store.meta().get_image("a:latest").unwrap().as_ref(), Some(&rec));
    let names: Vec<String> = t.store.meta().list_images().unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["a:latest", "b:1"]);
    assert!(t.store.meta().remove_image("b:1").unwrap());
    assert!(!t.store.meta().remove_image("b:1").unwrap());
    assert!(t.store.meta().put_image("", &rec).is_err());
}

#[test]
fn kv_namespaces_are_separate() {
    require_root!();
    let t = TestStore::new();
    let m = t.store.meta();
    m.put_kv("explain", "target-a", b"1").unwrap();
    m.put_kv("explain", "target-b", b"2").unwrap();
    m.put_kv("explainer", "target-a", b"3").unwrap();
    m.put_kv("other", "", b"4").unwrap();
    assert_eq!(m.get_kv("explain", "target-a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(m.get_kv("explainer", "target-a").unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(m.get_kv("explain", "missing").unwrap(), None);
    let listed = m.list_kv("explain").unwrap();
    assert_eq!(
        listed,
        vec![("target-a".to_string(), b"1".to_vec()), ("target-b".to_string(), b"2".to_vec())]
    );
    assert!(m.remove_kv("explain", "target-a").unwrap());
    assert_eq!(m.list_kv("explain").unwrap().len(), 1);
    assert!(m.put_kv("bad\0ns", "k", b"").is_err());
}

#[test]
fn everything_survives_reopening() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let (l1, manifest) = {
        let store = Store::open(&root).unwrap();
        let layer = store.new_layer().unwrap();
        std::fs::write(layer.diff_dir().join("f"), b"f").unwrap();
        let l1 = layer.commit().unwrap();
        let mut rec = CacheRecord::new(vec![l1.clone()], "step");
        rec.last_used_unix -= 10_000;
        store.meta().put_cache(&key(1), &rec).unwrap();
        let digest = store.content().write_bytes(b"manifest").unwrap();
        let manifest = Descriptor {
            media_type: MediaType::OciManifest,
            digest,
            size: 8,
            platform: None,
            annotations: Default::default(),
        };
        store
            .meta()
            .put_image("app", &ImageRecord { manifest: manifest.clone(), created_unix: 1, platforms: vec![] })
            .unwrap();
        store.meta().put_kv("ns", "k", b"v").unwrap();
        // A last-used update that is only flushed when the store closes.
        store.meta().touch_cache(&key(1)).unwrap();
        (l1, manifest)
    };
    let (store, recovery) = Store::open_with_recovery(&root).unwrap();
    assert_eq!(recovery, cache::Recovery::default(), "a clean close needs no recovery");
    let rec = store.meta().get_cache(&key(1)).unwrap().unwrap();
    assert_eq!(rec.chain, vec![l1.clone()]);
    assert!(rec.last_used_unix > rec.created_unix - 5_000, "the last touch was flushed on close");
    assert_eq!(store.meta().get_image("app").unwrap().unwrap().manifest, manifest);
    assert_eq!(store.meta().get_kv("ns", "k").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(std::fs::read(store.layer_dir(&l1).join("f")).unwrap(), b"f");
}
