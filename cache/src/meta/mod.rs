//! Typed access to the metadata database `<root>/meta.redb` (redb: copy-on-write B-trees,
//! every commit atomic and, unless said otherwise, durable when it returns).
//!
//! Tables (string keys, JSON values):
//! - `cache`: cache key digest → [`CacheRecord`]
//! - `layers`: layer id → [`LayerRecord`]
//! - `images`: image name → [`ImageRecord`]
//! - `imports`: hash of (parent chain, diff id) → layer id, so importing a blob twice on
//!   the same parents reuses the first layer
//! - `kv`: `namespace NUL key` → bytes, small blobs typed by their caller
//! - `unsynced`: layer id → boot id, for layers whose files may not be on disk yet
//!
//! Invariant: a record never names a layer or blob that is not present. Writers check it
//! inside the write transaction; garbage collection removes records before files.
//!
//! A build's records (layers, cache records, layer blobs) are committed without a disk flush
//! and logged in the journal (see [`journal`]); every durable commit (tagging an image, the
//! end-of-build flush, garbage collection) makes them durable and empties the journal.

mod journal;
mod records;

pub(crate) use records::now_unix;
pub use records::{CacheRecord, ImageRecord, LayerBlob, LayerRecord};

use crate::content::{ContentError, ContentStore};
use crate::error::StoreError;
use crate::layer::LayerId;
use crate::lease::Pins;
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableHandle,
    WriteTransaction,
};
use registry::Digest;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use journal::{Journal, Op};

const CACHE: TableDefinition<&str, &[u8]> = TableDefinition::new("cache");
const LAYERS: TableDefinition<&str, &[u8]> = TableDefinition::new("layers");
const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("images");
const IMPORTS: TableDefinition<&str, &str> = TableDefinition::new("imports");
const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const UNSYNCED: TableDefinition<&str, &str> = TableDefinition::new("unsynced");

/// Everything in the database at one instant (for garbage collection and usage).
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) cache: BTreeMap<Digest, CacheRecord>,
    pub(crate) layers: BTreeMap<LayerId, LayerRecord>,
    pub(crate) images: BTreeMap<String, ImageRecord>,
}

/// The metadata database of a [`crate::Store`]. All methods are safe to call from several
/// threads at once; writes are serialized by the database.
pub struct Meta {
    db: Database,
    path: PathBuf,
    content: ContentStore,
    pins: Arc<Pins>,
    /// Set after a non-durable commit; the next durable commit (at the latest on drop)
    /// makes it durable.
    unflushed: AtomicBool,
    /// Operations committed without a flush since the last durable commit. Held across each
    /// logged commit and its append, and across each durable commit and the emptying that
    /// follows, so no operation is dropped from the journal before it is durable.
    journal: Mutex<Journal>,
}

impl fmt::Debug for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Meta").field("path", &self.path).finish()
    }
}

impl Meta {
    /// Opens (creating if needed) the database and its tables, and replays the journal a
    /// killed process of this boot (`boot_id`) left. Returns how many journal operations
    /// were replayed.
    pub(crate) fn open(
        path: &Path,
        content: ContentStore,
        pins: Arc<Pins>,
        boot_id: &str,
    ) -> Result<(Meta, usize), StoreError> {
        let db = Database::create(path).map_err(db_err(path))?;
        let meta = Meta {
            db,
            path: path.to_path_buf(),
            content,
            pins,
            unflushed: AtomicBool::new(false),
            journal: Mutex::new(Journal::new(path, boot_id)),
        };
        let complete = meta.read(|txn| {
            Ok([CACHE, LAYERS, IMAGES, KV].iter().all(|t| txn.open_table(*t).is_ok())
                && [IMPORTS, UNSYNCED].iter().all(|t| txn.open_table(*t).is_ok()))
        })?;
        if !complete {
            meta.create_tables()?;
        }
        let replayed = meta.replay_journal()?;
        Ok((meta, replayed))
    }

