//! The build-cache exchange format of `--cache-to` / `--cache-from`, in the spirit of
//! BuildKit's `application/vnd.buildkit.cacheconfig.v0`.
//!
//! A cache export is an OCI image manifest (optionally wrapped in an image index) whose
//! `layers` are the layer blobs and whose config blob is a [`CacheConfig`] with media type
//! [`MEDIA_TYPE`]:
//!
//! - `layers`: one entry per (blob, parent) pair: the blob digest, the index of the layer
//!   below it (`parentIndex`, `-1` for a base layer), the diff id (digest of the
//!   uncompressed tar) and the layer's creation time (image history times follow it).
//! - `records`: one entry per cache key: `digest` is rbuild's cache key (not BuildKit's),
//!   `inputs` links to the records of the step's inputs (informational: rbuild keys already
//!   contain their inputs), and `results` holds the top layer of the step's filesystem
//!   (`layer: -1` for an empty filesystem); the chain is followed through `parentIndex`.
//!
//! This module only builds and reads the document; moving blobs is the caller's job.

use crate::meta::LayerBlob;
use registry::{Descriptor, Digest};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Media type of the config blob of a cache export.
pub const MEDIA_TYPE: &str = "application/vnd.rbuild.cacheconfig.v0+json";

/// The image-config field holding an inline cache (`--cache-to type=inline`), see
/// `registry::ImageConfig::inline_cache`.
pub const INLINE_KEY: &str = "rbuild.cache.v0";

/// Version of the document; another value is rejected on import.
pub const VERSION: u32 = 0;

/// Why a cache config cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CacheConfigError {
    /// The document is not valid JSON of the expected shape.
    #[error("invalid cache config: {0}")]
    Parse(String),
    /// The document has another version.
    #[error("unsupported cache config version {0} (this rbuild reads version {VERSION})")]
    Version(u32),
    /// An index points outside its list or to a later layer.
    #[error("invalid cache config: {0}")]
    Link(String),
    /// An image config without an inline cache.
    #[error("the image has no inline build cache (build it with --cache-to type=inline)")]
    NoInlineCache,
    /// A layer's blob is not among the manifest's layers.
    #[error("invalid cache config: layer blob {0} is not in the cache manifest")]
    MissingBlob(Digest),
}

/// The cache config document (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheConfig {
    /// Format version ([`VERSION`]).
    pub version: u32,
    /// Layer blobs with their parents.
    pub layers: Vec<CacheLayer>,
    /// Cache records.
    pub records: Vec<CacheConfigRecord>,
}

/// One layer of a cache export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheLayer {
    /// The compressed blob (listed in the manifest's layers).
    pub blob: Digest,
    /// Index of the layer below, `-1` for a base layer.
    #[serde(rename = "parentIndex")]
    pub parent_index: i64,
    /// Digest of the uncompressed tar.
    #[serde(rename = "diffId")]
    pub diff_id: Digest,
    /// When the layer was made (seconds since the Unix epoch).
    #[serde(rename = "createdAt")]
    pub created_at: i64,
}

/// One cache record: a key and the filesystem it gives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheConfigRecord {
    /// The cache key.
    pub digest: Digest,
    /// What produced it (the step name).
    #[serde(default)]
    pub description: String,
    /// Per input of the step, links to the records of that input.
    #[serde(default)]
    pub inputs: Vec<Vec<CacheInputLink>>,
    /// The result (one entry).
    pub results: Vec<CacheResult>,
}

/// A link from a record to the record of one of its inputs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheInputLink {
    /// Index into `records`.
    pub link: usize,
}

/// The result of a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheResult {
    /// Index of the top layer in `layers`, `-1` for an empty filesystem.
    pub layer: i64,
}

/// A layer as an exporter hands it in: its blob and when it was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportLayer {
    /// The blob (its descriptor goes into the manifest).
    pub blob: LayerBlob,
    /// When the layer was made (seconds since the Unix epoch).
    pub created_unix: i64,
}

/// A record read back: the layers of its filesystem, base first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedRecord {
    /// What produced it.
    pub description: String,
    /// The filesystem, base first.
    pub layers: Vec<ImportedLayer>,
}

/// One layer of an [`ImportedRecord`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedLayer {
    /// The blob as the manifest lists it.
    pub descriptor: Descriptor,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// When the layer was made.
    pub created_unix: i64,
}

/// Builds a [`CacheConfig`] and the manifest's layer list.
#[derive(Debug, Default)]
pub struct CacheConfigBuilder {
    layers: Vec<CacheLayer>,
    layer_index: HashMap<(Digest, i64), usize>,
    descriptors: Vec<Descriptor>,
    records: Vec<(Digest, String, Vec<Vec<Digest>>, i64)>,
}

impl CacheConfigBuilder {
    /// An empty builder.
    pub fn new() -> CacheConfigBuilder {
        CacheConfigBuilder::default()
    }

