//! Disk usage and garbage collection.
//!
//! What is kept: everything reachable from a tagged image (its manifests, configs and layer
//! blobs, and the layers whose diff ids its configs list), the layers and blobs of every
//! remaining cache record, and whatever live mounts and [`crate::Lease`]s protect.
//! Everything else is garbage. Pruning first removes cache records (by policy), then, in
//! the same database transaction, the layer records nothing references any more, and only
//! then the files, so a crash mid-way leaves unreferenced files for the next prune, never
//! a record pointing at a missing file.

use crate::error::{StoreError, io_err};
use crate::layer::LayerId;
use crate::lease::Protected;
use crate::meta::{CacheRecord, Snapshot, now_unix};
use crate::store::Store;
use registry::{AnyManifest, Descriptor, Digest};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, SystemTime};

/// What [`Store::prune`] may remove.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrunePolicy {
    /// Also remove cache records whose layers are part of tagged images (the image itself
    /// always stays). Without it, such records are kept, as BuildKit keeps "shared" ones.
    pub all: bool,
    /// Keep records used within this long (`--filter until=DURATION`).
    pub keep_duration: Option<Duration>,
    /// Stop once the store holds at most this many bytes, removing least recently used
    /// records first (`--keep-storage`). Without it, every eligible record goes.
    pub keep_bytes: Option<u64>,
}

/// Disk usage of one cache record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRecord {
    /// The cache key.
    pub key: Digest,
    /// What produced it.
    pub description: String,
    /// Bytes of its layers and blobs, shared or not.
    pub size: u64,
    /// Bytes that removing only this record would free.
    pub exclusive_size: u64,
    /// Some of its data is also used by other records or tagged images.
    pub shared: bool,
    /// A live mount or lease uses one of its layers.
    pub in_use: bool,
    /// When it was made (seconds since the Unix epoch).
    pub created_unix: i64,
    /// When a build last used it (seconds since the Unix epoch).
    pub last_used_unix: i64,
}

/// Disk usage of the whole store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// One entry per cache record, most recently used first.
    pub records: Vec<UsageRecord>,
    /// Bytes of all committed layers.
    pub layers_bytes: u64,
    /// Bytes of all blobs in the content store.
    pub blobs_bytes: u64,
    /// Bytes held only by tagged images (never collected).
    pub images_bytes: u64,
    /// Bytes nothing references (the next prune removes them).
    pub unreferenced_bytes: u64,
    /// Bytes of the directories of `RUN --mount=type=cache` (listed among the records).
    pub cache_mounts_bytes: u64,
    /// Bytes of the metadata database.
    pub database_bytes: u64,
    /// Everything: layers, blobs, cache mounts and database.
    pub total_bytes: u64,
}

/// What [`Store::prune`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// The cache records removed, as they were before removal.
    pub removed: Vec<UsageRecord>,
    /// Number of layer directories removed.
    pub removed_layers: usize,
    /// Number of blobs removed.
    pub removed_blobs: usize,
    /// Bytes freed (layers and blobs).
    pub reclaimed_bytes: u64,
}

/// A cache mount as a usage record: keyed by a digest of its directory name, exclusive.
fn cache_mount_record(m: &crate::cache_mount::CacheMountUsage) -> UsageRecord {
    let dir = m.key_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    UsageRecord {
        key: Digest::of_bytes(format!("cache-mount-dir:{dir}").as_bytes()),
        description: format!("RUN --mount=type=cache id={}", m.id),
        size: m.size,
        exclusive_size: m.size,
        shared: false,
        in_use: m.in_use,
        created_unix: m.last_used_unix,
        last_used_unix: m.last_used_unix,
    }
}

/// What a prune may remove.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Victim {
    Record(Digest),
    CacheMount(std::path::PathBuf),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Item {
    Layer(LayerId),
    Blob(Digest),
}

/// The reference graph at one instant.
struct Graph {
    snap: Snapshot,
    blob_sizes: BTreeMap<Digest, u64>,
    /// Items tagged images hold.
    image_items: HashSet<Item>,
    protected: Protected,
    /// Per record: the items it holds.
    record_items: BTreeMap<Digest, Vec<Item>>,
    /// Per item: how many records hold it.
    refcount: HashMap<Item, usize>,
}