    /// Applies what the journal holds in one durable commit (which empties it). An
    /// operation that no longer applies (its layer or blob is gone) is skipped.
    fn replay_journal(&self) -> Result<usize, StoreError> {
        let pending = self.journal().pending();
        let ops = pending.map_err(|e| self.journal_err(e))?;
        if ops.is_empty() {
            // Another boot's journal, or an empty one: nothing in it is usable.
            let cleared = self.journal().clear();
            cleared.map_err(|e| self.journal_err(e))?;
            return Ok(0);
        }
        self.write(true, |txn| {
            let mut applied = 0;
            for op in &ops {
                if self.apply(txn, op).is_ok() {
                    applied += 1;
                }
            }
            Ok(applied)
        })
    }

    fn journal(&self) -> MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn journal_err(&self, e: std::io::Error) -> StoreError {
        StoreError::Io {
            op: "write the metadata journal",
            path: self.path.with_extension("journal"),
            source: e,
        }
    }

    fn create_tables(&self) -> Result<(), StoreError> {
        self.write(true, |txn| {
            txn.open_table(CACHE).map_err(db_err(&self.path))?;
            txn.open_table(LAYERS).map_err(db_err(&self.path))?;
            txn.open_table(IMAGES).map_err(db_err(&self.path))?;
            txn.open_table(IMPORTS).map_err(db_err(&self.path))?;
            txn.open_table(KV).map_err(db_err(&self.path))?;
            txn.open_table(UNSYNCED).map_err(db_err(&self.path))?;
            Ok(())
        })
    }

    fn read<T>(&self, f: impl FnOnce(&ReadTransaction) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let txn = self.db.begin_read().map_err(db_err(&self.path))?;
        f(&txn)
    }

    /// Runs `f` in a write transaction and commits it when `f` succeeds (dropping an
    /// uncommitted transaction aborts it).
    fn write<T>(
        &self,
        durable: bool,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let journal = if durable { Some(self.journal()) } else { None };
        let mut txn = self.db.begin_write().map_err(db_err(&self.path))?;
        if !durable {
            txn.set_durability(Durability::None).map_err(db_err(&self.path))?;
        }
        let out = f(&txn)?;
        txn.commit().map_err(db_err(&self.path))?;
        if let Some(mut journal) = journal {
            self.unflushed.store(false, Ordering::SeqCst);
            // Everything logged so far is durable now.
            if let Err(e) = journal.clear() {
                tracing::warn!(error = %e, "could not empty the metadata journal");
            }
        } else {
            self.unflushed.store(true, Ordering::SeqCst);
        }
        Ok(out)
    }

    /// Commits `op` without a flush and logs it in the journal, so that it survives this
    /// process being killed. If the journal cannot be written, the commit is flushed
    /// instead.
    fn write_logged(&self, op: Op) -> Result<(), StoreError> {
        let mut journal = self.journal();
        let mut txn = self.db.begin_write().map_err(db_err(&self.path))?;
        txn.set_durability(Durability::None).map_err(db_err(&self.path))?;
        self.apply(&txn, &op)?;
        txn.commit().map_err(db_err(&self.path))?;
        self.unflushed.store(true, Ordering::SeqCst);
        if let Err(e) = journal.append(&op) {
            tracing::warn!(error = %e, "could not write the metadata journal; flushing instead");
            drop(journal);
            self.write(true, |_| Ok(()))?;
        }
        Ok(())
    }

