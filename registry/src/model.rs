//! The OCI image model: descriptors, manifests, indexes and image configs.
//!
//! These are plain serde types. Whoever hashes a manifest or config must keep the raw bytes
//! it hashed: re-serialising a parsed value is not guaranteed to give the same bytes.

use crate::{Digest, MediaType, Platform};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A reference to a blob: what it is, its digest and size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// Media type of the referenced content.
    #[serde(rename = "mediaType")]
    pub media_type: MediaType,
    /// Digest of the referenced bytes.
    pub digest: Digest,
    /// Size of the referenced bytes.
    pub size: u64,
    /// Platform of a manifest inside an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// A descriptor for `bytes` of `media_type`.
    pub fn for_bytes(media_type: MediaType, bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type,
            digest: Digest::of_bytes(bytes),
            size: bytes.len() as u64,
            platform: None,
            annotations: BTreeMap::new(),
        }
    }
}

/// An image manifest (OCI or Docker schema 2; the fields are the same).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageManifest {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// The manifest's own media type (optional in OCI, required by Docker).
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    /// The image config blob.
    pub config: Descriptor,
    /// Layer blobs, base first.
    pub layers: Vec<Descriptor>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image index / manifest list: one manifest per platform.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageIndex {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// The index's own media type.
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    /// The per-platform manifests.
    pub manifests: Vec<Descriptor>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageIndex {
    /// The entry for `platform`, if any (first match wins, as in containerd).
    pub fn select(&self, platform: &Platform) -> Option<&Descriptor> {
        self.manifests.iter().find(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p)))
    }
}

/// The image configuration blob (`application/vnd.oci.image.config.v1+json`), including the
/// Docker extensions (`Healthcheck`, `OnBuild`, `Shell`) that Dockerfiles set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// Creation time, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Author (from `MAINTAINER`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// CPU architecture.
    pub architecture: String,
    /// Operating system.
    pub os: String,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The runtime configuration.
    #[serde(default)]
    pub config: ContainerConfig,
    /// The layers' uncompressed digests.
    pub rootfs: RootFs,
    /// One entry per instruction that built the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// rbuild's inline build cache (`--cache-to type=inline`): a cache config whose layers
    /// are this image's layers. Images built on this one do not inherit it.
    #[serde(rename = "rbuild.cache.v0", default, skip_serializing_if = "Option::is_none")]
    pub inline_cache: Option<serde_json::Value>,
}

impl ImageConfig {
    /// The platform this config describes.
    pub fn platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone(),
        }
    }
}

/// The `config` object of an image config: what a container of the image runs with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// `USER`.
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `EXPOSE`: keys like `80/tcp`, values are empty objects.
    #[serde(rename = "ExposedPorts", default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, EmptyObject>>,
    /// `ENV`, as `KEY=value`, in definition order.
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// `ENTRYPOINT`.
    #[serde(rename = "Entrypoint", default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`.
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `VOLUME`.
    #[serde(rename = "Volumes", default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, EmptyObject>>,
    /// `WORKDIR`.
    #[serde(rename = "WorkingDir", default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `LABEL`.
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `STOPSIGNAL`.
    #[serde(rename = "StopSignal", default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Set by shell-form `CMD`/`ENTRYPOINT` on Windows images; kept when present.
    #[serde(rename = "ArgsEscaped", default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    /// `HEALTHCHECK` (Docker extension).
    #[serde(rename = "Healthcheck", default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// `ONBUILD` triggers (Docker extension).
    #[serde(rename = "OnBuild", default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    /// `SHELL` (Docker extension).
    #[serde(rename = "Shell", default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
}

impl ContainerConfig {
    /// The value of `key` in `Env`, if set.
    pub fn env_get(&self, key: &str) -> Option<&str> {
        self.env.as_ref()?.iter().find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    }

    /// Sets `key=value` in `Env`, replacing an existing entry in place (docker keeps order).
    pub fn env_set(&mut self, key: &str, value: &str) {
        let env = self.env.get_or_insert_with(Vec::new);
        let entry = format!("{key}={value}");
        match env.iter_mut().find(|kv| kv.split_once('=').map_or(kv.as_str(), |(k, _)| k) == key) {
            Some(slot) => *slot = entry,
            None => env.push(entry),
        }
    }
}

