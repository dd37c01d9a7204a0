//! Pushing: blob existence checks, cross-repository mounts, monolithic and chunked uploads
//! streamed from a file (with chunk resume), and manifest PUTs.

use super::auth::Scope;
use super::retry::retryable_status;
use super::transport::{Call, CallBody, Endpoint, Sent};
use super::{Client, PushedBlob};
use crate::error::{RegistryError, Target};
use crate::{Descriptor, Digest, MediaType, Reference};
use bytes::Bytes;
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode, Url};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How often upload progress is reported.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(200);

fn blob_target(repo: &Reference, digest: &Digest) -> Target {
    Target {
        registry: repo.registry.clone(),
        repository: repo.repository.clone(),
        object: format!("blob {digest}"),
    }
}

pub(super) async fn blob_exists(
    client: &Client,
    repo: &Reference,
    digest: &Digest,
) -> Result<bool, RegistryError> {
    let ep = client.upstream(&repo.registry)?;
    head_blob(client, &ep, repo, digest, Scope::pull(&repo.repository)).await
}

async fn head_blob(
    client: &Client,
    ep: &Endpoint,
    repo: &Reference,
    digest: &Digest,
    scope: Scope,
) -> Result<bool, RegistryError> {
    let target = blob_target(repo, digest);
    let url = ep.url(&format!("{}/blobs/{digest}", repo.repository))?;
    let call = Call::new(Method::HEAD, url, scope, target.clone());
    let sent = client.transport.execute(ep, &call).await?;
    match sent.response.status() {
        StatusCode::OK => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        _ => Err(sent.unexpected(&target, &call.method).await),
    }
}

pub(super) async fn push_blob(
    client: &Client,
    repo: &Reference,
    desc: &Descriptor,
    path: &Path,
    mount_from: Option<&Reference>,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<PushedBlob, RegistryError> {
    let target = blob_target(repo, &desc.digest);
    let io = |source| RegistryError::Io { action: "read blob file", path: Some(path.to_path_buf()), source };
    let len = tokio::fs::metadata(path).await.map_err(io)?.len();
    if len != desc.size {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the file has {len} bytes, its descriptor {} says {}", desc.digest, desc.size),
        )));
    }
    let ep = client.upstream(&repo.registry)?;
    let mount = mount_from.filter(|m| m.registry == repo.registry && m.repository != repo.repository);
    let mut scope = Scope::push(&repo.repository);
    if let Some(m) = mount {
        scope = scope.and_pull(&m.repository);
    }
    // A blob with a mount source is mounted straight away (its HEAD comes only when the
    // mount fails). Where the registry has answered a mount with 201, other blobs are
    // "mounted" from the repository itself instead of a HEAD: one request says whether the
    // repository has the blob (201, nothing else to do) or starts the upload (202).
    // Registries that do not mount (and so never taught us they do) get the HEAD.
    let mut ask = match mount {
        Some(m) => Ask::Mount(m),
        None if client.transport.mounts_work(&ep.host) => Ask::Probe,
        None => Ask::Head,
    };
    if matches!(ask, Ask::Head) && head_blob(client, &ep, repo, &desc.digest, scope.clone()).await? {
        progress(desc.size);
        return Ok(PushedBlob::AlreadyPresent);
    }
    let retry = &client.transport.retry;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let upload = Upload { client, ep: &ep, repo, desc, path, scope: &scope, target: &target, progress };
        match upload.run(ask).await {
            Ok(r) => return Ok(r),
            // A registry that mounts across repositories but refuses a mount from the
            // repository itself: ask the usual way.
            Err(e) if matches!(ask, Ask::Probe) && probe_refused(&e) => {
                tracing::debug!(blob = %desc.digest, error = %e, "mount from the repository itself refused");
                ask = Ask::Head;
                attempts -= 1;
                if head_blob(client, &ep, repo, &desc.digest, scope.clone()).await? {
                    progress(desc.size);
                    return Ok(PushedBlob::AlreadyPresent);
                }
            }
            Err(e) if (e.is_retryable() || session_lost(&e)) && retry.allows_another(attempts) => {
                tracing::debug!(blob = %desc.digest, attempts, error = %e, "blob upload failed, starting over");
                tokio::time::sleep(retry.delay(attempts, None)).await;
            }
            Err(e) => return Err(count_attempts(e, attempts)),
        }
    }
}

