//! Pushing to a real `docker-registry` and reading back with skopeo.

use crate::image_outputs::{config, two_layers};
use crate::util::{self, Registry, require_root};
use exporter::{LayerOptions, PushProgress, push_image, write_image, write_index};
use registry::{Client, ClientConfig, PushedBlob, Reference};
use std::sync::Mutex;

fn client() -> Client {
    Client::new(ClientConfig::default()).unwrap()
}

fn outcomes(events: &Mutex<Vec<PushProgress>>) -> Vec<PushedBlob> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            PushProgress::BlobDone { outcome, .. } => Some(*outcome),
            _ => None,
        })
        .collect()
}

fn inspect(addr: &str, repo_tag: &str, raw: bool) -> serde_json::Value {
    let target = format!("docker://{addr}/{repo_tag}");
    let mut args = vec!["inspect", "--tls-verify=false"];
    if raw {
        args.push("--raw");
    }
    args.push(&target);
    serde_json::from_str(&util::run("skopeo", &args)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_image_then_again_then_mount() {
    require_root!();
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let (_s, store) = util::store();
    let (layers, diff_ids) = two_layers(&store, dir.path(), &LayerOptions::default());
    let img = write_image(&store, &config("amd64", diff_ids), &layers, true).unwrap();
    let target: Reference = format!("{}/team/app:v1", reg.addr).parse().unwrap();
    let client = client();

    let events = Mutex::new(Vec::new());
    let record = |e: PushProgress| events.lock().unwrap().push(e);
    let digest = push_image(&client, &store, &img.manifest, &target, None, &record).await.unwrap();
    assert_eq!(digest, img.manifest.digest);
    assert_eq!(outcomes(&events), vec![PushedBlob::Uploaded; 3]);
    let v = inspect(&reg.addr, "team/app:v1", false);
    assert_eq!(v["Digest"], img.manifest.digest.to_string());
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2);
    let raw = inspect(&reg.addr, "team/app:v1", true);
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.manifest.v1+json");

    events.lock().unwrap().clear();
    push_image(&client, &store, &img.manifest, &target, None, &record).await.unwrap();
    assert_eq!(outcomes(&events), vec![PushedBlob::AlreadyPresent; 3], "second push sends nothing");

    events.lock().unwrap().clear();
    let other: Reference = format!("{}/other/app:v2", reg.addr).parse().unwrap();
    push_image(&client, &store, &img.manifest, &other, Some(&target), &record).await.unwrap();
    let got = outcomes(&events);
    assert_eq!(got.iter().filter(|o| **o == PushedBlob::Mounted).count(), 2, "layers mounted: {got:?}");
    assert_eq!(inspect(&reg.addr, "other/app:v2", false)["Digest"], img.manifest.digest.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_multi_platform_index() {
    require_root!();
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let (_s, store) = util::store();
    for oci in [true, false] {
        let opts = LayerOptions { oci_media_types: oci, ..LayerOptions::default() };
        let (layers, diff_ids) = two_layers(&store, &dir.path().join(oci.to_string()), &opts);
        let amd = write_image(&store, &config("amd64", diff_ids.clone()), &layers, oci).unwrap();
        let arm = write_image(&store, &config("arm64", diff_ids), &layers, oci).unwrap();
        let index = write_index(&store, &[amd.manifest.clone(), arm.manifest.clone()], oci).unwrap();
        let tag = format!("team/multi:{oci}");
        let target: Reference = format!("{}/{tag}", reg.addr).parse().unwrap();
        let digest = push_image(&client(), &store, &index, &target, None, &|_| {}).await.unwrap();
        assert_eq!(digest, index.digest);
        let raw = inspect(&reg.addr, &tag, true);
        let want = if oci {
            "application/vnd.oci.image.index.v1+json"
        } else {
            "application/vnd.docker.distribution.manifest.list.v2+json"
        };
        assert_eq!(raw["mediaType"], want);
        assert_eq!(raw["manifests"].as_array().unwrap().len(), 2);
        // Each platform's manifest was pushed by digest before the index.
        let by_digest = inspect(&reg.addr, &format!("team/multi@{}", arm.manifest.digest), false);
        assert_eq!(by_digest["Architecture"], "arm64");
    }
}

#[tokio::test]
async fn push_with_a_missing_blob_fails_before_uploading() {
    let (_s, store) = util::store();
    let dir = tempfile::tempdir().unwrap();
    util::write(&dir.path().join("l/f"), b"x", 0o644);
    let layer = exporter::export_layer(&store, &dir.path().join("l"), &LayerOptions::default()).unwrap();
    let img =
        write_image(&store, &config("amd64", vec![layer.diff_id]), std::slice::from_ref(&layer.blob), true)
            .unwrap();
    store.remove(&layer.blob.digest).unwrap();
    // Nothing listens on this port: failing before any request is what is tested.
    let target: Reference = "127.0.0.1:9/x/y:z".parse().unwrap();
    let err = push_image(&client(), &store, &img.manifest, &target, None, &|_| {}).await.unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
}
