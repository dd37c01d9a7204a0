//! Build-cache export and import (`--cache-to`, `--cache-from`), as docker buildx users
//! share a cache between CI machines through a registry or a directory.
//!
//! Export (after a successful build only): the cache records of the build's steps (all of
//! them with `mode=max`; with `mode=min` only those whose filesystem is part of a final
//! image) become a [`cache::cache_config::CacheConfig`] config blob plus the layer blobs,
//! under an OCI image manifest (optionally wrapped in an index). To a registry they go blobs
//! first, manifest last, so the tag never points at missing blobs; to a directory as an OCI
//! image layout.
//!
//! Import (before solving): the manifests and configs are read up front (a missing cache is
//! a warning); the layer blobs are fetched lazily, only for the topmost steps the build
//! would otherwise run, verified by digest, unpacked as layers and recorded as ordinary
//! cache records, so the next build hits locally.

use crate::{BuildRequest, Engine, EngineError};
use cache::cache_config::{self, CacheConfig, CacheConfigBuilder, ExportLayer, ImportedRecord};
use cache::{CacheRecord, LayerId};
use exporter::{Destination, LayerOptions};
use registry::{
    AnyManifest, Compression, Descriptor, Digest, ImageIndex, ImageManifest, MediaType, Reference,
};
use solver::ir::{Graph, Op, Source, VertexId};
use solver::key::CacheKey;
use solver::progress::{Event, ProgressSink};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Largest manifest or cache config accepted from a cache source.
const MAX_DOCUMENT: u64 = 64 << 20;

/// Where a build cache lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CacheLocation {
    /// A registry tag (`type=registry,ref=...`).
    Registry(Reference),
    /// An OCI image layout directory (`type=local,dest=...` / `src=...`).
    Local(PathBuf),
    /// Export only: the built image's config (`type=inline`, `mode=min`), read back with
    /// `--cache-from type=registry,ref=IMAGE`.
    Inline,
}

impl std::fmt::Display for CacheLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheLocation::Registry(r) => write!(f, "{r}"),
            CacheLocation::Local(p) => write!(f, "{}", p.display()),
            CacheLocation::Inline => f.write_str("inline (image config)"),
        }
    }
}

/// Which steps a cache export holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CacheMode {
    /// Only steps whose result is part of a final image (BuildKit's default).
    #[default]
    Min,
    /// Every step, intermediate stages included.
    Max,
}

/// One `--cache-to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheExport {
    /// Where to write it.
    pub location: CacheLocation,
    /// Which steps.
    pub mode: CacheMode,
    /// Compression of layers that have no blob yet.
    pub compression: Compression,
    /// OCI media types (else Docker's).
    pub oci_media_types: bool,
    /// One image manifest (else an image index wrapping it).
    pub image_manifest: bool,
    /// A failed export is a warning, not a failed build.
    pub ignore_error: bool,
}

impl CacheExport {
    /// The settings of an export whose only choice is its location (`type=inline`).
    pub fn inline_defaults() -> CacheExport {
        CacheExport {
            location: CacheLocation::Inline,
            mode: CacheMode::Min,
            compression: Compression::Gzip,
            oci_media_types: true,
            image_manifest: true,
            ignore_error: false,
        }
    }
}

/// One `--cache-from`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheImport {
    /// Where to read it.
    pub location: CacheLocation,
}