/// How an upload session starts.
#[derive(Clone, Copy)]
enum Ask<'a> {
    /// The HEAD said the repository lacks the blob: plain `POST`.
    Head,
    /// Mount from this repository; when that fails, HEAD the target before uploading.
    Mount(&'a Reference),
    /// Mount from the target repository itself: 201 means it has the blob.
    Probe,
}

/// Whether the answer to a mount from the repository itself was a refusal (some 4xx other
/// than an auth failure or 429), not a failure worth reporting.
fn probe_refused(e: &RegistryError) -> bool {
    match e {
        RegistryError::NotFound { .. } => true,
        RegistryError::Http { status, method, .. } => {
            method == "POST" && (400..500).contains(status) && !matches!(status, 401 | 403 | 429)
        }
        _ => false,
    }
}

fn session_lost(e: &RegistryError) -> bool {
    matches!(e, RegistryError::Http { status: 404, method, .. } if method == "PUT" || method == "PATCH")
}

/// Reports the blob-level attempts in the error when they exceed the request's own.
fn count_attempts(mut e: RegistryError, n: u32) -> RegistryError {
    match &mut e {
        RegistryError::Network { attempts, .. } | RegistryError::Http { attempts, .. } => {
            *attempts = (*attempts).max(n);
        }
        _ => {}
    }
    e
}

/// One upload session of one blob.
struct Upload<'a> {
    client: &'a Client,
    ep: &'a Endpoint,
    repo: &'a Reference,
    desc: &'a Descriptor,
    path: &'a Path,
    scope: &'a Scope,
    target: &'a Target,
    progress: &'a (dyn Fn(u64) + Send + Sync),
}

