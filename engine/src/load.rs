//! `rbuild load`: images from a docker-archive or an OCI layout tar (plain, gzip, zstd,
//! bzip2 or xz) into the store.
//!
//! The tar is read once, front to back: `blobs/sha256/<hex>` entries stream into the content
//! store and must hash to their names; other small files (`manifest.json`, `index.json`,
//! legacy `<id>.json` configs) are kept in memory, large ones (legacy `<id>/layer.tar`) go
//! to the content store under their computed digest. Then the images are found: through
//! `index.json` when present (names from `io.containerd.image.name`, a full
//! `org.opencontainers.image.ref.name`, or `manifest.json`'s `RepoTags`), else through
//! docker's `manifest.json` (for archives without an OCI layout, a manifest is made from
//! the config and layer files). Every blob an image needs must be present with its
//! descriptor's size, and every layer's content must match the config's diff IDs (checked
//! while unpacking), before any name is set. Images without a name stay as dangling images.

use crate::images::{DANGLING_PREFIX, dangling_name};
use crate::pull::unpack_layers;
use crate::{Engine, EngineError};
use cache::{ImageRecord, Store};
use exporter::{ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME};
use registry::{
    AnyManifest, Descriptor, Digest, Hasher, ImageConfig, ImageIndex, ImageManifest, MediaType, Platform,
    Reference,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::Arc;

/// Files outside `blobs/` up to this size are kept in memory while reading.
const SMALL_FILE: u64 = 1 << 20;

/// At most this much of the archive is held in memory; later small files go to the store.
const MEMORY_BUDGET: u64 = 64 << 20;

/// Manifests, indexes and configs larger than this are refused rather than read.
const MAX_DOCUMENT: u64 = 64 << 20;

/// Why an archive cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Reading or decompressing the input failed.
    #[error("reading the archive: {source}")]
    Read {
        /// The cause.
        source: io::Error,
    },
    /// The archive has neither `index.json` nor `manifest.json`.
    #[error(
        "not an image archive: it has neither index.json (OCI layout) nor manifest.json (docker archive)"
    )]
    UnknownFormat,
    /// A file of the archive is not what its role needs.
    #[error("{path} in the archive: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A blob's content does not match its name.
    #[error("{path} in the archive is corrupt: its content hashes to {actual}")]
    DigestMismatch {
        /// The blob's path.
        path: String,
        /// The digest of its content.
        actual: Digest,
    },
    /// A blob an image needs is absent or has another size.
    #[error("the archive lacks {what} {digest}{detail}")]
    Missing {
        /// `manifest`, `config` or `layer`.
        what: &'static str,
        /// Its digest or path.
        digest: String,
        /// More about it (`: 12 bytes instead of 34`).
        detail: String,
    },
    /// A multi-platform image has no manifest for the platform asked for.
    #[error("no image in {index} is for {wanted} (it has {available})")]
    NoPlatform {
        /// The index's digest.
        index: Digest,
        /// The platform asked for.
        wanted: String,
        /// The platforms it has.
        available: String,
    },
}

impl From<LoadError> for EngineError {
    fn from(e: LoadError) -> EngineError {
        EngineError::Load(Box::new(e))
    }
}

/// One image [`Engine::load_images`] stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedImage {
    /// Its names, as docker prints them; empty for a dangling image.
    pub names: Vec<String>,
    /// The image ID.
    pub id: Digest,
}

/// A file of the archive, after reading.
enum Stashed {
    /// Small, kept in memory.
    Bytes(Vec<u8>),
    /// In the content store.
    Blob(Digest, u64),
}

/// What the archive held, by normalized path.
#[derive(Default)]
struct Contents {
    files: BTreeMap<String, Stashed>,
    /// Symbolic and hard links: path → the path they point at.
    links: BTreeMap<String, String>,
}

/// An image found in the archive.
struct Found {
    manifest: Descriptor,
    names: Vec<Reference>,
}

fn read_err(source: io::Error) -> EngineError {
    LoadError::Read { source }.into()
}

fn store_err(e: cache::ContentError) -> EngineError {
    EngineError::Store(e.into())
}

