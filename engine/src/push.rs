//! `rbuild push`: send a stored image to the registry its name points at, blobs first and
//! the manifest last (so the tag never points at incomplete content).

use crate::images::ImageError;
use crate::pull::{LayerStatus, TransferProgress};
use crate::{Engine, EngineError};
use exporter::PushProgress;
use registry::{AnyManifest, Descriptor, Digest, PushedBlob, Reference};
use std::collections::BTreeSet;

/// What [`Engine::push_image`] did.
#[derive(Clone, Debug)]
pub struct PushOutcome {
    /// The manifest pushed.
    pub manifest: Descriptor,
    /// The digest the name now points at in the registry.
    pub digest: Digest,
}

impl Engine {
    /// Pushes the image stored under `name` to `name`'s registry and repository.
    ///
    /// Cancellation (dropping the future) stops the uploads in flight; the registry may keep
    /// blobs already sent, but the tag is untouched until the last request. Concurrent
    /// pushes are safe.
    pub async fn push_image(
        &self,
        name: &Reference,
        progress: &(dyn Fn(TransferProgress) + Send + Sync),
    ) -> Result<PushOutcome, EngineError> {
        let key = name.to_string();
        let record = self
            .store
            .meta()
            .get_image(&key)?
            .ok_or_else(|| ImageError::NotFound { query: name.familiar() })?;
        let bytes = self.store.content().read(&record.manifest.digest).map_err(cache::StoreError::from)?;
        let damaged = |reason: String| ImageError::Damaged { name: name.familiar(), reason };
        let mut layers: BTreeSet<Digest> = BTreeSet::new();
        match AnyManifest::parse(Some(&record.manifest.media_type), &bytes) {
            Ok(AnyManifest::Image(m)) => layers.extend(m.layers.into_iter().map(|l| l.digest)),
            Ok(AnyManifest::Index(index)) => {
                for child in &index.manifests {
                    let bytes =
                        self.store.content().read(&child.digest).map_err(|e| damaged(e.to_string()))?;
                    if let Ok(AnyManifest::Image(m)) = AnyManifest::parse(Some(&child.media_type), &bytes) {
                        layers.extend(m.layers.into_iter().map(|l| l.digest));
                    }
                }
            }
            Err(e) => return Err(damaged(e.to_string()).into()),
        }
        let report = |p: PushProgress| match p {
            PushProgress::Blob { digest, sent, total } if layers.contains(&digest) => {
                progress(TransferProgress::Bytes { digest, current: sent, total })
            }
            PushProgress::BlobDone { digest, outcome } if layers.contains(&digest) => {
                let status = match outcome {
                    PushedBlob::AlreadyPresent => LayerStatus::AlreadyExists,
                    PushedBlob::Mounted => LayerStatus::Mounted,
                    PushedBlob::Uploaded => LayerStatus::Pushed,
                };
                progress(TransferProgress::Layer { digest, status })
            }
            _ => {}
        };
        let mount_from = self.mount_source(name, &layers);
        if let Some(m) = &mount_from {
            progress(TransferProgress::MountFrom { repository: m.repository.clone() });
        }
        let content = self.store.content();
        let digest =
            exporter::push_image(&self.client, content, &record.manifest, name, mount_from.as_ref(), &report)
                .await?;
        Ok(PushOutcome { manifest: record.manifest, digest })
    }

    /// Another repository of the same registry whose stored image shares the most layers
    /// with the one pushed: the registry may hold those layers there, to be mounted instead
    /// of uploaded. (docker remembers where each blob came from; the store's names are the
    /// nearest thing rbuild keeps.) The reference is pinned to that image's manifest, so
    /// that only its layers are mounted. A wrong guess costs one request per layer: the
    /// registry answers the mount request by starting the ordinary upload.
    fn mount_source(&self, name: &Reference, layers: &BTreeSet<Digest>) -> Option<Reference> {
        let mut best: Option<(usize, Reference)> = None;
        // Base images pulled for builds are not named in the store, but came from somewhere;
        // they go first, so that on a tie the repository the layers came from wins over
        // another image built on them (which may have been deleted from the registry).
        let bases = self.resolved_bases().into_iter().map(|(r, digest)| (r, None, digest));
        let named = self.store.meta().list_images().ok()?.into_iter().filter_map(|(other, record)| {
            Some((other.parse::<Reference>().ok()?, Some(record.manifest.media_type), record.manifest.digest))
        });
        for (r, media_type, digest) in bases.chain(named) {
            if r.registry != name.registry || r.repository == name.repository {
                continue;
            }
            let Ok(bytes) = self.store.content().read(&digest) else { continue };
            let Ok(AnyManifest::Image(m)) = AnyManifest::parse(media_type.as_ref(), &bytes) else {
                continue;
            };
            let shared = m.layers.iter().filter(|l| layers.contains(&l.digest)).count();
            if shared > 0 && best.as_ref().is_none_or(|(n, _)| shared > *n) {
                best = Some((shared, Reference { digest: Some(digest), ..r }));
            }
        }
        best.map(|(_, r)| r)
    }
}
