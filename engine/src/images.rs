//! Images in the local store, as `docker image` commands see them: finding one by name, ID
//! or digest, what `inspect` and `history` show, tagging and untagging.
//!
//! An image is a name in the store's image table pointing at a single-platform manifest.
//! Images loaded without a name are kept as "dangling" entries (named
//! [`DANGLING_PREFIX`]`<manifest digest>`), reachable by ID until tagged or removed, as docker
//! keeps `<none>:<none>` images. Untagging never deletes content: blobs and layers stay until
//! `rbuild prune` finds nothing referencing them.

use crate::{Engine, EngineError};
use cache::ImageRecord;
use registry::{
    AnyManifest, ContainerConfig, Descriptor, Digest, ImageConfig, ImageManifest, Platform, Reference,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Store names of images that have no name (loaded from an archive that names none).
pub const DANGLING_PREFIX: &str = "<none>@";

/// Why an image command failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No image has this name, ID or digest.
    #[error("no such image: {query}")]
    NotFound {
        /// What the user asked for.
        query: String,
    },
    /// An ID prefix matches several images.
    #[error("image ID prefix {prefix} is ambiguous: it matches {count} images")]
    Ambiguous {
        /// The prefix.
        prefix: String,
        /// How many images it matches.
        count: usize,
    },
    /// Removing by ID an image that has several names (docker asks for `-f`; rbuild asks for
    /// the names).
    #[error("cannot remove {query}: the image has several names ({names}); remove them by name")]
    SeveralNames {
        /// What the user asked for.
        query: String,
        /// The image's names.
        names: String,
    },
    /// A name in the store points at content that is missing or unreadable.
    #[error("image {name} is damaged: {reason}")]
    Damaged {
        /// The image's name or digest.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The registry's image is for another platform than asked for.
    #[error("image {reference} is for {found}, not {wanted}")]
    PlatformMismatch {
        /// The image.
        reference: String,
        /// The platform asked for.
        wanted: String,
        /// The image's platform.
        found: String,
    },
}

impl From<ImageError> for EngineError {
    fn from(e: ImageError) -> EngineError {
        EngineError::Image(Box::new(e))
    }
}

/// One image of the store with its manifest and config read. For a multi-platform image
/// (an index) the manifest and config are those of this machine's platform (else the first
/// platform the store has), as docker shows them.
#[derive(Clone, Debug)]
pub struct StoredImage {
    /// Store names pointing at this image (`docker.io/library/app:latest`), sorted; empty
    /// for a dangling image.
    pub names: Vec<String>,
    /// The name the query matched, when it matched a name.
    pub matched_name: Option<String>,
    /// What the names point at: a manifest, or an index of several platforms' manifests.
    pub manifest: Descriptor,
    /// The single-platform manifest shown (`manifest` itself unless that is an index).
    pub platform_manifest: Descriptor,
    /// `platform_manifest`, parsed.
    pub parsed: ImageManifest,
    /// The image ID: the config's digest, or the index's digest for a multi-platform image
    /// (as `build` and `images` report it).
    pub id: Digest,
    /// The config, parsed.
    pub config: ImageConfig,
    /// The platforms the image holds.
    pub platforms: Vec<Platform>,
    /// When one of its names was last set (seconds since the Unix epoch).
    pub tagged_unix: i64,
}

impl StoredImage {
    /// Sum of the blobs' sizes (index, manifest, config, layers) of the platform shown.
    pub fn size(&self) -> u64 {
        let index =
            if self.manifest.digest == self.platform_manifest.digest { 0 } else { self.manifest.size };
        index
            + self.platform_manifest.size
            + self.parsed.config.size
            + self.parsed.layers.iter().map(|l| l.size).sum::<u64>()
    }

    /// The names as docker prints them (`app:latest`, `127.0.0.1:5000/team/app:1`).
    pub fn familiar_names(&self) -> Vec<String> {
        self.names.iter().filter_map(|n| n.parse::<Reference>().ok()).map(|r| r.familiar()).collect()
    }
}

/// `docker image inspect`'s JSON for one image (the fields docker fills for images built
/// by BuildKit; `Parent`, `DockerVersion` are always empty, as there).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    /// The image ID (`sha256:` + config digest).
    pub id: String,
    /// Names, as docker prints them.
    pub repo_tags: Vec<String>,
    /// `repository@manifest-digest` for every repository the image is named in.
    pub repo_digests: Vec<String>,
    /// Always empty (no parent images in a BuildKit-built store).
    pub parent: String,
    /// The last history entry's comment.
    pub comment: String,
    /// When the image was made (RFC 3339), when the config says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Always empty.
    pub docker_version: String,
    /// `MAINTAINER`.
    pub author: String,
    /// What a container of the image runs with.
    pub config: ContainerConfig,
    /// CPU architecture.
    pub architecture: String,
    /// CPU variant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Operating system.
    pub os: String,
    /// Bytes of the image's blobs.
    pub size: u64,
    /// The layers' uncompressed digests.
    #[serde(rename = "RootFS")]
    pub root_fs: InspectRootFs,
    /// Store metadata.
    pub metadata: InspectMetadata,
    /// The manifest's descriptor (as docker 28 shows it).
    pub descriptor: Descriptor,
}