/// `./a//b/` → `a/b`; `..` is resolved inside the archive root.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// The decompressed stream, by the input's first bytes.
fn decompressed(input: Box<dyn Read + Send>) -> Result<Box<dyn Read + Send>, EngineError> {
    let mut buffered = BufReader::with_capacity(1 << 20, input);
    let head = buffered.fill_buf().map_err(read_err)?.to_vec();
    Ok(match head.as_slice() {
        [0x1f, 0x8b, ..] => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => {
            Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(read_err)?)
        }
        [b'B', b'Z', b'h', ..] => Box::new(bzip2::bufread::MultiBzDecoder::new(buffered)),
        [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => {
            Box::new(liblzma::read::XzDecoder::new_multi_decoder(buffered))
        }
        _ => Box::new(buffered),
    })
}

/// Streams `reader` into the content store; with `expected`, the content must match it.
fn ingest(
    store: &Store,
    reader: &mut dyn Read,
    path: &str,
    expected: Option<&Digest>,
) -> Result<(Digest, u64), EngineError> {
    let content = store.content();
    if let Some(d) = expected
        && content.contains(d)
    {
        // Already stored: still check the archive's copy, so a corrupt archive never loads.
        let mut hasher = Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader.read(&mut buf).map_err(read_err)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let size = hasher.len();
        let actual = hasher.finish();
        if actual != *d {
            return Err(LoadError::DigestMismatch { path: path.to_string(), actual }.into());
        }
        return Ok((actual, size));
    }
    let mut writer = content.writer().map_err(store_err)?;
    io::copy(reader, &mut writer).map_err(read_err)?;
    let size = writer.len();
    match writer.commit(expected) {
        Ok(d) => Ok((d, size)),
        Err(cache::ContentError::DigestMismatch { actual, .. }) => {
            Err(LoadError::DigestMismatch { path: path.to_string(), actual }.into())
        }
        Err(e) => Err(store_err(e)),
    }
}

/// Reads the whole tar (see the module docs).
fn read_contents(store: &Store, input: Box<dyn Read + Send>) -> Result<Contents, EngineError> {
    let mut archive = tar::Archive::new(decompressed(input)?);
    let mut out = Contents::default();
    let mut in_memory = 0u64;
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let path = normalize(&String::from_utf8_lossy(&entry.path_bytes()));
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let Some(target) = entry.link_name_bytes() else { continue };
            let target = String::from_utf8_lossy(&target).into_owned();
            let resolved = if kind.is_symlink() && !target.starts_with('/') {
                let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
                normalize(&format!("{dir}/{target}"))
            } else {
                normalize(&target)
            };
            out.links.insert(path, resolved);
            continue;
        }
        if !kind.is_file() || path.is_empty() {
            continue;
        }
        let size = entry.size();
        let blob_name = path
            .strip_prefix("blobs/sha256/")
            .filter(|h| h.len() == 64 && h.bytes().all(|c| c.is_ascii_hexdigit()))
            .and_then(|h| format!("sha256:{h}").parse::<Digest>().ok());
        let stashed = if let Some(expected) = blob_name {
            let (d, n) = ingest(store, &mut entry, &path, Some(&expected))?;
            Stashed::Blob(d, n)
        } else if size <= SMALL_FILE && in_memory + size <= MEMORY_BUDGET {
            in_memory += size;
            let mut bytes = Vec::with_capacity(size as usize);
            entry.read_to_end(&mut bytes).map_err(read_err)?;
            Stashed::Bytes(bytes)
        } else {
            let (d, n) = ingest(store, &mut entry, &path, None)?;
            Stashed::Blob(d, n)
        };
        out.files.insert(path, stashed);
    }
    Ok(out)
}

impl Contents {
    /// The file at `path`, following links (a few levels).
    fn get(&self, path: &str) -> Option<&Stashed> {
        let mut p = normalize(path);
        for _ in 0..8 {
            if let Some(f) = self.files.get(&p) {
                return Some(f);
            }
            p = self.links.get(&p)?.clone();
        }
        None
    }

    /// The bytes of a (small) file.
    fn bytes(&self, store: &Store, path: &str) -> Result<Option<Vec<u8>>, EngineError> {
        match self.get(path) {
            None => Ok(None),
            Some(Stashed::Bytes(b)) => Ok(Some(b.clone())),
            Some(Stashed::Blob(_, n)) if *n > MAX_DOCUMENT => Err(LoadError::Invalid {
                path: path.to_string(),
                reason: format!("{n} bytes is too large for a JSON document"),
            }
            .into()),
            Some(Stashed::Blob(d, _)) => Ok(Some(store.content().read(d).map_err(store_err)?)),
        }
    }