impl Upload<'_> {
    async fn run(&self, ask: Ask<'_>) -> Result<PushedBlob, RegistryError> {
        let mut url = self.ep.url(&format!("{}/blobs/uploads/", self.repo.repository))?;
        let from = match ask {
            Ask::Head => None,
            Ask::Mount(m) => Some(m),
            Ask::Probe => Some(self.repo),
        };
        if let Some(m) = from {
            url.query_pairs_mut()
                .append_pair("mount", self.desc.digest.as_str())
                .append_pair("from", &m.repository);
        }
        let mut call = self.call(Method::POST, url);
        // Starting a session changes no content; a session lost with its answer is purged
        // by the registry.
        call.idempotent = true;
        let sent = self.execute(&call).await?;
        let location = match sent.response.status() {
            StatusCode::CREATED if from.is_some() => {
                self.check_digest_header(sent.response.headers())?;
                self.client.transport.learn_mounts_work(&self.ep.host);
                (self.progress)(self.desc.size);
                return Ok(match ask {
                    Ask::Probe => PushedBlob::AlreadyPresent,
                    _ => PushedBlob::Mounted,
                });
            }
            StatusCode::ACCEPTED => self.location(&sent)?,
            _ => return Err(sent.unexpected(self.target, &call.method).await),
        };
        // The answer holds a concurrency permit: release it before the next request, or
        // parallel uploads would each wait for a permit the others hold.
        drop(sent);
        if matches!(ask, Ask::Mount(_))
            && head_blob(self.client, self.ep, self.repo, &self.desc.digest, self.scope.clone()).await?
        {
            // The mount source lacks the blob but the repository has it: nothing to send.
            self.cancel(location).await;
            (self.progress)(self.desc.size);
            return Ok(PushedBlob::AlreadyPresent);
        }
        if self.desc.size <= self.chunk_size() {
            self.put_whole(location).await?;
        } else {
            self.patch_chunks(location).await?;
        }
        (self.progress)(self.desc.size);
        Ok(PushedBlob::Uploaded)
    }

    /// The error for an unexpected answer inside an upload session. A 404 there means the
    /// registry lost or cancelled the session (not that the blob is missing); it is
    /// reported as such and makes the caller start the upload over.
    async fn session_error(&self, sent: Sent, method: &Method) -> RegistryError {
        if sent.response.status() == StatusCode::NOT_FOUND {
            let body = super::transport::read_limited(sent.response, 4096).await.unwrap_or_default();
            let snippet = crate::error::body_snippet(&body);
            return self.target.http(
                method.as_str(),
                404,
                sent.attempts,
                format!("upload session lost: {snippet}"),
            );
        }
        sent.unexpected(self.target, method).await
    }

    /// Cancels an upload session (best effort: the registry purges forgotten sessions).
    async fn cancel(&self, location: Url) {
        let call = self.call(Method::DELETE, location);
        match self.execute(&call).await {
            Ok(sent) if sent.response.status().is_success() => {}
            Ok(sent) => tracing::debug!(status = %sent.response.status(), "upload session not cancelled"),
            Err(e) => tracing::debug!(error = %e, "upload session not cancelled"),
        }
    }

    /// The configured chunk size (at least 1 MiB, so a misconfiguration cannot make
    /// millions of requests).
    fn chunk_size(&self) -> u64 {
        self.client.transport.config.upload_chunk_size.max(1 << 20)
    }

    fn call(&self, method: Method, url: Url) -> Call {
        Call::new(method, url, self.scope.clone(), self.target.clone())
    }

    async fn execute(&self, call: &Call) -> Result<Sent, RegistryError> {
        self.client.transport.execute(self.ep, call).await
    }

    /// The upload URL in a response's `Location` (relative or absolute).
    fn location(&self, sent: &Sent) -> Result<Url, RegistryError> {
        let value = sent
            .response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| self.target.protocol("upload response without a Location header"))?;
        sent.response
            .url()
            .join(value)
            .map_err(|e| self.target.protocol(format!("upload Location {value:?} is not a URL: {e}")))
    }

    fn check_digest_header(&self, headers: &HeaderMap) -> Result<(), RegistryError> {
        let Some(got) = headers.get("docker-content-digest").and_then(|v| v.to_str().ok()) else {
            return Ok(());
        };
        match got.parse::<Digest>() {
            Ok(d) if d != self.desc.digest => {
                Err(self.target.mismatch(&self.desc.digest, Some(d), self.desc.size, self.desc.size))
            }
            _ => Ok(()),
        }
    }

    fn file_call(&self, method: Method, url: Url, offset: u64, len: u64, sent: &Arc<AtomicU64>) -> Call {
        let mut call = self.call(method, url);
        call.idempotent = false;
        call.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        call.body = CallBody::File { path: self.path.to_path_buf(), offset, len, sent: sent.clone() };
        call
    }

    fn finish_url(&self, mut location: Url) -> Url {
        location.query_pairs_mut().append_pair("digest", self.desc.digest.as_str());
        location
    }

    /// Monolithic upload: the whole blob in the closing PUT.
    async fn put_whole(&self, location: Url) -> Result<(), RegistryError> {
        let sent_bytes = Arc::new(AtomicU64::new(0));
        let url = self.finish_url(location);
        let call = self.file_call(Method::PUT, url, 0, self.desc.size, &sent_bytes);
        let sent = with_progress(self.execute(&call), 0, &sent_bytes, self.progress).await?;
        self.expect_created(sent, &call).await
    }

    async fn expect_created(&self, sent: Sent, call: &Call) -> Result<(), RegistryError> {
        if sent.response.status() != StatusCode::CREATED {
            return Err(self.session_error(sent, &call.method).await);
        }
        self.check_digest_header(sent.response.headers())
    }

    /// Chunked upload: PATCH chunks with `Content-Range`, then an empty closing PUT. A chunk
    /// whose connection broke is resumed from the offset the registry reports.
    async fn patch_chunks(&self, mut location: Url) -> Result<(), RegistryError> {
        let size = self.desc.size;
        let retry = &self.client.transport.retry;
        let sent_bytes = Arc::new(AtomicU64::new(0));
        let mut offset = 0u64;
        let mut resumes = 0u32;
        while offset < size {
            let len = self.chunk_size().min(size - offset);
            let mut call = self.file_call(Method::PATCH, location.clone(), offset, len, &sent_bytes);
            let range = format!("{}-{}", offset, offset + len - 1);
            call.headers
                .insert(CONTENT_RANGE, HeaderValue::from_str(&range).map_err(|e| self.target.protocol(e))?);
            // Reset before the first progress tick: the body resets it too, but only once the
            // request starts, and a tick before that would count the previous chunk twice.
            sent_bytes.store(0, Ordering::Relaxed);
            let outcome = with_progress(self.execute(&call), offset, &sent_bytes, self.progress).await;
            let failure = match outcome {
                Ok(sent) if sent.response.status() == StatusCode::ACCEPTED => {
                    location = self.location(&sent)?;
                    offset += len;
                    (self.progress)(offset);
                    continue;
                }
                // The registry may hold part or all of the chunk (its answer got lost, or a
                // proxy failed): ask it where to go on from.
                Ok(sent)
                    if sent.response.status() == StatusCode::RANGE_NOT_SATISFIABLE
                        || retryable_status(sent.response.status().as_u16()) =>
                {
                    self.session_error(sent, &call.method).await
                }
                Ok(sent) => return Err(self.session_error(sent, &call.method).await),
                Err(e) if e.is_retryable() => e,
                Err(e) => return Err(e),
            };
            resumes += 1;
            if !retry.allows_another(resumes) {
                return Err(count_attempts(failure, resumes));
            }
            tracing::debug!(blob = %self.desc.digest, offset, error = %failure, "chunk failed, asking where to resume");
            tokio::time::sleep(retry.delay(resumes, None)).await;
            // Registries that sign the upload state into the URL (distribution does) cancel
            // the session when a chunk landed but its answer was lost; then the status query
            // fails and the caller starts the upload over.
            match self.upload_status(location.clone()).await {
                Ok((next_location, next_offset)) => {
                    location = next_location;
                    offset = next_offset;
                }
                Err(e) => {
                    tracing::debug!(blob = %self.desc.digest, error = %e, "upload session lost");
                    return Err(failure);
                }
            }
        }
        let mut call = self.call(Method::PUT, self.finish_url(location));
        call.idempotent = false;
        call.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        let sent = self.execute(&call).await?;
        self.expect_created(sent, &call).await
    }

    /// Asks the registry how much of the upload it holds (`GET <location>` answers 204 with
    /// `Range: 0-<last byte>`).
    async fn upload_status(&self, location: Url) -> Result<(Url, u64), RegistryError> {
        let call = self.call(Method::GET, location);
        let sent = self.execute(&call).await?;
        if sent.response.status() != StatusCode::NO_CONTENT {
            return Err(self.session_error(sent, &call.method).await);
        }
        let next = self.location(&sent)?;
        let range = sent.response.headers().get("range").and_then(|v| v.to_str().ok()).unwrap_or("0-0");
        let end = range
            .trim_start_matches("bytes=")
            .split_once('-')
            .and_then(|(_, end)| end.trim().parse::<u64>().ok())
            .ok_or_else(|| self.target.protocol(format!("upload status with malformed Range {range:?}")))?;
        // "0-0" is what the registry says both for nothing and for one byte; resuming at 0
        // is then at worst refused, which restarts the upload.
        let offset = if end == 0 { 0 } else { end + 1 };
        if offset > self.desc.size {
            return Err(self
                .target
                .protocol(format!("upload status says {offset} bytes of {}", self.desc.size)));
        }
        Ok((next, offset))
    }
}

