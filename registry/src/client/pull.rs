//! Pulling: manifests and indexes by tag or digest, platform selection, verified blob
//! downloads with `Range` resume, and mirror fallback.

use super::auth::Scope;
use super::transport::{Call, Endpoint};
use super::{Client, RawManifest, ResolvedImage};
use crate::error::{RegistryError, Target};
use crate::{AnyManifest, Descriptor, Digest, Hasher, ImageConfig, MediaType, Platform, Reference};
use futures::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_RANGE, CONTENT_TYPE, HeaderValue, RANGE};
use reqwest::{Method, StatusCode};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Manifests larger than this are refused (containerd uses the same bound): a registry
/// cannot make the client buffer an arbitrary amount of JSON.
const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// Image configs larger than this are refused for the same reason.
const MAX_CONFIG_SIZE: u64 = 64 << 20;

/// A blob download that delivers nothing for this long is treated as a broken connection.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// Tries `op` on each endpoint in turn (mirrors first) and returns the first success, or
/// the registry's own error when every endpoint failed.
async fn first_success<T, F, Fut>(endpoints: &[Endpoint], mut op: F) -> Result<T, RegistryError>
where
    F: FnMut(Endpoint) -> Fut,
    Fut: std::future::Future<Output = Result<T, RegistryError>>,
{
    let mut last = None;
    for ep in endpoints {
        match op(ep.clone()).await {
            Ok(v) => return Ok(v),
            Err(e) => {
                if endpoints.len() > 1 {
                    tracing::debug!(endpoint = %ep.host, error = %e, "pull endpoint failed");
                }
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| RegistryError::Config { reason: "no endpoint to pull from".into() }))
}

pub(super) async fn get_manifest(
    client: &Client,
    reference: &Reference,
) -> Result<(RawManifest, AnyManifest), RegistryError> {
    let endpoints = client.pull_endpoints(&reference.registry)?;
    first_success(&endpoints, |ep| fetch_manifest(client, ep, reference)).await
}

async fn fetch_manifest(
    client: &Client,
    ep: Endpoint,
    reference: &Reference,
) -> Result<(RawManifest, AnyManifest), RegistryError> {
    let object = reference.object();
    let target = Target {
        registry: reference.registry.clone(),
        repository: reference.repository.clone(),
        object: object.clone(),
    };
    let url = ep.url(&format!("{}/manifests/{object}", reference.repository))?;
    let mut call = Call::new(Method::GET, url, Scope::pull(&reference.repository), target.clone());
    call.headers.insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
    let sent = client.transport.execute(&ep, &call).await?;
    if sent.response.status() != StatusCode::OK {
        return Err(sent.unexpected(&target, &call.method).await);
    }
    let content_type = header_str(sent.response.headers(), CONTENT_TYPE.as_str())
        .map(|v| MediaType::from(v.split(';').next().unwrap_or("").trim()));
    let header_digest = header_str(sent.response.headers(), "docker-content-digest").map(str::to_string);
    if sent.response.content_length().is_some_and(|l| l > MAX_MANIFEST_SIZE) {
        return Err(target.invalid_manifest(format!("larger than {MAX_MANIFEST_SIZE} bytes")));
    }
    let host = ep.host.clone();
    let attempts = sent.attempts;
    let mut bytes = Vec::new();
    let mut stream = sent.response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| RegistryError::Network {
            host: host.clone(),
            attempts,
            source: e.without_url(),
        })?;
        if bytes.len() as u64 + chunk.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(target.invalid_manifest(format!("larger than {MAX_MANIFEST_SIZE} bytes")));
        }
        bytes.extend_from_slice(&chunk);
    }
    let digest = Digest::of_bytes(&bytes);
    let size = bytes.len() as u64;
    let expected = match &reference.digest {
        Some(d) => Some(d.clone()),
        // A registry may use another algorithm for the header; only a sha256 one is checked.
        None => header_digest.and_then(|h| h.parse::<Digest>().ok()),
    };
    if let Some(expected) = expected
        && expected != digest
    {
        return Err(target.mismatch(&expected, Some(digest), size, size));
    }
    let parsed = AnyManifest::parse(content_type.as_ref(), &bytes).map_err(|e| target.invalid_manifest(e))?;
    let declared = declared_media_type(&bytes).or(content_type);
    let media_type = match (&parsed, declared) {
        (AnyManifest::Index(_), Some(m)) if m.is_index() => m,
        (AnyManifest::Index(_), _) => MediaType::OciIndex,
        (AnyManifest::Image(_), Some(m)) if m.is_manifest() => m,
        (AnyManifest::Image(_), _) => MediaType::OciManifest,
    };
    if let AnyManifest::Image(m) = &parsed
        && m.schema_version != 2
    {
        return Err(target.invalid_manifest(format!("unsupported schemaVersion {}", m.schema_version)));
    }
    Ok((RawManifest { media_type, bytes, digest }, parsed))
}

