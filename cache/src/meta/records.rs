//! The records kept in the metadata database. They are stored as JSON, so a field added
//! later with `#[serde(default)]` keeps old databases readable.

use crate::layer::LayerId;
use registry::{Compression, Descriptor, Digest, Platform};
use serde::{Deserialize, Serialize};

/// What a cache key resolved to: the layer chain a build step produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The step's resulting filesystem, base layer first.
    pub chain: Vec<LayerId>,
    /// When the record was made (seconds since the Unix epoch).
    pub created_unix: i64,
    /// When a build last used it (for garbage collection).
    pub last_used_unix: i64,
    /// What produced it, shown by `rbuild du` (for example the instruction text).
    pub description: String,
    /// Content-store blobs the record needs besides its layers (for example the manifest
    /// and config of a pulled base image); garbage collection keeps them while the record
    /// lives.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blobs: Vec<Digest>,
    /// Free-form data for the record's owner (for example the resolved manifest digest).
    #[serde(default)]
    pub extra: serde_json::Value,
}

impl CacheRecord {
    /// A record for `chain`, created and last used now, without blobs or extra data.
    pub fn new(chain: Vec<LayerId>, description: impl Into<String>) -> CacheRecord {
        let now = now_unix();
        CacheRecord {
            chain,
            created_unix: now,
            last_used_unix: now,
            description: description.into(),
            blobs: Vec::new(),
            extra: serde_json::Value::Null,
        }
    }
}

/// One committed layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Bytes the diff directory occupies on disk.
    pub size: u64,
    /// When the layer was committed (seconds since the Unix epoch).
    pub created_unix: i64,
    /// Digest of the layer's uncompressed tar, once known (imported layers know it; built
    /// layers learn it when first exported).
    #[serde(default)]
    pub diff_id: Option<Digest>,
    /// Compressed forms of the layer in the content store, at most one per compression.
    #[serde(default)]
    pub blobs: Vec<LayerBlob>,
    /// Whether the diff holds whiteouts or opaque directories.
    #[serde(default = "yes")]
    pub has_whiteouts: bool,
}

fn yes() -> bool {
    true
}

impl LayerRecord {
    /// The stored blob with `compression`, if any.
    pub fn blob(&self, compression: Compression) -> Option<&LayerBlob> {
        self.blobs.iter().find(|b| b.compression == compression)
    }
}

/// A layer exported as a blob: recorded so a rebuild re-exports nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerBlob {
    /// How the blob is compressed.
    pub compression: Compression,
    /// The blob in the content store.
    pub descriptor: Descriptor,
    /// Digest of the uncompressed tar inside the blob.
    pub diff_id: Digest,
}

/// A tagged image in the local store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The image manifest or index, stored in the content store.
    pub manifest: Descriptor,
    /// When the tag was set (seconds since the Unix epoch).
    pub created_unix: i64,
    /// Platforms the image holds.
    #[serde(default)]
    pub platforms: Vec<Platform>,
}

/// Seconds since the Unix epoch, now.
pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
