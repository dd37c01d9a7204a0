//! Manifests and indexes: PUT/GET by tag and digest, platform selection, resolve_image.

use crate::harness::*;
use registry::{Digest, ImageIndex, MediaType, Platform, RegistryError};

#[tokio::test]
async fn manifest_put_and_get_by_tag_and_digest() {
    require_registry!();
    let reg = Registry::start();
    let (client, _cfg) = anonymous_client();
    let image = test_image("linux/amd64", 10, true);
    let tagged = reg.reference("lab/app:v1");
    let digest = image.push(&client, &tagged).await;
    assert_eq!(digest, Digest::of_bytes(&image.manifest));

    let by_tag = client.get_manifest(&tagged).await.unwrap();
    assert_eq!(by_tag.bytes, image.manifest);
    assert_eq!(by_tag.digest, digest);
    assert_eq!(by_tag.media_type, MediaType::OciManifest);

    let head = client.head_manifest(&tagged).await.unwrap();
    assert_eq!(
        (head.digest.clone(), head.size, head.media_type),
        (digest.clone(), image.manifest.len() as u64, MediaType::OciManifest)
    );
    assert!(client.head_manifest(&reg.reference("lab/app:nope")).await.unwrap_err().is_not_found());

    let pinned = tagged.with_digest(digest.clone());
    let by_digest = client.get_manifest(&pinned).await.unwrap();
    assert_eq!(by_digest.bytes, image.manifest);

    // Independent check: skopeo sees the same bytes.
    if let Some(out) =
        skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{}/lab/app:v1", reg.addr)])
    {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout, image.manifest);
    }

    // PUT by digest only (no tag) is accepted too.
    let other = test_image("linux/amd64", 11, false);
    for b in [&other.layer, &other.config] {
        client.push_blob(&tagged, &b.desc, &b.path, None, &no_progress()).await.unwrap();
    }
    let mut by_digest_only = reg.reference("lab/app:v1").with_digest(Digest::of_bytes(&other.manifest));
    by_digest_only.tag = None;
    let d = client.put_manifest(&by_digest_only, &other.manifest_type, &other.manifest).await.unwrap();
    let fetched = client.get_manifest(&by_digest_only).await.unwrap();
    assert_eq!(fetched.digest, d);
    assert_eq!(fetched.media_type, MediaType::DockerManifest);
}

#[tokio::test]
async fn resolve_single_manifest_image() {
    require_registry!();
    let reg = Registry::start();
    let (client, _cfg) = anonymous_client();
    let image = test_image("linux/amd64", 20, false);
    let reference = reg.reference("lab/single:latest");
    let digest = image.push(&client, &reference).await;

    let resolved = client.resolve_image(&reference, &"linux/amd64".parse().unwrap()).await.unwrap();
    assert!(resolved.index.is_none());
    assert_eq!(resolved.reference.digest.as_ref(), Some(&digest));
    assert_eq!(resolved.reference.tag.as_deref(), Some("latest"));
    assert_eq!(resolved.config_bytes, image.config.bytes);
    assert_eq!(resolved.config.config.env_get("SEED"), Some("20"));
    assert_eq!(resolved.parsed.layers[0].digest, image.layer.desc.digest);
}

/// Pushes two platform images and an index of `index_type` over them under `tag`.
async fn push_multi_platform(
    client: &registry::Client,
    reg: &Registry,
    tag: &str,
    index_type: MediaType,
    oci: bool,
) -> (Vec<u8>, Vec<TestImage>) {
    let platforms = ["linux/amd64", "linux/arm64/v8"];
    let reference = reg.reference(tag);
    let mut images = Vec::new();
    let mut entries = Vec::new();
    for (i, p) in platforms.iter().enumerate() {
        let image = test_image(p, 30 + i as u64, oci);
        let by_digest = reference.with_digest(Digest::of_bytes(&image.manifest));
        let mut by_digest = by_digest;
        by_digest.tag = None;
        image.push(client, &by_digest).await;
        entries.push(image.index_entry(p));
        images.push(image);
    }
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(index_type.clone()),
        manifests: entries,
        annotations: Default::default(),
    };
    let bytes = serde_json::to_vec(&index).unwrap();
    client.put_manifest(&reference, &index_type, &bytes).await.unwrap();
    (bytes, images)
}

#[tokio::test]
async fn oci_index_and_docker_manifest_list_select_the_platform() {
    require_registry!();
    let reg = Registry::start();
    let (client, _cfg) = anonymous_client();
    let cases = [
        ("lab/multi:oci", MediaType::OciIndex, true),
        ("lab/multi:docker", MediaType::DockerManifestList, false),
    ];
    for (tag, index_type, oci) in cases {
        let (index_bytes, images) = push_multi_platform(&client, &reg, tag, index_type.clone(), oci).await;
        let reference = reg.reference(tag);

        let top = client.get_manifest(&reference).await.unwrap();
        assert_eq!(top.media_type, index_type, "{tag}");
        assert_eq!(top.bytes, index_bytes);

        for (platform, image) in [("linux/arm64", &images[1]), ("linux/amd64", &images[0])] {
            let resolved = client.resolve_image(&reference, &platform.parse().unwrap()).await.unwrap();
            assert_eq!(resolved.index.as_ref().map(|i| &i.bytes), Some(&index_bytes), "{tag} {platform}");
            assert_eq!(resolved.manifest.bytes, image.manifest, "{tag} {platform}");
            assert_eq!(resolved.config_bytes, image.config.bytes);
            assert_eq!(resolved.reference.digest, Some(Digest::of_bytes(&image.manifest)));
            assert!(resolved.config.platform().matches(&platform.parse().unwrap()));
        }

        let wanted: Platform = "linux/s390x".parse().unwrap();
        let err = client.resolve_image(&reference, &wanted).await.unwrap_err();
        match &err {
            RegistryError::PlatformNotFound { available, .. } => assert_eq!(available.len(), 2),
            other => panic!("expected PlatformNotFound, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("linux/s390x") && msg.contains("linux/amd64") && msg.contains("linux/arm64"),
            "{msg}"
        );
    }
}

#[tokio::test]
async fn manifest_referencing_missing_blobs_is_rejected_with_the_registry_code() {
    require_registry!();
    let reg = Registry::start();
    let (client, _cfg) = anonymous_client();
    let image = test_image("linux/amd64", 40, true);
    let reference = reg.reference("lab/incomplete:latest");
    let err = client.put_manifest(&reference, &image.manifest_type, &image.manifest).await.unwrap_err();
    match &err {
        RegistryError::Http { status: 400, body, .. } => {
            assert!(body.contains("MANIFEST_BLOB_UNKNOWN"), "{body}")
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    // Nothing was tagged.
    assert!(client.get_manifest(&reference).await.unwrap_err().is_not_found());
}