/// Runs `fut` while reporting `base + sent` to `progress` periodically.
async fn with_progress<T>(
    fut: impl Future<Output = T>,
    base: u64,
    sent: &AtomicU64,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> T {
    tokio::pin!(fut);
    let mut tick = tokio::time::interval(PROGRESS_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            out = &mut fut => return out,
            _ = tick.tick() => progress(base + sent.load(Ordering::Relaxed)),
        }
    }
}

pub(super) async fn put_manifest(
    client: &Client,
    reference: &Reference,
    media_type: &MediaType,
    bytes: &[u8],
) -> Result<Digest, RegistryError> {
    let digest = Digest::of_bytes(bytes);
    let size = bytes.len() as u64;
    let object = match (&reference.tag, &reference.digest) {
        (Some(tag), _) => tag.clone(),
        (None, Some(d)) => d.to_string(),
        (None, None) => "latest".to_string(),
    };
    let target = Target {
        registry: reference.registry.clone(),
        repository: reference.repository.clone(),
        object: object.clone(),
    };
    if let Some(pinned) = &reference.digest
        && *pinned != digest
    {
        return Err(target.mismatch(pinned, Some(digest), size, size));
    }
    let ep = client.upstream(&reference.registry)?;
    let url = ep.url(&format!("{}/manifests/{object}", reference.repository))?;
    let mut call = Call::new(Method::PUT, url, Scope::push(&reference.repository), target.clone());
    let content_type = HeaderValue::from_str(media_type.as_str())
        .map_err(|e| target.invalid_manifest(format!("media type {media_type} cannot be sent: {e}")))?;
    call.headers.insert(CONTENT_TYPE, content_type);
    call.body = CallBody::Bytes(Bytes::copy_from_slice(bytes));
    let sent = client.transport.execute(&ep, &call).await?;
    if !matches!(sent.response.status(), StatusCode::CREATED | StatusCode::OK | StatusCode::ACCEPTED) {
        return Err(sent.unexpected(&target, &call.method).await);
    }
    if let Some(got) = sent.response.headers().get("docker-content-digest").and_then(|v| v.to_str().ok())
        && let Ok(got) = got.parse::<Digest>()
        && got != digest
    {
        return Err(target.mismatch(&digest, Some(got), size, size));
    }
    Ok(digest)
}