    /// Applies one logged operation inside `txn`, checking the invariant.
    fn apply(&self, txn: &WriteTransaction, op: &Op) -> Result<(), StoreError> {
        match op {
            Op::InsertLayer { id, record, import_key, boot_id } => {
                for b in &record.blobs {
                    self.require_blob(&b.descriptor.digest)?;
                }
                let mut t = txn.open_table(LAYERS).map_err(db_err(&self.path))?;
                t.insert(id.as_str(), encode(record).as_slice()).map_err(db_err(&self.path))?;
                let mut unsynced = txn.open_table(UNSYNCED).map_err(db_err(&self.path))?;
                unsynced.insert(id.as_str(), boot_id.as_str()).map_err(db_err(&self.path))?;
                if let Some(key) = import_key {
                    let mut imports = txn.open_table(IMPORTS).map_err(db_err(&self.path))?;
                    imports.insert(key.as_str(), id.as_str()).map_err(db_err(&self.path))?;
                }
                Ok(())
            }
            Op::PutCache { key, record } => {
                for blob in &record.blobs {
                    self.require_blob(blob)?;
                }
                let layers = txn.open_table(LAYERS).map_err(db_err(&self.path))?;
                for id in &record.chain {
                    if layers.get(id.as_str()).map_err(db_err(&self.path))?.is_none() {
                        return Err(StoreError::LayerNotFound(id.clone()));
                    }
                }
                let mut t = txn.open_table(CACHE).map_err(db_err(&self.path))?;
                t.insert(key.as_str(), encode(record).as_slice()).map_err(db_err(&self.path))?;
                Ok(())
            }
            Op::SetLayerBlob { id, blob } => {
                self.require_blob(&blob.descriptor.digest)?;
                self.update_layer(txn, id, |rec| {
                    if rec.diff_id.is_none() {
                        rec.diff_id = Some(blob.diff_id.clone());
                    }
                    rec.blobs.retain(|b| b.compression != blob.compression);
                    rec.blobs.push(blob.clone());
                })
            }
            Op::SetLayerCreated { id, created_unix } => {
                self.update_layer(txn, id, |rec| rec.created_unix = *created_unix)
            }
        }
    }

    /// `ContentError::NotFound` unless the blob is in the content store.
    fn require_blob(&self, digest: &Digest) -> Result<(), StoreError> {
        if self.content.contains(digest) {
            Ok(())
        } else {
            Err(ContentError::NotFound(digest.clone()).into())
        }
    }

    /// Reads a layer's record, lets `change` edit it, and writes it back when it changed.
    fn update_layer(
        &self,
        txn: &WriteTransaction,
        id: &LayerId,
        change: impl FnOnce(&mut LayerRecord),
    ) -> Result<(), StoreError> {
        let mut t = txn.open_table(LAYERS).map_err(db_err(&self.path))?;
        let before: LayerRecord = match t.get(id.as_str()).map_err(db_err(&self.path))? {
            Some(v) => decode("layers", id.as_str(), v.value())?,
            None => return Err(StoreError::LayerNotFound(id.clone())),
        };
        let mut rec = before.clone();
        change(&mut rec);
        if rec != before {
            t.insert(id.as_str(), encode(&rec).as_slice()).map_err(db_err(&self.path))?;
        }
        Ok(())
    }