/// Why a cache could not be exported or imported.
#[derive(Debug, thiserror::Error)]
pub enum CacheIoError {
    /// A registry request failed.
    #[error("cache {location}: {source}")]
    Registry {
        /// The cache.
        location: String,
        /// The cause.
        source: Box<registry::RegistryError>,
    },
    /// Reading or writing a cache directory failed.
    #[error("cache {location}: {path}: {source}")]
    Io {
        /// The cache.
        location: String,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The cache's documents are not an rbuild cache.
    #[error("cache {location}: {reason}")]
    Invalid {
        /// The cache.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// The cache config is invalid.
    #[error("cache {location}: {source}")]
    Config {
        /// The cache.
        location: String,
        /// The cause.
        source: cache_config::CacheConfigError,
    },
    /// The store failed.
    #[error("cache {location}: {source}")]
    Store {
        /// The cache.
        location: String,
        /// The cause.
        source: cache::StoreError,
    },
    /// Writing the export failed.
    #[error("cache {location}: {source}")]
    Export {
        /// The cache.
        location: String,
        /// The cause.
        source: Box<exporter::ExportError>,
    },
}

/// The records of every `--cache-from`, by key (the first cache naming a key wins).
#[derive(Debug, Default)]
pub(crate) struct ImportedCache {
    sources: Vec<CacheLocation>,
    records: BTreeMap<Digest, (usize, ImportedRecord)>,
}

impl ImportedCache {
    /// True when no cache record was imported.
    pub(crate) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

fn invalid(location: &CacheLocation, reason: impl Into<String>) -> CacheIoError {
    CacheIoError::Invalid { location: location.to_string(), reason: reason.into() }
}

fn reg_err(location: &CacheLocation) -> impl Fn(registry::RegistryError) -> CacheIoError + '_ {
    move |e| CacheIoError::Registry { location: location.to_string(), source: Box::new(e) }
}

fn store_err(location: &CacheLocation) -> impl Fn(cache::StoreError) -> CacheIoError + '_ {
    move |e| CacheIoError::Store { location: location.to_string(), source: e }
}

fn io_err(location: &CacheLocation, path: &Path) -> impl Fn(std::io::Error) -> CacheIoError {
    let (location, path) = (location.to_string(), path.to_path_buf());
    move |source| CacheIoError::Io { location: location.clone(), path: path.clone(), source }
}

impl Engine {
    /// Reads the manifest and config of every `--cache-from` (no layer blobs). A missing
    /// cache, or one that cannot be read, is a warning: the build goes on without it.
    ///
    /// Cancellation: dropping the future stops the requests; nothing is stored.
    pub(crate) async fn read_cache_imports(
        &self,
        imports: &[CacheImport],
        progress: &ProgressSink,
    ) -> ImportedCache {
        let mut out = ImportedCache::default();
        for import in imports {
            let location = &import.location;
            match self.read_cache(location).await {
                Ok(Some(records)) => {
                    let source = out.sources.len();
                    out.sources.push(location.clone());
                    progress.send(Event::Note {
                        message: format!("importing cache from {location}: {} records", records.len()),
                    });
                    for (key, record) in records {
                        out.records.entry(key).or_insert((source, record));
                    }
                }
                Ok(None) => progress.send(Event::Warning {
                    message: format!("cache {location} not found: building without it"),
                }),
                Err(e) => progress
                    .send(Event::Warning { message: format!("failed to import {e}: building without it") }),
            }
        }
        out
    }

    /// The records of one cache, `None` when it does not exist.
    async fn read_cache(
        &self,
        location: &CacheLocation,
    ) -> Result<Option<BTreeMap<Digest, ImportedRecord>>, CacheIoError> {
        let Some(root) = self.read_document(location, None).await? else { return Ok(None) };
        // A cache manifest, an index wrapping one, or an image (or index of images) with an
        // inline cache in its config(s).
        let manifests: Vec<ImageManifest> = match AnyManifest::parse(Some(&root.0.media_type), &root.1) {
            Ok(AnyManifest::Image(m)) => vec![m],
            Ok(AnyManifest::Index(index)) => {
                let mut out = Vec::new();
                for entry in index.manifests.iter().filter(|d| d.media_type.is_manifest()) {
                    let Some((_, bytes)) = self.read_document(location, Some(entry)).await? else {
                        return Err(invalid(location, format!("manifest {} is missing", entry.digest)));
                    };
                    match AnyManifest::parse(Some(&entry.media_type), &bytes) {
                        Ok(AnyManifest::Image(m)) => out.push(m),
                        _ => {
                            return Err(invalid(
                                location,
                                format!("{} is not an image manifest", entry.digest),
                            ));
                        }
                    }
                }
                out
            }
            Err(e) => return Err(invalid(location, e.to_string())),
        };
        if manifests.is_empty() {
            return Err(invalid(location, "the index lists no manifest"));
        }
        let mut records = BTreeMap::new();
        for manifest in manifests {
            for (key, record) in self.manifest_records(location, &manifest).await? {
                records.entry(key).or_insert(record);
            }
        }
        Ok(Some(records))
    }

