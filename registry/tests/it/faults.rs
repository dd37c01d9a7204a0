//! Fault injection through the proxy in front of a real registry: corrupt bytes, 5xx and
//! 429 answers, broken connections mid-blob and mid-upload, redirects, and mirrors.

use crate::harness::*;
use crate::proxy::{FailRule, Proxy};
use axum::http::Method;
use registry::{Client, ClientConfig, Digest, MediaType, PushedBlob, RegistryError};
use std::time::{Duration, Instant};

/// A registry with relative upload URLs and a proxy in front of it.
async fn lab() -> (Registry, Proxy) {
    let reg = Registry::start_with(Auth::None, true);
    let proxy = Proxy::start(&reg.addr).await;
    (reg, proxy)
}

fn fail(method: Method, path: &str, status: u16, times: u32, retry_after: Option<u32>) -> FailRule {
    FailRule { method, path_contains: path.to_string(), status, times, retry_after }
}

#[tokio::test]
async fn corrupted_blob_is_a_digest_mismatch() {
    require_registry!();
    let (_reg, proxy) = lab().await;
    let (client, _cfg) = anonymous_client();
    let repo = proxy.reference("lab/corrupt:latest");
    let blob = blob_file(MediaType::OciLayerGzip, pseudo_random(200_000, 1));
    client.push_blob(&repo, &blob.desc, &blob.path, None, &no_progress()).await.unwrap();

    proxy.faults(|f| f.corrupt_blob = Some(blob.desc.digest.to_string()));
    let mut sink = Vec::new();
    let err = client.get_blob(&repo, &blob.desc, &mut sink, &no_progress()).await.unwrap_err();
    match &err {
        RegistryError::DigestMismatch { expected, actual, actual_size, .. } => {
            assert_eq!(expected, &blob.desc.digest);
            assert_eq!(actual.as_ref(), Some(&Digest::of_bytes(&sink)));
            assert_eq!(*actual_size, blob.desc.size);
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    assert!(err.to_string().contains(blob.desc.digest.as_str()), "{err}");
}

#[tokio::test]
async fn injected_503s_are_retried_until_attempts_run_out() {
    require_registry!();
    let (_reg, proxy) = lab().await;
    let (client, _cfg) = anonymous_client();
    let reference = proxy.reference("lab/flaky:v1");
    test_image("linux/amd64", 2, true).push(&client, &reference).await;

    proxy.faults(|f| f.fail.push(fail(Method::GET, "/manifests/v1", 503, 2, None)));
    client.get_manifest(&reference).await.unwrap();
    assert_eq!(proxy.seen(Method::GET, "/manifests/v1").len(), 3, "two 503s then success");

    proxy.faults(|f| f.fail.push(fail(Method::GET, "/manifests/v1", 503, 100, None)));
    let err = client.get_manifest(&reference).await.unwrap_err();
    match &err {
        RegistryError::Http { status: 503, attempts: 5, body, .. } => assert!(body.contains("INJECTED")),
        other => panic!("expected a 503 after 5 attempts, got {other:?}"),
    }
    assert!(err.is_retryable());
}

#[tokio::test]
async fn retry_after_of_a_429_is_honoured() {
    require_registry!();
    let (_reg, proxy) = lab().await;
    let (client, _cfg) = anonymous_client();
    let reference = proxy.reference("lab/throttled:v1");
    test_image("linux/amd64", 3, true).push(&client, &reference).await;
    proxy.faults(|f| f.fail.push(fail(Method::GET, "/manifests/v1", 429, 1, Some(1))));
    let started = Instant::now();
    client.get_manifest(&reference).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "waited {:?}", started.elapsed());
}

#[tokio::test]
async fn broken_blob_download_resumes_with_a_range_request() {
    require_registry!();
    let (reg, proxy) = lab().await;
    let (client, _cfg) = anonymous_client();
    let blob = blob_file(MediaType::OciLayerGzip, pseudo_random(3 << 20, 4));
    client
        .push_blob(&reg.reference("lab/cut:latest"), &blob.desc, &blob.path, None, &no_progress())
        .await
        .unwrap();

    let repo = proxy.reference("lab/cut:latest");
    proxy.faults(|f| f.cut_blob = Some((blob.desc.digest.to_string(), 1 << 20, 2)));
    let mut sink = Vec::new();
    client.get_blob(&repo, &blob.desc, &mut sink, &no_progress()).await.unwrap();
    assert_eq!(Digest::of_bytes(&sink), blob.desc.digest);
    let gets = proxy.seen(Method::GET, blob.desc.digest.as_str());
    assert_eq!(gets.len(), 3, "{gets:?}");
    assert!(gets[0].range.is_none());
    assert!(gets[1].range.as_deref().is_some_and(|r| r.starts_with("bytes=") && r != "bytes=0-"), "{gets:?}");
}

#[tokio::test]
async fn chunked_upload_resumes_after_a_failed_chunk() {
    require_registry!();
    let (reg, proxy) = lab().await;
    let (client, _cfg) = anonymous_client();
    let repo = proxy.reference("lab/chunks:latest");
    let blob = blob_file(MediaType::OciLayerGzip, pseudo_random(40 << 20, 5));
    // The first chunk is refused before it reaches the registry.
    proxy.faults(|f| f.fail.push(fail(Method::PATCH, "/blobs/uploads/", 503, 1, None)));
    let pushed = client.push_blob(&repo, &blob.desc, &blob.path, None, &no_progress()).await.unwrap();
    assert_eq!(pushed, PushedBlob::Uploaded);
    assert_eq!(Digest::of_bytes(&std::fs::read(reg.blob_path(&blob.desc.digest)).unwrap()), blob.desc.digest);
    // 3 chunks and one refused attempt; the client asked where to resume and went on in the
    // same session.
    assert_eq!(proxy.seen(Method::PATCH, "/blobs/uploads/").len(), 4);
    assert_eq!(proxy.seen(Method::GET, "/blobs/uploads/").len(), 1);
    assert_eq!(proxy.seen(Method::POST, "/blobs/uploads/").len(), 1);
}

#[tokio::test]
async fn chunked_upload_starts_over_when_the_session_is_lost() {
    require_registry!();
    let (reg, proxy) = lab().await;
    let (client, _cfg) = anonymous_client();
    let repo = proxy.reference("lab/chunks:latest");
    let blob = blob_file(MediaType::OciLayerGzip, pseudo_random(20 << 20, 6));
    // The registry takes the first chunk but its answer is lost: distribution then cancels
    // the session on the status query, so the upload has to start over.
    proxy.faults(|f| f.swallow_patches = 1);
    let pushed = client.push_blob(&repo, &blob.desc, &blob.path, None, &no_progress()).await.unwrap();
    assert_eq!(pushed, PushedBlob::Uploaded);
    assert_eq!(Digest::of_bytes(&std::fs::read(reg.blob_path(&blob.desc.digest)).unwrap()), blob.desc.digest);
    assert_eq!(proxy.seen(Method::POST, "/blobs/uploads/").len(), 2);
}

#[tokio::test]
async fn failed_monolithic_upload_starts_over() {
    require_registry!();
    let (reg, proxy) = lab().await;
    let (client, _cfg) = anonymous_client();
    let repo = proxy.reference("lab/restart:latest");
    let blob = blob_file(MediaType::OciLayerGzip, pseudo_random(300_000, 6));
    // A 5xx, then a session the registry says it does not know (404).
    proxy.faults(|f| f.fail.push(fail(Method::PUT, "/blobs/uploads/", 503, 1, None)));
    proxy.faults(|f| f.fail.push(fail(Method::PUT, "/blobs/uploads/", 404, 1, None)));
    let pushed = client.push_blob(&repo, &blob.desc, &blob.path, None, &no_progress()).await.unwrap();
    assert_eq!(pushed, PushedBlob::Uploaded);
    assert_eq!(proxy.seen(Method::POST, "/blobs/uploads/").len(), 3);
    assert_eq!(std::fs::read(reg.blob_path(&blob.desc.digest)).unwrap(), blob.bytes);

    // A registry that keeps losing the session ends in a clear error after bounded attempts.
    let other = blob_file(MediaType::OciLayerGzip, pseudo_random(1000, 61));
    proxy.faults(|f| f.fail.push(fail(Method::PUT, "/blobs/uploads/", 404, 100, None)));
    let err = client.push_blob(&repo, &other.desc, &other.path, None, &no_progress()).await.unwrap_err();
    match &err {
        RegistryError::Http { status: 404, attempts: 5, body, .. } => {
            assert!(body.contains("upload session lost"))
        }
        other => panic!("expected a lost session after 5 attempts, got {other:?}"),
    }
}

#[tokio::test]
async fn blob_downloads_follow_redirects() {
    require_registry!();
    let (_reg, proxy) = lab().await;
    let (client, _cfg) = anonymous_client();
    let repo = proxy.reference("lab/redirect:latest");
    let blob = blob_file(MediaType::OciLayerGzip, pseudo_random(10_000, 7));
    client.push_blob(&repo, &blob.desc, &blob.path, None, &no_progress()).await.unwrap();
    proxy.faults(|f| f.redirect_blobs = true);
    let mut sink = Vec::new();
    client.get_blob(&repo, &blob.desc, &mut sink, &no_progress()).await.unwrap();
    assert_eq!(sink, blob.bytes);
    assert_eq!(proxy.seen(Method::GET, blob.desc.digest.as_str()).len(), 1);
}

#[tokio::test]
async fn mirrors_are_tried_first_and_skipped_when_down() {
    require_registry!();
    let reg = Registry::start();
    let cfg = DockerConfig::empty();
    let image = test_image("linux/amd64", 8, true);
    let upstream_client = cfg.client();
    image.push(&upstream_client, &reg.reference("lab/mirrored:v1")).await;

    // The image's own registry is down; its mirror (the live registry) serves it.
    let dead = format!("127.0.0.1:{}", free_port());
    let with_mirror = |registry: &str, mirrors: Vec<String>| {
        Client::new(ClientConfig {
            docker_config_dir: Some(cfg.dir.path().to_path_buf()),
            mirrors: [(registry.to_string(), mirrors)].into(),
            ..Default::default()
        })
        .unwrap()
    };
    let client = with_mirror(&dead, vec![reg.addr.clone()]);
    let reference: registry::Reference = format!("{dead}/lab/mirrored:v1").parse().unwrap();
    let resolved = client.resolve_image(&reference, &"linux/amd64".parse().unwrap()).await.unwrap();
    assert_eq!(resolved.config_bytes, image.config.bytes);

    // A dead mirror falls through to the registry.
    let client = with_mirror(&reg.addr, vec![format!("http://{dead}")]);
    let resolved =
        client.resolve_image(&reg.reference("lab/mirrored:v1"), &"linux/amd64".parse().unwrap()).await;
    assert_eq!(resolved.unwrap().manifest.bytes, image.manifest);
}

#[tokio::test]
async fn requests_to_one_registry_respect_the_concurrency_limit() {
    require_registry!();
    let (_reg, proxy) = lab().await;
    let cfg = DockerConfig::empty();
    let client = Client::new(ClientConfig {
        docker_config_dir: Some(cfg.dir.path().to_path_buf()),
        max_concurrent_per_registry: 2,
        ..Default::default()
    })
    .unwrap();
    let repo = proxy.reference("lab/limit:latest");
    proxy.faults(|f| f.delay = Some(Duration::from_millis(150)));
    let checks = (0..6u8).map(|i| {
        let client = client.clone();
        let repo = repo.clone();
        tokio::spawn(async move { client.blob_exists(&repo, &Digest::of_bytes(&[i])).await })
    });
    for c in futures::future::join_all(checks).await {
        assert!(!c.unwrap().unwrap());
    }
    assert_eq!(proxy.max_in_flight(), 2);
}