/// `RootFS` of [`ImageInspect`].
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectRootFs {
    /// Always `layers`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Diff IDs, base first.
    pub layers: Vec<Digest>,
}

/// `Metadata` of [`ImageInspect`].
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectMetadata {
    /// When a name was last set (RFC 3339).
    pub last_tag_time: String,
}

/// One line of `history`, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The image ID, on the newest entry only (docker shows `<missing>` for the others).
    pub id: Option<Digest>,
    /// When the step ran (RFC 3339), when recorded.
    pub created: Option<String>,
    /// `created`, as seconds since the Unix epoch.
    pub created_unix: Option<i64>,
    /// The instruction.
    pub created_by: String,
    /// The comment (`buildkit.dockerfile.v0`).
    pub comment: String,
    /// Bytes of the step's layer blob (compressed, as the registry stores it, and as
    /// `images` and `inspect` count); 0 for steps without a layer.
    pub size: u64,
    /// True for steps that made no layer.
    pub empty_layer: bool,
}

/// Unix seconds of an RFC 3339 time (the fraction is dropped).
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    registry::time::parse_rfc3339(s).map(|(secs, _)| secs)
}

/// The hex part of an ID query (`sha256:abc…`, `abc…`), when it can be one.
fn id_prefix(query: &str) -> Option<&str> {
    let (hex, explicit) = match query.strip_prefix("sha256:") {
        Some(h) => (h, true),
        None => (query, false),
    };
    let ok = !hex.is_empty()
        && hex.len() <= 64
        && (explicit || hex.len() >= 4)
        && hex.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c));
    ok.then_some(hex)
}

fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// A store name for a dangling image of `manifest`.
pub(crate) fn dangling_name(manifest: &Digest) -> String {
    format!("{DANGLING_PREFIX}{manifest}")
}

impl Engine {
    /// Reads a named record's manifest and config (of the platform shown, see
    /// [`StoredImage`]).
    fn read_image(
        &self,
        name: &str,
        record: &ImageRecord,
    ) -> Result<(Descriptor, ImageManifest, ImageConfig), EngineError> {
        let damaged = |reason: String| ImageError::Damaged { name: name.to_string(), reason };
        let content = self.store.content();
        let read = |desc: &Descriptor| -> Result<AnyManifest, ImageError> {
            let bytes = content.read(&desc.digest).map_err(|e| damaged(e.to_string()))?;
            AnyManifest::parse(Some(&desc.media_type), &bytes).map_err(|e| damaged(e.to_string()))
        };
        let (shown, parsed) = match read(&record.manifest)? {
            AnyManifest::Image(m) => (record.manifest.clone(), m),
            AnyManifest::Index(index) => {
                let host = Platform::host();
                let mut candidates: Vec<&Descriptor> = index.select(&host).into_iter().collect();
                candidates.extend(index.manifests.iter().filter(|d| d.media_type.is_manifest()));
                let chosen =
                    candidates.into_iter().find(|d| content.contains(&d.digest)).ok_or_else(|| {
                        damaged("no platform's manifest of its index is in the store".to_string())
                    })?;
                match read(chosen)? {
                    AnyManifest::Image(m) => (chosen.clone(), m),
                    AnyManifest::Index(_) => {
                        return Err(damaged("nested indexes are not supported".into()).into());
                    }
                }
            }
        };
        let config_bytes = content.read(&parsed.config.digest).map_err(|e| damaged(e.to_string()))?;
        let config: ImageConfig =
            serde_json::from_slice(&config_bytes).map_err(|e| damaged(format!("image config: {e}")))?;
        Ok((shown, parsed, config))
    }

