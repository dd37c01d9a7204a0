//! Image assembly: the config and manifest blobs of one image, and the index over several.
//!
//! Media types: OCI by default, as BuildKit's image exporter does since v0.31 (moby/buildkit
//! #6824, "all image results now default to using OCI media types"); `oci_media_types =
//! false` gives Docker schema 2 types. zstd layers have no Docker media type, so an image
//! with a zstd layer is always OCI (BuildKit forces OCI types for zstd the same way).
//! Manifests and indexes are written indented like BuildKit's; the config compactly. The
//! exact bytes hashed are returned and stored: nothing is re-serialised later.

use crate::ExportError;
use cache::ContentStore;
use registry::{Compression, Descriptor, History, ImageConfig, ImageIndex, ImageManifest, MediaType};
use std::collections::BTreeMap;

/// Comment of history entries the exporter adds for layers the caller gave no history for.
pub const FILLER_HISTORY_COMMENT: &str = "rbuild.exporter.image.v0";

/// The blobs of one written image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenImage {
    /// The manifest, with the config's platform.
    pub manifest: Descriptor,
    /// The config blob.
    pub config: Descriptor,
    /// The manifest bytes exactly as stored and hashed.
    pub manifest_bytes: Vec<u8>,
    /// The config bytes exactly as stored and hashed.
    pub config_bytes: Vec<u8>,
}

/// True when an image with these layers is written with OCI media types.
pub fn uses_oci_media_types(layers: &[Descriptor], oci_media_types: bool) -> bool {
    oci_media_types || layers.iter().any(|l| l.media_type.layer_compression() == Some(Compression::Zstd))
}

/// Builds the config and manifest blobs of an image into the store and returns the manifest
/// descriptor (carrying the config's platform).
///
/// `config.rootfs.diff_ids` must list one diff ID per entry of `layers` (base first). The
/// history is normalised as BuildKit does: entries beyond the layers are marked empty, and
/// missing ones are appended. `created` defaults to the last history entry's time. Layer
/// media types are switched to the chosen family (same bytes). The layer blobs themselves
/// are not read; an output that needs them reports a missing one.
pub fn write_image(
    store: &ContentStore,
    config: &ImageConfig,
    layers: &[Descriptor],
    oci_media_types: bool,
) -> Result<WrittenImage, ExportError> {
    if config.rootfs.diff_ids.len() != layers.len() {
        return Err(ExportError::invalid(format!(
            "image config lists {} diff IDs for {} layers",
            config.rootfs.diff_ids.len(),
            layers.len()
        )));
    }
    if let Some(l) = layers.iter().find(|l| !l.media_type.is_layer()) {
        return Err(ExportError::invalid(format!("{} ({}) is not a layer", l.digest, l.media_type)));
    }
    let oci = uses_oci_media_types(layers, oci_media_types);
    let mut config = config.clone();
    config.rootfs.kind = "layers".into();
    config.history = normalize_history(std::mem::take(&mut config.history), layers.len(), &config.created);
    if config.created.is_none() {
        config.created = config.history.iter().rev().find_map(|h| h.created.clone());
    }
    let config_bytes = serde_json::to_vec(&config).map_err(|e| ExportError::invalid(e.to_string()))?;
    let config_type = if oci { MediaType::OciConfig } else { MediaType::DockerConfig };
    let config_desc = Descriptor::for_bytes(config_type, &config_bytes);

    let layers = layers
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l.platform = None;
            if let Some(c) = known_layer_compression(&l.media_type) {
                l.media_type = MediaType::layer(c, oci);
            }
            l
        })
        .collect();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(if oci { MediaType::OciManifest } else { MediaType::DockerManifest }),
        config: config_desc.clone(),
        layers,
        annotations: BTreeMap::new(),
    };
    let manifest_bytes =
        serde_json::to_vec_pretty(&manifest).map_err(|e| ExportError::invalid(e.to_string()))?;
    let mut manifest_desc =
        Descriptor::for_bytes(manifest.media_type.clone().unwrap_or(MediaType::OciManifest), &manifest_bytes);
    manifest_desc.platform = Some(config.platform());

    store.write_bytes(&config_bytes)?;
    store.write_bytes(&manifest_bytes)?;
    Ok(WrittenImage { manifest: manifest_desc, config: config_desc, manifest_bytes, config_bytes })
}

/// Builds an index over per-platform manifests (multi-platform images) into the store.
/// Every entry must be an image manifest with a platform.
pub fn write_index(
    store: &ContentStore,
    manifests: &[Descriptor],
    oci_media_types: bool,
) -> Result<Descriptor, ExportError> {
    if manifests.is_empty() {
        return Err(ExportError::invalid("an image index needs at least one manifest"));
    }
    for m in manifests {
        if !m.media_type.is_manifest() {
            return Err(ExportError::invalid(format!(
                "{} ({}) is not an image manifest",
                m.digest, m.media_type
            )));
        }
        if m.platform.is_none() {
            return Err(ExportError::invalid(format!("manifest {} has no platform", m.digest)));
        }
    }
    let media_type = if oci_media_types { MediaType::OciIndex } else { MediaType::DockerManifestList };
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(media_type.clone()),
        manifests: manifests.to_vec(),
        annotations: BTreeMap::new(),
    };
    let bytes = serde_json::to_vec_pretty(&index).map_err(|e| ExportError::invalid(e.to_string()))?;
    store.write_bytes(&bytes)?;
    Ok(Descriptor::for_bytes(media_type, &bytes))
}

