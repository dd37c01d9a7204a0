//! The distribution-protocol client: pull (manifests, indexes, blobs) and push (blobs with
//! existence checks, cross-repository mounts, monolithic and chunked uploads; manifests).
//!
//! All methods are safe to call concurrently on clones of one [`Client`]; they share the
//! credential, token and connection caches and the per-registry concurrency limit.
//! Cancelling a call (dropping its future) closes its connection; nothing is left behind
//! locally, and on the registry at most an unfinished upload session, which the registry
//! purges itself.

mod auth;
mod pull;
mod push;
mod retry;
mod transport;

use crate::error::RegistryError;
use crate::{Descriptor, Digest, ImageConfig, ImageManifest, MediaType, Platform, Reference};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use transport::{Endpoint, Transport};

/// How a [`Client`] reaches registries.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Directory holding `config.json` with credentials; `None` means `$DOCKER_CONFIG` or
    /// `~/.docker`.
    pub docker_config_dir: Option<PathBuf>,
    /// Registries (`host[:port]`) spoken to over plain HTTP. Loopback registries always are.
    pub insecure_registries: Vec<String>,
    /// Mirrors to try, in order, before a registry when pulling: registry host (`docker.io`)
    /// to mirror addresses (`host[:port]`, optionally with an `http://` or `https://` prefix).
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// How many requests may be in flight to one registry host at once (at least 1).
    pub max_concurrent_per_registry: usize,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Directories with per-registry CA certificates, `<dir>/<host[:port]>/ca.crt`, trusted
    /// in addition to the system roots for that registry. Default: `/etc/rbuild/certs.d`
    /// and `/etc/docker/certs.d`.
    pub certs_dirs: Vec<PathBuf>,
    /// Blobs up to this size go up in one PUT; larger ones in PATCH chunks of this size, so
    /// that a broken connection costs at most one chunk. Each chunk is a round trip in
    /// which the registry saves its hash state; 128 MiB keeps that under a few percent.
    pub upload_chunk_size: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            docker_config_dir: None,
            insecure_registries: Vec::new(),
            mirrors: BTreeMap::new(),
            max_concurrent_per_registry: 8,
            user_agent: format!("rbuild/{}", env!("CARGO_PKG_VERSION")),
            certs_dirs: vec![PathBuf::from("/etc/rbuild/certs.d"), PathBuf::from("/etc/docker/certs.d")],
            upload_chunk_size: 128 << 20,
        }
    }
}

/// A manifest or index exactly as the registry served it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawManifest {
    /// Its media type (from the document, else the `Content-Type` header).
    pub media_type: MediaType,
    /// The bytes that hash to `digest`.
    pub bytes: Vec<u8>,
    /// sha256 of `bytes`.
    pub digest: Digest,
}

/// An image resolved for one platform, with everything needed to pull its layers.
#[derive(Clone, Debug)]
pub struct ResolvedImage {
    /// The input reference (tag kept) pinned to the platform manifest's digest.
    pub reference: Reference,
    /// The index or manifest list, when the reference pointed to one.
    pub index: Option<RawManifest>,
    /// The platform's image manifest, raw bytes kept.
    pub manifest: RawManifest,
    /// `manifest`, parsed.
    pub parsed: ImageManifest,
    /// The image config bytes (verified against the manifest's config descriptor).
    pub config_bytes: Vec<u8>,
    /// `config_bytes`, parsed.
    pub config: ImageConfig,
}

/// What [`Client::push_blob`] had to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushedBlob {
    /// The repository already had the blob; nothing was sent.
    AlreadyPresent,
    /// The registry linked the blob from the `mount_from` repository; nothing was sent.
    Mounted,
    /// The blob's bytes were uploaded.
    Uploaded,
}

/// A distribution-protocol client. Cheap to clone: clones share connections, credentials,
/// tokens and concurrency limits.
#[derive(Clone)]
pub struct Client {
    transport: Arc<Transport>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("config", &self.transport.config).finish_non_exhaustive()
    }
}

impl Client {
    /// A client with `config`. Fails only when the TLS stack cannot be set up.
    pub fn new(config: ClientConfig) -> Result<Client, RegistryError> {
        Ok(Client { transport: Arc::new(Transport::new(config)?) })
    }

    /// The endpoint of the reference's registry itself.
    fn upstream(&self, registry: &str) -> Result<Endpoint, RegistryError> {
        Endpoint::for_registry(&self.transport.config, registry)
    }

