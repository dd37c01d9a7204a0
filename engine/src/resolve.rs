//! Resolving base images: a tag becomes a pinned manifest digest and a config. The pin is
//! remembered in the store, so a rebuild does not ask the registry again unless `--pull`
//! is given (or the image was never resolved here).

use crate::EngineError;
use frontend::lower::{BaseImage, ImageRequest};
use registry::{Digest, ImageConfig};
use serde::{Deserialize, Serialize};
use solver::progress::ProgressSink;
use std::time::Instant;

const PIN_NAMESPACE: &str = "resolved-image";

#[derive(Serialize, Deserialize)]
struct Pin {
    manifest: Digest,
    config: Digest,
}

fn pin_key(req: &ImageRequest) -> String {
    format!("{}|{}", req.reference, req.platform)
}

impl crate::Engine {
    /// Resolves one base image (see the module docs).
    pub(crate) async fn resolve_base(
        &self,
        req: &ImageRequest,
        pull: bool,
        progress: &ProgressSink,
    ) -> Result<BaseImage, EngineError> {
        let meta = self.store.meta();
        let content = self.store.content();
        if !pull
            && let Some(raw) = meta.get_kv(PIN_NAMESPACE, &pin_key(req))?
            && let Ok(pin) = serde_json::from_slice::<Pin>(&raw)
            && content.contains(&pin.manifest)
            && let Ok(bytes) = content.read(&pin.config)
            && let Ok(config) = serde_json::from_slice::<ImageConfig>(&bytes)
        {
            return Ok(BaseImage { pinned: req.reference.with_digest(pin.manifest), config });
        }
        // Images in the local store are used as they are, like docker does with its image
        // store; `--pull` asks the registry instead.
        if !pull && let Some(found) = self.local_image(req)? {
            return Ok(found);
        }
        let step = format!("resolve:{}", pin_key(req));
        let name = format!("[internal] load metadata for {}", req.reference);
        progress.started(&step, &name);
        let start = Instant::now();
        let resolved = match self.client.resolve_image(&req.reference, &req.platform).await {
            Ok(r) => r,
            Err(e) => {
                progress.failed(&step, e.to_string());
                return Err(e.into());
            }
        };
        let manifest = content.write_bytes(&resolved.manifest.bytes).map_err(cache::StoreError::from)?;
        let config = content.write_bytes(&resolved.config_bytes).map_err(cache::StoreError::from)?;
        if let Some(index) = &resolved.index {
            content.write_bytes(&index.bytes).map_err(cache::StoreError::from)?;
        }
        self.remember_resolved(req, &manifest, &config)?;
        progress.done(&step, start, Default::default());
        Ok(BaseImage { pinned: req.reference.with_digest(manifest), config: resolved.config })
    }
}

impl crate::Engine {
    /// Every base image resolved on this store, by name, with the manifest it is pinned to
    /// (where a pushed image's base layers may already be, to be mounted).
    pub(crate) fn resolved_bases(&self) -> Vec<(registry::Reference, Digest)> {
        let Ok(pins) = self.store.meta().list_kv(PIN_NAMESPACE) else { return Vec::new() };
        pins.into_iter()
            .filter_map(|(key, raw)| {
                let reference = key.split_once('|')?.0.parse().ok()?;
                let pin = serde_json::from_slice::<Pin>(&raw).ok()?;
                Some((reference, pin.manifest))
            })
            .collect()
    }

    /// Pins `req` to `manifest` (whose config is `config`), so builds use it without asking
    /// the registry (also used by `rbuild pull`).
    pub(crate) fn remember_resolved(
        &self,
        req: &ImageRequest,
        manifest: &Digest,
        config: &Digest,
    ) -> Result<(), EngineError> {
        let pin = Pin { manifest: manifest.clone(), config: config.clone() };
        let value = serde_json::to_vec(&pin).expect("pins serialize");
        self.store.meta().put_kv(PIN_NAMESPACE, &pin_key(req), &value)?;
        Ok(())
    }

    /// The image named `req.reference` in the local store, for `req.platform`.
    fn local_image(&self, req: &ImageRequest) -> Result<Option<BaseImage>, EngineError> {
        let mut name = req.reference.clone();
        name.digest = None;
        let Some(record) = self.store.meta().get_image(&name.to_string())? else { return Ok(None) };
        if req.reference.digest.as_ref().is_some_and(|d| *d != record.manifest.digest) {
            return Ok(None);
        }
        let content = self.store.content();
        let Ok(bytes) = content.read(&record.manifest.digest) else { return Ok(None) };
        let manifest = match registry::AnyManifest::parse(Some(&record.manifest.media_type), &bytes) {
            Ok(registry::AnyManifest::Image(m)) => m,
            _ => return Ok(None),
        };
        let Ok(config_bytes) = content.read(&manifest.config.digest) else { return Ok(None) };
        let Ok(config) = serde_json::from_slice::<ImageConfig>(&config_bytes) else { return Ok(None) };
        if !req.platform.matches(&config.platform()) {
            return Ok(None);
        }
        Ok(Some(BaseImage { pinned: req.reference.with_digest(record.manifest.digest), config }))
    }
}