pub(super) async fn head_manifest(
    client: &Client,
    reference: &Reference,
) -> Result<Descriptor, RegistryError> {
    let endpoints = client.pull_endpoints(&reference.registry)?;
    let found = first_success(&endpoints, |ep| head_manifest_at(client, ep, reference)).await?;
    match found {
        Some(desc) => Ok(desc),
        // The registry did not say the digest or size: fetch the manifest and compute them.
        None => {
            let (raw, _) = get_manifest(client, reference).await?;
            Ok(Descriptor::for_bytes(raw.media_type, &raw.bytes))
        }
    }
}

async fn head_manifest_at(
    client: &Client,
    ep: Endpoint,
    reference: &Reference,
) -> Result<Option<Descriptor>, RegistryError> {
    let object = reference.object();
    let target = Target {
        registry: reference.registry.clone(),
        repository: reference.repository.clone(),
        object: object.clone(),
    };
    let url = ep.url(&format!("{}/manifests/{object}", reference.repository))?;
    let mut call = Call::new(Method::HEAD, url, Scope::pull(&reference.repository), target.clone());
    call.headers.insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
    let sent = client.transport.execute(&ep, &call).await?;
    if sent.response.status() != StatusCode::OK {
        return Err(sent.unexpected(&target, &call.method).await);
    }
    let headers = sent.response.headers();
    let media_type = header_str(headers, CONTENT_TYPE.as_str())
        .map(|v| MediaType::from(v.split(';').next().unwrap_or("").trim()))
        .filter(|m| m.is_manifest() || m.is_index());
    let digest = header_str(headers, "docker-content-digest").and_then(|d| d.parse::<Digest>().ok());
    let size =
        header_str(headers, reqwest::header::CONTENT_LENGTH.as_str()).and_then(|l| l.parse::<u64>().ok());
    let (Some(media_type), Some(digest), Some(size)) = (media_type, digest, size) else {
        return Ok(None);
    };
    if let Some(pinned) = &reference.digest
        && *pinned != digest
    {
        return Err(target.mismatch(pinned, Some(digest), size, size));
    }
    Ok(Some(Descriptor { media_type, digest, size, platform: None, annotations: Default::default() }))
}

fn declared_media_type(bytes: &[u8]) -> Option<MediaType> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<Probe>(bytes).ok()?.media_type.map(MediaType::from)
}