    /// The records of one manifest: a cache manifest, or an image with an inline cache.
    async fn manifest_records(
        &self,
        location: &CacheLocation,
        manifest: &ImageManifest,
    ) -> Result<BTreeMap<Digest, ImportedRecord>, CacheIoError> {
        let config_type = &manifest.config.media_type;
        let inline = matches!(config_type, MediaType::OciConfig | MediaType::DockerConfig);
        if !inline && config_type.as_str() != cache_config::MEDIA_TYPE {
            return Err(invalid(
                location,
                format!(
                    "not an rbuild build cache (config media type {config_type}, expected {} or an image)",
                    cache_config::MEDIA_TYPE
                ),
            ));
        }
        let Some((_, bytes)) = self.read_document(location, Some(&manifest.config)).await? else {
            return Err(invalid(location, format!("config {} is missing", manifest.config.digest)));
        };
        let config_err = |source| CacheIoError::Config { location: location.to_string(), source };
        let config = if inline {
            CacheConfig::from_image_config(&bytes).map_err(config_err)?
        } else {
            CacheConfig::parse(&bytes).map_err(config_err)?
        };
        config.records(&manifest.layers).map_err(config_err)
    }

    /// A small document of a cache: its root (`desc` = `None`: the tag, or the layout's
    /// first `index.json` entry) or the blob `desc`, digest-verified. `None` when absent.
    async fn read_document(
        &self,
        location: &CacheLocation,
        desc: Option<&Descriptor>,
    ) -> Result<Option<(Descriptor, Vec<u8>)>, CacheIoError> {
        if desc.is_some_and(|d| d.size > MAX_DOCUMENT) {
            return Err(invalid(location, "document too large"));
        }
        match (location, desc) {
            (CacheLocation::Registry(r), None) => match self.client.get_manifest(r).await {
                Ok(raw) => {
                    let d = Descriptor::for_bytes(raw.media_type.clone(), &raw.bytes);
                    Ok(Some((d, raw.bytes)))
                }
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(reg_err(location)(e)),
            },
            (CacheLocation::Registry(r), Some(d))
                if d.media_type.is_manifest() || d.media_type.is_index() =>
            {
                let raw = self
                    .client
                    .get_manifest(&r.with_digest(d.digest.clone()))
                    .await
                    .map_err(reg_err(location))?;
                Ok(Some((d.clone(), raw.bytes)))
            }
            (CacheLocation::Registry(r), Some(d)) => {
                let mut bytes: Vec<u8> = Vec::new();
                match self.client.get_blob(r, d, &mut bytes, &|_| {}).await {
                    Ok(()) => Ok(Some((d.clone(), bytes))),
                    Err(e) if e.is_not_found() => Ok(None),
                    Err(e) => Err(reg_err(location)(e)),
                }
            }
            (CacheLocation::Local(dir), None) => {
                let path = dir.join("index.json");
                let bytes = match std::fs::read(&path) {
                    Ok(b) => b,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(io_err(location, &path)(e)),
                };
                let index: ImageIndex = serde_json::from_slice(&bytes)
                    .map_err(|e| invalid(location, format!("{}: {e}", path.display())))?;
                let Some(first) = index.manifests.first() else { return Ok(None) };
                let bytes = local_blob(location, dir, first)?;
                Ok(Some((first.clone(), bytes)))
            }
            (CacheLocation::Local(dir), Some(d)) => Ok(Some((d.clone(), local_blob(location, dir, d)?))),
            (CacheLocation::Inline, _) => {
                Err(invalid(location, "an inline cache is read through the image's ref"))
            }
        }
    }

