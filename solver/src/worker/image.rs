//! `Source::Image`: make sure every layer of a pinned image is in the store.
//!
//! Layers are identified by their OCI chain ID (the digest of the parent's chain ID and the
//! layer's diff ID), so two images sharing a base share its layer directories.

use super::{LocalWorker, Ref, store_err};
use crate::error::SolveError;
use crate::ir::ImageSource;
use crate::progress::Event;
use crate::scheduler::Step;
use cache::LayerId;
use registry::{AnyManifest, Descriptor, Digest, ImageConfig, MediaType};

const CHAIN_NAMESPACE: &str = "layer-by-chain-id";

/// The OCI chain ID of each layer prefix.
fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => Digest::of_bytes(format!("{parent} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// Remembers that `chain` (base first) holds the layers with `diff_ids`, so that an image
/// made of them (a locally built one used in `FROM`, or one pushed and pulled back) reuses
/// the layer directories instead of unpacking its blobs again.
pub fn remember_chain(
    store: &cache::Store,
    diff_ids: &[Digest],
    chain: &[LayerId],
) -> Result<(), cache::StoreError> {
    for (chain_id, layer) in chain_ids(diff_ids).iter().zip(chain) {
        store.meta().put_kv(CHAIN_NAMESPACE, chain_id.as_str(), layer.to_string().as_bytes())?;
    }
    Ok(())
}

/// Reads a manifest or config blob from the store, fetching it by digest if absent.
async fn blob_bytes(
    w: &LocalWorker,
    step: &Step,
    image: &ImageSource,
    desc: &Descriptor,
) -> Result<Vec<u8>, SolveError> {
    if let Ok(bytes) = w.store.content().read(&desc.digest) {
        return Ok(bytes);
    }
    if desc.media_type.is_manifest() || desc.media_type.is_index() {
        let raw = w
            .client
            .get_manifest(&image.reference.with_digest(desc.digest.clone()))
            .await
            .map_err(|e| SolveError::step(&step.name, e.to_string(), e))?;
        w.store
            .content()
            .write_bytes(&raw.bytes)
            .map_err(|e| SolveError::step(&step.name, e.to_string(), e))?;
        return Ok(raw.bytes);
    }
    fetch_blob(w, step, image, desc).await?;
    w.store.content().read(&desc.digest).map_err(|e| SolveError::step(&step.name, e.to_string(), e))
}

async fn fetch_blob(
    w: &LocalWorker,
    step: &Step,
    image: &ImageSource,
    desc: &Descriptor,
) -> Result<(), SolveError> {
    if w.store.content().contains(&desc.digest) {
        return Ok(());
    }
    let mut writer =
        w.store.content().writer().map_err(|e| SolveError::step(&step.name, e.to_string(), e))?;
    let item = format!("{} {}", "sha256", &desc.digest.hex()[..12]);
    let progress = step.progress.clone();
    let total = desc.size;
    let (id, item2) = (step.id.clone(), item.clone());
    let report = move |n: u64| {
        progress.send(Event::Transfer {
            step: id.clone(),
            item: item2.clone(),
            current: n,
            total: Some(total),
        })
    };
    let fetch = w.client.get_blob(&image.reference, desc, &mut writer, &report);
    tokio::select! {
        r = fetch => r.map_err(|e| SolveError::step(&step.name, e.to_string(), e))?,
        _ = step.cancel.cancelled() => return Err(SolveError::Cancelled),
    }
    writer.commit(Some(&desc.digest)).map_err(|e| SolveError::step(&step.name, e.to_string(), e))?;
    step.progress.send(Event::Transfer { step: step.id.clone(), item, current: total, total: Some(total) });
    Ok(())
}

/// Pulls (what is missing of) `image` and returns its layer chain.
pub async fn pull(w: &LocalWorker, step: &Step, image: &ImageSource) -> Result<Ref, SolveError> {
    let digest = image.reference.digest.clone().ok_or_else(|| {
        SolveError::Internal(format!("image source {} is not pinned to a digest", image.reference))
    })?;
    let manifest_desc = Descriptor::for_bytes(MediaType::OciManifest, &[]);
    let manifest_desc = Descriptor { digest, size: 0, ..manifest_desc };
    let bytes = blob_bytes(w, step, image, &manifest_desc).await?;
    let manifest = match AnyManifest::parse(None, &bytes) {
        Ok(AnyManifest::Image(m)) => m,
        Ok(AnyManifest::Index(_)) => {
            return Err(SolveError::Internal(format!(
                "{} is pinned to an index, not a manifest",
                image.reference
            )));
        }
        Err(e) => return Err(SolveError::step(&step.name, format!("{}: {e}", image.reference), e)),
    };
    let config_bytes = blob_bytes(w, step, image, &manifest.config).await?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| SolveError::step(&step.name, format!("image config of {}: {e}", image.reference), e))?;
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(SolveError::msg(
            &step.name,
            format!(
                "image {} is inconsistent: {} layers but {} diff_ids",
                image.reference,
                manifest.layers.len(),
                diff_ids.len()
            ),
        ));
    }
    let ids = chain_ids(diff_ids);
    let meta = w.store.meta();
    let known = |chain_id: &Digest| -> Result<Option<LayerId>, SolveError> {
        let raw = meta.get_kv(CHAIN_NAMESPACE, chain_id.as_str()).map_err(|e| store_err(&step.name, e))?;
        Ok(raw
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse().ok())
            .filter(|id: &LayerId| matches!(meta.layer(id), Ok(Some(_)))))
    };
    // Download every missing blob concurrently, then unpack in order.
    let mut missing = Vec::new();
    for (i, desc) in manifest.layers.iter().enumerate() {
        if known(&ids[i])?.is_none() {
            missing.push(desc.clone());
        }
    }
    let fetches = missing.iter().map(|d| fetch_blob(w, step, image, d));
    for r in futures::future::join_all(fetches).await {
        r?;
    }
    let mut chain: Vec<LayerId> = Vec::with_capacity(ids.len());
    for (i, desc) in manifest.layers.iter().enumerate() {
        if let Some(id) = known(&ids[i])? {
            chain.push(id);
            continue;
        }
        if step.cancel.is_cancelled() {
            return Err(SolveError::Cancelled);
        }
        let store = w.store.clone();
        let (parent, desc, diff_id) = (chain.clone(), desc.clone(), diff_ids[i].clone());
        let id = tokio::task::spawn_blocking(move || store.import_layer(&parent, &desc, &diff_id))
            .await
            .map_err(|e| SolveError::Internal(format!("layer import task: {e}")))?
            .map_err(|e| {
                SolveError::step(&step.name, format!("unpacking layer of {}: {e}", image.reference), e)
            })?;
        meta.put_kv(CHAIN_NAMESPACE, ids[i].as_str(), id.to_string().as_bytes())
            .map_err(|e| store_err(&step.name, e))?;
        chain.push(id);
    }
    Ok(Ref::Chain(chain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_oci_definition() {
        let a = Digest::of_bytes(b"a");
        let b = Digest::of_bytes(b"b");
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], Digest::of_bytes(format!("{a} {b}").as_bytes()));
    }
}
