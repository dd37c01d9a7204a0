//! Pushing an image from the content store to a registry, blobs first and manifests last so
//! that a tag never points to content the registry does not have.

use crate::ExportError;
use cache::ContentStore;
use futures::{StreamExt, TryStreamExt};
use registry::{AnyManifest, Client, Descriptor, Digest, ImageManifest, PushedBlob, Reference};
use std::collections::BTreeSet;

/// How many layers of one image are uploaded at the same time (the client additionally
/// limits requests per registry).
const LAYER_CONCURRENCY: usize = 4;

/// Progress events of [`push_image`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushProgress {
    /// Bytes of a blob sent so far.
    Blob {
        /// The blob.
        digest: Digest,
        /// Bytes sent.
        sent: u64,
        /// The blob's size.
        total: u64,
    },
    /// A blob is in the registry now.
    BlobDone {
        /// The blob.
        digest: Digest,
        /// Whether it was uploaded, mounted or already there.
        outcome: PushedBlob,
    },
    /// A manifest or index was stored.
    Manifest {
        /// Its digest.
        digest: Digest,
    },
}

/// Pushes the image rooted at `root` (a manifest, or an index and all its manifests) from
/// `store` to `target` and returns the digest `target` now points to.
///
/// Order: for each manifest its layers (up to four at once), then its config, then the
/// manifest itself (by digest when it belongs to an index); the root goes last under
/// `target`'s tag. Blobs the repository already has are not sent; with `mount_from` (a
/// repository of the same registry holding the base image) layers are mounted instead of
/// uploaded where the registry allows it.
///
/// Cancellation (dropping the future) stops the uploads in flight. Nothing is left behind
/// locally; the registry may keep blobs already pushed, but no manifest references
/// incomplete content and the tag is untouched until the very last request. Concurrent
/// pushes of the same image are safe.
pub async fn push_image(
    client: &Client,
    store: &ContentStore,
    root: &Descriptor,
    target: &Reference,
    mount_from: Option<&Reference>,
    progress: &(dyn Fn(PushProgress) + Send + Sync),
) -> Result<Digest, ExportError> {
    if let Some(d) = &target.digest
        && target.tag.is_none()
        && *d != root.digest
    {
        return Err(ExportError::invalid(format!("cannot push image {} to {target}", root.digest)));
    }
    let bytes = read_checked(store, root)?;
    let parsed = AnyManifest::parse(Some(&root.media_type), &bytes)
        .map_err(|e| ExportError::invalid(format!("{}: {e}", root.digest)))?;
    match parsed {
        AnyManifest::Image(m) => push_blobs(client, store, &m, target, mount_from, progress).await?,
        AnyManifest::Index(index) => {
            for child in &index.manifests {
                let child_bytes = read_checked(store, child)?;
                let AnyManifest::Image(m) = AnyManifest::parse(Some(&child.media_type), &child_bytes)
                    .map_err(|e| ExportError::invalid(format!("{}: {e}", child.digest)))?
                else {
                    return Err(ExportError::invalid(format!(
                        "nested index {} is not supported",
                        child.digest
                    )));
                };
                push_blobs(client, store, &m, target, mount_from, progress).await?;
                let by_digest = Reference { tag: None, digest: Some(child.digest.clone()), ..target.clone() };
                let d = client
                    .put_manifest(&by_digest, &child.media_type, &child_bytes)
                    .await
                    .map_err(registry_err)?;
                progress(PushProgress::Manifest { digest: d });
            }
        }
    }
    let digest = client.put_manifest(target, &root.media_type, &bytes).await.map_err(registry_err)?;
    progress(PushProgress::Manifest { digest: digest.clone() });
    Ok(digest)
}

fn registry_err(e: registry::RegistryError) -> ExportError {
    ExportError::Registry(Box::new(e))
}

/// A manifest or index from the store, checked against its descriptor.
fn read_checked(store: &ContentStore, desc: &Descriptor) -> Result<Vec<u8>, ExportError> {
    let bytes = store.read(&desc.digest)?;
    if bytes.len() as u64 != desc.size {
        return Err(ExportError::invalid(format!(
            "{} is {} bytes in the store but {} in its descriptor",
            desc.digest,
            bytes.len(),
            desc.size
        )));
    }
    Ok(bytes)
}

async fn push_blobs(
    client: &Client,
    store: &ContentStore,
    manifest: &ImageManifest,
    target: &Reference,
    mount_from: Option<&Reference>,
    progress: &(dyn Fn(PushProgress) + Send + Sync),
) -> Result<(), ExportError> {
    let mut seen = BTreeSet::new();
    let layers: Vec<&Descriptor> = manifest.layers.iter().filter(|l| seen.insert(l.digest.clone())).collect();
    // Fail before uploading anything when a blob is missing locally.
    for d in layers.iter().copied().chain([&manifest.config]) {
        let size = store.size(&d.digest)?;
        if size != d.size {
            return Err(ExportError::invalid(format!(
                "blob {} is {size} bytes in the store but {} in the manifest",
                d.digest, d.size
            )));
        }
    }
    futures::stream::iter(layers)
        .map(|l| push_one(client, store, l, target, mount_from, progress))
        .buffer_unordered(LAYER_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    push_one(client, store, &manifest.config, target, None, progress).await
}

async fn push_one(
    client: &Client,
    store: &ContentStore,
    desc: &Descriptor,
    target: &Reference,
    mount_from: Option<&Reference>,
    progress: &(dyn Fn(PushProgress) + Send + Sync),
) -> Result<(), ExportError> {
    let path = store.path(&desc.digest);
    let on_bytes =
        |sent: u64| progress(PushProgress::Blob { digest: desc.digest.clone(), sent, total: desc.size });
    let outcome = client.push_blob(target, desc, &path, mount_from, &on_bytes).await.map_err(registry_err)?;
    progress(PushProgress::BlobDone { digest: desc.digest.clone(), outcome });
    Ok(())
}