    /// The file as a content-store blob: its digest and size.
    fn blob(&self, store: &Store, path: &str) -> Result<Option<(Digest, u64)>, EngineError> {
        match self.get(path) {
            None => Ok(None),
            Some(Stashed::Bytes(b)) => {
                Ok(Some((store.content().write_bytes(b).map_err(store_err)?, b.len() as u64)))
            }
            Some(Stashed::Blob(d, n)) => Ok(Some((d.clone(), *n))),
        }
    }
}

/// One entry of docker's `manifest.json`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

fn parse_json<T: for<'de> Deserialize<'de>>(path: &str, bytes: &[u8]) -> Result<T, EngineError> {
    serde_json::from_slice(bytes)
        .map_err(|e| LoadError::Invalid { path: path.to_string(), reason: e.to_string() }.into())
}

fn parse_names(path: &str, names: &[String]) -> Result<Vec<Reference>, EngineError> {
    names
        .iter()
        .map(|n| {
            n.parse::<Reference>().map_err(|e| {
                LoadError::Invalid {
                    path: path.to_string(),
                    reason: format!("image name {n:?}: {}", e.reason),
                }
                .into()
            })
        })
        .collect()
}

/// The name an `index.json` entry carries, if a full one.
fn annotated_name(desc: &Descriptor) -> Option<Reference> {
    if let Some(n) = desc.annotations.get(ANNOTATION_IMAGE_NAME) {
        return n.parse().ok();
    }
    // A bare tag (`v1`) names no repository; only a full reference is a name.
    let r = desc.annotations.get(ANNOTATION_REF_NAME)?;
    if r.contains('/') || r.contains(':') { r.parse().ok() } else { None }
}

/// The compression of a stored layer blob, by its first bytes.
fn sniff_layer(store: &Store, digest: &Digest) -> Result<MediaType, EngineError> {
    let mut head = [0u8; 4];
    let mut f = store.content().open_blob(digest).map_err(store_err)?;
    let n = f.read(&mut head).map_err(read_err)?;
    Ok(match &head[..n] {
        [0x1f, 0x8b, ..] => MediaType::DockerLayerGzip,
        [0x28, 0xb5, 0x2f, 0xfd] => MediaType::OciLayerZstd,
        _ => MediaType::DockerLayer,
    })
}

/// Images of an OCI layout (`index.json`).
fn oci_images(store: &Store, contents: &Contents, platform: &Platform) -> Result<Vec<Found>, EngineError> {
    let index_bytes = contents.bytes(store, "index.json")?.unwrap_or_default();
    let index: ImageIndex = parse_json("index.json", &index_bytes)?;
    // A docker archive with an OCI layout names its images in manifest.json, by config.
    let mut tags_by_config: BTreeMap<String, Vec<Reference>> = BTreeMap::new();
    if let Some(bytes) = contents.bytes(store, "manifest.json")? {
        for e in parse_json::<Vec<DockerEntry>>("manifest.json", &bytes)? {
            let names = parse_names("manifest.json", e.repo_tags.as_deref().unwrap_or_default())?;
            tags_by_config.entry(normalize(&e.config)).or_default().extend(names);
        }
    }
    let mut found: Vec<Found> = Vec::new();
    for desc in &index.manifests {
        let manifest = if desc.media_type.is_index() {
            let bytes = read_blob(store, "manifest", desc)?;
            let nested: ImageIndex = parse_json(&format!("index {}", desc.digest), &bytes)?;
            match nested.select(platform) {
                Some(d) => d.clone(),
                None => {
                    let available: Vec<String> = nested
                        .manifests
                        .iter()
                        .filter_map(|d| d.platform.as_ref())
                        .map(|p| p.to_string())
                        .collect();
                    return Err(LoadError::NoPlatform {
                        index: desc.digest.clone(),
                        wanted: platform.to_string(),
                        available: available.join(", "),
                    }
                    .into());
                }
            }
        } else if desc.media_type.is_manifest() {
            Descriptor { annotations: BTreeMap::new(), platform: None, ..desc.clone() }
        } else {
            continue;
        };
        let mut names: Vec<Reference> = annotated_name(desc).into_iter().collect();
        let bytes = read_blob(store, "manifest", &manifest)?;
        if let Ok(AnyManifest::Image(m)) = AnyManifest::parse(Some(&manifest.media_type), &bytes) {
            let config_path = format!("blobs/sha256/{}", m.config.digest.hex());
            names.extend(tags_by_config.get(&config_path).into_iter().flatten().cloned());
        }
        match found.iter_mut().find(|f| f.manifest.digest == manifest.digest) {
            Some(f) => f.names.extend(names),
            None => found.push(Found { manifest, names }),
        }
    }
    Ok(found)
}