/// An empty JSON object `{}` (the value type of `ExposedPorts` and `Volumes`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmptyObject {}

/// `HEALTHCHECK` settings; durations in nanoseconds as Docker stores them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", ...]` or `["CMD-SHELL", "..."]`.
    #[serde(rename = "Test", default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    /// `--interval`.
    #[serde(rename = "Interval", default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    /// `--timeout`.
    #[serde(rename = "Timeout", default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// `--start-period`.
    #[serde(rename = "StartPeriod", default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    /// `--start-interval`.
    #[serde(rename = "StartInterval", default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    /// `--retries`.
    #[serde(rename = "Retries", default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
}

/// The `rootfs` object: the uncompressed digests of the layers, base first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Uncompressed layer digests.
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs { kind: "layers".into(), diff_ids: Vec::new() }
    }
}

/// One history entry of an image config.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// When the step ran, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The instruction, e.g. `RUN /bin/sh -c make # buildkit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Comment, e.g. `buildkit.dockerfile.v0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when the step added no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// Either kind of manifest, as fetched by tag or digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnyManifest {
    /// One platform's image.
    Image(ImageManifest),
    /// Several platforms.
    Index(ImageIndex),
}

/// Why manifest bytes could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The JSON is malformed or lacks required fields.
    #[error("malformed {what}: {source}")]
    Json {
        /// What was being parsed.
        what: &'static str,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The media type is not a manifest or index rbuild understands.
    #[error("unsupported manifest media type {0}")]
    Unsupported(String),
}

impl AnyManifest {
    /// Parses manifest bytes, using `content_type` (from the HTTP response or a descriptor)
    /// and falling back to the `mediaType` field and the document's shape.
    pub fn parse(content_type: Option<&MediaType>, bytes: &[u8]) -> Result<AnyManifest, ManifestError> {
        #[derive(Deserialize)]
        struct Probe {
            #[serde(rename = "mediaType")]
            media_type: Option<MediaType>,
            manifests: Option<serde_json::Value>,
            #[serde(rename = "schemaVersion")]
            schema_version: Option<u32>,
        }
        let probe: Probe = serde_json::from_slice(bytes)
            .map_err(|source| ManifestError::Json { what: "manifest", source })?;
        let declared = probe.media_type.clone().or_else(|| content_type.cloned());
        let is_index = match &declared {
            Some(m) if m.is_index() => true,
            Some(m) if m.is_manifest() => false,
            Some(MediaType::Other(s))
                if s.contains("manifest.v1+prettyjws") || probe.schema_version == Some(1) =>
            {
                return Err(ManifestError::Unsupported(
                    "application/vnd.docker.distribution.manifest.v1 (schema 1 is deprecated)".into(),
                ));
            }
            _ => probe.manifests.is_some(),
        };
        if is_index {
            serde_json::from_slice(bytes)
                .map(AnyManifest::Index)
                .map_err(|source| ManifestError::Json { what: "image index", source })
        } else {
            serde_json::from_slice(bytes)
                .map(AnyManifest::Image)
                .map_err(|source| ManifestError::Json { what: "image manifest", source })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_index_and_selects_platform() {
        let d1 = format!("sha256:{}", "1".repeat(64));
        let d2 = format!("sha256:{}", "2".repeat(64));
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
            {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{d1}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
            {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{d2}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#
        );
        let AnyManifest::Index(index) = AnyManifest::parse(None, json.as_bytes()).unwrap() else { panic!() };
        assert_eq!(index.select(&"linux/arm64".parse().unwrap()).unwrap().digest.as_str(), d2);
        assert_eq!(index.select(&"linux/amd64".parse().unwrap()).unwrap().digest.as_str(), d1);
        assert!(index.select(&"linux/s390x".parse().unwrap()).is_none());
    }

    #[test]
    fn env_set_replaces_in_place() {
        let mut c =
            ContainerConfig { env: Some(vec!["A=1".into(), "PATH=/bin".into()]), ..Default::default() };
        c.env_set("A", "2");
        c.env_set("B", "3");
        assert_eq!(c.env.as_deref().unwrap(), ["A=2", "PATH=/bin", "B=3"]);
        assert_eq!(c.env_get("PATH"), Some("/bin"));
        assert_eq!(c.env_get("PAT"), None);
    }
}
