//! Errors the caller acts on: not found, unreachable, content the registry rejects.

use crate::harness::*;
use registry::{Descriptor, Digest, MediaType, Reference, RegistryError};

#[tokio::test]
async fn missing_things_are_not_found_and_named() {
    require_registry!();
    let reg = Registry::start();
    let (client, _cfg) = anonymous_client();
    let image = test_image("linux/amd64", 1, true);
    let existing = reg.reference("lab/present:v1");
    image.push(&client, &existing).await;

    let missing_digest = Digest::of_bytes(b"nothing");
    let cases: Vec<(Reference, &str)> = vec![
        (reg.reference("lab/present:v2"), "v2"),
        (reg.reference("lab/absent:v1"), "v1"),
        (existing.with_digest(missing_digest.clone()), missing_digest.as_str()),
    ];
    for (reference, object) in cases {
        let err = client.get_manifest(&reference).await.unwrap_err();
        assert!(err.is_not_found(), "{reference}: {err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(object) && msg.contains(&reg.addr) && msg.contains(&reference.repository),
            "{msg}"
        );
    }

    let desc = Descriptor::for_bytes(MediaType::OciLayerGzip, b"nothing");
    let mut sink = Vec::new();
    let err = client.get_blob(&existing, &desc, &mut sink, &no_progress()).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(err.to_string().contains(missing_digest.as_str()));
}

#[tokio::test]
async fn unreachable_registry_is_a_retryable_network_error_naming_the_host() {
    let port = free_port();
    let (client, _cfg) = anonymous_client();
    let reference: Reference = format!("127.0.0.1:{port}/lab/app:latest").parse().unwrap();
    let started = std::time::Instant::now();
    let err = client.get_manifest(&reference).await.unwrap_err();
    match &err {
        RegistryError::Network { host, attempts, .. } => {
            assert_eq!(host, &format!("127.0.0.1:{port}"));
            assert_eq!(*attempts, 5);
        }
        other => panic!("expected a network error, got {other:?}"),
    }
    assert!(err.is_retryable());
    let msg = err.to_string();
    assert!(msg.contains("after 5 attempt(s)") && msg.contains("onnection refused"), "{msg}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn upload_whose_bytes_do_not_hash_to_the_digest_is_rejected() {
    require_registry!();
    let reg = Registry::start();
    let (client, _cfg) = anonymous_client();
    let repo = reg.reference("lab/liar:latest");
    let mut blob = blob_file(MediaType::OciLayer, pseudo_random(1000, 9));
    blob.desc.digest = Digest::of_bytes(b"something else of another size");
    let err = client.push_blob(&repo, &blob.desc, &blob.path, None, &no_progress()).await.unwrap_err();
    match &err {
        RegistryError::Http { status: 400, body, .. } => assert!(body.contains("DIGEST_INVALID"), "{body}"),
        other => panic!("expected a 400, got {other:?}"),
    }
    assert!(!client.blob_exists(&repo, &blob.desc.digest).await.unwrap());
}

#[tokio::test]
async fn blob_with_a_wrong_size_in_its_descriptor_is_a_mismatch() {
    require_registry!();
    let reg = Registry::start();
    let (client, _cfg) = anonymous_client();
    let repo = reg.reference("lab/sizes:latest");
    let blob = blob_file(MediaType::OciLayer, pseudo_random(5000, 10));
    client.push_blob(&repo, &blob.desc, &blob.path, None, &no_progress()).await.unwrap();
    for wrong_size in [4999, 5001] {
        let mut desc = blob.desc.clone();
        desc.size = wrong_size;
        let mut sink = Vec::new();
        let err = client.get_blob(&repo, &desc, &mut sink, &no_progress()).await.unwrap_err();
        assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{wrong_size}: {err:?}");
    }
}