impl Graph {
    fn build(store: &Store) -> Result<Graph, StoreError> {
        let protected = store.inner.pins.protected();
        let snap = store.meta().snapshot()?;
        let mut blob_sizes = BTreeMap::new();
        for digest in store.content().list()? {
            if let Ok(size) = store.content().size(&digest) {
                blob_sizes.insert(digest, size);
            }
        }
        let image_items = image_items(store, &snap)?;
        let mut record_items = BTreeMap::new();
        let mut refcount: HashMap<Item, usize> = HashMap::new();
        for (key, rec) in &snap.cache {
            let items = items_of(&snap, rec);
            for item in &items {
                *refcount.entry(item.clone()).or_default() += 1;
            }
            record_items.insert(key.clone(), items);
        }
        Ok(Graph { snap, blob_sizes, image_items, protected, record_items, refcount })
    }

    fn size(&self, item: &Item) -> u64 {
        match item {
            Item::Layer(id) => self.snap.layers.get(id).map_or(0, |l| l.size),
            Item::Blob(d) => self.blob_sizes.get(d).copied().unwrap_or(0),
        }
    }

    fn held_elsewhere(&self, item: &Item) -> bool {
        self.image_items.contains(item)
            || matches!(item, Item::Layer(id) if self.protected.layers.contains(id))
    }

    fn usage_of(&self, key: &Digest, rec: &CacheRecord) -> UsageRecord {
        let items = &self.record_items[key];
        let size = items.iter().map(|i| self.size(i)).sum();
        let exclusive_size = items
            .iter()
            .filter(|i| self.refcount.get(*i).copied().unwrap_or(0) <= 1 && !self.held_elsewhere(i))
            .map(|i| self.size(i))
            .sum();
        UsageRecord {
            key: key.clone(),
            description: rec.description.clone(),
            size,
            exclusive_size,
            shared: exclusive_size < size,
            in_use: rec.chain.iter().any(|id| self.protected.layers.contains(id)),
            created_unix: rec.created_unix,
            last_used_unix: rec.last_used_unix,
        }
    }

    /// Layers and blobs reachable from records (except `removed`), images and protection.
    fn reachable(&self, removed: &HashSet<Digest>) -> (HashSet<LayerId>, HashSet<Digest>) {
        let mut layers: HashSet<LayerId> = self.protected.layers.clone();
        let mut blobs = HashSet::new();
        let items = self
            .record_items
            .iter()
            .filter(|(k, _)| !removed.contains(*k))
            .flat_map(|(_, items)| items.iter())
            .chain(self.image_items.iter());
        for item in items {
            match item {
                Item::Layer(id) => {
                    layers.insert(id.clone());
                }
                Item::Blob(d) => {
                    blobs.insert(d.clone());
                }
            }
        }
        // A kept layer keeps its exported blobs (so a rebuild re-exports nothing).
        for id in &layers {
            if let Some(rec) = self.snap.layers.get(id) {
                blobs.extend(rec.blobs.iter().map(|b| b.descriptor.digest.clone()));
            }
        }
        (layers, blobs)
    }
}

/// The layers (and their blobs) of a record's chain, plus its own blobs.
fn items_of(snap: &Snapshot, rec: &CacheRecord) -> Vec<Item> {
    let mut items = Vec::new();
    for id in &rec.chain {
        items.push(Item::Layer(id.clone()));
        if let Some(l) = snap.layers.get(id) {
            items.extend(l.blobs.iter().map(|b| Item::Blob(b.descriptor.digest.clone())));
        }
    }
    items.extend(rec.blobs.iter().cloned().map(Item::Blob));
    let mut seen = HashSet::new();
    items.retain(|i| seen.insert(i.clone()));
    items
}

/// Everything tagged images reach: manifest, index, config and layer blobs, and the store
/// layers whose diff id (or blob) a reached config (or manifest) names.
fn image_items(store: &Store, snap: &Snapshot) -> Result<HashSet<Item>, StoreError> {
    let mut blobs: HashSet<Digest> = HashSet::new();
    let mut diff_ids: HashSet<Digest> = HashSet::new();
    let mut stack: Vec<Descriptor> = snap.images.values().map(|i| i.manifest.clone()).collect();
    while let Some(desc) = stack.pop() {
        if !blobs.insert(desc.digest.clone()) {
            continue;
        }
        let is_doc = desc.media_type.is_index() || desc.media_type.is_manifest();
        let is_config =
            matches!(desc.media_type, registry::MediaType::OciConfig | registry::MediaType::DockerConfig);
        if !is_doc && !is_config {
            continue;
        }
        // A missing or unreadable document keeps what was found so far; nothing more.
        let Ok(bytes) = store.content().read(&desc.digest) else { continue };
        if is_config {
            diff_ids.extend(config_diff_ids(&bytes));
            continue;
        }
        match AnyManifest::parse(Some(&desc.media_type), &bytes) {
            Ok(AnyManifest::Index(index)) => stack.extend(index.manifests),
            Ok(AnyManifest::Image(m)) => {
                stack.push(m.config);
                blobs.extend(m.layers.into_iter().map(|l| l.digest));
            }
            Err(e) => {
                tracing::warn!(digest = %desc.digest, error = %e, "unreadable manifest of a tagged image")
            }
        }
    }
    let mut items: HashSet<Item> = blobs.iter().cloned().map(Item::Blob).collect();
    for (id, layer) in &snap.layers {
        let by_diff = layer.diff_id.as_ref().is_some_and(|d| diff_ids.contains(d))
            || layer
                .blobs
                .iter()
                .any(|b| diff_ids.contains(&b.diff_id) || blobs.contains(&b.descriptor.digest));
        if by_diff {
            items.insert(Item::Layer(id.clone()));
            items.extend(layer.blobs.iter().map(|b| Item::Blob(b.descriptor.digest.clone())));
        }
    }
    Ok(items)
}

