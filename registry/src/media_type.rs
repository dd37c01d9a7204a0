//! Media types of manifests, configs and layers (OCI and Docker schema 2).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A media type as it appears in `mediaType` fields and `Content-Type` headers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum MediaType {
    /// `application/vnd.oci.image.manifest.v1+json`
    OciManifest,
    /// `application/vnd.oci.image.index.v1+json`
    OciIndex,
    /// `application/vnd.oci.image.config.v1+json`
    OciConfig,
    /// `application/vnd.oci.image.layer.v1.tar`
    OciLayer,
    /// `application/vnd.oci.image.layer.v1.tar+gzip`
    OciLayerGzip,
    /// `application/vnd.oci.image.layer.v1.tar+zstd`
    OciLayerZstd,
    /// `application/vnd.docker.distribution.manifest.v2+json`
    DockerManifest,
    /// `application/vnd.docker.distribution.manifest.list.v2+json`
    DockerManifestList,
    /// `application/vnd.docker.container.image.v1+json`
    DockerConfig,
    /// `application/vnd.docker.image.rootfs.diff.tar.gzip`
    DockerLayerGzip,
    /// `application/vnd.docker.image.rootfs.diff.tar`
    DockerLayer,
    /// Anything else, kept verbatim.
    Other(String),
}

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain tar.
    Uncompressed,
    /// gzip (the default everywhere).
    Gzip,
    /// zstd (OCI media types only).
    Zstd,
}

impl MediaType {
    /// The wire string.
    pub fn as_str(&self) -> &str {
        match self {
            MediaType::OciManifest => "application/vnd.oci.image.manifest.v1+json",
            MediaType::OciIndex => "application/vnd.oci.image.index.v1+json",
            MediaType::OciConfig => "application/vnd.oci.image.config.v1+json",
            MediaType::OciLayer => "application/vnd.oci.image.layer.v1.tar",
            MediaType::OciLayerGzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            MediaType::OciLayerZstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            MediaType::DockerManifest => "application/vnd.docker.distribution.manifest.v2+json",
            MediaType::DockerManifestList => "application/vnd.docker.distribution.manifest.list.v2+json",
            MediaType::DockerConfig => "application/vnd.docker.container.image.v1+json",
            MediaType::DockerLayerGzip => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            MediaType::DockerLayer => "application/vnd.docker.image.rootfs.diff.tar",
            MediaType::Other(s) => s,
        }
    }

    /// Image manifests (one platform).
    pub fn is_manifest(&self) -> bool {
        matches!(self, MediaType::OciManifest | MediaType::DockerManifest)
    }

    /// Indexes / manifest lists (several platforms).
    pub fn is_index(&self) -> bool {
        matches!(self, MediaType::OciIndex | MediaType::DockerManifestList)
    }

    /// Layer blobs of either family.
    pub fn is_layer(&self) -> bool {
        self.layer_compression().is_some()
    }

    /// The compression of a layer media type, `None` for non-layers.
    pub fn layer_compression(&self) -> Option<Compression> {
        match self {
            MediaType::OciLayer | MediaType::DockerLayer => Some(Compression::Uncompressed),
            MediaType::OciLayerGzip | MediaType::DockerLayerGzip => Some(Compression::Gzip),
            MediaType::OciLayerZstd => Some(Compression::Zstd),
            MediaType::Other(s) if s.starts_with("application/vnd.oci.image.layer.") => {
                Some(if s.ends_with("+gzip") {
                    Compression::Gzip
                } else if s.ends_with("+zstd") {
                    Compression::Zstd
                } else {
                    Compression::Uncompressed
                })
            }
            _ => None,
        }
    }

    /// The layer media type for `compression` in the OCI or Docker family.
    pub fn layer(compression: Compression, oci: bool) -> MediaType {
        match (compression, oci) {
            (Compression::Uncompressed, true) => MediaType::OciLayer,
            (Compression::Gzip, true) => MediaType::OciLayerGzip,
            (Compression::Zstd, _) => MediaType::OciLayerZstd,
            (Compression::Uncompressed, false) => MediaType::DockerLayer,
            (Compression::Gzip, false) => MediaType::DockerLayerGzip,
        }
    }
}

impl From<String> for MediaType {
    fn from(s: String) -> MediaType {
        MediaType::from(s.as_str())
    }
}

impl From<&str> for MediaType {
    fn from(s: &str) -> MediaType {
        let all = [
            MediaType::OciManifest,
            MediaType::OciIndex,
            MediaType::OciConfig,
            MediaType::OciLayer,
            MediaType::OciLayerGzip,
            MediaType::OciLayerZstd,
            MediaType::DockerManifest,
            MediaType::DockerManifestList,
            MediaType::DockerConfig,
            MediaType::DockerLayerGzip,
            MediaType::DockerLayer,
        ];
        all.into_iter().find(|m| m.as_str() == s).unwrap_or_else(|| MediaType::Other(s.to_string()))
    }
}

impl From<MediaType> for String {
    fn from(m: MediaType) -> String {
        m.as_str().to_string()
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_classifies() {
        for m in [MediaType::OciManifest, MediaType::DockerManifestList, MediaType::DockerLayerGzip] {
            assert_eq!(MediaType::from(m.as_str()), m);
        }
        assert_eq!(MediaType::from("x/y"), MediaType::Other("x/y".into()));
        assert!(MediaType::DockerLayerGzip.is_layer());
        assert_eq!(MediaType::OciLayerZstd.layer_compression(), Some(Compression::Zstd));
        assert!(MediaType::OciIndex.is_index());
        assert!(!MediaType::OciConfig.is_layer());
    }
}