/// Images of a docker archive without an OCI layout: a manifest is made for each
/// `manifest.json` entry from its config and layer files.
fn docker_images(store: &Store, contents: &Contents) -> Result<Vec<Found>, EngineError> {
    let bytes = contents.bytes(store, "manifest.json")?.unwrap_or_default();
    let entries: Vec<DockerEntry> = parse_json("manifest.json", &bytes)?;
    let mut found = Vec::new();
    for e in entries {
        let missing = |what: &'static str, path: &str| LoadError::Missing {
            what,
            digest: path.to_string(),
            detail: String::new(),
        };
        let config_bytes = contents.bytes(store, &e.config)?.ok_or_else(|| missing("config", &e.config))?;
        let _: ImageConfig = parse_json(&e.config, &config_bytes)?;
        let config_digest = store.content().write_bytes(&config_bytes).map_err(store_err)?;
        // A legacy archive names the config after its digest (the image ID): check it.
        let file = e.config.rsplit('/').next().unwrap_or_default();
        if let Some(hex) = file.strip_suffix(".json").filter(|h| h.len() == 64)
            && hex != config_digest.hex()
        {
            return Err(LoadError::DigestMismatch { path: e.config.clone(), actual: config_digest }.into());
        }
        let mut layers = Vec::new();
        for path in &e.layers {
            let (digest, size) = contents.blob(store, path)?.ok_or_else(|| missing("layer", path))?;
            let media_type = sniff_layer(store, &digest)?;
            layers.push(Descriptor {
                media_type,
                digest,
                size,
                platform: None,
                annotations: BTreeMap::new(),
            });
        }
        // Docker media types cannot say zstd: such images get OCI ones throughout.
        let oci = layers.iter().any(|l| l.media_type == MediaType::OciLayerZstd);
        if oci {
            for l in &mut layers {
                l.media_type = MediaType::layer(
                    l.media_type.layer_compression().unwrap_or(registry::Compression::Uncompressed),
                    true,
                );
            }
        }
        let (manifest_type, config_type) = if oci {
            (MediaType::OciManifest, MediaType::OciConfig)
        } else {
            (MediaType::DockerManifest, MediaType::DockerConfig)
        };
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(manifest_type.clone()),
            config: Descriptor::for_bytes(config_type, &config_bytes),
            layers,
            annotations: BTreeMap::new(),
        };
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|e| EngineError::Invalid(e.to_string()))?;
        store.content().write_bytes(&manifest_bytes).map_err(store_err)?;
        let names = parse_names("manifest.json", e.repo_tags.as_deref().unwrap_or_default())?;
        found.push(Found { manifest: Descriptor::for_bytes(manifest_type, &manifest_bytes), names });
    }
    Ok(found)
}

/// A blob the archive must have provided, checked against its descriptor's size.
fn read_blob(store: &Store, what: &'static str, desc: &Descriptor) -> Result<Vec<u8>, EngineError> {
    check_blob(store, what, desc)?;
    if desc.size > MAX_DOCUMENT {
        return Err(LoadError::Invalid {
            path: format!("{what} {}", desc.digest),
            reason: format!("{} bytes is too large for a JSON document", desc.size),
        }
        .into());
    }
    store.content().read(&desc.digest).map_err(store_err)
}

fn check_blob(store: &Store, what: &'static str, desc: &Descriptor) -> Result<(), EngineError> {
    match store.content().size(&desc.digest) {
        Ok(n) if n == desc.size => Ok(()),
        Ok(n) => Err(LoadError::Missing {
            what,
            digest: desc.digest.to_string(),
            detail: format!(": {n} bytes instead of {}", desc.size),
        }
        .into()),
        Err(_) => {
            Err(LoadError::Missing { what, digest: desc.digest.to_string(), detail: String::new() }.into())
        }
    }
}