    fn get_json<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(table).map_err(db_err(&self.path))?;
            match t.get(key).map_err(db_err(&self.path))? {
                Some(v) => decode(table.name(), key, v.value()).map(Some),
                None => Ok(None),
            }
        })
    }

    fn list_json<T: DeserializeOwned>(
        &self,
        txn: &ReadTransaction,
        table: TableDefinition<&str, &[u8]>,
    ) -> Result<Vec<(String, T)>, StoreError> {
        let t = txn.open_table(table).map_err(db_err(&self.path))?;
        let mut out = Vec::new();
        for item in t.iter().map_err(db_err(&self.path))? {
            let (k, v) = item.map_err(db_err(&self.path))?;
            out.push((k.value().to_string(), decode(table.name(), k.value(), v.value())?));
        }
        Ok(out)
    }

    // ---- cache records ----

    /// The record for a cache key. While a [`crate::Lease`] is alive, the record's layers
    /// are protected from garbage collection from now on.
    pub fn get_cache(&self, key: &Digest) -> Result<Option<CacheRecord>, StoreError> {
        let rec: Option<CacheRecord> = self.get_json(CACHE, key.as_str())?;
        if let Some(r) = &rec {
            self.pins.note_used(&r.chain, &r.blobs);
        }
        Ok(rec)
    }

    /// Stores the record for a cache key, replacing an older one. Every layer of the chain
    /// must be committed and every blob stored, or nothing is written.
    pub fn put_cache(&self, key: &Digest, record: &CacheRecord) -> Result<(), StoreError> {
        self.write_logged(Op::PutCache { key: key.clone(), record: record.clone() })
    }

    /// Sets the record's last-used time to now. Cheap: the change is not flushed to disk
    /// on its own (it becomes durable with the next ordinary commit, at the latest when the
    /// store closes); a crash may lose it, which only makes the record look older to GC.
    pub fn touch_cache(&self, key: &Digest) -> Result<(), StoreError> {
        self.write(false, |txn| {
            let mut t = txn.open_table(CACHE).map_err(db_err(&self.path))?;
            let rec = match t.get(key.as_str()).map_err(db_err(&self.path))? {
                Some(v) => Some(decode::<CacheRecord>("cache", key.as_str(), v.value())?),
                None => None,
            };
            if let Some(mut rec) = rec {
                rec.last_used_unix = now_unix();
                t.insert(key.as_str(), encode(&rec).as_slice()).map_err(db_err(&self.path))?;
            }
            Ok(())
        })
    }

    /// Removes a cache record; true when it existed. Its layers become garbage unless
    /// something else uses them.
    pub fn remove_cache(&self, key: &Digest) -> Result<bool, StoreError> {
        self.write(true, |txn| {
            let mut t = txn.open_table(CACHE).map_err(db_err(&self.path))?;
            Ok(t.remove(key.as_str()).map_err(db_err(&self.path))?.is_some())
        })
    }

    /// All cache records, ordered by key.
    pub fn list_cache(&self) -> Result<Vec<(Digest, CacheRecord)>, StoreError> {
        let all = self.read(|txn| self.list_json::<CacheRecord>(txn, CACHE))?;
        Ok(all.into_iter().filter_map(|(k, v)| k.parse().ok().map(|d| (d, v))).collect())
    }

    // ---- layers ----

    /// The record of a committed layer.
    pub fn layer(&self, id: &LayerId) -> Result<Option<LayerRecord>, StoreError> {
        self.get_json(LAYERS, id.as_str())
    }

    /// All committed layers, ordered by id.
    pub fn list_layers(&self) -> Result<Vec<(LayerId, LayerRecord)>, StoreError> {
        let all = self.read(|txn| self.list_json::<LayerRecord>(txn, LAYERS))?;
        Ok(all.into_iter().filter_map(|(k, v)| k.parse().ok().map(|id| (id, v))).collect())
    }

    /// Records a compressed blob of a layer, replacing an earlier blob of the same
    /// compression. The blob must be in the content store. The layer's `diff_id` is set
    /// from the blob when it was unknown.
    pub fn set_layer_blob(&self, id: &LayerId, blob: LayerBlob) -> Result<(), StoreError> {
        self.write_logged(Op::SetLayerBlob { id: id.clone(), blob })
    }

    /// Sets when a layer was made (an imported build-cache layer keeps the time it was
    /// built, so image history times, and the image digest, match the build that made it).
    pub fn set_layer_created(&self, id: &LayerId, created_unix: i64) -> Result<(), StoreError> {
        self.write_logged(Op::SetLayerCreated { id: id.clone(), created_unix })
    }

    /// Records a newly committed layer (and, for an imported layer, its import key). The
    /// layer is noted as not yet flushed to disk in boot `boot_id`, see [`Meta::unsynced`].
    pub(crate) fn insert_layer_with_import(
        &self,
        id: &LayerId,
        record: &LayerRecord,
        import_key: Option<&str>,
        boot_id: &str,
    ) -> Result<(), StoreError> {
        self.write_logged(Op::InsertLayer {
            id: id.clone(),
            record: record.clone(),
            import_key: import_key.map(str::to_string),
            boot_id: boot_id.to_string(),
        })
    }

    /// Layers whose files may still be only in the page cache, with the boot they were
    /// written in.
    pub(crate) fn unsynced(&self) -> Result<Vec<(LayerId, String)>, StoreError> {
        self.read(|txn| {
            let t = txn.open_table(UNSYNCED).map_err(db_err(&self.path))?;
            let mut out = Vec::new();
            for item in t.iter().map_err(db_err(&self.path))? {
                let (k, v) = item.map_err(db_err(&self.path))?;
                if let Ok(id) = k.value().parse() {
                    out.push((id, v.value().to_string()));
                }
            }
            Ok(out)
        })
    }

    /// Forgets that `ids` are unflushed (after the file system was synced).
    pub(crate) fn mark_synced(&self, ids: &[LayerId]) -> Result<(), StoreError> {
        self.write(true, |txn| {
            let mut t = txn.open_table(UNSYNCED).map_err(db_err(&self.path))?;
            for id in ids {
                t.remove(id.as_str()).map_err(db_err(&self.path))?;
            }
            Ok(())
        })
    }

    /// The layer an earlier import with the same key produced, if it still exists.
    pub(crate) fn imported_layer(&self, import_key: &str) -> Result<Option<LayerId>, StoreError> {
        self.read(|txn| {
            let imports = txn.open_table(IMPORTS).map_err(db_err(&self.path))?;
            let Some(id) = imports.get(import_key).map_err(db_err(&self.path))? else {
                return Ok(None);
            };
            let Ok(id) = id.value().parse::<LayerId>() else {
                return Ok(None);
            };
            let layers = txn.open_table(LAYERS).map_err(db_err(&self.path))?;
            Ok(layers.get(id.as_str()).map_err(db_err(&self.path))?.map(|_| id))
        })
    }

    // ---- images ----

    /// Tags an image: `name` now points at `record`. The manifest must be in the content
    /// store.
    pub fn put_image(&self, name: &str, record: &ImageRecord) -> Result<(), StoreError> {
        if name.is_empty() {
            return Err(StoreError::Invalid { what: "image name", reason: "empty".into() });
        }
        self.require_blob(&record.manifest.digest)?;
        let value = encode(record);
        self.write(true, |txn| {
            let mut t = txn.open_table(IMAGES).map_err(db_err(&self.path))?;
            t.insert(name, value.as_slice()).map_err(db_err(&self.path))?;
            Ok(())
        })
    }

    /// The image tagged `name`.
    pub fn get_image(&self, name: &str) -> Result<Option<ImageRecord>, StoreError> {
        self.get_json(IMAGES, name)
    }

    /// All tagged images, ordered by name.
    pub fn list_images(&self) -> Result<Vec<(String, ImageRecord)>, StoreError> {
        self.read(|txn| self.list_json(txn, IMAGES))
    }

    /// Untags an image; true when the tag existed. Its content becomes collectable.
    pub fn remove_image(&self, name: &str) -> Result<bool, StoreError> {
        self.write(true, |txn| {
            let mut t = txn.open_table(IMAGES).map_err(db_err(&self.path))?;
            Ok(t.remove(name).map_err(db_err(&self.path))?.is_some())
        })
    }

    // ---- small key-value data ----

    /// A value stored with [`Meta::put_kv`].
    pub fn get_kv(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let k = kv_key(namespace, key)?;
        self.read(|txn| {
            let t = txn.open_table(KV).map_err(db_err(&self.path))?;
            Ok(t.get(k.as_str()).map_err(db_err(&self.path))?.map(|v| v.value().to_vec()))
        })
    }

    /// Stores a small value (for example the solver's key components of the previous build,
    /// for `--explain`). `namespace` must not contain NUL.
    pub fn put_kv(&self, namespace: &str, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let k = kv_key(namespace, key)?;
        self.write(true, |txn| {
            let mut t = txn.open_table(KV).map_err(db_err(&self.path))?;
            t.insert(k.as_str(), value).map_err(db_err(&self.path))?;
            Ok(())
        })
    }

    /// Removes a value; true when it existed.
    pub fn remove_kv(&self, namespace: &str, key: &str) -> Result<bool, StoreError> {
        let k = kv_key(namespace, key)?;
        self.write(true, |txn| {
            let mut t = txn.open_table(KV).map_err(db_err(&self.path))?;
            Ok(t.remove(k.as_str()).map_err(db_err(&self.path))?.is_some())
        })
    }

    /// All (key, value) pairs of a namespace, ordered by key.
    pub fn list_kv(&self, namespace: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let start = kv_key(namespace, "")?;
        let end = format!("{namespace}\u{1}");
        self.read(|txn| {
            let t = txn.open_table(KV).map_err(db_err(&self.path))?;
            let mut out = Vec::new();
            for item in t.range(start.as_str()..end.as_str()).map_err(db_err(&self.path))? {
                let (k, v) = item.map_err(db_err(&self.path))?;
                out.push((k.value()[start.len()..].to_string(), v.value().to_vec()));
            }
            Ok(out)
        })
    }

    // ---- garbage collection support ----

    /// Everything in one consistent read.
    pub(crate) fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.read(|txn| {
            let cache = self.list_json::<CacheRecord>(txn, CACHE)?;
            let layers = self.list_json::<LayerRecord>(txn, LAYERS)?;
            let images = self.list_json::<ImageRecord>(txn, IMAGES)?;
            Ok(Snapshot {
                cache: cache.into_iter().filter_map(|(k, v)| Some((k.parse().ok()?, v))).collect(),
                layers: layers.into_iter().filter_map(|(k, v)| Some((k.parse().ok()?, v))).collect(),
                images: images.into_iter().collect(),
            })
        })
    }

    /// Removes cache records, then every layer record that `still_needed` rejects and no
    /// remaining cache record names, in one transaction. Returns the removed layers (whose
    /// directories the caller deletes afterwards).
    pub(crate) fn remove_records_and_layers(
        &self,
        records: &[Digest],
        candidate_layers: &[LayerId],
    ) -> Result<Vec<LayerId>, StoreError> {
        self.write(true, |txn| {
            let mut cache = txn.open_table(CACHE).map_err(db_err(&self.path))?;
            for key in records {
                cache.remove(key.as_str()).map_err(db_err(&self.path))?;
            }
            // Re-check against what remains in this transaction, so a record written
            // meanwhile by another thread keeps its layers.
            let mut referenced = std::collections::HashSet::new();
            for item in cache.iter().map_err(db_err(&self.path))? {
                let (k, v) = item.map_err(db_err(&self.path))?;
                let rec: CacheRecord = decode("cache", k.value(), v.value())?;
                referenced.extend(rec.chain);
            }
            let mut layers = txn.open_table(LAYERS).map_err(db_err(&self.path))?;
            let mut removed = Vec::new();
            for id in candidate_layers {
                if referenced.contains(id) {
                    continue;
                }
                if layers.remove(id.as_str()).map_err(db_err(&self.path))?.is_some() {
                    removed.push(id.clone());
                }
            }
            let mut unsynced = txn.open_table(UNSYNCED).map_err(db_err(&self.path))?;
            for id in &removed {
                unsynced.remove(id.as_str()).map_err(db_err(&self.path))?;
            }
            let removed_set: std::collections::HashSet<&str> = removed.iter().map(|i| i.as_str()).collect();
            let mut imports = txn.open_table(IMPORTS).map_err(db_err(&self.path))?;
            imports.retain(|_, v| !removed_set.contains(v)).map_err(db_err(&self.path))?;
            Ok(removed)
        })
    }

    /// Drops layer records whose directory is gone and cache records naming them, and blob
    /// entries whose blob is gone. Run at open, under the store lock.
    pub(crate) fn repair(&self, layer_usable: impl Fn(&LayerId) -> bool) -> Result<RepairReport, StoreError> {
        // Read first: after a clean shutdown nothing needs fixing and no write (with its
        // fsync) is spent on opening.
        let mut report = RepairReport::default();
        let mut dead_layers = Vec::new();
        let mut blob_fixes = Vec::new();
        self.read(|txn| {
            let layers = txn.open_table(LAYERS).map_err(db_err(&self.path))?;
            for item in layers.iter().map_err(db_err(&self.path))? {
                let (k, v) = item.map_err(db_err(&self.path))?;
                let id = match k.value().parse::<LayerId>() {
                    Ok(id) if layer_usable(&id) => id,
                    _ => {
                        dead_layers.push(k.value().to_string());
                        continue;
                    }
                };
                let mut rec: LayerRecord = decode("layers", k.value(), v.value())?;
                let before = rec.blobs.len();
                rec.blobs.retain(|b| self.content.contains(&b.descriptor.digest));
                if rec.blobs.len() != before {
                    report.dropped_blob_entries += before - rec.blobs.len();
                    blob_fixes.push((k.value().to_string(), rec));
                }
                report.layers.insert(id);
            }
            Ok(())
        })?;
        if dead_layers.is_empty() && blob_fixes.is_empty() {
            return Ok(report);
        }
        let keep = &report.layers;
        let (dropped_layers, dropped_cache_records) = self.write(true, |txn| {
            let mut layers = txn.open_table(LAYERS).map_err(db_err(&self.path))?;
            for (key, rec) in &blob_fixes {
                layers.insert(key.as_str(), encode(rec).as_slice()).map_err(db_err(&self.path))?;
            }
            for key in &dead_layers {
                layers.remove(key.as_str()).map_err(db_err(&self.path))?;
            }
            let mut cache = txn.open_table(CACHE).map_err(db_err(&self.path))?;
            let mut dead = Vec::new();
            for item in cache.iter().map_err(db_err(&self.path))? {
                let (k, v) = item.map_err(db_err(&self.path))?;
                let rec: CacheRecord = decode("cache", k.value(), v.value())?;
                if !rec.chain.iter().all(|id| keep.contains(id)) {
                    dead.push(k.value().to_string());
                }
            }
            for key in &dead {
                cache.remove(key.as_str()).map_err(db_err(&self.path))?;
            }
            let mut imports = txn.open_table(IMPORTS).map_err(db_err(&self.path))?;
            imports
                .retain(|_, v| v.parse::<LayerId>().is_ok_and(|id| keep.contains(&id)))
                .map_err(db_err(&self.path))?;
            let mut unsynced = txn.open_table(UNSYNCED).map_err(db_err(&self.path))?;
            unsynced
                .retain(|k, _| k.parse::<LayerId>().is_ok_and(|id| keep.contains(&id)))
                .map_err(db_err(&self.path))?;
            Ok((dead_layers.len(), dead.len()))
        })?;
        report.dropped_layers = dropped_layers;
        report.dropped_cache_records = dropped_cache_records;
        Ok(report)
    }

    /// Size of the database file.
    pub(crate) fn file_size(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }
}