    /// Finds an image by name (`app`, `app:1`, `registry:5000/team/app:1`), by
    /// `name@sha256:<manifest digest>`, or by image ID or a unique prefix of it (`sha256:…`,
    /// at least four hex digits without the `sha256:`). Names are tried first, as docker does.
    pub fn find_image(&self, query: &str) -> Result<StoredImage, EngineError> {
        let records = self.store.meta().list_images()?;
        let by_manifest = |digest: &Digest| -> Vec<&(String, ImageRecord)> {
            records.iter().filter(|(_, r)| r.manifest.digest == *digest).collect()
        };
        let assemble = |name: &str, record: &ImageRecord, matched: Option<String>| {
            let (platform_manifest, parsed, config) = self.read_image(name, record)?;
            let same = by_manifest(&record.manifest.digest);
            let names: Vec<String> =
                same.iter().map(|(n, _)| n.clone()).filter(|n| !n.starts_with(DANGLING_PREFIX)).collect();
            let tagged_unix = same.iter().map(|(_, r)| r.created_unix).max().unwrap_or(record.created_unix);
            let id = if platform_manifest.digest == record.manifest.digest {
                parsed.config.digest.clone()
            } else {
                record.manifest.digest.clone()
            };
            let platforms =
                if record.platforms.is_empty() { vec![config.platform()] } else { record.platforms.clone() };
            Ok::<_, EngineError>(StoredImage {
                names,
                matched_name: matched,
                manifest: record.manifest.clone(),
                platform_manifest,
                id,
                parsed,
                config,
                platforms,
                tagged_unix,
            })
        };
        if let Ok(reference) = query.parse::<Reference>() {
            let key = reference.to_string();
            if let Some((name, record)) = records.iter().find(|(n, _)| *n == key) {
                return assemble(name, record, Some(name.clone()));
            }
            if let Some(digest) = &reference.digest {
                // `repo@sha256:…` names the manifest of any name in that repository.
                let repo = reference.name();
                let hit = by_manifest(digest).into_iter().find(|(n, _)| {
                    n.parse::<Reference>().is_ok_and(|r| r.name() == repo) || n.starts_with(DANGLING_PREFIX)
                });
                if let Some((name, record)) = hit {
                    return assemble(name, record, None);
                }
            }
        }
        let Some(prefix) = id_prefix(query) else {
            return Err(ImageError::NotFound { query: query.to_string() }.into());
        };
        // Several manifests may share a config (docker and OCI media types of one image):
        // they are one image; the most recently tagged manifest stands for it.
        let mut matches: BTreeMap<Digest, (&String, &ImageRecord)> = BTreeMap::new();
        for (name, record) in &records {
            let Ok(id) = crate::export::image_id(&self.store, &record.manifest) else { continue };
            if !id.hex().starts_with(prefix) {
                continue;
            }
            let slot = matches.entry(id).or_insert((name, record));
            if record.created_unix > slot.1.created_unix {
                *slot = (name, record);
            }
        }
        match matches.len() {
            0 => Err(ImageError::NotFound { query: query.to_string() }.into()),
            1 => {
                let (name, record) = matches.into_values().next().expect("one match");
                assemble(name, record, None)
            }
            count => Err(ImageError::Ambiguous { prefix: query.to_string(), count }.into()),
        }
    }

    /// `docker image inspect` for one image (see [`Engine::find_image`] for the query).
    pub fn inspect_image(&self, query: &str) -> Result<ImageInspect, EngineError> {
        let image = self.find_image(query)?;
        let mut repositories = BTreeSet::new();
        for name in &image.names {
            if let Ok(r) = name.parse::<Reference>() {
                let bare = Reference { tag: None, digest: None, ..r };
                repositories.insert(bare.familiar());
            }
        }
        let repo_digests = repositories.iter().map(|r| format!("{r}@{}", image.manifest.digest)).collect();
        let config = &image.config;
        let comment = config.history.last().and_then(|h| h.comment.clone()).unwrap_or_default();
        Ok(ImageInspect {
            id: image.id.to_string(),
            repo_tags: image.familiar_names(),
            repo_digests,
            parent: String::new(),
            comment,
            created: config.created.clone(),
            docker_version: String::new(),
            author: config.author.clone().unwrap_or_default(),
            config: config.config.clone(),
            architecture: config.architecture.clone(),
            variant: config.variant.clone(),
            os: config.os.clone(),
            size: image.size(),
            root_fs: InspectRootFs {
                kind: config.rootfs.kind.clone(),
                layers: config.rootfs.diff_ids.clone(),
            },
            metadata: InspectMetadata { last_tag_time: registry::time::format_rfc3339(image.tagged_unix) },
            descriptor: image.manifest.clone(),
        })
    }