fn header_str<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub(super) async fn resolve_image(
    client: &Client,
    reference: &Reference,
    platform: &Platform,
) -> Result<ResolvedImage, RegistryError> {
    let (top, parsed) = get_manifest(client, reference).await?;
    let (index, manifest, parsed) = match parsed {
        AnyManifest::Image(m) => (None, top, m),
        AnyManifest::Index(index) => {
            let Some(desc) = index.select(platform) else {
                let available = index
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.clone())
                    // Attestation manifests are listed as unknown/unknown; they are not images.
                    .filter(|p| p.os != "unknown")
                    .collect();
                return Err(RegistryError::PlatformNotFound {
                    reference: reference.to_string(),
                    platform: platform.clone(),
                    available,
                });
            };
            let pinned = reference.with_digest(desc.digest.clone());
            let target = Target {
                registry: reference.registry.clone(),
                repository: reference.repository.clone(),
                object: desc.digest.to_string(),
            };
            let (raw, parsed) = get_manifest(client, &pinned).await?;
            if raw.bytes.len() as u64 != desc.size {
                let size = raw.bytes.len() as u64;
                return Err(target.mismatch(&desc.digest, Some(raw.digest), desc.size, size));
            }
            match parsed {
                AnyManifest::Image(m) => (Some(top), raw, m),
                AnyManifest::Index(_) => {
                    return Err(target.invalid_manifest(format!(
                        "the entry for {platform} of {reference} is another index, not an image manifest"
                    )));
                }
            }
        }
    };
    let config_desc = &parsed.config;
    let target = Target {
        registry: reference.registry.clone(),
        repository: reference.repository.clone(),
        object: format!("config {}", config_desc.digest),
    };
    if config_desc.size > MAX_CONFIG_SIZE {
        return Err(target.invalid_manifest(format!("image config is larger than {MAX_CONFIG_SIZE} bytes")));
    }
    let mut config_bytes = Vec::with_capacity(config_desc.size as usize);
    get_blob(client, reference, config_desc, &mut config_bytes, &|_| {}).await?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| target.invalid_manifest(format!("malformed image config: {e}")))?;
    Ok(ResolvedImage {
        reference: reference.with_digest(manifest.digest.clone()),
        index,
        manifest,
        parsed,
        config_bytes,
        config,
    })
}

/// Download state carried across attempts and endpoints, so that a retry resumes instead of
/// starting over (the sink cannot take back what it was given).
struct Download<'a> {
    desc: &'a Descriptor,
    hasher: Hasher,
    received: u64,
    sink: &'a mut (dyn tokio::io::AsyncWrite + Unpin + Send),
    progress: &'a (dyn Fn(u64) + Send + Sync),
}