    /// Makes the imported records the build needs local: walking down from the targets, the
    /// first step on each path that is neither cached locally nor bypassed (`--no-cache-filter`)
    /// but is in an imported cache has its layer blobs fetched and unpacked and is recorded
    /// in the store. Steps below it are not needed and fetch nothing. A record that cannot be
    /// imported is a warning (the step runs instead).
    ///
    /// Cancellation: dropping the future stops the downloads; blobs and layers already
    /// stored stay valid, records are written only for complete chains.
    pub(crate) async fn import_cache_hits(
        &self,
        graph: &Graph,
        targets: &[VertexId],
        keys: &BTreeMap<VertexId, CacheKey>,
        imported: &ImportedCache,
        progress: &ProgressSink,
    ) -> Result<(), EngineError> {
        if imported.is_empty() {
            return Ok(());
        }
        let order = graph.reachable(targets);
        let mut bypassed = vec![false; graph.len()];
        for &v in &order {
            let vertex = graph.vertex(v);
            bypassed[v.index()] =
                vertex.meta.ignore_cache || vertex.inputs.iter().any(|i| bypassed[i.index()]);
        }
        let mut wanted: Vec<VertexId> = Vec::new();
        let mut seen: HashSet<VertexId> = HashSet::new();
        let mut stack: Vec<VertexId> = targets.to_vec();
        while let Some(v) = stack.pop() {
            if !seen.insert(v) {
                continue;
            }
            let vertex = graph.vertex(v);
            if matches!(vertex.op, Op::Source(Source::Local(_))) {
                continue;
            }
            let Some(key) = keys.get(&v) else { continue };
            if !bypassed[v.index()] {
                if self.store.meta().get_cache(&key.key)?.is_some() {
                    continue;
                }
                if imported.records.contains_key(&key.key) {
                    wanted.push(v);
                    continue;
                }
            }
            stack.extend(vertex.inputs.iter().copied());
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let step = "cache-import".to_string();
        progress.started(&step, "importing cache");
        let start = Instant::now();
        for v in wanted {
            let key = &keys[&v].key;
            let (source, record) = &imported.records[key];
            let location = &imported.sources[*source];
            if let Err(e) = self.import_record(location, key, record, progress, &step).await {
                progress.send(Event::Warning {
                    message: format!("could not import {:?} from {e}: the step will run", record.description),
                });
            }
        }
        // Steps below those whose layers are all local now (their chains are prefixes of
        // what was just imported) are recorded too, without a download, so that the build
        // reports them as cached like a local rebuild does.
        for &v in &order {
            let vertex = graph.vertex(v);
            let Some(key) = keys.get(&v) else { continue };
            if bypassed[v.index()] || matches!(vertex.op, Op::Source(Source::Local(_))) {
                continue;
            }
            let Some((source, record)) = imported.records.get(&key.key) else { continue };
            if !record.layers.iter().all(|l| self.store.content().contains(&l.descriptor.digest))
                || self.store.meta().get_cache(&key.key)?.is_some()
            {
                continue;
            }
            let location = &imported.sources[*source];
            if let Err(e) = self.import_record(location, &key.key, record, progress, &step).await {
                progress.send(Event::Warning {
                    message: format!("could not import {:?} from {e}: the step will run", record.description),
                });
            }
        }
        progress.done(&step, start, Default::default());
        Ok(())
    }

    /// Fetches the missing blobs of `record`, unpacks its chain and records it under `key`.
    async fn import_record(
        &self,
        location: &CacheLocation,
        key: &Digest,
        record: &ImportedRecord,
        progress: &ProgressSink,
        step: &str,
    ) -> Result<(), CacheIoError> {
        let fetches = record
            .layers
            .iter()
            .filter(|l| !self.store.content().contains(&l.descriptor.digest))
            .map(|l| self.fetch_blob(location, &l.descriptor, progress, step));
        for r in futures::future::join_all(fetches).await {
            r?;
        }
        let store = self.store.clone();
        let layers = record.layers.clone();
        let location2 = location.clone();
        let chain = tokio::task::spawn_blocking(move || -> Result<Vec<LayerId>, CacheIoError> {
            let mut chain: Vec<LayerId> = Vec::with_capacity(layers.len());
            for l in &layers {
                let id =
                    store.import_layer(&chain, &l.descriptor, &l.diff_id).map_err(store_err(&location2))?;
                store.meta().set_layer_created(&id, l.created_unix).map_err(store_err(&location2))?;
                chain.push(id);
            }
            Ok(chain)
        })
        .await
        .map_err(|e| invalid(location, format!("layer import task: {e}")))??;
        let record = CacheRecord::new(chain, record.description.clone());
        self.store.meta().put_cache(key, &record).map_err(store_err(location))
    }

    /// Copies one layer blob of the cache into the content store, verifying its digest.
    async fn fetch_blob(
        &self,
        location: &CacheLocation,
        desc: &Descriptor,
        progress: &ProgressSink,
        step: &str,
    ) -> Result<(), CacheIoError> {
        let content_err = |e: cache::ContentError| store_err(location)(e.into());
        let mut writer = self.store.content().writer().map_err(content_err)?;
        let item = format!("cache {}", &desc.digest.hex()[..12]);
        match location {
            CacheLocation::Registry(r) => {
                let (p, s, i, total) = (progress.clone(), step.to_string(), item.clone(), desc.size);
                let report = move |n: u64| {
                    p.send(Event::Transfer {
                        step: s.clone(),
                        item: i.clone(),
                        current: n,
                        total: Some(total),
                    })
                };
                self.client.get_blob(r, desc, &mut writer, &report).await.map_err(reg_err(location))?;
            }
            CacheLocation::Local(dir) => {
                let path = blob_path(dir, &desc.digest);
                let mut file = tokio::fs::File::open(&path).await.map_err(io_err(location, &path))?;
                tokio::io::copy(&mut file, &mut writer).await.map_err(io_err(location, &path))?;
            }
            CacheLocation::Inline => {
                return Err(invalid(location, "an inline cache is read through the image's ref"));
            }
        }
        writer.commit(Some(&desc.digest)).map_err(content_err)?;
        progress.send(Event::Transfer {
            step: step.to_string(),
            item,
            current: desc.size,
            total: Some(desc.size),
        });
        Ok(())
    }

    /// Writes every `--cache-to` of `req`. `finals` are the chains of the final images
    /// (for `mode=min`). A failure fails the build unless the export has `ignore-error`.
    ///
    /// Cancellation: dropping the future stops the uploads; the registry tag or the
    /// layout's `index.json` is written last, so it never names missing blobs.
    pub(crate) async fn export_caches(
        &self,
        req: &BuildRequest,
        graph: &Graph,
        keys: &BTreeMap<VertexId, CacheKey>,
        finals: &[Vec<LayerId>],
        progress: &ProgressSink,
    ) -> Result<(), EngineError> {
        for spec in &req.cache_to {
            if spec.location == CacheLocation::Inline {
                // Written into the image config by the image export.
                continue;
            }
            let step = format!("cache-export {}", spec.location);
            progress.started(&step, &format!("exporting cache to {}", spec.location));
            let start = Instant::now();
            match self.export_cache(spec, graph, keys, finals, progress, &step).await {
                Ok(()) => progress.done(&step, start, Default::default()),
                Err(e) if spec.ignore_error => {
                    progress.done(&step, start, Default::default());
                    progress.send(Event::Warning {
                        message: format!("failed to export {e} (ignore-error=true)"),
                    });
                }
                Err(e) => {
                    progress.failed(&step, e.to_string());
                    return Err(EngineError::Cache(Box::new(e)));
                }
            }
        }
        Ok(())
    }

    /// The local cache records of the build's steps, with their chains and input keys.
    pub(crate) fn cache_candidates(
        &self,
        graph: &Graph,
        keys: &BTreeMap<VertexId, CacheKey>,
    ) -> Result<Vec<Chosen>, cache::StoreError> {
        let mut chosen = Vec::new();
        for (v, key) in keys {
            let vertex = graph.vertex(*v);
            if matches!(vertex.op, Op::Source(Source::Local(_))) {
                continue;
            }
            let Some(record) = self.store.meta().get_cache(&key.key)? else { continue };
            let inputs = vertex
                .inputs
                .iter()
                .map(|i| keys.get(i).map(|k| k.key.clone()).into_iter().collect())
                .collect();
            chosen.push(Chosen {
                key: key.key.clone(),
                description: vertex.meta.name.clone(),
                chain: record.chain,
                inputs,
            });
        }
        Ok(chosen)
    }

    async fn export_cache(
        &self,
        spec: &CacheExport,
        graph: &Graph,
        keys: &BTreeMap<VertexId, CacheKey>,
        finals: &[Vec<LayerId>],
        progress: &ProgressSink,
        step: &str,
    ) -> Result<(), CacheIoError> {
        let location = &spec.location;
        let mut chosen = self.cache_candidates(graph, keys).map_err(store_err(location))?;
        if spec.mode == CacheMode::Min {
            chosen.retain(|c| finals.iter().any(|f| f.starts_with(&c.chain)));
        }
        // One blob per layer (made once per layer and compression, then remembered).
        let store = self.store.clone();
        let opts = LayerOptions {
            compression: spec.compression,
            oci_media_types: spec.oci_media_types,
            ..LayerOptions::default()
        };
        let ids: Vec<LayerId> = {
            let mut seen = HashSet::new();
            chosen
                .iter()
                .flat_map(|c| c.chain.iter())
                .filter(|id| seen.insert((*id).clone()))
                .cloned()
                .collect()
        };
        let oci = spec.oci_media_types;
        let blobs =
            tokio::task::spawn_blocking(move || -> Result<BTreeMap<LayerId, ExportLayer>, EngineError> {
                let mut out = BTreeMap::new();
                for id in ids {
                    let (mut blob, created_unix) =
                        crate::export::layer_blob(&store, &id, &opts, false, false)?;
                    blob.descriptor.media_type = MediaType::layer(blob.compression, oci);
                    out.insert(id, ExportLayer { blob, created_unix });
                }
                Ok(out)
            })
            .await
            .map_err(|e| invalid(location, format!("layer export task: {e}")))?
            .map_err(|e| invalid(location, e.to_string()))?;
        let mut builder = CacheConfigBuilder::new();
        for Chosen { key, description, chain, inputs } in &chosen {
            let layers: Vec<ExportLayer> = chain.iter().filter_map(|id| blobs.get(id).cloned()).collect();
            builder.add(key, description, &layers, inputs.clone());
        }
        let records = builder.len();
        let (config, layers) = builder.finish();
        let content = self.store.content();
        let content_err = |e: cache::ContentError| store_err(location)(e.into());
        let config_bytes = config.to_bytes();
        content.write_bytes(&config_bytes).map_err(content_err)?;
        let config_desc =
            Descriptor::for_bytes(MediaType::Other(cache_config::MEDIA_TYPE.into()), &config_bytes);
        let manifest_type = if oci { MediaType::OciManifest } else { MediaType::DockerManifest };
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(manifest_type.clone()),
            config: config_desc,
            layers,
            annotations: BTreeMap::new(),
        };
        let bytes = serde_json::to_vec(&manifest).map_err(|e| invalid(location, e.to_string()))?;
        content.write_bytes(&bytes).map_err(content_err)?;
        let mut root = Descriptor::for_bytes(manifest_type, &bytes);
        if !spec.image_manifest {
            let index_type = if oci { MediaType::OciIndex } else { MediaType::DockerManifestList };
            let index = ImageIndex {
                schema_version: 2,
                media_type: Some(index_type.clone()),
                manifests: vec![root],
                annotations: BTreeMap::new(),
            };
            let bytes = serde_json::to_vec(&index).map_err(|e| invalid(location, e.to_string()))?;
            content.write_bytes(&bytes).map_err(content_err)?;
            root = Descriptor::for_bytes(index_type, &bytes);
        }
        let export_err = |e: exporter::ExportError| CacheIoError::Export {
            location: location.to_string(),
            source: Box::new(e),
        };
        match location {
            CacheLocation::Registry(r) => {
                let (p, s) = (progress.clone(), step.to_string());
                let report = move |e: exporter::PushProgress| {
                    if let exporter::PushProgress::Blob { digest, sent, total } = e {
                        p.send(Event::Transfer {
                            step: s.clone(),
                            item: format!("pushing {}", &digest.hex()[..12]),
                            current: sent,
                            total: Some(total),
                        });
                    }
                };
                exporter::push_image(&self.client, content, &root, r, None, &report)
                    .await
                    .map_err(export_err)?;
            }
            CacheLocation::Local(dir) => {
                let (store, root, dest) = (self.store.clone(), root.clone(), Destination::Dir(dir.clone()));
                tokio::task::spawn_blocking(move || {
                    exporter::write_oci_archive(store.content(), &root, &[], &dest)
                })
                .await
                .map_err(|e| invalid(location, format!("layout task: {e}")))?
                .map_err(export_err)?;
            }
            CacheLocation::Inline => {
                return Err(invalid(location, "an inline cache is written with the image config"));
            }
        }
        progress.send(Event::Note { message: format!("exported {records} cache records to {location}") });
        Ok(())
    }
}

/// The inline cache of an image (`--cache-to type=inline`): the records among `candidates`
/// whose filesystem is a prefix of the image's `chain`, over the image's own layer `blobs`
/// (`blobs[i]` is the blob of `chain[i]`, with the layer's creation time).
pub(crate) fn inline_cache(
    candidates: &[Chosen],
    chain: &[LayerId],
    blobs: &[(cache::LayerBlob, i64)],
) -> serde_json::Value {
    let mut builder = CacheConfigBuilder::new();
    for c in candidates.iter().filter(|c| chain.starts_with(&c.chain)) {
        let Some(prefix) = blobs.get(..c.chain.len()) else { continue };
        let layers: Vec<ExportLayer> = prefix
            .iter()
            .map(|(blob, created_unix)| ExportLayer { blob: blob.clone(), created_unix: *created_unix })
            .collect();
        builder.add(&c.key, &c.description, &layers, c.inputs.clone());
    }
    builder.finish().0.to_value()
}

/// A cache record picked for export.
pub(crate) struct Chosen {
    /// Its key.
    key: Digest,
    /// The step name.
    description: String,
    /// Its filesystem, base first.
    chain: Vec<LayerId>,
    /// The keys of the step's inputs, per input.
    inputs: Vec<Vec<Digest>>,
}

/// Where an OCI layout keeps `digest`.
fn blob_path(dir: &Path, digest: &Digest) -> PathBuf {
    dir.join("blobs").join(digest.algorithm()).join(digest.hex())
}

/// A blob of a layout directory, verified against `desc`.
fn local_blob(location: &CacheLocation, dir: &Path, desc: &Descriptor) -> Result<Vec<u8>, CacheIoError> {
    let path = blob_path(dir, &desc.digest);
    let bytes = std::fs::read(&path).map_err(io_err(location, &path))?;
    if Digest::of_bytes(&bytes) != desc.digest || bytes.len() as u64 != desc.size {
        return Err(invalid(
            location,
            format!("{} does not match its digest {}", path.display(), desc.digest),
        ));
    }
    Ok(bytes)
}