fn config_diff_ids(bytes: &[u8]) -> Vec<Digest> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else { return Vec::new() };
    v.pointer("/rootfs/diff_ids")
        .and_then(|d| d.as_array())
        .map(|a| a.iter().filter_map(|d| d.as_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

impl Store {
    /// Disk usage per cache record and for the whole store.
    pub fn usage(&self) -> Result<Usage, StoreError> {
        let graph = Graph::build(self)?;
        let mut records: Vec<UsageRecord> =
            graph.snap.cache.iter().map(|(k, r)| graph.usage_of(k, r)).collect();
        let mounts = self.cache_mount_usage();
        let cache_mounts_bytes = mounts.iter().map(|m| m.size).sum();
        records.extend(mounts.iter().map(cache_mount_record));
        records.sort_by(|a, b| b.last_used_unix.cmp(&a.last_used_unix).then_with(|| a.key.cmp(&b.key)));
        let layers_bytes = graph.snap.layers.values().map(|l| l.size).sum();
        let blobs_bytes = graph.blob_sizes.values().sum();
        let by_records: HashSet<&Item> = graph.refcount.keys().collect();
        let images_bytes =
            graph.image_items.iter().filter(|i| !by_records.contains(i)).map(|i| graph.size(i)).sum();
        let (live_layers, live_blobs) = graph.reachable(&HashSet::new());
        let unreferenced_layers: u64 =
            graph.snap.layers.iter().filter(|(id, _)| !live_layers.contains(*id)).map(|(_, l)| l.size).sum();
        let unreferenced_blobs: u64 =
            graph.blob_sizes.iter().filter(|(d, _)| !live_blobs.contains(*d)).map(|(_, s)| *s).sum();
        let database_bytes = self.meta().file_size();
        Ok(Usage {
            records,
            layers_bytes,
            blobs_bytes,
            images_bytes,
            unreferenced_bytes: unreferenced_layers + unreferenced_blobs,
            cache_mounts_bytes,
            database_bytes,
            total_bytes: layers_bytes + blobs_bytes + cache_mounts_bytes + database_bytes,
        })
    }

    /// Removes cache records chosen by `policy` and every layer and blob nothing references
    /// any more. Tagged images, records in use (live mounts, leases) and what they reach
    /// are never removed.
    ///
    /// Safe to call while builds run in this process if they hold a [`crate::Lease`].
    pub fn prune(&self, policy: &PrunePolicy) -> Result<PruneReport, StoreError> {
        let _gc = self.inner.gc_lock.lock().unwrap_or_else(|e| e.into_inner());
        let graph = Graph::build(self)?;
        let now = now_unix();
        let cutoff =
            policy.keep_duration.map(|d| now.saturating_sub(d.as_secs().min(i64::MAX as u64) as i64));
        let mut candidates: Vec<(Victim, UsageRecord)> = graph
            .snap
            .cache
            .iter()
            .map(|(k, r)| (k.clone(), graph.usage_of(k, r)))
            .filter(|(k, u)| {
                let touches_image = graph.record_items[k]
                    .iter()
                    .any(|i| matches!(i, Item::Layer(_)) && graph.image_items.contains(i));
                !u.in_use && (policy.all || !touches_image) && cutoff.is_none_or(|c| u.last_used_unix < c)
            })
            .map(|(k, u)| (Victim::Record(k), u))
            .collect();
        // Cache mounts are build cache like any other (BuildKit prunes them too), never shared.
        let mounts = self.cache_mount_usage();
        let mounts_bytes: u64 = mounts.iter().map(|m| m.size).sum();
        candidates.extend(
            mounts
                .iter()
                .filter(|m| !m.in_use && cutoff.is_none_or(|c| m.last_used_unix < c))
                .map(|m| (Victim::CacheMount(m.key_dir.clone()), cache_mount_record(m))),
        );

        let chosen: Vec<(Victim, UsageRecord)> = match policy.keep_bytes {
            None => candidates,
            Some(limit) => {
                candidates
                    .sort_by(|a, b| a.1.last_used_unix.cmp(&b.1.last_used_unix).then_with(|| a.0.cmp(&b.0)));
                let (live_layers, live_blobs) = graph.reachable(&HashSet::new());
                let mut projected: u64 = graph
                    .snap
                    .layers
                    .iter()
                    .filter(|(id, _)| live_layers.contains(*id))
                    .map(|(_, l)| l.size)
                    .sum::<u64>()
                    + graph
                        .blob_sizes
                        .iter()
                        .filter(|(d, _)| live_blobs.contains(*d))
                        .map(|(_, s)| *s)
                        .sum::<u64>()
                    + mounts_bytes;
                let mut refcount = graph.refcount.clone();
                let mut chosen = Vec::new();
                for (victim, usage) in candidates {
                    if projected <= limit {
                        break;
                    }
                    match &victim {
                        Victim::Record(key) => {
                            for item in &graph.record_items[key] {
                                let n = refcount.entry(item.clone()).or_default();
                                *n = n.saturating_sub(1);
                                if *n == 0 && !graph.held_elsewhere(item) {
                                    projected = projected.saturating_sub(graph.size(item));
                                }
                            }
                        }
                        Victim::CacheMount(_) => projected = projected.saturating_sub(usage.size),
                    }
                    chosen.push((victim, usage));
                }
                chosen
            }
        };

        let removed_keys: HashSet<Digest> = chosen
            .iter()
            .filter_map(|(v, _)| match v {
                Victim::Record(k) => Some(k.clone()),
                Victim::CacheMount(_) => None,
            })
            .collect();
        let (live_layers, _) = graph.reachable(&removed_keys);
        let dead_layers: Vec<LayerId> =
            graph.snap.layers.keys().filter(|id| !live_layers.contains(*id)).cloned().collect();
        let keys: Vec<Digest> = removed_keys.iter().cloned().collect();
        let removed_layers = self.meta().remove_records_and_layers(&keys, &dead_layers)?;

        let mount_dirs: Vec<(std::path::PathBuf, u64)> = chosen
            .iter()
            .filter_map(|(v, u)| match v {
                Victim::CacheMount(dir) => Some((dir.clone(), u.size)),
                Victim::Record(_) => None,
            })
            .collect();
        let mut report =
            PruneReport { removed: chosen.into_iter().map(|(_, u)| u).collect(), ..Default::default() };
        for id in &removed_layers {
            report.reclaimed_bytes += graph.snap.layers.get(id).map_or(0, |l| l.size);
            let dir = self.inner.layers_dir.join(id.as_str());
            crate::fsutil::remove_any(&dir).map_err(io_err("remove layer", &dir))?;
        }
        report.removed_layers = removed_layers.len();
        for (dir, size) in &mount_dirs {
            crate::fsutil::remove_any(dir).map_err(io_err("remove cache mount", dir))?;
            report.reclaimed_bytes += size;
        }

        // Blobs: decided on a fresh snapshot, after the layer records are gone.
        let graph = Graph::build(self)?;
        let (_, live_blobs) = graph.reachable(&HashSet::new());
        for (digest, size) in &graph.blob_sizes {
            if live_blobs.contains(digest)
                || graph.protected.blobs.contains(digest)
                || self.blob_is_recent(digest, graph.protected.blobs_since)
            {
                continue;
            }
            self.content().remove(digest)?;
            report.removed_blobs += 1;
            report.reclaimed_bytes += size;
        }
        report.removed.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(report)
    }

    /// Prunes least recently used records until the layers and blobs take at most
    /// `max_bytes` (tagged images and records in use stay even if that is not enough; the
    /// small database file is not counted). The engine calls this before a build so the
    /// store stays under its configured cap.
    pub fn enforce_cap(&self, max_bytes: u64) -> Result<PruneReport, StoreError> {
        self.prune(&PrunePolicy { all: true, keep_duration: None, keep_bytes: Some(max_bytes) })
    }

    fn blob_is_recent(&self, digest: &Digest, since: Option<SystemTime>) -> bool {
        let Some(since) = since else { return false };
        let modified = std::fs::metadata(self.content().path(digest)).and_then(|m| m.modified());
        // Keep on doubt; the one-second slack covers coarse file-system timestamps.
        modified.map_or(true, |t| t + Duration::from_secs(1) >= since)
    }
}