    /// Adds the record `key` whose filesystem is `chain` (base first); `inputs` are the keys
    /// of the step's inputs, per input. Adding a key twice keeps the first.
    pub fn add(&mut self, key: &Digest, description: &str, chain: &[ExportLayer], inputs: Vec<Vec<Digest>>) {
        if self.records.iter().any(|r| &r.0 == key) {
            return;
        }
        let mut parent: i64 = -1;
        for layer in chain {
            let d = &layer.blob.descriptor;
            let slot = (d.digest.clone(), parent);
            let index = match self.layer_index.get(&slot) {
                Some(i) => *i,
                None => {
                    self.layers.push(CacheLayer {
                        blob: d.digest.clone(),
                        parent_index: parent,
                        diff_id: layer.blob.diff_id.clone(),
                        created_at: layer.created_unix,
                    });
                    if !self.descriptors.iter().any(|x| x.digest == d.digest) {
                        self.descriptors.push(d.clone());
                    }
                    self.layer_index.insert(slot, self.layers.len() - 1);
                    self.layers.len() - 1
                }
            };
            parent = index as i64;
        }
        self.records.push((key.clone(), description.to_string(), inputs, parent));
    }

    /// Number of records added.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when no record was added.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The document and the distinct layer blobs (for the manifest), in first-use order.
    /// Records are sorted by key so the same cache gives the same bytes.
    pub fn finish(mut self) -> (CacheConfig, Vec<Descriptor>) {
        self.records.sort_by(|a, b| a.0.cmp(&b.0));
        let position: HashMap<Digest, usize> =
            self.records.iter().enumerate().map(|(i, r)| (r.0.clone(), i)).collect();
        let records = self
            .records
            .into_iter()
            .map(|(digest, description, inputs, top)| CacheConfigRecord {
                digest,
                description,
                inputs: inputs
                    .iter()
                    .map(|keys| {
                        keys.iter()
                            .filter_map(|k| position.get(k))
                            .map(|&link| CacheInputLink { link })
                            .collect()
                    })
                    .collect(),
                results: vec![CacheResult { layer: top }],
            })
            .collect();
        (CacheConfig { version: VERSION, layers: self.layers, records }, self.descriptors)
    }
}

impl CacheConfig {
    /// Parses and checks a document.
    pub fn parse(bytes: &[u8]) -> Result<CacheConfig, CacheConfigError> {
        let config: CacheConfig =
            serde_json::from_slice(bytes).map_err(|e| CacheConfigError::Parse(e.to_string()))?;
        if config.version != VERSION {
            return Err(CacheConfigError::Version(config.version));
        }
        Ok(config)
    }

    /// The inline cache of an image config (the [`INLINE_KEY`] field).
    pub fn from_image_config(bytes: &[u8]) -> Result<CacheConfig, CacheConfigError> {
        let config: registry::ImageConfig =
            serde_json::from_slice(bytes).map_err(|e| CacheConfigError::Parse(e.to_string()))?;
        let value = config.inline_cache.ok_or(CacheConfigError::NoInlineCache)?;
        let config: CacheConfig =
            serde_json::from_value(value).map_err(|e| CacheConfigError::Parse(e.to_string()))?;
        if config.version != VERSION {
            return Err(CacheConfigError::Version(config.version));
        }
        Ok(config)
    }

