//! Layers: one immutable directory each, in overlayfs `upperdir` format, and the mutable
//! layer a build step writes into before it is committed.
//!
//! A layer lives at `<root>/layers/<id>/diff`; while it is mutable it also has
//! `<root>/layers/<id>/work` (overlay's workdir). A layer directory becomes part of the
//! store only when its database record is committed, after its contents were flushed; a
//! directory without a record is a leftover that [`crate::Store::open`] removes.

use crate::error::{StoreError, io_err};
use crate::fsutil;
use crate::store::StoreInner;
use registry::Hasher;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The name of a layer: 1 to 64 characters out of `[0-9a-z]`, so it is always a safe single
/// path component.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LayerId(String);

/// Why a string is not a [`LayerId`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid layer id {value:?}: expected 1 to 64 characters out of [0-9a-z]")]
pub struct InvalidLayerId {
    /// The rejected text.
    pub value: String,
}

impl LayerId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A fresh id: 16 hex digits of a hash over time, pid and a process-wide counter, so ids
    /// do not repeat within a process and practically never across processes.
    pub(crate) fn generate() -> LayerId {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut h = Hasher::new();
        h.update(&now.as_nanos().to_le_bytes());
        h.update(&std::process::id().to_le_bytes());
        h.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        let digest = h.finish();
        LayerId(digest.hex()[..16].to_string())
    }
}

impl FromStr for LayerId {
    type Err = InvalidLayerId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok =
            !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
        if ok { Ok(LayerId(s.to_string())) } else { Err(InvalidLayerId { value: s.to_string() }) }
    }
}

impl TryFrom<String> for LayerId {
    type Error = InvalidLayerId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<LayerId> for String {
    fn from(id: LayerId) -> String {
        id.0
    }
}

impl fmt::Display for LayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for LayerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LayerId({})", self.0)
    }
}

/// Owns a layer directory that is not committed yet: removes it when the last owner (the
/// [`MutableLayer`] or a writable mount of it) goes away, unless it was committed.
pub(crate) struct LayerDirGuard {
    pub(crate) id: LayerId,
    pub(crate) dir: PathBuf,
    pub(crate) committed: AtomicBool,
    /// Set while a writable mount uses the layer as its upper directory.
    pub(crate) mounted: AtomicBool,
}

impl Drop for LayerDirGuard {
    fn drop(&mut self) {
        if self.committed.load(Ordering::SeqCst) {
            return;
        }
        if let Err(e) = fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            // Not fatal: the next Store::open removes directories without a record.
            tracing::warn!(layer = %self.id, error = %e, "could not remove uncommitted layer");
        }
    }
}

/// A layer being written: an empty `diff` directory (and overlay `work` directory) that a
/// build step fills, directly or through [`crate::Store::mount_writable`].
///
/// Dropping it without [`MutableLayer::commit`] removes the directory (after any writable
/// mount of it is gone). A crash leaves the directory behind without a database record; the
/// next [`crate::Store::open`] removes it.
pub struct MutableLayer {
    pub(crate) guard: Arc<LayerDirGuard>,
    pub(crate) diff: PathBuf,
    pub(crate) work: PathBuf,
    pub(crate) store: Arc<StoreInner>,
}

impl fmt::Debug for MutableLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MutableLayer").field("id", &self.guard.id).field("diff", &self.diff).finish()
    }
}

impl MutableLayer {
    /// The id the layer will have once committed.
    pub fn id(&self) -> &LayerId {
        &self.guard.id
    }

    /// The directory that receives the layer's contents (overlay `upperdir` format).
    pub fn diff_dir(&self) -> &Path {
        &self.diff
    }

    /// Overlay's `workdir` for this layer (same file system as the diff, initially empty).
    pub fn work_dir(&self) -> &Path {
        &self.work
    }

    /// Makes the layer immutable and part of the store: removes the work directory,
    /// measures the diff and records it in the database.
    ///
    /// The files are flushed to disk later, in one batch (see [`crate::Store::sync`]): a
    /// crash of the process loses nothing, and after a power loss the next open drops the
    /// layers that were not flushed yet.
    ///
    /// Fails with [`StoreError::LayerBusy`] while a writable mount of the layer is alive;
    /// the layer is then discarded once that mount is dropped.
    pub fn commit(self) -> Result<LayerId, StoreError> {
        self.commit_record(|_| {}, None)
    }

    /// Commits, letting `fill` complete the record (diff id and blob of an imported layer)
    /// and recording `import_key` in the same transaction.
    pub(crate) fn commit_record(
        self,
        fill: impl FnOnce(&mut crate::meta::LayerRecord),
        import_key: Option<&str>,
    ) -> Result<LayerId, StoreError> {
        if self.guard.mounted.load(Ordering::SeqCst) {
            return Err(StoreError::LayerBusy { id: self.guard.id.clone() });
        }
        match fs::remove_dir_all(&self.work) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("remove work directory", &self.work)(e)),
        }
        let scan = scan_layer(&self.diff)?;
        let mut record = crate::meta::LayerRecord {
            size: scan.size,
            created_unix: crate::meta::now_unix(),
            diff_id: None,
            blobs: Vec::new(),
            has_whiteouts: scan.has_whiteouts,
        };
        fill(&mut record);
        let id = self.guard.id.clone();
        self.store.meta.insert_layer_with_import(&id, &record, import_key, &self.store.boot_id)?;
        self.guard.committed.store(true, Ordering::SeqCst);
        self.store.pins.note_new_layer(&id);
        Ok(id)
    }
}

/// What a walk over a layer's diff found.
pub(crate) struct LayerScan {
    /// Bytes allocated on disk (hard links counted once).
    pub(crate) size: u64,
    /// Whether the diff holds whiteouts or opaque directories (then it cannot be shown with a
    /// plain bind mount).
    pub(crate) has_whiteouts: bool,
}

/// Measures a diff directory.
pub(crate) fn scan_layer(diff: &Path) -> Result<LayerScan, StoreError> {
    let mut scan = LayerScan { size: 0, has_whiteouts: false };
    let mut seen_links = HashSet::new();
    let mut stack = vec![diff.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if dir != diff && fsutil::is_opaque(&dir).map_err(io_err("read xattrs of", &dir))? {
            scan.has_whiteouts = true;
        }
        let meta = fs::symlink_metadata(&dir).map_err(io_err("stat", &dir))?;
        scan.size += meta.blocks() * 512;
        for entry in fs::read_dir(&dir).map_err(io_err("read directory", &dir))? {
            let entry = entry.map_err(io_err("read directory", &dir))?;
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).map_err(io_err("stat", &path))?;
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            if fsutil::is_whiteout(&meta) {
                scan.has_whiteouts = true;
            }
            if meta.nlink() > 1 && !seen_links.insert((meta.dev(), meta.ino())) {
                continue;
            }
            scan.size += meta.blocks() * 512;
        }
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_ids_are_safe_path_components() {
        let cases = [
            ("0123abcdef", true),
            ("z", true),
            ("", false),
            ("ABC", false),
            ("a/b", false),
            ("..", false),
            ("a-b", false),
            (&"a".repeat(64), true),
            (&"a".repeat(65), false),
        ];
        for (text, ok) in cases {
            assert_eq!(text.parse::<LayerId>().is_ok(), ok, "{text:?}");
        }
        let a = LayerId::generate();
        let b = LayerId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().parse::<LayerId>().unwrap(), a);
        assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{a}\""));
        assert!(serde_json::from_str::<LayerId>("\"../x\"").is_err());
    }
}
