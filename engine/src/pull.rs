//! `rbuild pull`: resolve a reference for a platform, fetch the blobs the store lacks,
//! unpack the layers and name the image, so that `FROM name` afterwards builds without
//! the network. Also the layer unpacking that `load` shares.

use crate::images::ImageError;
use crate::{Engine, EngineError};
use cache::{LayerId, Store};
use frontend::lower::ImageRequest;
use registry::{Descriptor, Digest, ImageConfig, ImageManifest, Platform, Reference};

/// Progress of a pull or push, per layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferProgress {
    /// Bytes of a layer moved so far.
    Bytes {
        /// The layer blob.
        digest: Digest,
        /// Bytes so far.
        current: u64,
        /// The blob's size.
        total: u64,
    },
    /// Push: layers the registry may already have in this repository of it are mounted from
    /// there instead of uploaded, where possible.
    MountFrom {
        /// The repository's path in the registry (`library/busybox`).
        repository: String,
    },
    /// A layer is done.
    Layer {
        /// The layer blob.
        digest: Digest,
        /// What happened to it.
        status: LayerStatus,
    },
}

/// What a pull or push did with one layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerStatus {
    /// Pull: the store had it. Push: the registry had it.
    AlreadyExists,
    /// Pull: downloaded and verified.
    Downloaded,
    /// Push: linked from another repository of the registry.
    Mounted,
    /// Push: uploaded.
    Pushed,
}

/// What [`Engine::pull_image`] did.
#[derive(Clone, Debug)]
pub struct PullOutcome {
    /// The store name the image got (`127.0.0.1:5000/lab/busybox:latest`).
    pub name: String,
    /// The platform's manifest.
    pub manifest: Descriptor,
    /// The digest the registry serves for the reference: the index's when the reference
    /// names a multi-platform index, else the manifest's.
    pub digest: Digest,
    /// The image ID.
    pub id: Digest,
    /// False when the name already pointed at this manifest.
    pub updated: bool,
}

/// Unpacks the layers of an image into the store (reusing layers unpacked before) and
/// remembers the chain, so that builds `FROM` the image find its layers by chain ID. Every
/// layer's uncompressed content is checked against the config's diff IDs. Blocks.
pub(crate) fn unpack_layers(
    store: &Store,
    manifest: &ImageManifest,
    config: &ImageConfig,
) -> Result<Vec<LayerId>, EngineError> {
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(ImageError::Damaged {
            name: manifest.config.digest.to_string(),
            reason: format!("{} layers but {} diff IDs", manifest.layers.len(), diff_ids.len()),
        }
        .into());
    }
    let mut chain: Vec<LayerId> = Vec::with_capacity(diff_ids.len());
    for (blob, diff_id) in manifest.layers.iter().zip(diff_ids) {
        let id = store.import_layer(&chain, blob, diff_id)?;
        chain.push(id);
    }
    solver::remember_chain(store, diff_ids, &chain)?;
    Ok(chain)
}

impl Engine {
    /// Pulls `reference` for `platform` into the store and names it `reference` (see the
    /// module docs). A tag is also pinned, so builds `FROM` it use this manifest until the
    /// next pull or `build --pull`.
    ///
    /// Cancellation (dropping the future) leaves downloaded blobs for garbage collection and
    /// the name unchanged. Concurrent pulls in one process are safe.
    pub async fn pull_image(
        &self,
        reference: &Reference,
        platform: &Platform,
        progress: &(dyn Fn(TransferProgress) + Send + Sync),
    ) -> Result<PullOutcome, EngineError> {
        let platform = platform.clone().normalized();
        let resolved = self.client.resolve_image(reference, &platform).await?;
        let found = resolved.config.platform();
        if !platform.matches(&found) {
            return Err(ImageError::PlatformMismatch {
                reference: reference.to_string(),
                wanted: platform.to_string(),
                found: found.to_string(),
            }
            .into());
        }
        let content = self.store.content();
        let store_err = |e: cache::ContentError| EngineError::Store(e.into());
        content.write_bytes(&resolved.manifest.bytes).map_err(store_err)?;
        let config_digest = content.write_bytes(&resolved.config_bytes).map_err(store_err)?;
        let manifest = Descriptor::for_bytes(resolved.manifest.media_type.clone(), &resolved.manifest.bytes);

        let fetches = resolved.parsed.layers.iter().map(|layer| self.fetch_layer(reference, layer, progress));
        for r in futures::future::join_all(fetches).await {
            r?;
        }
        let store = self.store.clone();
        let (parsed, config) = (resolved.parsed.clone(), resolved.config.clone());
        tokio::task::spawn_blocking(move || unpack_layers(&store, &parsed, &config))
            .await
            .map_err(|e| EngineError::Invalid(format!("layer unpack task failed: {e}")))??;

        let name = reference.to_string();
        let before = self.store.meta().get_image(&name)?;
        self.name_image(reference, &manifest, vec![found])?;
        let request = ImageRequest { reference: reference.clone(), platform };
        self.remember_resolved(&request, &manifest.digest, &config_digest)?;
        let digest = resolved.index.as_ref().map_or_else(|| manifest.digest.clone(), |i| i.digest.clone());
        Ok(PullOutcome {
            name,
            updated: before.is_none_or(|b| b.manifest.digest != manifest.digest),
            manifest,
            digest,
            id: config_digest,
        })
    }

    /// Downloads one layer blob unless the content store has it.
    async fn fetch_layer(
        &self,
        reference: &Reference,
        layer: &Descriptor,
        progress: &(dyn Fn(TransferProgress) + Send + Sync),
    ) -> Result<(), EngineError> {
        let content = self.store.content();
        let store_err = |e: cache::ContentError| EngineError::Store(e.into());
        if content.contains(&layer.digest) {
            progress(TransferProgress::Layer {
                digest: layer.digest.clone(),
                status: LayerStatus::AlreadyExists,
            });
            return Ok(());
        }
        let mut writer = content.writer().map_err(store_err)?;
        let (digest, total) = (layer.digest.clone(), layer.size);
        let report =
            |current: u64| progress(TransferProgress::Bytes { digest: digest.clone(), current, total });
        self.client.get_blob(reference, layer, &mut writer, &report).await?;
        writer.commit(Some(&layer.digest)).map_err(store_err)?;
        progress(TransferProgress::Layer { digest: layer.digest.clone(), status: LayerStatus::Downloaded });
        Ok(())
    }
}
