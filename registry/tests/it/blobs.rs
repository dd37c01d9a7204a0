//! Blob push and pull: HEAD dedup, cross-repository mount, chunked upload, verified download.

use crate::harness::*;
use registry::{Client, Digest, MediaType, PushedBlob, Reference};
use std::sync::atomic::{AtomicU64, Ordering};

#[tokio::test]
async fn push_then_second_push_is_deduplicated_by_head() {
    require_registry!();
    let reg = Registry::start();
    let (client, _cfg) = anonymous_client();
    let repo = reg.reference("lab/blobs:latest");
    let blob = blob_file(MediaType::OciLayerGzip, pseudo_random(100_000, 1));

    assert!(!client.blob_exists(&repo, &blob.desc.digest).await.unwrap());
    let first = client.push_blob(&repo, &blob.desc, &blob.path, None, &no_progress()).await.unwrap();
    assert_eq!(first, PushedBlob::Uploaded);
    assert_eq!(std::fs::read(reg.blob_path(&blob.desc.digest)).unwrap(), blob.bytes, "registry storage");
    assert!(client.blob_exists(&repo, &blob.desc.digest).await.unwrap());

    let second = client.push_blob(&repo, &blob.desc, &blob.path, None, &no_progress()).await.unwrap();
    assert_eq!(second, PushedBlob::AlreadyPresent);

    let mut got = Vec::new();
    let last = AtomicU64::new(0);
    let progress = |n: u64| last.store(n, Ordering::Relaxed);
    client.get_blob(&repo, &blob.desc, &mut got, &progress).await.unwrap();
    assert_eq!(got, blob.bytes);
    assert_eq!(last.load(Ordering::Relaxed), blob.desc.size);
}

#[tokio::test]
async fn mount_from_another_repository_sends_no_bytes() {
    require_registry!();
    let reg = Registry::start();
    let (client, _cfg) = anonymous_client();
    let base = reg.reference("lab/base:1");
    let app = reg.reference("lab/app:1");
    let blob = blob_file(MediaType::OciLayerGzip, pseudo_random(50_000, 2));

    client.push_blob(&base, &blob.desc, &blob.path, None, &no_progress()).await.unwrap();
    assert!(!client.blob_exists(&app, &blob.desc.digest).await.unwrap(), "blobs are per repository");
    let pushed = client.push_blob(&app, &blob.desc, &blob.path, Some(&base), &no_progress()).await.unwrap();
    assert_eq!(pushed, PushedBlob::Mounted);
    assert!(client.blob_exists(&app, &blob.desc.digest).await.unwrap());

    // A mount source without the blob falls back to a normal upload.
    let other = blob_file(MediaType::OciLayerGzip, pseudo_random(1000, 3));
    let pushed = client.push_blob(&app, &other.desc, &other.path, Some(&base), &no_progress()).await.unwrap();
    assert_eq!(pushed, PushedBlob::Uploaded);
}

#[tokio::test]
async fn large_blob_is_uploaded_in_chunks_and_streams_back() {
    require_registry!();
    let reg = Registry::start();
    let (client, _cfg) = anonymous_client();
    let repo = reg.reference("lab/big:latest");
    // 16 MiB chunks: two full chunks and a partial one.
    let blob = blob_file(MediaType::OciLayerGzip, pseudo_random(40 << 20, 4));
    let max_progress = AtomicU64::new(0);
    let progress = |n: u64| {
        max_progress.fetch_max(n, Ordering::Relaxed);
    };
    let pushed = client.push_blob(&repo, &blob.desc, &blob.path, None, &progress).await.unwrap();
    assert_eq!(pushed, PushedBlob::Uploaded);
    assert_eq!(max_progress.load(Ordering::Relaxed), blob.desc.size);
    let stored = std::fs::read(reg.blob_path(&blob.desc.digest)).unwrap();
    assert_eq!(Digest::of_bytes(&stored), blob.desc.digest);

    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out");
    let mut out = tokio::fs::File::create(&out_path).await.unwrap();
    client.get_blob(&repo, &blob.desc, &mut out, &no_progress()).await.unwrap();
    drop(out);
    assert_eq!(Digest::of_bytes(&std::fs::read(&out_path).unwrap()), blob.desc.digest);
}

#[tokio::test]
async fn empty_blob_round_trips() {
    require_registry!();
    let reg = Registry::start();
    let (client, _cfg) = anonymous_client();
    let repo = reg.reference("lab/empty:latest");
    let blob = blob_file(MediaType::OciLayer, Vec::new());
    let pushed = client.push_blob(&repo, &blob.desc, &blob.path, None, &no_progress()).await.unwrap();
    assert_eq!(pushed, PushedBlob::Uploaded);
    let mut got = Vec::new();
    client.get_blob(&repo, &blob.desc, &mut got, &no_progress()).await.unwrap();
    assert!(got.is_empty());
}