/// The compression of the layer media types that exist in both families (and zstd); `None`
/// for other layer types (non-distributable, estargz, ...), which are kept verbatim.
fn known_layer_compression(m: &MediaType) -> Option<Compression> {
    match m {
        MediaType::OciLayer | MediaType::DockerLayer => Some(Compression::Uncompressed),
        MediaType::OciLayerGzip | MediaType::DockerLayerGzip => Some(Compression::Gzip),
        MediaType::OciLayerZstd => Some(Compression::Zstd),
        _ => None,
    }
}

/// BuildKit's `normalizeLayersAndHistory`: the non-empty history entries must match the
/// layers one to one.
fn normalize_history(mut history: Vec<History>, layers: usize, created: &Option<String>) -> Vec<History> {
    let mut seen = 0usize;
    for h in &mut history {
        if !h.empty_layer {
            if seen >= layers {
                h.empty_layer = true;
            } else {
                seen += 1;
            }
        }
    }
    for _ in seen..layers {
        history.push(History {
            created: created.clone(),
            created_by: Some("created by rbuild".into()),
            author: None,
            comment: Some(FILLER_HISTORY_COMMENT.into()),
            empty_layer: false,
        });
    }
    history
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry::Digest;

    fn layer(mt: MediaType, n: u8) -> Descriptor {
        Descriptor::for_bytes(mt, &[n])
    }

    fn config(diff_ids: usize) -> ImageConfig {
        let mut c = ImageConfig { architecture: "amd64".into(), os: "linux".into(), ..Default::default() };
        c.rootfs.diff_ids = (0..diff_ids).map(|i| Digest::of_bytes(&[i as u8])).collect();
        c
    }

    #[test]
    fn media_type_families() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let cases = [
            (vec![MediaType::OciLayerGzip], false, MediaType::DockerManifest, MediaType::DockerLayerGzip),
            (vec![MediaType::DockerLayerGzip], true, MediaType::OciManifest, MediaType::OciLayerGzip),
            (vec![MediaType::DockerLayer], true, MediaType::OciManifest, MediaType::OciLayer),
            (vec![MediaType::OciLayerZstd], false, MediaType::OciManifest, MediaType::OciLayerZstd),
        ];
        for (types, oci, want_manifest, want_layer) in cases {
            let layers: Vec<_> = types.into_iter().map(|t| layer(t, 1)).collect();
            let img = write_image(&store, &config(layers.len()), &layers, oci).unwrap();
            assert_eq!(img.manifest.media_type, want_manifest);
            let m: ImageManifest = serde_json::from_slice(&img.manifest_bytes).unwrap();
            assert_eq!(m.layers[0].media_type, want_layer);
            assert_eq!(store.read(&img.manifest.digest).unwrap(), img.manifest_bytes);
            assert_eq!(store.read(&img.config.digest).unwrap(), img.config_bytes);
            assert_eq!(img.manifest.platform.as_ref().unwrap().architecture, "amd64");
        }
    }

    #[test]
    fn diff_id_count_must_match() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let err = write_image(&store, &config(2), &[layer(MediaType::OciLayerGzip, 1)], true).unwrap_err();
        assert!(err.to_string().contains("2 diff IDs for 1 layers"), "{err}");
    }

    #[test]
    fn history_normalisation_table() {
        let h =
            |empty: bool| History { created_by: Some("x".into()), empty_layer: empty, ..Default::default() };
        // (history, layers) -> expected empty_layer flags
        let cases: Vec<(Vec<History>, usize, Vec<bool>)> = vec![
            (vec![h(false), h(true)], 1, vec![false, true]),
            (vec![h(false), h(false), h(false)], 2, vec![false, false, true]),
            (vec![h(true)], 2, vec![true, false, false]),
            (vec![], 0, vec![]),
        ];
        for (history, layers, want) in cases {
            let got: Vec<bool> =
                normalize_history(history, layers, &None).iter().map(|h| h.empty_layer).collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn index_requires_platforms() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let m = layer(MediaType::OciManifest, 1);
        assert!(write_index(&store, std::slice::from_ref(&m), true).is_err());
        let mut with = m;
        with.platform = Some("linux/arm64".parse().unwrap());
        let idx = write_index(&store, &[with], true).unwrap();
        assert_eq!(idx.media_type, MediaType::OciIndex);
        assert!(store.contains(&idx.digest));
    }
}