impl Drop for Meta {
    fn drop(&mut self) {
        if self.unflushed.load(Ordering::SeqCst)
            && let Err(e) = self.write(true, |_| Ok(()))
        {
            tracing::warn!(error = %e, "could not flush last-used times");
        }
    }
}

/// What [`Meta::repair`] found and fixed.
#[derive(Debug, Default)]
pub(crate) struct RepairReport {
    /// Layers that are present and recorded.
    pub(crate) layers: std::collections::HashSet<LayerId>,
    pub(crate) dropped_layers: usize,
    pub(crate) dropped_cache_records: usize,
    pub(crate) dropped_blob_entries: usize,
}

fn kv_key(namespace: &str, key: &str) -> Result<String, StoreError> {
    if namespace.contains('\0') {
        return Err(StoreError::Invalid { what: "kv namespace", reason: "contains NUL".into() });
    }
    Ok(format!("{namespace}\0{key}"))
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail: all keys are strings.
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(table: &str, key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::CorruptRecord {
        table: table.to_string(),
        key: key.to_string(),
        source,
    })
}

fn db_err<E: Into<redb::Error>>(path: &Path) -> impl FnOnce(E) -> StoreError + '_ {
    move |e| StoreError::Db { path: path.to_path_buf(), source: Box::new(e.into()) }
}