/// Checks everything an image needs and unpacks its layers; returns its config and ID.
fn prepare(store: &Store, found: &Found) -> Result<(ImageConfig, Digest), EngineError> {
    let bytes = read_blob(store, "manifest", &found.manifest)?;
    let manifest = match AnyManifest::parse(Some(&found.manifest.media_type), &bytes) {
        Ok(AnyManifest::Image(m)) => m,
        Ok(AnyManifest::Index(_)) => {
            return Err(LoadError::Invalid {
                path: format!("manifest {}", found.manifest.digest),
                reason: "an index where an image manifest was expected".into(),
            }
            .into());
        }
        Err(e) => {
            return Err(LoadError::Invalid {
                path: format!("manifest {}", found.manifest.digest),
                reason: e.to_string(),
            }
            .into());
        }
    };
    let config_bytes = read_blob(store, "config", &manifest.config)?;
    let config: ImageConfig = parse_json(&format!("config {}", manifest.config.digest), &config_bytes)?;
    for layer in &manifest.layers {
        check_blob(store, "layer", layer)?;
    }
    unpack_layers(store, &manifest, &config)?;
    Ok((config, manifest.config.digest))
}

impl Engine {
    /// Loads the images of a docker-archive or OCI layout tar read from `input` (see the
    /// module docs). For a multi-platform image the manifest for `platform` is loaded.
    ///
    /// Nothing is named unless every image of the archive checked out; blobs already read
    /// from a failed archive stay for garbage collection.
    pub async fn load_images(
        &self,
        input: Box<dyn Read + Send>,
        platform: &Platform,
    ) -> Result<Vec<LoadedImage>, EngineError> {
        let store: Arc<Store> = self.store.clone();
        let platform = platform.clone();
        let images =
            tokio::task::spawn_blocking(move || -> Result<Vec<(Found, ImageConfig, Digest)>, EngineError> {
                let contents = read_contents(&store, input)?;
                let found = if contents.get("index.json").is_some() {
                    oci_images(&store, &contents, &platform)?
                } else if contents.get("manifest.json").is_some() {
                    docker_images(&store, &contents)?
                } else {
                    return Err(LoadError::UnknownFormat.into());
                };
                found
                    .into_iter()
                    .map(|f| {
                        let (config, id) = prepare(&store, &f)?;
                        Ok((f, config, id))
                    })
                    .collect()
            })
            .await
            .map_err(|e| EngineError::Invalid(format!("load task failed: {e}")))??;

        let mut out = Vec::new();
        for (found, config, id) in images {
            let mut names: Vec<Reference> = Vec::new();
            for n in found.names {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
            for n in &names {
                self.name_image(n, &found.manifest, vec![config.platform()])?;
            }
            let meta = self.store.meta();
            let named_elsewhere = meta
                .list_images()?
                .iter()
                .any(|(n, r)| r.manifest.digest == found.manifest.digest && !n.starts_with(DANGLING_PREFIX));
            if names.is_empty() && !named_elsewhere {
                let record = ImageRecord {
                    manifest: found.manifest.clone(),
                    created_unix: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs() as i64),
                    platforms: vec![config.platform()],
                };
                meta.put_image(&dangling_name(&found.manifest.digest), &record)?;
            }
            out.push(LoadedImage { names: names.iter().map(Reference::familiar).collect(), id });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalize_inside_the_archive() {
        let cases = [
            ("./manifest.json", "manifest.json"),
            ("a//b/./c", "a/b/c"),
            ("../../x", "x"),
            ("a/../b", "b"),
            ("/abs/p", "abs/p"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input), want, "{input}");
        }
    }

    #[test]
    fn names_come_from_full_ref_names_only() {
        let desc = |k: &str, v: &str| {
            let mut d = Descriptor::for_bytes(MediaType::OciManifest, b"{}");
            d.annotations.insert(k.to_string(), v.to_string());
            d
        };
        let cases: &[(&str, &str, Option<&str>)] = &[
            (ANNOTATION_IMAGE_NAME, "docker.io/library/app:1", Some("docker.io/library/app:1")),
            (ANNOTATION_REF_NAME, "v1", None),
            (ANNOTATION_REF_NAME, "app:v1", Some("docker.io/library/app:v1")),
            (ANNOTATION_REF_NAME, "registry.lan/team/app", Some("registry.lan/team/app:latest")),
            (ANNOTATION_IMAGE_NAME, "Not A Name", None),
        ];
        for (key, value, want) in cases {
            let got = annotated_name(&desc(key, value)).map(|r| r.to_string());
            assert_eq!(got.as_deref(), *want, "{key}={value}");
        }
    }
}