    /// The endpoints to pull from: the configured mirrors in order, then the registry.
    fn pull_endpoints(&self, registry: &str) -> Result<Vec<Endpoint>, RegistryError> {
        let config = &self.transport.config;
        let mut out = Vec::new();
        for m in config.mirrors.get(registry).into_iter().flatten() {
            out.push(Endpoint::for_mirror(config, m)?);
        }
        out.push(self.upstream(registry)?);
        Ok(out)
    }

    /// Resolves `reference` for `platform`: follows an index or manifest list to the
    /// platform's manifest, then fetches and verifies the manifest and the image config.
    ///
    /// An index without a matching entry is [`RegistryError::PlatformNotFound`], listing
    /// what it offers. A single-platform manifest is returned whatever its platform.
    pub async fn resolve_image(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<ResolvedImage, RegistryError> {
        pull::resolve_image(self, reference, platform).await
    }

    /// The manifest or index `reference` names, by tag or digest. When the reference is
    /// pinned, the bytes are verified against the digest; otherwise against the registry's
    /// `Docker-Content-Digest` header when it sends one.
    pub async fn get_manifest(&self, reference: &Reference) -> Result<RawManifest, RegistryError> {
        pull::get_manifest(self, reference).await.map(|(raw, _)| raw)
    }

    /// The descriptor (media type, digest, size) of the manifest or index `reference`
    /// names, from a HEAD request: the cheap way to learn what a tag points to now. Falls
    /// back to a GET when the registry does not send the digest.
    pub async fn head_manifest(&self, reference: &Reference) -> Result<Descriptor, RegistryError> {
        pull::head_manifest(self, reference).await
    }

    /// Streams the blob `desc` of `repo`'s repository into `sink`, verifying size and digest
    /// as the bytes arrive; `progress` gets the number of bytes received so far.
    ///
    /// A broken connection is resumed with a `Range` request where the server allows it.
    /// On [`RegistryError::DigestMismatch`] (or any error) the sink has received part or
    /// all of the data and the caller must discard it.
    pub async fn get_blob(
        &self,
        repo: &Reference,
        desc: &Descriptor,
        sink: &mut (dyn tokio::io::AsyncWrite + Unpin + Send),
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), RegistryError> {
        pull::get_blob(self, repo, desc, sink, progress).await
    }

    /// True when `repo`'s repository has the blob `digest` (HEAD request).
    pub async fn blob_exists(&self, repo: &Reference, digest: &Digest) -> Result<bool, RegistryError> {
        push::blob_exists(self, repo, digest).await
    }

    /// Uploads the blob stored at `path` (which must have `desc`'s size and digest) to
    /// `repo`'s repository, unless the registry already has it there. When `mount_from`
    /// names another repository of the same registry, a cross-repository mount is tried
    /// first (and, if it fails, a HEAD before uploading); otherwise a HEAD, or, on a
    /// registry that has mounted a blob for this client before, a mount from `repo` itself,
    /// which answers "present" or starts the upload in one request. Blobs up to
    /// [`ClientConfig::upload_chunk_size`] go in one PUT, larger ones in PATCH chunks of that
    /// size, streamed from the file. `progress` gets the bytes sent so far.
    pub async fn push_blob(
        &self,
        repo: &Reference,
        desc: &Descriptor,
        path: &Path,
        mount_from: Option<&Reference>,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<PushedBlob, RegistryError> {
        push::push_blob(self, repo, desc, path, mount_from, progress).await
    }

    /// Checks that `registry` accepts `username` and `password` (`GET /v2/` with them, via
    /// the token service when the registry uses one), as `docker login` does before saving
    /// them. From then on this client uses them for `registry`; saving them is the caller's
    /// job ([`crate::credentials::store`]).
    pub async fn verify_login(
        &self,
        registry: &str,
        username: &str,
        password: &str,
    ) -> Result<(), RegistryError> {
        let credential =
            crate::Credential::Basic { username: username.to_string(), password: password.to_string() };
        self.transport.set_credential(registry, credential);
        let ep = self.upstream(registry)?;
        let target = crate::error::Target {
            registry: registry.to_string(),
            repository: String::new(),
            object: "/v2/".to_string(),
        };
        let call =
            transport::Call::new(reqwest::Method::GET, ep.url("")?, auth::Scope::none(), target.clone());
        let sent = self.transport.execute(&ep, &call).await?;
        if sent.response.status().is_success() {
            return Ok(());
        }
        Err(sent.unexpected(&target, &call.method).await)
    }

    /// PUTs a manifest or index under the reference's tag (or, without a tag, its digest)
    /// and returns the digest of `bytes`. Push the blobs it references first: registries
    /// reject manifests whose blobs are missing.
    pub async fn put_manifest(
        &self,
        reference: &Reference,
        media_type: &MediaType,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        push::put_manifest(self, reference, media_type, bytes).await
    }
}