#[tokio::test]
async fn pushing_a_file_that_does_not_match_its_descriptor_is_refused() {
    require_registry!();
    let reg = Registry::start();
    let (client, _cfg) = anonymous_client();
    let repo = reg.reference("lab/x:latest");
    let mut blob = blob_file(MediaType::OciLayer, pseudo_random(10, 5));
    blob.desc.size = 11;
    let err = client.push_blob(&repo, &blob.desc, &blob.path, None, &no_progress()).await.unwrap_err();
    assert!(err.to_string().contains("10 bytes"), "{err}");
}

/// A registry (relative `Location`s) behind a recording proxy, a client, and two of its
/// repositories: `base` (a base image's) and `app`.
struct MountLab {
    reg: Registry,
    proxy: crate::proxy::Proxy,
    client: Client,
    base: Reference,
    app: Reference,
}

impl MountLab {
    async fn start() -> MountLab {
        let reg = Registry::start_with(Auth::None, true);
        let proxy = crate::proxy::Proxy::start(&reg.addr).await;
        let (client, _cfg) = anonymous_client();
        let base = proxy.reference("lab/base:1");
        let app = proxy.reference("lab/app:1");
        MountLab { reg, proxy, client, base, app }
    }
}

/// Once the registry has mounted a blob, the client asks whether a repository has a blob by
/// "mounting" it from that repository itself: 201 (present) or 202 (the upload starts) in
/// one request, instead of a HEAD and then a POST.
#[tokio::test]
async fn after_a_mount_blobs_are_checked_by_mounting_from_the_repository_itself() {
    require_registry!();
    let MountLab { reg, proxy, client, base, app } = MountLab::start().await;
    let shared = blob_file(MediaType::OciLayerGzip, pseudo_random(20_000, 11));
    let own = blob_file(MediaType::OciLayerGzip, pseudo_random(30_000, 12));

    client.push_blob(&base, &shared.desc, &shared.path, None, &no_progress()).await.unwrap();
    let heads_before = proxy.seen(axum::http::Method::HEAD, "/blobs/").len();
    let mounted =
        client.push_blob(&app, &shared.desc, &shared.path, Some(&base), &no_progress()).await.unwrap();
    assert_eq!(mounted, PushedBlob::Mounted);
    assert_eq!(proxy.seen(axum::http::Method::HEAD, "/blobs/").len(), heads_before, "a mount needs no HEAD");

    let first = client.push_blob(&app, &own.desc, &own.path, None, &no_progress()).await.unwrap();
    assert_eq!(first, PushedBlob::Uploaded);
    let second = client.push_blob(&app, &own.desc, &own.path, None, &no_progress()).await.unwrap();
    assert_eq!(second, PushedBlob::AlreadyPresent, "a second push sends nothing");
    assert_eq!(proxy.seen(axum::http::Method::HEAD, "/blobs/").len(), heads_before, "no HEAD after a mount");
    let probes = proxy.seen(axum::http::Method::POST, "from=lab%2Fapp");
    assert_eq!(probes.len(), 2, "one probe per push: {probes:?}");
    assert_eq!(proxy.seen(axum::http::Method::PUT, "/blobs/uploads/").len(), 2, "one upload of each blob");
    assert_eq!(std::fs::read(reg.blob_path(&own.desc.digest)).unwrap(), own.bytes);
}

/// A mount whose source lacks the blob, into a repository that has it: the upload session
/// the registry started is cancelled and nothing is sent.
#[tokio::test]
async fn failed_mount_into_a_repository_that_has_the_blob_sends_nothing() {
    require_registry!();
    let MountLab { reg: _registry, proxy, client, base, app } = MountLab::start().await;
    let blob = blob_file(MediaType::OciLayerGzip, pseudo_random(25_000, 13));

    client.push_blob(&app, &blob.desc, &blob.path, None, &no_progress()).await.unwrap();
    let puts = proxy.seen(axum::http::Method::PUT, "/blobs/uploads/").len();
    let again = client.push_blob(&app, &blob.desc, &blob.path, Some(&base), &no_progress()).await.unwrap();
    assert_eq!(again, PushedBlob::AlreadyPresent);
    assert_eq!(proxy.seen(axum::http::Method::PUT, "/blobs/uploads/").len(), puts, "no bytes sent");
    assert_eq!(
        proxy.seen(axum::http::Method::DELETE, "/blobs/uploads/").len(),
        1,
        "the session is cancelled"
    );
}