    /// The document as a JSON value (for an image config's [`INLINE_KEY`] field).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// The canonical bytes of the document.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Every record with its layers resolved against `blobs` (the manifest's layers).
    pub fn records(
        &self,
        blobs: &[Descriptor],
    ) -> Result<BTreeMap<Digest, ImportedRecord>, CacheConfigError> {
        let by_digest: HashMap<&Digest, &Descriptor> = blobs.iter().map(|d| (&d.digest, d)).collect();
        // Chains of every layer; a parent must come before its child, so there are no cycles.
        let mut chains: Vec<Vec<ImportedLayer>> = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let descriptor = by_digest
                .get(&layer.blob)
                .ok_or_else(|| CacheConfigError::MissingBlob(layer.blob.clone()))?;
            let mut chain = match layer.parent_index {
                -1 => Vec::new(),
                p if p >= 0 && (p as usize) < i => chains[p as usize].clone(),
                p => return Err(CacheConfigError::Link(format!("layer {i} has parent {p}"))),
            };
            chain.push(ImportedLayer {
                descriptor: (*descriptor).clone(),
                diff_id: layer.diff_id.clone(),
                created_unix: layer.created_at,
            });
            chains.push(chain);
        }
        let mut out = BTreeMap::new();
        for (i, record) in self.records.iter().enumerate() {
            let [result] = record.results.as_slice() else {
                return Err(CacheConfigError::Link(format!(
                    "record {i} has {} results",
                    record.results.len()
                )));
            };
            let layers = match result.layer {
                -1 => Vec::new(),
                l if l >= 0 && (l as usize) < chains.len() => chains[l as usize].clone(),
                l => return Err(CacheConfigError::Link(format!("record {i} points to layer {l}"))),
            };
            out.entry(record.digest.clone())
                .or_insert(ImportedRecord { description: record.description.clone(), layers });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry::{Compression, MediaType};

    fn layer(content: &str, created: i64) -> ExportLayer {
        let descriptor = Descriptor::for_bytes(MediaType::OciLayerGzip, content.as_bytes());
        let diff_id = Digest::of_bytes(format!("tar of {content}").as_bytes());
        ExportLayer {
            blob: LayerBlob { compression: Compression::Gzip, descriptor, diff_id },
            created_unix: created,
        }
    }

    #[test]
    fn records_round_trip_with_shared_layers() {
        let (base, a, b) = (layer("base", 1), layer("a", 2), layer("b", 3));
        let (k1, k2, k3, k4) =
            (Digest::of_bytes(b"1"), Digest::of_bytes(b"2"), Digest::of_bytes(b"3"), Digest::of_bytes(b"4"));
        let mut builder = CacheConfigBuilder::new();
        builder.add(&k1, "FROM", std::slice::from_ref(&base), vec![]);
        builder.add(&k2, "RUN a", &[base.clone(), a.clone()], vec![vec![k1.clone()]]);
        builder.add(&k3, "RUN b", &[base.clone(), b.clone()], vec![vec![k1.clone()]]);
        // `a` on top of `b` is another layer entry (another parent), with the same blob.
        builder.add(&k4, "merge", &[base.clone(), b.clone(), a.clone()], vec![]);
        builder.add(&k4, "again", &[], vec![]);
        assert_eq!(builder.len(), 4);
        let (config, blobs) = builder.finish();
        assert_eq!(blobs.len(), 3);
        assert_eq!(config.layers.len(), 4);
        let parsed = CacheConfig::parse(&config.to_bytes()).unwrap();
        assert_eq!(parsed, config);
        let records = parsed.records(&blobs).unwrap();
        let chain = |k: &Digest| -> Vec<Digest> {
            records[k].layers.iter().map(|l| l.descriptor.digest.clone()).collect()
        };
        let d = |l: &ExportLayer| l.blob.descriptor.digest.clone();
        assert_eq!(chain(&k1), vec![d(&base)]);
        assert_eq!(chain(&k2), vec![d(&base), d(&a)]);
        assert_eq!(chain(&k4), vec![d(&base), d(&b), d(&a)]);
        assert_eq!(records[&k4].description, "merge");
        assert_eq!(records[&k2].layers[1].created_unix, 2);
        let r2 = config.records.iter().find(|r| r.digest == k2).unwrap();
        let r1 = config.records.iter().position(|r| r.digest == k1).unwrap();
        assert_eq!(r2.inputs, vec![vec![CacheInputLink { link: r1 }]]);
    }

    #[test]
    fn empty_filesystem_and_bad_documents() {
        let k = Digest::of_bytes(b"k");
        let mut builder = CacheConfigBuilder::new();
        builder.add(&k, "scratch", &[], vec![]);
        let (config, blobs) = builder.finish();
        assert!(config.records(&blobs).unwrap()[&k].layers.is_empty());

        let base = layer("base", 1);
        let mut builder = CacheConfigBuilder::new();
        builder.add(&k, "x", std::slice::from_ref(&base), vec![]);
        let (config, _) = builder.finish();
        assert_eq!(
            config.records(&[]),
            Err(CacheConfigError::MissingBlob(base.blob.descriptor.digest.clone()))
        );
        let mut cyclic = config.clone();
        cyclic.layers[0].parent_index = 0;
        assert!(matches!(
            cyclic.records(std::slice::from_ref(&base.blob.descriptor)),
            Err(CacheConfigError::Link(_))
        ));
        let mut future = config;
        future.version = 7;
        assert_eq!(CacheConfig::parse(&future.to_bytes()), Err(CacheConfigError::Version(7)));
        assert!(matches!(CacheConfig::parse(b"{}"), Err(CacheConfigError::Parse(_))));
    }

    #[test]
    fn inline_cache_travels_in_the_image_config() {
        let k = Digest::of_bytes(b"k");
        let mut builder = CacheConfigBuilder::new();
        builder.add(&k, "RUN x", &[layer("base", 1)], vec![]);
        let (config, _) = builder.finish();
        let image = registry::ImageConfig { inline_cache: Some(config.to_value()), ..Default::default() };
        let bytes = serde_json::to_vec(&image).unwrap();
        assert!(String::from_utf8_lossy(&bytes).contains(&format!("\"{INLINE_KEY}\"")));
        assert_eq!(CacheConfig::from_image_config(&bytes), Ok(config));
        let plain = serde_json::to_vec(&registry::ImageConfig::default()).unwrap();
        assert_eq!(CacheConfig::from_image_config(&plain), Err(CacheConfigError::NoInlineCache));
    }
}