pub(super) async fn get_blob(
    client: &Client,
    repo: &Reference,
    desc: &Descriptor,
    sink: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<(), RegistryError> {
    let target = Target {
        registry: repo.registry.clone(),
        repository: repo.repository.clone(),
        object: format!("blob {}", desc.digest),
    };
    let endpoints = client.pull_endpoints(&repo.registry)?;
    let mut dl = Download { desc, hasher: Hasher::new(), received: 0, sink, progress };
    let retry = &client.transport.retry;
    let mut ep_index = 0;
    let mut broken_streams = 0u32;
    loop {
        let ep = &endpoints[ep_index];
        match fetch_blob(client, ep, repo, &target, &mut dl).await {
            Ok(()) => break,
            // Content errors are final: once bytes were handed to the sink, no other server
            // can make them right.
            Err(Failure::Request(e @ (RegistryError::DigestMismatch { .. } | RegistryError::Io { .. })))
            | Err(Failure::Stream(e @ (RegistryError::DigestMismatch { .. } | RegistryError::Io { .. }))) => {
                return Err(e);
            }
            Err(Failure::Request(e) | Failure::Stream(e)) if ep_index + 1 < endpoints.len() => {
                tracing::debug!(endpoint = %ep.host, error = %e, "blob endpoint failed, trying the next");
                ep_index += 1;
            }
            // The request itself was already retried by the transport; a body that broke
            // mid-way is resumed from where it stopped.
            Err(Failure::Stream(e)) if e.is_retryable() && retry.allows_another(broken_streams + 1) => {
                broken_streams += 1;
                tracing::debug!(host = %ep.host, received = dl.received, error = %e, "blob stream broke, resuming");
                tokio::time::sleep(retry.delay(broken_streams, None)).await;
            }
            Err(Failure::Request(e) | Failure::Stream(e)) => return Err(e),
        }
    }
    let size = dl.received;
    let actual = dl.hasher.finish();
    if size != desc.size || actual != desc.digest {
        return Err(target.mismatch(&desc.digest, Some(actual), desc.size, size));
    }
    dl.sink.flush().await.map_err(|source| RegistryError::Io { action: "write blob", path: None, source })?;
    Ok(())
}

/// How one blob GET failed: before the body (the transport already retried that) or while
/// reading it (resumable).
enum Failure {
    Request(RegistryError),
    Stream(RegistryError),
}

/// One GET of the blob from `ep`, from `dl.received` on. Returns when the body ended.
async fn fetch_blob(
    client: &Client,
    ep: &Endpoint,
    repo: &Reference,
    target: &Target,
    dl: &mut Download<'_>,
) -> Result<(), Failure> {
    let request = Failure::Request;
    let url = ep.url(&format!("{}/blobs/{}", repo.repository, dl.desc.digest)).map_err(request)?;
    let mut call = Call::new(Method::GET, url, Scope::pull(&repo.repository), target.clone());
    if dl.received > 0 {
        let range = format!("bytes={}-", dl.received);
        call.headers.insert(RANGE, HeaderValue::from_str(&range).map_err(|e| request(target.protocol(e)))?);
    }
    let sent = client.transport.execute(ep, &call).await.map_err(request)?;
    let status = sent.response.status();
    // Bytes of the body to drop because the sink already has them (a server that ignores
    // Range answers 200 with the whole blob).
    let mut skip = match status {
        StatusCode::OK => dl.received,
        StatusCode::PARTIAL_CONTENT => {
            let start = header_str(sent.response.headers(), CONTENT_RANGE.as_str()).and_then(|v| {
                v.trim_start_matches("bytes").trim().split('-').next()?.trim().parse::<u64>().ok()
            });
            if start != Some(dl.received) {
                return Err(request(target.protocol(format!(
                    "asked for bytes from {} and got Content-Range {:?}",
                    dl.received,
                    header_str(sent.response.headers(), CONTENT_RANGE.as_str())
                ))));
            }
            0
        }
        _ => return Err(request(sent.unexpected(target, &call.method).await)),
    };
    let attempts = sent.attempts;
    let mut stream = sent.response.bytes_stream();
    let broken = |source: reqwest::Error| {
        Failure::Stream(RegistryError::Network {
            host: ep.host.clone(),
            attempts,
            source: source.without_url(),
        })
    };
    loop {
        let next = match tokio::time::timeout(STALL_TIMEOUT, stream.next()).await {
            Ok(n) => n,
            Err(_) => {
                return Err(Failure::Stream(target.http(
                    "GET",
                    StatusCode::GATEWAY_TIMEOUT.as_u16(),
                    attempts,
                    format!("no data for {} seconds", STALL_TIMEOUT.as_secs()),
                )));
            }
        };
        let Some(chunk) = next else { return Ok(()) };
        let mut chunk = chunk.map_err(broken)?;
        if skip > 0 {
            let n = skip.min(chunk.len() as u64);
            let _ = chunk.split_to(n as usize);
            skip -= n;
            if chunk.is_empty() {
                continue;
            }
        }
        let new_total = dl.received + chunk.len() as u64;
        if new_total > dl.desc.size {
            return Err(Failure::Stream(target.mismatch(&dl.desc.digest, None, dl.desc.size, new_total)));
        }
        dl.hasher.update(&chunk);
        dl.sink.write_all(&chunk).await.map_err(|source| {
            Failure::Stream(RegistryError::Io { action: "write blob", path: None, source })
        })?;
        dl.received = new_total;
        (dl.progress)(dl.received);
    }
}