    /// The image's history, newest step first (see [`HistoryEntry`]).
    pub fn image_history(&self, query: &str) -> Result<Vec<HistoryEntry>, EngineError> {
        let image = self.find_image(query)?;
        let layer_sizes: Vec<u64> = image.parsed.layers.iter().map(|l| l.size).collect();
        let mut sizes = layer_sizes.iter();
        let mut out: Vec<HistoryEntry> = Vec::new();
        for h in &image.config.history {
            let size = if h.empty_layer { 0 } else { sizes.next().copied().unwrap_or(0) };
            out.push(HistoryEntry {
                id: None,
                created: h.created.clone(),
                created_unix: h.created.as_deref().and_then(parse_rfc3339),
                created_by: h.created_by.clone().unwrap_or_default(),
                comment: h.comment.clone().unwrap_or_default(),
                size,
                empty_layer: h.empty_layer,
            });
        }
        // Layers the history does not account for (images made without history).
        for size in sizes {
            out.push(HistoryEntry {
                id: None,
                created: None,
                created_unix: None,
                created_by: String::new(),
                comment: String::new(),
                size: *size,
                empty_layer: false,
            });
        }
        out.reverse();
        if let Some(first) = out.first_mut() {
            first.id = Some(image.id.clone());
        }
        Ok(out)
    }

    /// Gives the image `source` (found as [`Engine::find_image`] finds it) the name `target`,
    /// replacing whatever `target` named before. Returns the store name.
    pub fn tag_image(&self, source: &str, target: &Reference) -> Result<String, EngineError> {
        let image = self.find_image(source)?;
        self.name_image(target, &image.manifest, image.platforms)
    }

    /// Points `name` at `manifest` (an image of `platforms`) and drops the manifest's
    /// dangling entry, if any.
    pub(crate) fn name_image(
        &self,
        name: &Reference,
        manifest: &Descriptor,
        platforms: Vec<Platform>,
    ) -> Result<String, EngineError> {
        let key = name.to_string();
        let record = ImageRecord { manifest: manifest.clone(), created_unix: now_unix(), platforms };
        self.store.meta().put_image(&key, &record)?;
        self.store.meta().remove_image(&dangling_name(&manifest.digest))?;
        Ok(key)
    }

    /// Removes a name (`docker rmi NAME`), or the only name of an image given by ID or
    /// digest, or a dangling image. Content stays in the store until `prune` finds it
    /// unreferenced.
    pub fn remove_image(&self, query: &str) -> Result<Removed, EngineError> {
        let image = self.find_image(query)?;
        let meta = self.store.meta();
        let familiar = |n: &str| n.parse::<Reference>().map_or_else(|_| n.to_string(), |r| r.familiar());
        if let Some(name) = &image.matched_name {
            meta.remove_image(name)?;
            return Ok(Removed::Untagged(familiar(name)));
        }
        match image.names.as_slice() {
            [] => {
                meta.remove_image(&dangling_name(&image.manifest.digest))?;
                Ok(Removed::Dangling(image.id))
            }
            [only] => {
                meta.remove_image(only)?;
                Ok(Removed::Untagged(familiar(only)))
            }
            several => Err(ImageError::SeveralNames {
                query: query.to_string(),
                names: several.iter().map(|n| familiar(n)).collect::<Vec<_>>().join(", "),
            }
            .into()),
        }
    }
}

/// What [`Engine::remove_image`] removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Removed {
    /// A name (as docker prints it).
    Untagged(String),
    /// A dangling image (its ID).
    Dangling(Digest),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_and_offsets() {
        for t in [0, 951_782_400, 1_700_000_000, -86_400] {
            assert_eq!(parse_rfc3339(&registry::time::format_rfc3339(t)), Some(t), "{t}");
        }
        let cases: &[(&str, Option<i64>)] = &[
            ("2023-11-14T22:13:20.123456789Z", Some(1_700_000_000)),
            ("2023-11-15T00:13:20+02:00", Some(1_700_000_000)),
            ("2023-11-14T21:13:20-01:00", Some(1_700_000_000)),
            ("2023-11-14 22:13:20Z", Some(1_700_000_000)),
            ("2023-13-14T22:13:20Z", None),
            ("2023-11-14T22:13:20", None),
            ("yesterday", None),
            ("2023-11-14T22:13:20+0200", None),
            ("2023-11-14T22x13y20Z", None),
            ("2023-11-14T22:13:20+é:00", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_rfc3339(text), *want, "{text}");
        }
    }

    #[test]
    fn id_prefixes() {
        let cases: &[(&str, Option<&str>)] = &[
            ("sha256:ab", Some("ab")),
            ("abcd", Some("abcd")),
            ("abc", None),
            ("app", None),
            ("ABCD", None),
            ("sha256:", None),
            ("deadbeefx", None),
        ];
        for (q, want) in cases {
            assert_eq!(id_prefix(q), *want, "{q}");
        }
    }
}
