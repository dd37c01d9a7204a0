//! Pushing an image from the content store to a registry, blobs first and manifests last so
//! that a tag never points to content the registry does not have.

use crate::ExportError;
use cache::ContentStore;
use futures::{StreamExt, TryStreamExt};
use registry::{AnyManifest, Client, Descriptor, Digest, ImageManifest, PushedBlob, Reference};
use std::collections::BTreeSet;

/// How many blobs of one image are pushed at the same time (the client additionally
/// limits requests per registry).
const BLOB_CONCURRENCY: usize = 8;

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
/// Order: every blob (layers and configs of all manifests, each once, up to
/// [`BLOB_CONCURRENCY`] at a time), then the manifests of an index (by digest), then the
/// root under `target`'s tag. Blobs the repository already has are not sent; with
/// `mount_from` (a repository of the same registry holding the base image) layers are
/// mounted instead of uploaded where the registry allows it: when `mount_from` is pinned to
/// a manifest in `store`, only that image's layers, else every layer.
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
        AnyManifest::Image(m) => push_blobs(client, store, &[m], target, mount_from, progress).await?,
        AnyManifest::Index(index) => {
            let mut children = Vec::new();
            let mut images = Vec::new();
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
                images.push(m);
                children.push((child, child_bytes));
            }
            push_blobs(client, store, &images, target, mount_from, progress).await?;
            futures::stream::iter(children)
                .map(|(child, child_bytes)| async move {
                    let by_digest =
                        Reference { tag: None, digest: Some(child.digest.clone()), ..target.clone() };
                    let d = client
                        .put_manifest(&by_digest, &child.media_type, &child_bytes)
                        .await
                        .map_err(registry_err)?;
                    progress(PushProgress::Manifest { digest: d });
                    Ok::<_, ExportError>(())
                })
                .buffer_unordered(BLOB_CONCURRENCY)
                .try_collect::<Vec<()>>()
                .await?;
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

/// Pushes the layers and configs of `manifests`, each blob once, all at the same time up to
/// [`BLOB_CONCURRENCY`]: configs need not wait for layers, since only a manifest may
/// reference blobs the registry must already have.
async fn push_blobs(
    client: &Client,
    store: &ContentStore,
    manifests: &[ImageManifest],
    target: &Reference,
    mount_from: Option<&Reference>,
    progress: &(dyn Fn(PushProgress) + Send + Sync),
) -> Result<(), ExportError> {
    let mountable = mount_from.and_then(|m| layers_of(store, m));
    let mount_for = |d: &Digest| match &mountable {
        Some(layers) if !layers.contains(d) => None,
        _ => mount_from,
    };
    let mut seen = BTreeSet::new();
    let mut blobs: Vec<(&Descriptor, Option<&Reference>)> = Vec::new();
    for m in manifests {
        blobs.extend(
            m.layers.iter().filter(|l| seen.insert(l.digest.clone())).map(|l| (l, mount_for(&l.digest))),
        );
    }
    // Mounts first: they are single requests, and the registry's answer tells the client
    // whether it may ask about the other blobs the same way.
    blobs.sort_by_key(|(_, mount)| mount.is_none());
    for m in manifests {
        if seen.insert(m.config.digest.clone()) {
            blobs.push((&m.config, None));
        }
    }
    // Fail before uploading anything when a blob is missing locally.
    for (d, _) in &blobs {
        let size = store.size(&d.digest)?;
        if size != d.size {
            return Err(ExportError::invalid(format!(
                "blob {} is {size} bytes in the store but {} in the manifest",
                d.digest, d.size
            )));
        }
    }
    futures::stream::iter(blobs)
        .map(|(d, mount)| push_one(client, store, d, target, mount, progress))
        .buffer_unordered(BLOB_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// The layers of the image `mount_from` is pinned to, when its manifest is in the store:
/// only those can be mounted from there. `None` (mount every layer) otherwise.
fn layers_of(store: &ContentStore, mount_from: &Reference) -> Option<BTreeSet<Digest>> {
    let digest = mount_from.digest.as_ref()?;
    let bytes = store.read(digest).ok()?;
    match AnyManifest::parse(None, &bytes).ok()? {
        AnyManifest::Image(m) => Some(m.layers.into_iter().map(|l| l.digest).collect()),
        AnyManifest::Index(_) => None,
    }
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
